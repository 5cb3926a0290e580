"""Header safety of built messages (SPEC §5): ERP text never forges a header or a recipient.

A hypothesis property over hostile names, subjects and order numbers, and one real SMTP
round trip that proves what goes over the wire.
"""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smtp_server import SmtpServer

from proit_notify.channels import Outgoing, SendResult
from proit_notify.channels.email import EmailChannel
from proit_notify.channels.email.message import MAX_LINE, Wire, build
from proit_notify.settings import AccountSettings

ACCOUNT = AccountSettings.model_validate(
    {"host": "localhost", "from": "Shop <shop@example.ch>", "reply_to": "service@example.ch"}
)
EXPECTED = ["from", "to", "subject", "date", "message-id", "reply-to"]
MIME = ["content-type", "content-transfer-encoding", "mime-version"]

#: what people (and attackers) type: encoded words carrying CR/LF and headers, raw breaks,
#: NUL, brackets, quotes, very long words
INJECTIONS = [
    "=?utf-8?q?x=0D=0ABcc=3A_someone=40example=2Eorg?=",
    "=?utf-8?b?eA0KUmVwbHktVG86IGV2aWxAZXhhbXBsZS5vcmc=?=",
    "=?iso-8859-1?q?=0ACc=3A_x=40y=2Ez?=",
    "x\r\nBcc: someone@example.org",
    "x\nTo: b@example.org",
    "x\rSubject: y",
    "\x00",
    "\u2028Bcc: z@example.org",
    '"Müller, Hans" <evil@example.org>',
    "[/] [link=https://evil.example]x[/link]",
    "A" * 5000,
]
hostile = st.one_of(
    st.sampled_from(INJECTIONS),
    st.text(max_size=300),
    st.lists(st.sampled_from([*INJECTIONS, "Müller", " ", "=?", "?=", ":"]), max_size=6).map(
        "".join
    ),
)


def wire(built: Wire) -> EmailMessage:
    """The message as a receiver parses the bytes the tool would send."""
    parsed = message_from_bytes(built.data, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=hostile, subject=hostile, number=hostile)
def test_a_built_message_parses_back_with_exactly_our_headers_or_is_refused(
    name: str, subject: str, number: str
) -> None:
    message = Outgoing(
        key=f"shipping:{number}",
        channel="email",
        to="kunde@example.ch",
        to_name=name,
        subject=f"Lieferschein {number}: {subject}",
        text=f"Grüezi {name}\n{number}\n",
        html=f"<p>{number}</p>",
        document=f"Lieferschein {number}",
    )
    built = build(ACCOUNT, "example.ch", message)
    if isinstance(built, SendResult):
        assert built.outcome == "failed"
        assert "refused" in built.detail or "cannot build" in built.detail
        return
    assert built.recipient == "kunde@example.ch"
    head = built.data.split(b"\r\n\r\n", 1)[0]
    assert b"\x00" not in head
    assert all(len(line) <= MAX_LINE for line in head.split(b"\r\n"))
    got = wire(built)
    names = [k.lower() for k in got]
    assert names[: len(EXPECTED)] == EXPECTED
    assert sorted(names[len(EXPECTED) :]) == ["content-type", "mime-version"]  # multipart
    assert [a.addr_spec for a in got["To"].addresses] == ["kunde@example.ch"]
    assert [a.addr_spec for a in got["Reply-To"].addresses] == ["service@example.ch"]
    assert [a.addr_spec for a in got["From"].addresses] == ["shop@example.ch"]


@pytest.mark.parametrize("value", INJECTIONS[:8])
@pytest.mark.parametrize("field", ["to_name", "subject"])
def test_each_injection_is_refused_with_a_reason(field: str, value: str) -> None:
    fields = {"to_name": "Kunde", "subject": "Lieferung"}
    fields[field] = f"Lieferung {value} ok" if field == "subject" else value
    built = build(
        ACCOUNT,
        "example.ch",
        Outgoing(key="shipping:1", channel="email", to="kunde@example.ch", text="t", **fields),
    )
    assert isinstance(built, SendResult)
    assert built.outcome == "failed"
    assert "refused" in built.detail


def test_a_5000_character_name_is_cut_and_folded_so_no_line_is_too_long() -> None:
    built = build(
        ACCOUNT,
        "example.ch",
        Outgoing(
            key="k",
            channel="email",
            to="kunde@example.ch",
            to_name="A" * 5000,
            subject="s",
            text="t",
        ),
    )
    assert not isinstance(built, SendResult)
    head = built.data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78 + 2
    # Python's own parser puts a space between the folded encoded words (RFC 2047 says to
    # join them); the name itself is the first 199 characters and an ellipsis
    assert wire(built)["To"].addresses[0].display_name.replace(" ", "") == "A" * 199 + "…"


def test_on_the_wire_hostile_rows_fail_and_clean_ones_arrive_with_only_our_headers(
    smtp_server: SmtpServer,
) -> None:
    email = EmailChannel({"shop": smtp_server.account()})
    names = [INJECTIONS[0], 'Jürg [Müller] "GmbH"', INJECTIONS[1], "A" * 3000]
    results = [
        email.send(
            Outgoing(
                key=f"shipping:{i}",
                channel="email",
                to=f"kunde{i}@example.ch",
                to_name=name,
                subject=f"Lieferschein {i}",
                text="t",
                account="shop",
            )
        )
        for i, name in enumerate(names)
    ]
    email.close()
    assert [r.outcome for r in results] == ["failed", "sent", "failed", "sent"]
    assert len(smtp_server.messages) == 2
    for mail in smtp_server.messages:
        assert len(mail.rcpt_tos) == 1
        assert "bcc" not in {k.lower() for k in mail.message}
        assert max(len(line) for line in mail.raw.split(b"\r\n")) <= MAX_LINE
    assert smtp_server.messages[0].message["To"].addresses[0].display_name == (
        'Jürg [Müller] "GmbH"'
    )
