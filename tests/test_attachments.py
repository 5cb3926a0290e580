"""The ERP's PDFs on the messages (SPEC §11): real files made in the test, the real SMTP
sink parsing what arrived, hostile document numbers, the wait for a file the ERP is still
writing, the size limit; on the four backends where the ERP is read."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import pytest
from cli_runner import Cli, cli
from ledger_rows import ledger_rows
from reportlab.pdfgen import canvas
from scenario import shop
from smtp_server import SmtpServer, email_section, smtp_server

from proit_notify.attachments import field_problem, path_of
from proit_notify.settings import AttachmentSettings

__all__ = ["cli", "smtp_server"]  # fixtures

AS_OF = "2026-11-27T08:00"
PRINTED = datetime(2026, 11, 26, 15, 30)


def pdf(path: Path, text: str) -> bytes:
    """A real one-page PDF at ``path``; its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page = canvas.Canvas(str(path))
    page.drawString(72, 720, text)
    page.save()
    return path.read_bytes()


def attachments_of(message: Any) -> list[tuple[str, str, bytes]]:
    """(file name, content type, bytes) of each attachment, as a mail program reads them."""
    return [
        (part.get_filename(), part.get_content_type(), part.get_content())
        for part in message.iter_attachments()
    ]


def test_shipping_confirmation_carries_its_delivery_note_pdf(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, tmp_path: Path
) -> None:
    s = shop(erp_backend)
    anna = s.customer(name="Anna Käser", email="anna@example.ch")
    order = s.order(anna, number="A-100")
    s.delivery_note(order, PRINTED, number="LS-100")
    s.delivery_note(order, PRINTED, number="LS-101")
    first = pdf(tmp_path / "archiv" / "LS_LS-100.pdf", "Lieferschein LS-100")
    second = pdf(tmp_path / "archiv" / "LS_LS-101.pdf", "Lieferschein LS-101, anders")
    # a backslash in a relative template is a folder separator too (as written on Windows)
    config = write_config(
        email=email_section(smtp_server),
        attachments={"delivery_note": "archiv\\LS_{number}.pdf"},
    )

    planned = cli("--json", "-c", config, "shipping-confirmations", "--dry-run", "--as-of", AS_OF)
    assert planned.exit_code == 0, planned.stderr
    items = json.loads(planned.stdout)["items"]
    assert len(items) == 2
    assert sorted(i["attachments"] for i in items) == [
        ["LS_LS-100.pdf (1 KB)"], ["LS_LS-101.pdf (1 KB)"]
    ]

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == 2
    by_subject = {m.message["Subject"]: m.message for m in smtp_server.messages}
    got = {
        name: (kind, data)
        for message in by_subject.values()
        for name, kind, data in attachments_of(message)
    }
    assert got == {
        "LS_LS-100.pdf": ("application/pdf", first),
        "LS_LS-101.pdf": ("application/pdf", second),
    }
    for subject, message in by_subject.items():
        number = "LS-100" if "LS-100" in subject else "LS-101"
        assert [a[0] for a in attachments_of(message)] == [f"LS_{number}.pdf"]
        # the text still reads as before: the body is the first part of multipart/mixed
        assert message.get_content_type() == "multipart/mixed"
        assert number in message.get_body(("plain",)).get_content()
    rows = ledger_rows(config)
    assert sorted(r.info["attachments"] for r in rows) == [["LS_LS-100.pdf"], ["LS_LS-101.pdf"]]


@pytest.mark.parametrize(
    "number",
    [
        "../../etc/passwd",
        "..",
        "LS/100",
        "LS\\100",
        "C:secret",
        "LS-100.",
        "LS\x00100",
        "LS|100",
        "x" * 150,
    ],
)
def test_a_document_number_that_would_leave_the_folder_is_that_notifications_failure(
    number: str,
    erp_backend: Any,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
    tmp_path: Path,
) -> None:
    if erp_backend.name != "sqlite" and "\x00" in number:
        pytest.skip("a NUL cannot be stored in a text column of this server")
    if erp_backend.name in {"postgresql", "mariadb"} and len(number) > 20:
        pytest.skip("the test ERP's number column (VARCHAR(20)) holds no longer value")
    s = shop(erp_backend)
    hostile = s.order(s.customer(email="hostile@example.ch"), number="A-1")
    clean = s.order(s.customer(email="clean@example.ch"), number="A-2")
    s.delivery_note(hostile, PRINTED, number=number)
    s.delivery_note(clean, PRINTED, number="LS-2")
    pdf(tmp_path / "archiv" / "LS_LS-2.pdf", "LS-2")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd.pdf").write_bytes(b"not for customers")
    config = write_config(
        email=email_section(smtp_server),
        attachments={"delivery_note": "archiv/LS_{number}.pdf"},
    )

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 1, result.stderr  # a failed row, not a crash (70)
    assert [m.rcpt_tos for m in smtp_server.messages] == [("clean@example.ch",)]
    assert [a[0] for a in attachments_of(smtp_server.messages[0].message)] == ["LS_LS-2.pdf"]
    failed = [r for r in ledger_rows(config) if r.status == "failed"]
    assert len(failed) == 1
    assert "the delivery note cannot be attached: {number} =" in failed[0].detail
    assert "fix it in the ERP" in failed[0].detail


