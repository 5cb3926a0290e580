"""The job registry: a job is one module and one entry here (SPEC §1, §7).

A :class:`JobSpec` holds everything the rest of the tool knows of a job: its three names
(the command ``shipping-confirmations``, the ledger's ``shipping``, also the first part of
its keys, and the template name: the files ``templates/<lang>/<template>.*``), how to make
it from the command line's options, its settings section, the sample context its
templates are checked with, its command-line options, whether it is advertising (then the
opt-out list and List-Unsubscribe apply, SPEC §5) and whether its messages wait as drafts.
The CLI builds the job commands from here; ``run-all`` runs the jobs in the order listed.

A job of a plug-in (or a test) registers itself with :func:`register`; a settings section
of its own is a pydantic model (:attr:`JobSpec.section_model`), validated with the rest.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..errors import UsageError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..settings import Settings
    from . import Job


@dataclass(frozen=True)
class JobOption:
    """A command-line option of one job, besides those every job has (``--dry-run``...):
    its flag, its help, and the name its value is handed to :attr:`JobSpec.make` under."""

    flag: str
    help: str
    name: str
    #: "repeat": a text given any number of times (a tuple); "flag": on or off
    kind: Literal["repeat", "flag"] = "repeat"
    #: what the help shows for a value (``--delivery-note NUMBER``)
    metavar: str = "TEXT"


@dataclass(frozen=True)
class JobSpec:
    """One job, as the rest of the tool knows it (see the module)."""

    command: str
    ledger_name: str
    template: str
    #: the job, from its command-line options (by :attr:`JobOption.name`)
    make: Callable[[Mapping[str, Any]], Job]
    #: the command's help (one line)
    summary: str
    #: the sample context its templates are rendered with by ``check``
    sample: Mapping[str, object]
    #: its settings section (``[shipping]``)
    section: str
    #: the catch-up window in days (``<section>.max_age_days``) of a job whose
    #: notifications age out WITHOUT a ledger row; None: nothing ages out silently
    window: Callable[[Settings], int] | None = None
    options: tuple[JobOption, ...] = ()
    #: advertising in the eyes of the courts (a review request): a customer who objected
    #: gets none, and its emails carry List-Unsubscribe (SPEC §5)
    advertising: bool = False
    #: its messages wait as drafts for a person (``delivery_date.edit_before_send``)
    drafts: Callable[[Settings], bool] = field(default=lambda _: False)
    #: a person may edit each message before it is sent (``--edit``)
    editable: bool = False
    #: a settings section of its own (a job of a plug-in): validated with the others
    section_model: type[BaseModel] | None = None


def _module(name: str) -> Any:
    """A job module, imported when a job is made or its templates are checked: the
    registry itself is read by every ``--help`` (see the package)."""
    return importlib.import_module(f".{name}", __package__)


class _Sample(Mapping[str, object]):
    """The ``SAMPLE`` of a job module, read when first used."""

    def __init__(self, module: str) -> None:
        self._name = module

    def _sample(self) -> Mapping[str, object]:
        sample: Mapping[str, object] = _module(self._name).SAMPLE
        return sample

    def __getitem__(self, key: str) -> object:
        return self._sample()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sample())

    def __len__(self) -> int:
        return len(self._sample())


JOBS: list[JobSpec] = [
    JobSpec(
        "shipping-confirmations",
        "shipping",
        "shipping",
        lambda o: _module("shipping").ShippingConfirmations(tuple(o.get("delivery_notes", ()))),
        "Send a shipping confirmation for each printed delivery note.",
        _Sample("shipping"),
        "shipping",
        window=lambda s: s.shipping.max_age_days,
        options=(
            JobOption(
                "--delivery-note",
                "Confirm this delivery note (by number); repeatable.",
                "delivery_notes",
                metavar="NUMBER",
            ),
        ),
    ),
    JobSpec(
        "review-requests",
        "review",
        "review",
        lambda _: _module("review").ReviewRequests(),
        "Send review requests that are due (review.delay_days after the trigger).",
        _Sample("review"),
        "review",
        window=lambda s: s.review.max_age_days,
        advertising=True,
    ),
    JobSpec(
        "prepayment-reminders",
        "prepayment",
        "prepayment",
        lambda _: _module("prepayment").PrepaymentReminders(),
        "Remind customers of unpaid prepayment invoices.",
        _Sample("prepayment"),
        "prepayment",
    ),
    JobSpec(
        "delivery-dates",
        "delivery_date",
        "delivery_date",
        lambda _: _module("delivery_dates").DeliveryDates(),
        "Tell customers the promised delivery date of their order.",
        _Sample("delivery_dates"),
        "delivery_date",
        drafts=lambda s: s.delivery_date.edit_before_send,
        editable=True,
    ),
]


def register(job: JobSpec) -> None:
    """Add a job (run by ``run-all`` after the others); its settings section is known to
    the settings from now on."""
    if any(job.command in (j.command, j.ledger_name) for j in JOBS):
        raise ValueError(f"a job named {job.command!r} is registered already")
    JOBS.append(job)
    if job.section_model is not None:
        from .. import settings as settings_module

        settings_module.JOB_SECTIONS[job.section] = job.section_model


def commands() -> tuple[str, ...]:
    """The commands in the order ``run-all`` runs them (SPEC §7)."""
    return tuple(job.command for job in JOBS)


def samples() -> dict[str, Mapping[str, object]]:
    """Template name -> sample context, for the renderer's check of every job's templates."""
    return {job.template: job.sample for job in JOBS}


def spec(name: str) -> JobSpec:
    """The job of a command name or a ledger job name; a usage error names the known ones."""
    for job in JOBS:
        if name in (job.command, job.ledger_name):
            return job
    known = ", ".join([*commands(), *(j.ledger_name for j in JOBS)])
    raise UsageError(f"unknown job {name!r}: use one of {known}")


def make_job(name: str, options: Mapping[str, Any] | None = None) -> Job:
    """The job object for a command name (or ledger job name)."""
    return spec(name).make(options or {})


def of_key(key: str) -> JobSpec | None:
    """The job a ledger key belongs to (``shipping:42`` -> shipping), None if unknown."""
    prefix = key.partition(":")[0]
    return next((job for job in JOBS if job.ledger_name == prefix), None)
