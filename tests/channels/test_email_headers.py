"""Header safety of built messages (SPEC §5): ERP text never forges a header or a recipient.

A hypothesis property over hostile names, subjects and order numbers, and one real SMTP
round trip that proves what goes over the wire.
"""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.parser import HeaderParser
from email.policy import default as default_policy

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from smtp_server import SmtpServer

from proit_notify.channels import Outgoing, SendResult
from proit_notify.channels.email import EmailChannel
from proit_notify.channels.email.message import MAX_LINE, Wire, build, verify_headers
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


# --- display names the standard library folds wrongly (issue 21, items 1 and 3) --------------

#: names from ERPs that made the email package's parser raise (TypeError 'ValueTerminal'
#: ..., AttributeError ... token_type) or read a second recipient after its own folding
ISSUE_NAMES = [
    '(Einkauf) (Einkauf) . (Einkauf) (Einkauf) & GmbH "Der Boss" . \\ (Einkauf) \\',
    '. "Der Boss" "Der Boss" \' < "Der Boss" ; \\ "Der Boss" Hans Meier z.Hd.',
    "Schweizerische Bundesbahnen SBB, Infrastruktur, Anlagen und Technologie (AT-FW)",
]
#: what names in ERPs are made of: quotes, commas, backslashes, brackets, long words
NAME_PARTS = [
    '"', "'", ",", "\\", "(", ")", "<", ">", ";", ":", "@", ".", "[", "]", "&", " ",
    "Der Boss", "(Einkauf)", "z.Hd.", "GmbH", "Müller", "Zürich", "=?", "?=",
    "Schweizerische", "Infrastruktur,", "A" * 90, "Ä" * 40,
]  # fmt: skip
names = st.one_of(
    st.sampled_from(ISSUE_NAMES),
    st.lists(st.sampled_from(NAME_PARTS), min_size=1, max_size=24).map("".join),
    st.text(alphabet=st.sampled_from("\"'\\,()<>;:@.[] aäZ-"), max_size=120),
)


def _one_recipient(built: Wire, recipient: str) -> str:
    """The display name of the one recipient a receiver reads (fails otherwise)."""
    got = wire(built)
    addresses = got["To"].addresses
    assert [a.addr_spec for a in addresses] == [recipient]
    assert [k.lower() for k in got].count("to") == 1
    return str(addresses[0].display_name)


@pytest.mark.parametrize("name", ISSUE_NAMES)
def test_names_the_email_package_folds_without_quotes_are_delivered(name: str) -> None:
    for to_name in (name, name + " Zürich"):  # ASCII (quoted-string) and encoded words
        built = build(
            ACCOUNT,
            "example.ch",
            Outgoing(key="shipping:1", channel="email", to="kunde@example.ch", to_name=to_name,
                     subject="Lieferschein 1", text="t"),
        )  # fmt: skip
        assert isinstance(built, Wire), built
        shown = _one_recipient(built, "kunde@example.ch")
        # RFC 2047 words are joined without blanks by mail programs; Python's parser puts
        # one between the folded words: compare without them
        assert shown.replace(" ", "") == to_name.replace(" ", "")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=names)
def test_any_display_name_reaches_exactly_one_recipient_or_fails_with_a_reason(
    name: str,
) -> None:
    message = Outgoing(
        key="shipping:1",
        channel="email",
        to="kunde@example.ch",
        to_name=name,
        subject="Lieferschein 1",
        text="t",
    )
    built = build(ACCOUNT, "example.ch", message)  # never raises
    if isinstance(built, SendResult):
        assert built.outcome == "failed"
        assert built.detail
        return
    shown = _one_recipient(built, "kunde@example.ch")
    expected = " ".join(name.split())
    if len(expected) < 200:
        assert shown.replace(" ", "") == expected.replace(" ", "")
    head = built.data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= MAX_LINE for line in head.split(b"\r\n"))


def test_the_issue_names_arrive_through_a_real_server(smtp_server: SmtpServer) -> None:
    email = EmailChannel({"shop": smtp_server.account()})
    results = [
        email.send(
            Outgoing(key=f"shipping:{i}", channel="email", to=f"kunde{i}@example.ch",
                     to_name=name, subject=f"Lieferschein {i}", text="t", account="shop")
        )
        for i, name in enumerate(ISSUE_NAMES)
    ]  # fmt: skip
    email.close()
    assert [r.outcome for r in results] == ["sent"] * len(ISSUE_NAMES)
    assert len(smtp_server.messages) == len(ISSUE_NAMES)
    for i, (mail, name) in enumerate(zip(smtp_server.messages, ISSUE_NAMES, strict=True)):
        assert mail.rcpt_tos == (f"kunde{i}@example.ch",)
        assert mail.message["To"].addresses[0].display_name == name


