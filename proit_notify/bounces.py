"""After the hand-over (SPEC §10): delivery reports read back, bounced notifications marked.

A relay's 250 is not delivery. ``proit-notify bounces`` (and ``run-all``, first) reads each
account's bounce mailbox (``[email.accounts.<name>.imap]``, :mod:`.mailbox`) and, per
message, asks :func:`read_report` whether it is a delivery report and of what:

- an RFC 3464 report (``multipart/report``, a ``message/delivery-status`` part): ``Action:
  failed`` is final (5.x.x, and 4.x.x once a relay gave up), ``delayed`` is not;
  ``delivered``/``relayed`` are no bounce at all;
- any other bounce a mailer daemon writes (qmail, Exim, old Exchange ...): flufl.bounce's
  detectors, for messages from a mailer daemon only (never an out-of-office reply or a
  customer's mail);
- the Message-IDs it carries anywhere (the returned message, ``text/rfc822-headers``,
  ``X-Microsoft-Original-Message-ID``, quoted text): matched against the Message-IDs the
  ledger kept for the emails we sent (VERP cannot be used: Microsoft 365 and Gmail own the
  envelope sender).

A final report of ours makes the email row ``bounced`` with the diagnostic, the customer
and the ERP field to fix, and holds the address back (:mod:`.ledger.bounces`); a
``delayed`` one is noted with the row. Both are then moved to ``processed_folder``. Mail
that is no report, or no report of ours, stays where it is, unread. A report older than
the row's last send (about an earlier attempt) is moved without changing the row.
"""

from __future__ import annotations

import email
import email.message
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

from .clock import Clock
from .ledger import Entry, Ledger
from .ledger.bounces import address_key
from .mailbox import Fetched, Mailbox
from .redaction import one_line
from .report import ItemReport, JobReport
from .settings import AccountSettings, Settings

log = logging.getLogger(__name__)

#: the name runs, reports and ``run-all`` know the bounce reader by
BOUNCES = "bounces"
#: what a Message-ID looks like wherever it is quoted
_MESSAGE_ID = re.compile(r"<([^<>\s\"]{1,250}@[^<>\s\"]{1,250})>")
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery|maildelivery", re.IGNORECASE)
#: Message-IDs looked up per report at most (a report quotes one message)
MAX_IDS = 50

OpenMailbox = Callable[[str, AccountSettings], AbstractContextManager[Any]]


@dataclass(frozen=True)
class Report:
    """What a delivery report says."""

    #: True: the message will not arrive (``failed``); False: not yet (``delayed``)
    final: bool
    #: the recipients it names (compared without case); empty when it names none
    recipients: frozenset[str]
    diagnostic: str
    message_ids: tuple[str, ...]
    #: when the report was written (its Date), if it says
    written: datetime | None = None


def read_report(raw: bytes) -> Report | None:
    """The delivery report in ``raw``, or None when it is none (see the module)."""
    msg = email.message_from_bytes(raw)
    found = _rfc3464(msg)
    if found is None:
        found = _other_bounce(msg)
    if found is None:
        return None
    final, recipients, diagnostic = found
    return Report(final, recipients, diagnostic, message_ids(msg), _written(msg))


def _rfc3464(msg: email.message.Message) -> tuple[bool, frozenset[str], str] | None:
    """(final, recipients, diagnostic) of a ``message/delivery-status`` part, or None."""
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        failed: list[tuple[str, str]] = []
        delayed: list[tuple[str, str]] = []
        for block in _status_blocks(part):
            action = str(block.get("Action", "")).strip().lower()
            recipient = _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
            said = " ".join(str(block.get("Diagnostic-Code", "")).split())
            said = said.split(";", 1)[1].strip() if ";" in said[:12] else said
            status = str(block.get("Status", "")).strip()
            why = said or status
            if status and status not in why:
                why = f"{status} {why}"
            if action == "failed":
                failed.append((recipient, why))
            elif action == "delayed":
                delayed.append((recipient, why))
        chosen = failed or delayed
        if not chosen:
            return None  # delivered, relayed, expanded: no bounce
        recipients = frozenset(r for r, _ in chosen if r)
        return bool(failed), recipients, "; ".join(w for _, w in chosen if w)[:500]
    return None


