"""Drafts: notices stored for review instead of sent (SPEC §4 delivery-dates, §6 ``draft``).

With ``delivery_date.edit_before_send`` the runner stores each rendered notice as a ledger
row with status ``draft``; ``info["draft"]`` holds a :class:`Payload` (subject, text, HTML and
what is needed to send it later), written and read only here. These functions list, show,
edit and discard drafts, and send them (:func:`send`) through the delivery, with the same
claim, re-check and record as every other message. Every state change is one conditional
UPDATE (``... WHERE status = 'draft'``), so two people (or a person and a cron run) never
send or discard the same draft twice.

Decisions: an edited text replaces the HTML part by simple HTML made from that text (the
customer sees the edit in either part); a discarded draft stays as a ``skipped`` row with
the detail ``discarded``, so the next run does not re-create it for the same date.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from .channels import ChannelName, Outgoing
from .clock import to_utc_text
from .delivery import Handover
from .errors import NotifyError, UsageError
from .jobs import NOBODY, NoLongerDue, Notification
from .jobs.registry import of_key
from .ledger import Entry, Ledger, Row
from .render import Rendered
from .report import ItemReport, JobReport
from .runner import Runner
from .statuses import Status

DISCARDED = "discarded"
#: how many drafts ``list`` reads at most (a review queue, not an archive)
MAX_LISTED = 100_000


def json_value(value: object) -> object:
    """An ERP id as JSON keeps it bindable: integral Decimals (NUMERIC ids) become ints."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if value is None or isinstance(value, int | str | float):
        return value
    return str(value)


@dataclass(frozen=True)
class Payload:
    """What a ``draft`` row keeps in ``info["draft"]`` to be sent later without re-rendering.

    ``command``: the job that re-checks it before it is sent; ``ref``: the ERP id it
    re-checks with.
    """

    command: str
    ref: object
    to_name: str | None
    subject: str
    text: str
    html: str | None
    edited: bool = False

    def as_info(self) -> dict[str, Any]:
        return {**asdict(self), "ref": json_value(self.ref)}

    @classmethod
    def of(cls, entry: Entry) -> Payload:
        d: dict[str, Any] = entry.info.get("draft") or {}
        return cls(
            command=str(d.get("command") or ""),
            ref=d.get("ref"),
            to_name=d.get("to_name"),
            subject=str(d.get("subject") or ""),
            text=str(d.get("text") or ""),
            html=d.get("html"),
            edited=bool(d.get("edited")),
        )

    def edited_to(self, new: Rendered) -> Payload:
        return replace(self, subject=new.subject, text=new.text, html=new.html, edited=True)

    @property
    def rendered(self) -> Rendered:
        return Rendered(self.subject, self.text, self.html)


@dataclass(frozen=True)
class Draft:
    """A ``draft`` ledger row and the message it holds."""

    entry: Entry
    payload: Payload

    @property
    def key(self) -> str:
        return self.entry.key

    @property
    def edited(self) -> bool:
        return self.payload.edited

    @property
    def subject(self) -> str:
        return self.payload.subject

    @property
    def text(self) -> str:
        return self.payload.text

    @property
    def channel(self) -> str:
        return self.entry.channel

    @property
    def delivery_date(self) -> str:
        return str(self.entry.info.get("delivery_date") or "")

    def as_json(self) -> dict[str, Any]:
        e = self.entry
        return {
            **e.as_json(),
            "delivery_date": self.entry.info.get("delivery_date"),
            "previous_delivery_date": self.entry.info.get("previous_delivery_date"),
            "created_at": to_utc_text(e.created_at),
            "edited": self.edited,
            "subject": self.subject,
            "text": self.text,
        }


def _draft(entry: Entry) -> Draft:
    return Draft(entry, Payload.of(entry))


# --- reading ------------------------------------------------------------------------------


def list_drafts(ledger: Ledger) -> list[Draft]:
    """Every row waiting for review, oldest first."""
    return [_draft(e) for e in ledger.history(status="draft", limit=MAX_LISTED)]


def drafts_of(ledger: Ledger, key: str) -> list[Draft]:
    """The draft rows of one key (one per channel); a usage error when there is none."""
    entries = ledger.entries(key)
    found = [_draft(e) for e in entries if e.status == "draft"]
    if not found:
        rows = ", ".join(f"{e.channel}: {e.status}" for e in entries) or "no ledger rows"
        raise UsageError(f"{key}: not a draft ({rows}); see 'proit-notify drafts list'")
    return found


# --- state changes ------------------------------------------------------------------------


