"""The job registry: one entry per job, names resolve both ways, every job has templates."""

from __future__ import annotations

import pytest

from proit_notify.errors import UsageError
from proit_notify.jobs import registry
from proit_notify.render import SHIPPED_DIR


def test_run_all_order_and_both_names_resolve() -> None:
    assert registry.commands() == (
        "shipping-confirmations", "review-requests", "prepayment-reminders", "delivery-dates",
    )  # fmt: skip
    for spec in registry.JOBS:
        assert registry.spec(spec.command) is spec
        assert registry.spec(spec.ledger_name) is spec
        assert registry.make_job(spec.command).name == spec.command
        assert registry.of_key(f"{spec.ledger_name}:42:1") is spec
    assert registry.of_key("newsletter:1") is None


def test_an_unknown_job_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"shipping-confirmations.*delivery_date"):
        registry.spec("shiping")


def test_every_registered_job_has_a_sample_and_shipped_templates() -> None:
    for spec in registry.JOBS:
        assert spec.sample  # the context its templates are checked with
    for template in registry.samples():
        for lang in ("de", "en"):
            assert (SHIPPED_DIR / lang / f"{template}.txt").is_file()