def test_a_subject_of_megabytes_is_refused_not_sent() -> None:
    built = build(
        ACCOUNT,
        "example.ch",
        Outgoing(key="shipping:1", channel="email", to="kunde@example.ch", to_name="K",
                 subject="Lieferschein " + "9" * 2_000_000, text="t"),
    )  # fmt: skip
    assert isinstance(built, SendResult)
    assert built.outcome == "failed"
    assert "2,000,013 characters" in built.detail


#: pieces of header values that confuse parsers: quotes, escapes, brackets, commas, groups,
#: comments, encoded words, folds (good and bad), other recipients, non-ASCII
PIECES = [
    '"', "\\", "<", ">", ",", ";", ":", "(", ")", " ", "  ", "\r\n ", "\r\n\t", "\r\n",
    "\r\n \r\n", "\n", "\r", "kunde@example.ch", "evil@example.org", "=?utf-8?b?", "?=",
    "QmNjOiB4QHkuego=", "=?utf-8?q?a=0D=0A?=", "Bcc: x@example.org", "Müller", "A", "@",
    '"a"', '\\"', " <evil@example.org>", ", ", "=?utf-8?b?QQ==?=", "(c)",
]  # fmt: skip
pieces = st.lists(st.sampled_from(PIECES), max_size=10).map("".join)
#: a To value: anything, or a phrase of pieces before one of two addresses
to_values = pieces | st.tuples(pieces, st.sampled_from(["kunde", "evil"])).map(
    lambda t: f"{t[0]} <{'kunde@example.ch' if t[1] == 'kunde' else 'evil@example.org'}>"
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(to=to_values, subject=pieces, utf8=st.booleans())
# what looser grammars let through (each found by this property): a second quoted-string,
# a lone quote inside one, an encoded word that looks like atoms
@example(to='"a" <evil@example.org> "b" <kunde@example.ch>', subject="", utf8=False)
@example(to='""" <kunde@example.ch>', subject="", utf8=False)
@example(to="=?utf-8?q?a=0D=0A?= <kunde@example.ch>", subject="", utf8=False)
def test_what_the_header_grammar_lets_through_the_email_package_reads_the_same(
    to: str, subject: str, utf8: bool
) -> None:
    # any header block, not only the builder's: what verify_headers accepts, the email
    # package reads as exactly these headers and the one recipient
    block = [
        ("From", b"From: Shop <shop@example.ch>\r\n"),
        ("To", f"To: {to}\r\n".encode()),
        ("Subject", f"Subject: {subject}\r\n".encode()),
    ]
    if verify_headers(block, "kunde@example.ch", utf8=utf8) is not None:
        return
    head = b"".join(folded for _, folded in block) + b"\r\n"
    parsed = HeaderParser(policy=default_policy).parsestr(head.decode("utf-8"))
    assert [k.lower() for k in parsed] == ["from", "to", "subject"]
    assert [a.addr_spec for a in parsed["To"].addresses] == ["kunde@example.ch"]


def test_the_header_grammar_refuses_what_would_change_the_reading() -> None:
    ok = [("To", b"To: Kunde <kunde@example.ch>\r\n"), ("Subject", b"Subject: x\r\n")]
    assert verify_headers(ok, "kunde@example.ch") is None
    for bad, why in [
        ([("To", b"To: kunde@example.ch, evil@example.org\r\n")], "one recipient"),
        ([("To", b'To: "a <x@y>" <evil@example.org>\r\n')], "one recipient"),
        ([("Subject", b"Subject: x\r\n \r\n y\r\n")], "blank line"),
        ([("Subject", b"Subject: x\r\nBcc: x@y\r\n")], "new header line"),
        ([("Subject", b"Subject: x\ny\r\n")], "bare line break"),
        ([("Subject", "Subject: Müller\r\n".encode())], "8-bit"),
        ([("Subject", b"Subject: x\r\n"), ("subject", b"subject: y\r\n")], "twice"),
        ([("Subject", b"Subject: " + b"x" * 1000 + b"\r\n")], "longer than 998"),
    ]:
        block = [h for h in ok if h[0] not in {n for n, _ in bad}] + bad
        problem = verify_headers(block, "kunde@example.ch")
        assert problem is not None, bad
        assert why in problem, (why, problem)
