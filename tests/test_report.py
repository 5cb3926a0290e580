"""JobReport: counts, the summary line, --json and what makes a run exit 1 or 4."""

from __future__ import annotations

from proit_notify.report import ItemReport, ItemStatus, JobReport


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