def _move(
    ledger: Ledger,
    d: Draft,
    to: Status,
    now: datetime,
    *,
    detail: str | None = None,
    info: dict[str, Any] | None = None,
) -> bool:
    """draft -> ``to``; False when the row is no longer a draft (someone else was faster)."""
    return ledger.transition(
        d.key, d.channel, from_status="draft", to=to, now=now, detail=detail, info=info
    )


def discard(ledger: Ledger, key: str, now: datetime) -> list[Draft]:
    """Never send this draft; the row stays (``skipped``) so it is not drafted again."""
    done = [d for d in drafts_of(ledger, key) if _move(ledger, d, "skipped", now, detail=DISCARDED)]
    if not done:
        raise UsageError(f"{key}: was sent or discarded by someone else just now")
    return done


# --- editing ------------------------------------------------------------------------------

_HTML = Markup(
    '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n</head>\n'
    '<body style="font-family: Arial, Helvetica, sans-serif; font-size: 14px; '
    'line-height: 1.4; color: #222;">\n{}\n</body>\n</html>\n'
)


def html_from_text(text: str) -> str:
    """Simple HTML for an edited text: paragraphs stay paragraphs, aligned tables aligned."""
    parts = []
    for block in re.split(r"\n[ \t]*\n", text.strip("\n")):
        if not block.strip():
            continue
        if re.search(r"\S {2,}\S", block):  # columns aligned with spaces (the items table)
            parts.append(
                Markup('<pre style="font-family: Consolas, monospace;">{}</pre>').format(block)
            )
        else:
            lines = Markup("<br>\n").join(escape(line) for line in block.splitlines())
            parts.append(Markup("<p>{}</p>").format(lines))
    return str(_HTML.format(Markup("\n").join(parts)))


def editable(subject: str, text: str, channel: str) -> str:
    """What the editor shows: ``Subject: ...``, a blank line and the text (SMS: the text)."""
    return text if channel == "sms" else f"Subject: {subject}\n\n{text}"


def edited_message(original: Rendered, channel: str, content: str) -> Rendered:
    """The message after an edit; a usage error for a file that cannot be sent."""
    # an editor on Windows may add a BOM and CR/LF line ends
    content = content.removeprefix("\ufeff").replace("\r\n", "\n")
    if channel == "sms":
        text = content.strip()
        if not text:
            raise UsageError("the edited SMS is empty; to not send it: proit-notify drafts discard")
        return Rendered(subject="", text=text, html=None)
    head, _, body = content.partition("\n")
    if not head.lower().startswith("subject:"):
        raise UsageError(
            "the edited file must start with the line 'Subject: ...' and a blank line; "
            "nothing was changed"
        )
    subject = " ".join(head[len("subject:") :].split())  # one header line, no CR/LF
    text = body.strip("\n") + "\n"
    if not subject or not text.strip():
        raise UsageError("the edited subject or text is empty; nothing was changed")
    if text == original.text:
        return Rendered(subject=subject, text=text, html=original.html)
    return Rendered(subject=subject, text=text, html=html_from_text(text))


Editor = Callable[[str], str | None]


def editor_command() -> list[str]:
    """$VISUAL, else $EDITOR, else the platform's plain editor, as an argument list."""
    command = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not command:
        return ["notepad"] if os.name == "nt" else ["vi"]
    windows = os.name == "nt"
    parts = shlex.split(command, posix=not windows)
    # Windows keeps the quotes of "C:\Program Files\...\editor.exe" in the token
    parts = [p[1:-1] if windows and len(p) > 1 and p[0] == p[-1] == '"' else p for p in parts]
    # "code" is code.cmd on Windows: without a shell only its full path can be started
    if parts:
        parts[0] = shutil.which(parts[0]) or parts[0]
    return parts


def open_editor(content: str) -> str | None:
    """Open the editor on a temporary file; None when it was closed without saving."""
    handle, name = tempfile.mkstemp(prefix="proit-notify-", suffix=".txt")
    path = Path(name)
    try:
        # the platform's line ends: Notepad of older Windows shows an LF-only file as one line
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(content)
        before = path.stat().st_mtime_ns
        command = editor_command()
        try:
            # no shell: the file name is one argument whatever it contains
            finished = subprocess.run([*command, str(path)], check=False)  # noqa: S603
        except OSError as exc:
            raise NotifyError(
                f"cannot start the editor {command[0]!r}: {exc.strerror}; set VISUAL or EDITOR "
                "to an editor that waits until the file is closed (e.g. 'nano', 'code --wait', "
                "'notepad')"
            ) from None
        if finished.returncode != 0:
            raise NotifyError(f"the editor {command[0]!r} ended with code {finished.returncode}")
        edited = path.read_text(encoding="utf-8-sig")
        # a changed text counts as saved even when the clock did not tick in between
        if path.stat().st_mtime_ns == before and edited == content:
            return None
        return edited
    finally:
        path.unlink(missing_ok=True)