def test_field_values_that_would_choose_another_file_are_refused() -> None:
    for value in ("..", "a/b", "a\\b", "C:", "a:b", "nul.", "a ", "a\tb", "a?", "a*", '"a"'):
        assert field_problem(value) is not None, value
    for value in ("LS-4711", "RE 2026-001", "Müller_AG", "4711.2"):
        assert field_problem(value) is None, value


def test_windows_paths_work_as_written_in_toml() -> None:
    """On Windows the template is a Windows path: a UNC share or a drive, taken as written
    (single-quoted TOML). Checked here with Windows path rules; not run on Windows."""
    base = Path("/etc/proit")
    unc = path_of(r"\\srv\archiv\LS_{number}.pdf", {"number": "LS-4711"}, base, windows=True)
    assert unc == PureWindowsPath(r"\\srv\archiv\LS_LS-4711.pdf")
    drive = path_of(r"D:\Archiv\RE_{number}.pdf", {"number": "R 1"}, base, windows=True)
    assert drive == PureWindowsPath(r"D:\Archiv\RE_R 1.pdf")
    relative = path_of(r"archiv\LS_{id}.pdf", {"id": "7"}, base, windows=False)
    assert relative == PurePosixPath("/etc/proit/archiv/LS_7.pdf")
    with pytest.raises(ValueError, match="holds"):
        path_of(r"\\srv\archiv\LS_{number}.pdf", {"number": r"..\..\c$\x"}, base, windows=True)


def test_a_windows_only_path_on_another_system_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="Windows path"):
        AttachmentSettings(delivery_note=r"\\srv\archiv\LS_{number}.pdf")
    with pytest.raises(ValueError, match="unknown field"):
        AttachmentSettings(delivery_note="archiv/LS_{nummer}.pdf")
    with pytest.raises(ValueError, match="needs a field"):
        AttachmentSettings(invoice="archiv/{number}/rechnung.pdf")


def one_note(erp_backend: Any, write_config: Any, server: SmtpServer, **attachments: Any) -> Path:
    """Anna's delivery note LS-1, printed at PRINTED; the config attaching archiv/LS_*.pdf."""
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer(email="anna@example.ch")), PRINTED, number="LS-1")
    config: Path = write_config(
        email=email_section(server),
        attachments={"delivery_note": "archiv/LS_{number}.pdf", **attachments},
        alerts={"to": ["it@example.ch"]},
    )
    return config


def test_a_file_not_there_yet_waits_unclaimed_and_goes_with_the_run_after_it_came(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, tmp_path: Path
) -> None:
    config = one_note(erp_backend, write_config, smtp_server, wait_hours=24)

    early = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-26T16:00")
    assert early.exit_code == 0, early.stderr  # waiting is not a problem
    assert "1 waiting" in early.stdout
    assert smtp_server.messages == []
    assert ledger_rows(config) == []  # nothing claimed

    # the ERP wrote it meanwhile: the next run attaches it
    data = pdf(tmp_path / "archiv" / "LS_LS-1.pdf", "LS-1")
    later = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-26T16:15")
    assert later.exit_code == 0, later.stderr
    assert len(smtp_server.messages) == 1
    assert attachments_of(smtp_server.messages[0].message) == [
        ("LS_LS-1.pdf", "application/pdf", data)
    ]


def test_after_wait_hours_the_mail_goes_without_the_file_and_the_alert_says_which(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    config = one_note(erp_backend, write_config, smtp_server, wait_hours=2)

    # printed 15:30, waited for until 17:30
    result = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-26T17:31")

    assert result.exit_code == 0, result.stderr
    customer = [m for m in smtp_server.messages if m.rcpt_tos == ("anna@example.ch",)]
    assert len(customer) == 1
    assert attachments_of(customer[0].message) == []
    alerts = [m for m in smtp_server.messages if m.rcpt_tos == ("it@example.ch",)]
    assert len(alerts) == 1
    alert = alerts[0].message.get_body(("plain",)).get_content()
    assert "LS_LS-1.pdf" in alert
    assert "goes without" in alert
    assert [r.status for r in ledger_rows(config)] == ["sent"]


def test_a_file_above_max_total_mb_goes_without_and_is_said(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, tmp_path: Path
) -> None:
    config = one_note(erp_backend, write_config, smtp_server, max_total_mb=1)
    big = tmp_path / "archiv" / "LS_LS-1.pdf"
    big.parent.mkdir()
    big.write_bytes(b"%PDF-1.4\n" + b"0" * 1_200_000)

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert [m.rcpt_tos for m in smtp_server.messages] == [("anna@example.ch",), ("it@example.ch",)]
    assert attachments_of(smtp_server.messages[0].message) == []
    assert "larger than what is left of attachments.max_total_mb (1 MB)" in result.stderr
    alert = smtp_server.messages[1].message.get_body(("plain",)).get_content()
    assert "LS_LS-1.pdf (1.1 MB)" in alert


def test_demo_archive_is_attached(tmp_path: Path, cli: Cli) -> None:
    made = cli("demo", "--dir", str(tmp_path / "demo"))
    assert made.exit_code == 0, made.stderr
    assert "PDFs)" in made.stdout
    config = tmp_path / "demo" / "proit-notify.toml"
    planned = cli("--json", "-c", str(config), "shipping-confirmations", "--dry-run")
    assert planned.exit_code in (0, 1), planned.stderr
    items = [i for i in json.loads(planned.stdout)["items"] if i["status"] == "planned"]
    assert items
    email = [i for i in items if i["channel"] == "email"]
    assert email
    assert all(i["attachments"][0].startswith("LS_LS") for i in email)
