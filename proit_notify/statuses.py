"""The ledger's row statuses (SPEC §6), in a module of their own: the CLI's help text
names them without importing the ledger (``--help`` stays fast)."""

from __future__ import annotations

from typing import Literal

Status = Literal["sending", "sent", "deferred", "failed", "unknown", "skipped", "draft"]
STATUSES: tuple[Status, ...] = (
    "sending",
    "sent",
    "deferred",
    "failed",
    "unknown",
    "skipped",
    "draft",
)
