"""The job registry: every job's names in one place (adding a job = a module + an entry).

A job has three names: the command (``shipping-confirmations``), the ledger's job name
(``shipping``, also the first part of its keys) and its template name (the files
``templates/<lang>/<template>.*``). ``run-all`` runs the jobs in the order listed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UsageError
from ..settings import Settings
from . import Job
from .delivery_dates import DeliveryDates
from .prepayment import PrepaymentReminders
from .review import ReviewRequests
from .shipping import ShippingConfirmations


@dataclass(frozen=True)
class JobSpec:
    """One job's names and how to make it (``delivery_notes``: ``--delivery-note``)."""

    command: str
    ledger_name: str
    template: str
    make: Callable[[tuple[str, ...]], Job]
    #: the catch-up window in days (``<job>.max_age_days``) of a job whose notifications age
    #: out WITHOUT a ledger row; None: nothing ages out silently (rows say why)
    window: Callable[[Settings], int] | None = None


JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        "shipping-confirmations",
        "shipping",
        "shipping",
        ShippingConfirmations,
        lambda s: s.shipping.max_age_days,
    ),
    JobSpec(
        "review-requests",
        "review",
        "review",
        lambda _: ReviewRequests(),
        lambda s: s.review.max_age_days,
    ),
    JobSpec("prepayment-reminders", "prepayment", "prepayment", lambda _: PrepaymentReminders()),
    JobSpec("delivery-dates", "delivery_date", "delivery_date", lambda _: DeliveryDates()),
)
#: the commands in the order ``run-all`` runs them (SPEC §7)
COMMANDS: tuple[str, ...] = tuple(spec.command for spec in JOBS)
#: the template names, for the renderer's check of every job's templates
TEMPLATES: tuple[str, ...] = tuple(spec.template for spec in JOBS)


def spec(name: str) -> JobSpec:
    """The job of a command name or a ledger job name; a usage error names the known ones."""
    for job in JOBS:
        if name in (job.command, job.ledger_name):
            return job
    known = ", ".join([*COMMANDS, *(j.ledger_name for j in JOBS)])
    raise UsageError(f"unknown job {name!r}: use one of {known}")


def make_job(name: str, *, delivery_notes: tuple[str, ...] = ()) -> Job:
    """The job object for a command name (or ledger job name)."""
    return spec(name).make(delivery_notes)


def of_key(key: str) -> JobSpec | None:
    """The job a ledger key belongs to (``shipping:42`` -> shipping), None if unknown."""
    prefix = key.partition(":")[0]
    return next((job for job in JOBS if job.ledger_name == prefix), None)
