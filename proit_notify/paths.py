"""Files the tool writes where others may write too (a shared folder on a file server).

The ledger, its lock file and the log file hold customers' names and addresses: only their
owner may read them, and none of them is written through a symbolic link, which another
user of the folder could point at a file of ours to overwrite or at one of theirs to read.
POSIX only for modes and links: Windows has ACLs, and its shortcuts are not links.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import ConfigError

#: os.open flag that refuses a symbolic link as the last part of a path (POSIX)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def refuse_link(path: Path, key: str) -> None:
    """A :class:`ConfigError` when ``path`` is a symbolic link (``key``: the setting that
    names it, so the message says what to change)."""
    if path.is_symlink():
        raise ConfigError(
            f"{key} {path} is a symbolic link: refused (whoever can change the link could "
            f"make this tool write elsewhere). Point {key} at a real file, or remove the link."
        )


def private(path: Path, key: str) -> None:
    """Create ``path`` readable by its owner only (0600), or tighten an existing file; a
    symbolic link is refused (:func:`refuse_link`)."""
    refuse_link(path, key)
    if os.name != "posix":
        return
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it a moment ago
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | NOFOLLOW, 0o600))
    elif path.stat().st_mode & 0o077:
        with contextlib.suppress(OSError):  # not ours to change: leave it as it is
            path.chmod(0o600)
