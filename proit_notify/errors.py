"""The one error hierarchy. Each error carries the exit code ``cli.py`` turns it into."""

from __future__ import annotations


class NotifyError(Exception):
    """Base of every error proit-notify raises on purpose; the message says how to fix it,
    ``problems`` lists each thing to fix when there are several."""

    exit_code = 1

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems

    def __str__(self) -> str:
        head = super().__str__()
        if not self.problems:
            return head
        return head + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class UsageError(NotifyError):
    """A command was called wrongly (exit 2)."""

    exit_code = 2


class ConfigError(NotifyError):
    """The settings are invalid; ``problems`` lists every one of them (exit 3)."""

    exit_code = 3


class MissingObjectError(ConfigError):
    """A query names a table or column the database does not have (exit 3): a mapping or
    ``ledger.table`` to fix, not a server to wait for."""


class TemplateError(ConfigError):
    """A message template is missing, broken or uses an unknown placeholder (exit 3)."""


class UnreachableError(NotifyError):
    """A database, ledger, mail server or gateway cannot be reached (exit 4)."""

    exit_code = 4


class ErpError(UnreachableError):
    """The ERP database failed: connection, driver, or a query (exit 4)."""


class DeadlockError(ErpError):
    """The database made this statement a deadlock victim (SQLSTATE 40001): it was rolled
    back, and doing it again is safe."""


class LedgerError(UnreachableError):
    """The ledger cannot be opened or written (exit 4)."""


class Interrupted(NotifyError):
    """A stop signal (Ctrl-C, SIGTERM, Ctrl-Break) ended the run at a safe point: what was
    handed over is recorded, nothing is left ``sending`` (exit 130, as a shell reports an
    interrupted program)."""

    exit_code = 130


class LockedError(NotifyError):
    """Another run holds the lock (exit 5)."""

    exit_code = 5


class RowError(ValueError):
    """One ERP row's value cannot be used: a text in a number column, ``31.09.2026`` in a
    date column, invalid UTF-8, a 2 MB order number. It is that row's ``failed`` with this
    reason, never the run's error: on purpose not a :class:`NotifyError`, so no command
    turns it into an exit code. ``field`` is the logical ``table.field``."""

    def __init__(self, field: str, value: object, why: str) -> None:
        self.field = field
        super().__init__(f"{field or 'value'} = {shown_value(value)} {why}")


def shown_value(value: object, limit: int = 60) -> str:
    """``value`` for a message: repr, control characters escaped, at most ``limit`` long
    (a 2 MB text is not copied into the message)."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return repr(value[:limit])[:-1] + f"...' ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= limit + 20 else text[: limit + 20] + "..."
