"""The email channel against a real SMTP server on loopback (SPEC §5, §6)."""

from __future__ import annotations

import socket
import time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from smtp_server import DROP, SmtpServer, TestCa, free_port

from proit_notify.channels import Outgoing
from proit_notify.channels.email import EmailChannel
from proit_notify.errors import UnreachableError
from proit_notify.settings import AccountSettings


def outgoing(n: int = 1, **overrides: Any) -> Outgoing:
    values: dict[str, Any] = {
        "key": f"shipping:{n}",
        "channel": "email",
        "to": f"kunde{n}@example.ch",
        "to_name": "Jürg Müller",
        "subject": f"Versandbestätigung Lieferschein {n} – Größe",
        "text": f"Grüezi\n\nIhre Lieferung {n} ist unterwegs.\n",
        "html": f"<p>Grüezi</p><p>Ihre Lieferung {n} ist unterwegs.</p>",
        "account": "shop",
    }
    values.update(overrides)
    return Outgoing(**values)


def channel(account: AccountSettings) -> EmailChannel:
    return EmailChannel({"shop": account})


def test_message_arrives_with_both_parts_reply_to_and_bcc(smtp_server: SmtpServer) -> None:
    email = channel(
        smtp_server.account(reply_to="service@beispiel.ch", bcc="archiv@beispiel.ch")
    )
    result = email.send(outgoing(headers=(("X-Proit-Key", "shipping:1"),)))
    email.close()

    assert result.outcome == "sent"
    assert result.detail == "250 2.0.0 Ok: queued as Q1"
    [got] = smtp_server.messages
    assert got.mail_from == "shop@beispiel.ch"
    assert got.rcpt_tos == ("kunde1@example.ch", "archiv@beispiel.ch")
    msg = got.message
    assert msg["Subject"] == "Versandbestätigung Lieferschein 1 – Größe"
    assert str(msg["To"]) == "Jürg Müller <kunde1@example.ch>"
    assert b"J=C3=BCrg" in got.raw or b"=?utf-8?" in got.raw  # encoded, not raw 8 bit
    assert got.raw.isascii()
    assert msg["From"].addresses[0].addr_spec == "shop@beispiel.ch"
    assert str(msg["Reply-To"]) == "service@beispiel.ch"
    assert msg["Bcc"] is None
    assert b"archiv@" not in got.raw
    assert msg["Message-ID"].endswith("@beispiel.ch>")
    assert msg["Date"] is not None
    assert msg["X-Proit-Key"] == "shipping:1"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Ihre Lieferung 1 ist unterwegs." in text.get_content()
    assert "<p>Grüezi</p>" in html.get_content()


def test_text_only_message_is_not_multipart(smtp_server: SmtpServer) -> None:
    email = channel(smtp_server.account())
    assert email.send(outgoing(html=None, to_name=None)).ok
    email.close()
    msg = smtp_server.messages[0].message
    assert msg.get_content_type() == "text/plain"
    assert str(msg["To"]) == "kunde1@example.ch"


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": "Versand\r\nBcc: opfer@example.com"},
        {"to_name": "Jürg\nBcc: opfer@example.com"},
        {"to": "kunde@example.ch\r\nBcc: opfer@example.com"},
        {"headers": (("X-Note", "a\nBcc: opfer@example.com"),)},
    ],
)
def test_line_break_in_a_header_is_refused(
    smtp_server: SmtpServer, overrides: dict[str, Any]
) -> None:
    email = channel(smtp_server.account())
    result = email.send(outgoing(**overrides))
    email.close()
    assert result.outcome == "failed"
    assert "CR/LF" in result.detail or "line break" in result.detail
    assert smtp_server.messages == []


def test_invalid_address_fails_without_connecting() -> None:
    # nothing listens on this port: a connection attempt would be "deferred"
    email = channel(AccountSettings.model_validate(
        {"host": "127.0.0.1", "port": free_port(), "security": "none", "from": "a@b.ch"}
    ))
    result = email.send(outgoing(to="kein-at-zeichen.example.ch"))
    assert result.outcome == "failed"
    assert "kein-at-zeichen.example.ch" in result.detail


