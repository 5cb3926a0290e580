"""The ERP's PDFs on the messages (SPEC §11): ``[attachments]`` path templates, filled with
a document's own fields, read right before the hand-over.

- A field value that could leave the template's folder (``..``, a separator, a drive
  ``C:``, a stream ``:``), or that Windows would read as another name (a trailing dot or
  blank, ``<>|?*"``, a control character) is that notification's failure: ERP text never
  chooses the folder.
- A file that is not there yet (the ERP may still be writing it; a share that does not
  answer) makes the whole notification wait, unclaimed, for at most ``wait_hours`` after
  the document's own time; after that it goes without the file and the alert says so.
- Files above ``max_total_mb`` together go without the rest, said the same way.

Paths as written in TOML: ``\\\\srv\\archiv\\LS_{number}.pdf`` (a UNC path) and
``D:\\archiv\\...`` on Windows; on other systems a backslash of a relative template is a
folder separator too, and a Windows-only path is refused by the settings.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath

from .channels import Attachment
from .clock import Clock
from .jobs import Document
from .redaction import CONTROL_RE, one_line
from .settings import FIELD_RE, Settings

#: a field value longer than this is not a document number
MAX_FIELD = 100
#: what a field value may not hold: separators, a drive or stream colon, and the characters
#: Windows refuses in a file name
_FORBIDDEN = frozenset('/\\:<>"|?*')
#: what a customer sees of each kind
KINDS = {"delivery_note": "delivery note", "invoice": "invoice"}


@dataclass(frozen=True)
class Collected:
    """What a notification's documents gave: the files to attach, or that it waits (the
    reason), or fails (the reason); ``without``: the files it goes without, and why (for
    the alert)."""

    files: tuple[Attachment, ...] = ()
    waiting: str | None = None
    problem: str | None = None
    without: tuple[tuple[str, str], ...] = ()  # (kind, what and why)
    #: the kinds whose file is attached ("invoice": then no QR-bill is made)
    attached: frozenset[str] = frozenset()


def field_problem(value: str) -> str | None:
    """Why an ERP value may not go into a file name (None: it may)."""
    if not value.strip():
        return "is empty"
    if len(value) > MAX_FIELD:
        return f"is {len(value):,} characters long"
    found = CONTROL_RE.search(value)
    if found or "\x00" in value:
        return "holds a control character"
    if ".." in value:
        return "holds '..' (it would leave the folder)"
    bad = sorted(set(value) & _FORBIDDEN)
    if bad:
        shown = " ".join(repr(c) for c in bad)
        return f"holds {shown} (a separator, a drive, or a character Windows refuses)"
    if value != value.rstrip(". "):
        return "ends in a dot or blank (Windows would read another file)"
    return None


def is_windows_only(template: str) -> bool:
    """A UNC path (``\\\\srv\\share\\...``) or one with a drive (``D:\\...``)."""
    return bool(PureWindowsPath(template).drive)


def path_of(
    template: str, fields: dict[str, str], base: Path, *, windows: bool | None = None
) -> PurePath:
    """The file of a document: ``template`` with its fields filled in, relative to ``base``
    (the settings file's folder). ValueError names the field that would leave the folder.

    ``windows``: read the template as a Windows path (default: on Windows); else a
    backslash is a separator as well."""
    windows = os.name == "nt" if windows is None else windows

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = fields.get(name, "")
        why = field_problem(value)
        if why is not None:
            raise ValueError(f"{{{name}}} = {one_line(value)[:80]!r} {why}")
        return value

    filled = FIELD_RE.sub(fill, template)
    if windows:
        path: PurePath = PureWindowsPath(base) / PureWindowsPath(filled)
    else:
        path = PurePosixPath(base) / PurePosixPath(filled.replace("\\", "/"))
    return path


class Attacher:
    """Reads a notification's documents for its email (see the module)."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.base = settings.source.parent

    def wanted(self, documents: Sequence[Document]) -> list[tuple[Document, str]]:
        """The documents whose kind has a path template, with it."""
        found = []
        for doc in documents:
            template: str | None = getattr(self.settings.attachments, doc.kind)
            if template is not None:
                found.append((doc, template))
        return found

    def collect(self, documents: Sequence[Document]) -> Collected:
        """The files of ``documents`` (see :class:`Collected`)."""
        a = self.settings.attachments
        budget = int(a.max_total_mb * 1024 * 1024)
        files: list[Attachment] = []
        without: list[tuple[str, str]] = []
        attached: set[str] = set()
        for doc, template in self.wanted(documents):
            kind = KINDS[doc.kind]
            try:
                path = path_of(template, dict(doc.fields), self.base)
            except ValueError as exc:
                return Collected(
                    problem=f"the {kind} cannot be attached: {exc}; [attachments] "
                    f"{doc.kind} = {template!r} takes no such value, fix it in the ERP"
                )
            try:
                size = os.stat(path).st_size
                if size > budget:
                    without.append((doc.kind,
                        f"{path.name} ({size / 1024 / 1024:.1f} MB): larger than what is left "
                        f"of attachments.max_total_mb ({a.max_total_mb:g} MB)",
                    ))  # fmt: skip
                    continue
                with open(path, "rb") as f:
                    data = f.read(budget + 1)
            except OSError as exc:
                why = exc.strerror or type(exc).__name__
                since = doc.since
                until = None if since is None else since + timedelta(hours=a.wait_hours)
                if until is not None and self.clock.now < until:
                    return Collected(
                        waiting=f"waits for the {kind} {path} ({why}): the ERP may still "
                        f"be writing it; at the latest from {until:%d.%m.%Y %H:%M} it goes without"
                    )
                without.append(
                    (doc.kind, f"{path} ({why}, after attachments.wait_hours = {a.wait_hours:g})")
                )
                continue
            budget -= len(data)
            kind_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            files.append(Attachment(path.name, kind_type, data))
            attached.add(doc.kind)
        return Collected(files=tuple(files), without=tuple(without), attached=frozenset(attached))
