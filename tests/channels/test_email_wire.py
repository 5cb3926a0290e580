"""The bytes of a message (``message.build``): what a receiver parses is what was rendered.

The message is assembled from parts the email package encodes (issue "Speed"), so these
tests parse every built message back with the email package and compare it with what the
job rendered: headers decoded, bodies as text, the transfer encoding the email package
would pick, and SMTPUTF8 only where an address needs it.
"""

from __future__ import annotations

from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smtp_server import RecordingHandler, SmtpServer

from proit_notify.channels import Attachment, Outgoing, SendResult
from proit_notify.channels.email import EmailChannel
from proit_notify.channels.email.message import MAX_LINE, POLICY, Wire, build
from proit_notify.settings import AccountSettings

ACCOUNT = AccountSettings.model_validate({"host": "localhost", "from": "Shop <shop@example.ch>"})


def built(**fields: object) -> Wire:
    values: dict[str, object] = {
        "key": "shipping:1",
        "channel": "email",
        "to": "kunde@example.ch",
        "to_name": "Kunde",
        "subject": "Lieferung",
        "text": "Grüezi\n",
        "html": "<p>Grüezi</p>",
    }
    values.update(fields)
    result = build(ACCOUNT, "example.ch", Outgoing(**values))  # type: ignore[arg-type]
    assert isinstance(result, Wire), result
    return result


def parsed(wire: Wire) -> EmailMessage:
    message = message_from_bytes(wire.data, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def received(part: EmailMessage) -> str:
    """A part's text as a receiver reads it (the line ends of the wire, CRLF, as LF)."""
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def lines_of(text: str) -> str:
    """What a text part carries: line ends as LF, one at the end."""
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    return body if body.endswith("\n") else body + "\n"


# everything a template can render from ERP text: umlauts, other scripts, long lines,
# trailing blanks, lines that start with a dot or "From ", '=' and the boundary's shape
body_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=400
) | st.lists(
    st.sampled_from(
        ["Grüezi", "Ωμέγα Привет", " ", "\t", "\n", "\r\n", ".", "From ", "=", "=3D", "x" * 300]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=body_text, html=st.none() | body_text, subject=st.text(max_size=120))
def test_what_a_receiver_parses_is_what_was_rendered(
    text: str, html: str | None, subject: str
) -> None:
    result = build(
        ACCOUNT,
        "example.ch",
        Outgoing(
            key="shipping:1",
            channel="email",
            to="kunde@example.ch",
            to_name="Müller",
            subject=subject,
            text=text,
            html=html,
        ),
    )
    if isinstance(result, SendResult):
        # only a subject the header checks refuse (a control character, a line break)
        assert result.outcome == "failed"
        assert "subject" in result.detail
        return
    assert result.data.endswith(b"\r\n")
    assert b"\n" not in result.data.replace(b"\r\n", b"")  # CRLF only, no bare LF or CR
    assert max(len(line) for line in result.data.split(b"\r\n")) <= MAX_LINE
    assert result.data.isascii()  # an ASCII address: no 8-bit byte anywhere
    message = parsed(result)
    # a receiver unfolds and drops the blanks around a header value (as for EmailMessage)
    assert str(message["Subject"]).strip() == subject.strip()
    assert message["To"].addresses[0].display_name == "Müller"
    plain = message.get_body(("plain",))
    assert plain is not None
    assert received(plain) == lines_of(text)
    if html is None:
        assert not message.is_multipart()
    else:
        assert message.get_content_type() == "multipart/alternative"
        rich = message.get_body(("html",))
        assert rich is not None
        assert received(rich) == lines_of(html)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Ihre Lieferung ist unterwegs.\n", "7bit"),
        ("Grüezi Frau Müller, Ihre Lieferung ist unterwegs.\n", "quoted-printable"),
        ("Здравствуйте, ваш заказ отправлен.\n" * 3, "base64"),
        ("x" * 200 + "\n", "quoted-printable"),  # ASCII, but a line too long for 7bit
    ],
)
def test_each_part_gets_the_transfer_encoding_the_email_package_would_pick(
    text: str, encoding: str
) -> None:
    message = parsed(built(text=text, html=None))
    assert message["Content-Transfer-Encoding"] == encoding
    reference = EmailMessage(policy=POLICY)  # 7bit: what a server without 8BITMIME takes
    reference.set_content(text)
    assert reference["Content-Transfer-Encoding"] == encoding  # the email package agrees


def send_to_non_ascii_local_part(server: SmtpServer) -> SendResult:
    """One message to an address with a non-ASCII local part, through ``server``."""
    server.start()
    try:
        email = EmailChannel({"shop": server.account()})
        message = Outgoing(
            key="shipping:1",
            channel="email",
            to="jürg@bücher.example",
            to_name="Jürg Müller",
            subject="Lieferung für Jürg",
            text="Grüezi\n",
            account="shop",
        )
        result = email.send(email.encode(message))
        email.close()
    finally:
        server.stop()
    return result


def test_an_address_that_needs_smtputf8_is_refused_by_a_server_without_it() -> None:
    server = SmtpServer(RecordingHandler(), smtputf8=False)
    result = send_to_non_ascii_local_part(server)
    assert result.outcome == "failed"
    assert "SMTPUTF8" in result.detail
    assert server.messages == []


def test_an_address_that_needs_smtputf8_goes_as_utf8_to_a_server_that_offers_it() -> None:
    server = SmtpServer(RecordingHandler())
    result = send_to_non_ascii_local_part(server)
    assert result.outcome == "sent", result.detail
    assert len(server.messages) == 1
    mail = server.messages[0]
    assert mail.rcpt_tos == ("jürg@bücher.example",)  # SMTPUTF8 carries the address as is
    assert "Jürg Müller".encode() in mail.raw  # SMTPUTF8: headers as UTF-8, not encoded
    assert mail.message["Subject"] == "Lieferung für Jürg"
    body = mail.message.get_body(("plain",))
    assert body is not None
    assert received(body) == "Grüezi\n"


@pytest.mark.parametrize("html", [None, "<p>Grüezi</p>"])
def test_attachments_arrive_with_their_bytes_name_and_type_beside_the_text(
    html: str | None,
) -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
    files = (
        Attachment("LS_4711.pdf", "application/pdf", pdf),
        Attachment('Rechnung "Müller" 7.pdf', "application/pdf", b"%PDF-1.4 x"),
    )

    wire = built(html=html, attachments=files, from_name="Müller Velos, Schweiz")
    message = parsed(wire)

    assert message.get_content_type() == "multipart/mixed"
    assert received(message.get_body(("plain",))) == "Grüezi\n"  # type: ignore[arg-type]
    got = [
        (p.get_filename(), p.get_content_type(), p.get_content())
        for p in message.iter_attachments()
    ]
    assert got == [(a.filename, a.content_type, a.data) for a in files]
    assert message["From"].addresses == (Address("Müller Velos, Schweiz", "shop", "example.ch"),)
    assert max(len(line) for line in wire.data.split(b"\r\n")) <= 78  # base64 of 76