def test_550_fails_and_the_batch_goes_on_on_the_same_connection(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.handler.rcpt_answers["kunde2@example.ch"] = "550 5.1.1 User unknown"
    email = channel(smtp_server.account())
    results = [email.send(outgoing(n)) for n in (1, 2, 3)]
    email.close()
    assert [r.outcome for r in results] == ["sent", "failed", "sent"]
    assert results[1].detail == "550 5.1.1 User unknown"
    assert [m.rcpt_tos for m in smtp_server.messages] == [
        ("kunde1@example.ch",),
        ("kunde3@example.ch",),
    ]
    assert smtp_server.handler.connections == 1


def test_one_connection_for_a_batch(smtp_server: SmtpServer) -> None:
    email = channel(smtp_server.account())
    assert all(email.send(outgoing(n)).ok for n in (1, 2, 3))
    email.close()
    assert len(smtp_server.messages) == 3
    assert smtp_server.handler.connections == 1


@pytest.mark.parametrize(
    ("where", "answer", "outcome"),
    [
        ("rcpt", "451 4.7.1 Greylisted, try again later", "deferred"),
        ("data", "451 4.3.0 Temporary failure", "deferred"),
        ("data", "552 5.3.4 Message too big", "failed"),
        ("rcpt", "452 4.2.2 Mailbox full", "deferred"),
    ],
)
def test_reply_codes_are_classified(
    smtp_server: SmtpServer, where: str, answer: str, outcome: str
) -> None:
    answers = getattr(smtp_server.handler, f"{where}_answers")
    answers["kunde1@example.ch"] = answer
    email = channel(smtp_server.account())
    result = email.send(outgoing())
    assert (result.outcome, result.detail) == (outcome, answer)
    # the connection survives a refusal
    assert email.send(outgoing(2)).ok
    email.close()
    assert smtp_server.handler.connections == 1


def test_connection_dropped_during_data_is_unknown(smtp_server: SmtpServer) -> None:
    smtp_server.handler.data_answers["kunde1@example.ch"] = DROP
    email = channel(smtp_server.account())
    result = email.send(outgoing())
    assert result.outcome == "unknown"
    assert len(smtp_server.handler.dropped) == 1
    # the next message goes out on a new connection
    assert email.send(outgoing(2)).ok
    email.close()
    assert smtp_server.handler.connections == 2


def test_connection_refused_is_a_configuration_failure_naming_account_and_fix() -> None:
    port = free_port()
    email = channel(AccountSettings.model_validate(
        {"host": "127.0.0.1", "port": port, "security": "none", "from": "a@b.ch"}
    ))
    # prepare() runs before the runner claims anything; send() when a new connection fails
    for attempt in (lambda: email.prepare("shop"), lambda: email.send(outgoing(1))):
        with pytest.raises(UnreachableError) as raised:
            attempt()
        message = str(raised.value)
        assert f"127.0.0.1:{port}" in message
        assert "refused" in message
        assert "'shop'" in message
        assert "email.accounts.shop.host" in message
    email.close()


def test_silent_server_is_a_configuration_failure_after_the_timeout() -> None:
    with socket.socket() as listener:  # accepts connections, never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        email = channel(AccountSettings.model_validate(
            {"host": "127.0.0.1", "port": port, "security": "none", "from": "a@b.ch",
             "timeout": 0.2}
        ))
        with pytest.raises(UnreachableError, match=f"127.0.0.1:{port}: timed out"):
            email.prepare("shop")


def test_message_id_is_the_same_for_a_resend_and_differs_per_key(
    smtp_server: SmtpServer,
) -> None:
    email = channel(smtp_server.account())
    assert email.send(outgoing(1)).ok
    assert email.send(outgoing(1)).ok  # the same notification again (ledger resolve --resend)
    assert email.send(outgoing(2)).ok
    email.close()
    assert len(smtp_server.messages) == 3
    first, again, other = (m.message["Message-ID"] for m in smtp_server.messages)
    assert first == again
    assert first != other
    assert first.startswith("<proit-notify.")
    assert first.endswith("@beispiel.ch>")


def test_international_sender_domain(smtp_server: SmtpServer) -> None:
    email = channel(smtp_server.account(**{"from": "Bücher AG <shop@bücher.ch>"}))
    assert email.send(outgoing()).ok
    email.close()
    [got] = smtp_server.messages
    assert got.message["Message-ID"].endswith("@xn--bcher-kva.ch>")


def test_reconnects_when_the_server_restarted_between_messages(
    smtp_server: SmtpServer,
) -> None:
    email = channel(smtp_server.account())
    assert email.send(outgoing(1)).ok
    smtp_server.restart()  # closes the open connection
    result = email.send(outgoing(2))
    email.close()
    assert result.outcome == "sent"
    assert len(smtp_server.messages) == 2
    assert smtp_server.handler.connections == 2


def test_starttls_with_untrusted_certificate_stops_before_auth(tls_server: SmtpServer) -> None:
    email = channel(tls_server.account())  # no ca_file: the system trust store
    with pytest.raises(UnreachableError) as caught:
        email.send(outgoing())
    message = str(caught.value)
    assert f"localhost:{tls_server.port}" in message
    assert "ca_file" in message
    assert "secret" not in message
    assert tls_server.handler.auth_attempts == []
    assert tls_server.messages == []


def test_starttls_with_wrong_host_name_names_the_fix(
    tls_server: SmtpServer, test_ca: TestCa
) -> None:
    # the certificate is for "localhost", not for the IP address
    email = channel(tls_server.account(host="127.0.0.1", ca_file=str(test_ca.ca_file)))
    with pytest.raises(UnreachableError, match=r"\.host") as caught:
        email.send(outgoing())
    assert f"127.0.0.1:{tls_server.port}" in str(caught.value)
    assert tls_server.handler.auth_attempts == []


