"""A job is one module and one registry entry (issue 23): a job that exists only in this test
runs end to end, through nothing but :func:`proit_notify.jobs.registry.register`.

"thank-you" thanks each customer for an order placed ``[thanks].days_after`` days ago: its
rules (this module's :class:`ThankYou`), its settings section (:class:`ThanksSettings`),
its sample context and its templates (written into ``templates.dir``, the tool ships none)
are all here. The test then uses the tool as a user would: ``check``, the job's own
command, ``run-all``, ``history``, ``--dry-run`` and a second run that sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli, cli
from erp_backends import ErpBackend
from pydantic import BaseModel, ConfigDict, Field
from scenario import shop
from smtp_server import SmtpServer, email_section, smtp_server

from proit_notify import settings as settings_module
from proit_notify.clock import Clock
from proit_notify.erp import to_text
from proit_notify.jobs import (
    PARTY_COLUMNS,
    PARTY_JOINS,
    ROW_ERRORS,
    SAMPLE_COMMON,
    Job,
    NoLongerDue,
    Notification,
    Sources,
    Verdict,
    failed_row,
    order_context,
    party_of,
    raw_document,
    registry,
)
from proit_notify.settings import Settings

__all__ = ["cli", "smtp_server"]  # fixtures


class ThanksSettings(BaseModel):
    """``[thanks]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    enabled: bool = True
    days_after: int = Field(default=1, ge=0)


SELECT = (
    "SELECT o.id AS order_id, o.number AS order_number, o.order_date, o.shop, o.contact_id, "
    + PARTY_COLUMNS
    + " FROM {orders} o "
    + PARTY_JOINS
    + " WHERE o.order_date >= ? AND o.order_date < ?"
)
STILL_THERE = "SELECT o.id AS order_id FROM {orders} o WHERE o.id = ?"


class ThankYou(Job):
    name = "thank-you"

    def plan(self, src: Sources, settings: Settings, clock: Clock) -> Iterator[Notification]:
        section = settings.section("thanks")
        assert isinstance(section, ThanksSettings)
        if not section.enabled:
            return
        day = clock.today - timedelta(days=section.days_after)
        for row in src.query(SELECT, [day, day + timedelta(days=1)], key="order_id"):
            key = f"thanks:{row['order_id']}"
            try:
                party = party_of(row)
                context = order_context(row, party, use_contact=False)
                number = to_text(row["order_number"], "orders.number") or ""
                yield Notification(
                    key=key,
                    job="thanks",
                    template="thanks",
                    document=f"Auftrag {number}",
                    party=party,
                    shop=to_text(row["shop"], "orders.shop"),
                    context={**context, "document": f"Auftrag {number}", "items": []},
                    info={"order_id": row["order_id"]},
                    ref=row["order_id"],
                )
            except ROW_ERRORS as exc:
                yield failed_row(settings, exc, key=key, job="thanks", template="thanks",
                                 document=raw_document("Auftrag", row["order_number"]))

    def recheck(self, src: Sources, settings: Settings, clock: Clock, n: Notification) -> Verdict:
        if not src.lookup(STILL_THERE, [n.ref]):
            return NoLongerDue("the order was deleted")
        return None


SPEC = registry.JobSpec(
    command="thank-you",
    ledger_name="thanks",
    template="thanks",
    make=lambda _options: ThankYou(),
    summary="Thank customers for yesterday's orders.",
    sample={**SAMPLE_COMMON, "document": "Auftrag A-1234"},
    section="thanks",
    section_model=ThanksSettings,
)

TEMPLATES = {
    "de/thanks.subject.txt": "Danke für Ihre Bestellung {{ order_number }}",
    "de/thanks.txt": "Guten Tag {{ recipient_name }}\n\nDanke für Auftrag {{ order_number }} "
    "vom {{ order_date | date }}.\n",
    "de/thanks.html": "<p>Guten Tag {{ recipient_name }}</p><p>Danke für Auftrag "
    "{{ order_number }}.</p>",
    "de/thanks.sms.txt": "Danke für Auftrag {{ order_number }}.",
}


@pytest.fixture
def thank_you() -> Iterator[None]:
    """The job registered for one test; the registry and the settings' sections as before
    afterwards."""
    jobs = list(registry.JOBS)
    sections = dict(settings_module.JOB_SECTIONS)
    registry.register(SPEC)
    try:
        yield
    finally:
        registry.JOBS[:] = jobs
        settings_module.JOB_SECTIONS.clear()
        settings_module.JOB_SECTIONS.update(sections)


def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    for name, text in TEMPLATES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize("erp_backend", ["sqlite", "postgresql"], indirect=True)
def test_a_job_registered_in_a_test_runs_end_to_end(
    thank_you: None,
    erp_backend: ErpBackend,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
    tmp_path: Path,
) -> None:
    s = shop(erp_backend)
    yesterday = s.order(s.customer(email="gestern@example.ch", name="Gestern AG"),
                        number="A-100", order_date=date(2026, 11, 26))
    s.order(s.customer(email="vorgestern@example.ch"), order_date=date(2026, 11, 25))
    s.order(s.customer(email="heute@example.ch"), order_date=date(2026, 11, 27))
    config = write_config(email=email_section(smtp_server), thanks={"days_after": 1},
                          templates={"dir": str(templates(tmp_path))})

    checked = cli("-c", config, "check", "--no-network")
    assert checked.exit_code == 0, checked.stdout + checked.stderr

    dry = cli("-c", config, "--json", "thank-you", "--as-of", "2026-11-27T08:00", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    [planned] = dry.json()
    assert [i["key"] for i in planned["items"]] == [f"thanks:{yesterday}"]
    assert smtp_server.messages == []

    run = cli("-c", config, "run-all", "--as-of", "2026-11-27T08:00")
    assert run.exit_code == 0, run.stderr
    assert "thank-you: 1 sent" in run.stdout  # run-all runs it after the shipped jobs
    assert len(smtp_server.messages) == 1
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ("gestern@example.ch",)
    assert mail.message["Subject"] == "Danke für Ihre Bestellung A-100"
    text = mail.message.get_body(("plain",))
    assert text is not None
    assert "Guten Tag Gestern AG" in text.get_content()

    again = cli("-c", config, "thank-you", "--as-of", "2026-11-27T09:00")
    assert again.exit_code == 0, again.stderr
    assert len(smtp_server.messages) == 1  # never twice

    history = cli("-c", config, "--json", "history", "--job", "thanks")
    assert history.exit_code == 0, history.stderr
    [rows] = history.json()
    assert [(r["key"], r["status"]) for r in rows] == [(f"thanks:{yesterday}", "sent")]


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_an_unknown_setting_of_the_new_section_is_named(
    thank_you: None, write_config: Any, cli: Cli
) -> None:
    config = write_config(thanks={"days_afterr": 2})
    checked = cli("-c", config, "check", "--no-network")
    assert checked.exit_code == 3
    assert "thanks.days_afterr" in checked.stderr