def edit_in_editor(rendered: Rendered, channel: str) -> Rendered | None:
    """``delivery-dates --edit``: the edited message, or None (left unsaved) = keep a draft."""
    content = open_editor(editable(rendered.subject, rendered.text, channel))
    if content is None or not content.strip():
        return None
    return edited_message(rendered, channel, content)


def edit(ledger: Ledger, key: str, now: datetime, editor: Editor = open_editor) -> list[Draft]:
    """Edit the drafts of ``key`` in the editor and keep the result; the changed ones."""
    changed = []
    for d in drafts_of(ledger, key):
        content = editor(editable(d.subject, d.text, d.channel))
        if content is None:
            continue  # left without saving
        original = d.payload.rendered
        new = edited_message(original, d.channel, content)
        if new == original:
            continue
        info = {**d.entry.info, "draft": d.payload.edited_to(new).as_info()}
        if not _move(ledger, d, "draft", now, detail="edited; waiting for review", info=info):
            raise UsageError(f"{key}: was sent or discarded while you edited; the edit is lost")
        changed.append(_draft(replace(d.entry, info=info)))
    return changed


# --- sending: a draft becomes a hand-over --------------------------------------------------


def handover(d: Draft) -> Handover:
    """What the delivery gets for a reviewed draft (its row is claimed from ``draft``)."""
    e = d.entry
    channel: ChannelName = "sms" if e.channel == "sms" else "email"
    return Handover(
        row=Row(e.key, e.channel, e.job, e.document, e.recipient, e.account, dict(e.info)),
        message=Outgoing(
            key=e.key,
            channel=channel,
            to=e.recipient,
            to_name=d.payload.to_name,
            subject=d.payload.subject,
            text=d.payload.text,
            html=d.payload.html,
            account=e.account if channel == "email" else None,
            document=e.document,
        ),
        was="draft",
    )


def still_due(runner: Runner, d: Draft) -> NoLongerDue | None:
    """The job's re-check of a draft: None if still due (or its job is unknown to this
    version: a person decides), else why not."""
    job_spec = of_key(d.key)
    if job_spec is None:
        return None
    n = Notification(
        key=d.key,
        job=d.entry.job,
        template=job_spec.template,
        document=d.entry.document,
        party=NOBODY,
        shop=None,
        context={},
        info=d.entry.info,
        ref=d.payload.ref,
    )
    verdict = runner.recheck(job_spec.make({}), n)
    if isinstance(verdict, NoLongerDue):
        return verdict
    if verdict.problem is not None:
        return NoLongerDue(verdict.problem)
    return None


def send(runner: Runner, chosen: Sequence[Draft]) -> JobReport:
    """``drafts send``: each reviewed draft through the delivery, as a run's messages go."""
    delivery = runner.delivery
    report = JobReport("drafts send", dry_run=False)
    if not delivery.may_send(report, dry_run=False):
        return report
    delivery.recover(report)
    with delivery.batch(report) as p:
        for d in chosen:
            delivery.check_stop()
            late = delivery.not_now(d.entry.channel)
            if late is not None:  # stays a draft: nothing is claimed outside the window
                why = f"{late}: still a draft; 'drafts send' in the window sends it"
                delivery.add(report, handover(d).item("waiting", why))
                continue
            item = delivery.hand_over(p, handover(d), functools.partial(_recheck, runner, d))
            if isinstance(item, ItemReport):
                delivery.add(report, item)
    return report


def _recheck(runner: Runner, d: Draft) -> Handover | ItemReport:
    h = handover(d)
    verdict = still_due(runner, d)
    if verdict is None:
        return h
    retired = runner.ledger.transition(
        d.key, d.entry.channel, from_status="draft", to="skipped", now=runner.clock.utc,
        detail=verdict.reason,
    )  # fmt: skip
    why = verdict.reason if retired else "no longer a draft: sent or discarded by someone else"
    return h.item("skipped", why)


def retire(runner: Runner) -> list[tuple[Draft, str]]:
    """Drafts no longer due (date changed again, order delivered) become ``skipped``."""
    retired = []
    for d in list_drafts(runner.ledger):
        verdict = still_due(runner, d)
        if verdict is not None and runner.ledger.transition(
            d.key, d.entry.channel, from_status="draft", to="skipped", now=runner.clock.utc,
            detail=verdict.reason,
        ):  # fmt: skip
            retired.append((d, verdict.reason))
    return retired