def test_starttls_with_ca_file_and_login(tls_server: SmtpServer, test_ca: TestCa) -> None:
    email = channel(tls_server.account(ca_file=str(test_ca.ca_file)))
    assert email.check() == []
    assert email.send(outgoing()).ok
    email.close()
    assert len(tls_server.messages) == 1
    assert tls_server.handler.auth_attempts == ["shop", "shop"]  # check(), then the batch


def test_implicit_tls(smtp_ssl_server: SmtpServer, test_ca: TestCa) -> None:
    email = channel(smtp_ssl_server.account(ca_file=str(test_ca.ca_file)))
    assert email.send(outgoing()).ok
    email.close()
    assert len(smtp_ssl_server.messages) == 1


def test_wrong_password_names_the_keys_not_the_password(
    tls_server: SmtpServer, test_ca: TestCa
) -> None:
    email = channel(tls_server.account(ca_file=str(test_ca.ca_file), password="falsch-geheim"))
    with pytest.raises(UnreachableError) as caught:
        email.send(outgoing())
    message = str(caught.value)
    assert "email.accounts.shop.username/password" in message
    assert f"localhost:{tls_server.port}" in message
    assert "falsch-geheim" not in message
    assert email.check() != []
    assert tls_server.messages == []


def test_check_reports_an_unreachable_server() -> None:
    port = free_port()
    email = channel(AccountSettings.model_validate(
        {"host": "127.0.0.1", "port": port, "security": "none", "from": "a@b.ch"}
    ))
    [problem] = email.check()
    assert "'shop'" in problem
    assert f"127.0.0.1:{port}" in problem


def test_file_transport_writes_a_parseable_eml(tmp_path: Path) -> None:
    directory = tmp_path / "out" / "mails"
    email = channel(AccountSettings.model_validate(
        {"transport": "file", "directory": str(directory), "from": "Shop <shop@beispiel.ch>",
         "bcc": "archiv@beispiel.ch"}
    ))
    assert email.check() == []
    result = email.send(outgoing(7, key="prepayment:7:1"))
    email.close()
    path = directory / "prepayment_7_1.eml"
    assert result.outcome == "sent"
    assert result.detail == str(path)
    assert sorted(p.name for p in directory.iterdir()) == ["prepayment_7_1.eml"]
    msg = message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == "Versandbestätigung Lieferschein 7 – Größe"
    assert msg["Bcc"] is None
    body = msg.get_body(("html",))
    assert body is not None
    assert "Lieferung 7" in body.get_content()


def test_max_per_minute_spaces_the_messages(smtp_server: SmtpServer) -> None:
    email = channel(smtp_server.account(max_per_minute=600))  # one per 0.1 s
    start = time.monotonic()
    assert all(email.send(outgoing(n)).ok for n in (1, 2, 3))
    email.close()
    assert time.monotonic() - start >= 0.2


def test_unknown_account_is_a_configuration_error(smtp_server: SmtpServer) -> None:
    from proit_notify.errors import ConfigError

    email = channel(smtp_server.account())
    with pytest.raises(ConfigError, match="shop"):
        email.send(outgoing(account="andere"))


@pytest.mark.parametrize(
    "answer",
    [
        "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to "
        "process message due to a permanent exception",
        "554 5.2.2 mailbox full; STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
        "452 4.5.3 Too many recipients",
        "450 4.7.0 Throttled, try again later",
    ],
    ids=["quota-5.2.0", "quota-5.2.2", "4.5.3", "4.7.0"],
)
def test_exchange_online_throttling_is_deferred_never_failed(
    smtp_server: SmtpServer, answer: str
) -> None:
    smtp_server.handler.data_answers["kunde1@example.ch"] = answer
    email = EmailChannel({"shop": smtp_server.account()})
    result = email.send(outgoing())
    email.close()
    assert result.outcome == "deferred"
    assert answer.split()[1] in result.detail


def test_a_recipient_refused_for_good_still_fails(smtp_server: SmtpServer) -> None:
    smtp_server.handler.data_answers["kunde1@example.ch"] = "550 5.1.1 unknown user"
    email = EmailChannel({"shop": smtp_server.account()})
    result = email.send(outgoing())
    email.close()
    assert result.outcome == "failed"


@pytest.mark.parametrize(
    ("host", "given", "kept"),
    [
        ("smtp.office365.com", None, 30),
        ("SMTP.Office365.com", 10, 10),
        ("mail.example.ch", None, None),
    ],
)
def test_microsoft_365_accounts_send_at_most_30_a_minute_unless_set(
    host: str, given: int | None, kept: int | None
) -> None:
    values: dict[str, Any] = {"host": host, "from": "shop@example.ch"}
    if given is not None:
        values["max_per_minute"] = given
    assert AccountSettings.model_validate(values).max_per_minute == kept
