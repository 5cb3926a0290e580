"""The run lock (SPEC §6): two runs on one machine never overlap.

An OS file lock (filelock: ``fcntl`` on POSIX, ``msvcrt`` on Windows), so a killed run
leaves no stale lock; the second run exits with code 5 at once.
"""

from __future__ import annotations

from pathlib import Path

import filelock

from ..errors import LedgerError, LockedError
from ..paths import refuse_link


class RunLock:
    """An OS file lock (works on Windows too); a killed run leaves no stale lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = filelock.FileLock(str(path), timeout=0)

    def __enter__(self) -> RunLock:
        # filelock (>= 3.20.3) opens with O_NOFOLLOW too; this says why in our words
        refuse_link(self.path, "ledger.lock_file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except filelock.Timeout:
            raise LockedError(
                f"another proit-notify run holds the lock {self.path}; this run did nothing. "
                "If no other run is active, check ledger.lock_file."
            ) from None
        except OSError as exc:
            raise LedgerError(f"cannot create the lock file {self.path}: {exc.strerror}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
