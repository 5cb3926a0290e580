"""The ledger (SPEC §6, §8): what was sent, in one database, and the run lock.

- :mod:`.store`: the rows, one per notification and channel (claim, outcome, resolve);
- :mod:`.runs`: the run records (``status``, alerts);
- :mod:`.optout`: the opt-out list;
- :mod:`.migrate`: the schema version and the upgrades of an older ledger;
- :mod:`.lock`: the run lock;
- :mod:`.table`: what they share (their database, their errors).
"""

from __future__ import annotations

from .lock import RunLock
from .migrate import SCHEMA_VERSION
from .store import STALE, Entry, Ledger, Row, ddl

__all__ = ["SCHEMA_VERSION", "STALE", "Entry", "Ledger", "Row", "RunLock", "ddl"]
