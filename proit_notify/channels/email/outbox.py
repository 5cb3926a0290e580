"""The ``file`` transport: each message as an ``.eml`` file, written atomically."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ...errors import UnreachableError
from .. import SendResult
from .account import Account
from .message import Wire

_FILE_NAME_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]")


def write_eml(account: Account, key: str, wire: Wire) -> SendResult:
    """The file holds what a server would receive (no Bcc header)."""
    directory = account.settings.directory
    assert directory is not None  # settings guarantee it for transport "file"
    path = directory / f"{_FILE_NAME_UNSAFE_RE.sub('_', key)}.eml"
    data = wire.data
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # temp file + replace: a reader never sees half a message
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".eml.tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UnreachableError(
            f"email account {account.name!r}: cannot write {path}: {exc.strerror}; "
            f"check email.accounts.{account.name}.directory"
        ) from None
    return SendResult("sent", str(path))


def check_directory(account: Account) -> str | None:
    directory = account.settings.directory
    assert directory is not None
    existing = directory
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent  # send() creates the missing part
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return (
            f"email account {account.name!r}: directory {directory} is not writable "
            f"({exc.strerror}); check email.accounts.{account.name}.directory"
        )
    return None


class FileTransport:
    """``transport = "file"``: each message an ``.eml`` file in ``directory``."""

    def capacity(self, account: Account) -> int:
        return 1

    def prepare(self, account: Account) -> None:
        problem = check_directory(account)
        if problem:
            raise UnreachableError(problem)

    def send(self, account: Account, wire: Wire) -> SendResult:
        account.throttle()
        return write_eml(account, wire.key, wire)

    def check(self, account: Account) -> list[str]:
        problem = check_directory(account)
        return [problem] if problem else []

    def close(self, account: Account) -> None:
        """Nothing stays open."""
