"""JobReport: counts, the summary line, --json and what makes a run exit 1 or 4."""

from __future__ import annotations

from proit_notify.report import ItemReport, ItemStatus, JobReport, Tally


def item(status: ItemStatus, key: str = "shipping:1") -> ItemReport:
    return ItemReport(key, "LS 1", "email", "a@b.ch", "default", status, "")


def test_counts_summary_and_json_agree() -> None:
    report = JobReport("shipping-confirmations", dry_run=False)
    report.items += [item("sent"), item("sent"), item("failed"), item("unknown"), item("draft")]
    assert report.counts == {
        "sent": 2, "failed": 1, "skipped": 0, "deferred": 0, "unknown": 1, "planned": 0,
        "draft": 1,
    }  # fmt: skip
    assert report.summary() == (
        "shipping-confirmations: 2 sent, 1 failed, 0 skipped, 0 deferred, 1 unknown, 1 drafts"
    )
    data = report.as_json()
    assert set(data) == {"job", "dry_run", "counts", "items"}
    assert len(data["items"]) == 5
    assert data["items"][3]["status"] == "unknown"


def test_ok_only_without_failed_deferred_unknown_or_blocked() -> None:
    assert JobReport("j", False, [item("sent"), item("skipped"), item("draft")]).ok
    for bad in ("failed", "deferred", "unknown"):
        assert not JobReport("j", False, [item("sent"), item(bad)]).ok  # type: ignore[arg-type]
    blocked = JobReport("j", False, [], blocked=["email account 'x': cannot connect"])
    assert not blocked.ok


def test_dry_run_summary_speaks_of_what_would_happen() -> None:
    report = JobReport("review-requests", dry_run=True, items=[item("planned"), item("failed")])
    assert report.summary() == (
        "review-requests (dry run): 1 would be sent, 1 would fail, 0 would be skipped"
    )


def test_the_progress_tally_estimates_from_the_rows_read_and_is_exact_at_the_end() -> None:
    tally = Tally(counting=True)
    tally.start("prepayment-reminders", now=100.0)
    assert tally.expected() is None  # the COUNT is not in yet: no "0/0"
    tally.add(1_000)  # the selection's COUNT
    tally.read, tally.planned, tally.finished = 500, 100, 50  # 4 of 5 rows are not due
    assert tally.expected() == 200  # 100 made, and the 500 unread rows at the same rate
    assert tally.left(now=110.0) == 30.0  # 50 in 10 s: 150 more take 30 s
    tally.read, tally.planned, tally.finished = 1_000, 180, 180
    assert tally.expected() == 180  # every row read: the count is exact
    assert tally.left(now=130.0) == 0.0
    tally.start("delivery-dates", now=200.0)  # the next job starts from nothing
    tally.add(0)
    assert (tally.expected(), tally.left(now=201.0)) == (0, None)
    assert Tally().expected() is None  # not counted (no terminal): no total is shown