def _status_blocks(part: email.message.Message) -> list[email.message.Message]:
    """The header blocks of a delivery-status part (the per-message one and one per
    recipient), however the parser kept them."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, email.message.Message)]
    text = payload if isinstance(payload, str) else ""
    blocks = re.split(r"\r?\n\s*\r?\n", text.strip())
    return [email.message_from_string(b + "\n") for b in blocks if b.strip()]


def _other_bounce(msg: email.message.Message) -> tuple[bool, frozenset[str], str] | None:
    """A bounce that is no RFC 3464 report, from a mailer daemon only (flufl.bounce)."""
    if not _from_daemon(msg):
        return None
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector that trips over a strange message: no bounce to us
        log.debug("flufl.bounce could not read a message", exc_info=True)
        return None
    addresses = permanent or temporary
    if not addresses:
        return None
    recipients = frozenset(
        address_key(a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a))
        for a in addresses
    )
    return bool(permanent), recipients, _diagnostic(msg, recipients)


def _from_daemon(msg: email.message.Message) -> bool:
    if str(msg.get("Return-Path", "")).strip() == "<>":
        return True
    name, address = parseaddr(str(msg.get("From", "")))
    return bool(_DAEMON.search(address.partition("@")[0]) or _DAEMON.search(name))


def _diagnostic(msg: email.message.Message, recipients: frozenset[str]) -> str:
    """What a free-text bounce says about the recipient: the lines after its address, or
    the first line with a status code."""
    text = _first_text(msg)
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        if any(r and r in line.casefold() for r in recipients):
            after: list[str] = []
            for following in lines[i + 1 : i + 4]:
                if not following:
                    break  # the recipient's paragraph ends
                after.append(following)
            return one_line(" ".join([line, *after]))[:300]
    for line in lines:
        if _STATUS.search(line) or re.search(r"\b5\d\d\b", line):
            return one_line(line)[:300]
    return one_line(" ".join(x for x in lines if x))[:300]


def _first_text(msg: email.message.Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            return _decoded(part)
    return ""


def message_ids(msg: email.message.Message) -> tuple[str, ...]:
    """Every Message-ID the report carries, in headers and bodies of all its parts (its
    own Message-ID left out), in order, each once."""
    own = _MESSAGE_ID.findall(str(msg.get("Message-ID", "")))
    named: list[str] = []  # header fields that name a Message-ID: looked at first
    other: list[str] = []
    for part in msg.walk():
        for name, value in part.items():
            (named if "message-id" in name.lower() else other).append(str(value))
        if not part.is_multipart() and part.get_content_maintype() != "message":
            text = _decoded(part)
            # returned headers (text/rfc822-headers, quoted originals): their id lines first
            named += re.findall(r"(?im)^[\w-]*message-id:[^\n]*(?:\n[ \t][^\n]*)*", text)
            other.append(text)
    found: dict[str, None] = {}
    for text in (*named, *other):
        for match in _MESSAGE_ID.findall(text):
            if match not in own:
                found.setdefault(f"<{match}>", None)
        if len(found) >= MAX_IDS:
            break
    return tuple(found)[:MAX_IDS]


def _decoded(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, "replace")
        except LookupError:
            return payload.decode("utf-8", "replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def _address(value: object) -> str:
    """``rfc822; hans@example.ch`` -> ``hans@example.ch`` (compared without case)."""
    text = str(value or "")
    text = text.split(";", 1)[1] if ";" in text else text
    return address_key(parseaddr(text.strip())[1] or text.strip().strip("<>"))


def _written(msg: email.message.Message) -> datetime | None:
    try:
        written = parsedate_to_datetime(str(msg.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return None
    return written if written.tzinfo is not None else None


# --- the run -----------------------------------------------------------------------------


@dataclass
class BounceReport(JobReport):
    """What ``bounces`` did: the rows it marked (items), and what it read."""

    read: int = 0
    delayed: int = 0
    #: reports of ours that named another recipient (the Bcc archive's)
    others: int = 0
    processed: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        bounced = sum(1 for i in self.items if i.status in ("bounced", "planned"))
        return {"read": self.read, "bounced": bounced, "delayed": self.delayed}

    def _summary(self) -> str:
        c = self.counts
        if self.dry_run:
            return (
                f"{self.job} (dry run): {c['read']} read, {c['bounced']} would be marked "
                f"bounced, {c['delayed']} delayed"
            )
        return f"{self.job}: {c['read']} read, {c['bounced']} bounced, {c['delayed']} delayed"


def accounts_with_mailbox(settings: Settings) -> list[str]:
    """The accounts whose bounces are read (an ``[imap]`` table)."""
    return [name for name, a in settings.email.accounts.items() if a.imap is not None]


def read_bounces(
    ledger: Ledger,
    settings: Settings,
    clock: Clock,
    *,
    dry_run: bool = False,
    report: BounceReport | None = None,
    open_mailbox: OpenMailbox = Mailbox,
) -> BounceReport:
    """Read every bounce mailbox, mark what bounced (see the module). A dry run changes
    nothing: no row, no flag, no folder."""
    report = report if report is not None else BounceReport(BOUNCES, dry_run)
    since = clock.today - timedelta(days=settings.bounces.since_days)
    for name in accounts_with_mailbox(settings):
        with open_mailbox(name, settings.email.accounts[name]) as box:
            done: list[int] = []
            for fetched in box.recent(since):
                report.read += 1
                if _handle(ledger, settings, clock, report, fetched):
                    done.append(fetched.uid)
            if done and not dry_run:
                box.move(done)
                report.processed.append(
                    f"account {name}: {len(done)} report(s) moved to "
                    f"{settings.email.accounts[name].imap.processed_folder!r}"  # type: ignore[union-attr]
                )
    report.notes.extend(report.processed)
    return report


def _handle(
    ledger: Ledger, settings: Settings, clock: Clock, report: BounceReport, fetched: Fetched
) -> bool:
    """One message of the mailbox; True when it was a report of ours (to be moved)."""
    try:
        found = read_report(fetched.raw)
    except Exception:  # one strange message never stops the reading: it stays as it is
        log.warning("message %s of the bounce mailbox could not be read", fetched.uid,
                    exc_info=True)  # fmt: skip
        return False
    if found is None:
        return False
    entries = ledger.by_message_ids(found.message_ids)
    ours = False
    for entry in _theirs(entries, found, report):
        ours = True
        if found.written is not None and entry.sent_at is not None and found.written < (
            entry.sent_at - timedelta(minutes=5)
        ):
            continue  # about an earlier attempt (the row was resent since)
        if not found.final:
            report.delayed += 1
            if not report.dry_run:
                ledger.note_report(
                    entry, {"action": "delayed", "said": found.diagnostic,
                            "at": clock.utc.isoformat(timespec="seconds")},
                )  # fmt: skip
            report.notes.append(f"{entry.key}: delivery delayed ({found.diagnostic[:120]})")
            continue
        if entry.status == "bounced":
            continue  # a second report of the same bounce
        if entry.status not in ("sent", "unknown"):
            continue  # resent meanwhile, or not sent at all: nothing to mark
        detail = explain(entry, found.diagnostic, settings)
        if report.dry_run:
            report.items.append(_item(entry, "planned", f"would be marked bounced: {detail}"))
        elif ledger.bounce(entry, clock.utc, detail):
            report.items.append(_item(entry, "bounced", detail))
    return ours


def _theirs(entries: list[Entry], found: Report, report: BounceReport) -> Iterator[Entry]:
    """The rows a report is about: ours, for the recipient it names (a bounce of the Bcc
    archive's copy carries the same Message-ID, but the customer got the message)."""
    for entry in entries:
        if found.recipients and address_key(entry.recipient) not in found.recipients:
            report.others += 1
            report.notes.append(
                f"{entry.key}: a delivery report for {', '.join(sorted(found.recipients))}, "
                f"not for the customer ({entry.recipient}): left in the mailbox"
            )
            continue
        yield entry


def explain(entry: Entry, diagnostic: str, settings: Settings) -> str:
    """A bounce as the operator needs it: the customer, the ERP field to fix, the reason."""
    customer = entry.info.get("customer")
    who = "the customer"
    if isinstance(customer, dict) and customer.get("name"):
        who = f"{customer['name']} (customer {customer.get('id', '?')})"
    field_name = str(entry.info.get("address_field") or "customers.email")
    where = settings.erp.describe(field_name, settings.sms.phone_field)
    return one_line(
        f"{entry.recipient} bounced: {diagnostic or 'no reason given'}; fix {field_name} of "
        f"{who} in the ERP ({where})"
    )


def _item(entry: Entry, status: Any, reason: str) -> ItemReport:
    return ItemReport(
        entry.key, entry.document, entry.channel, entry.recipient, entry.account, status, reason
    )
