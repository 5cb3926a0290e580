"""Delivery reports as real mail servers write them, about a message we sent.

Each builder takes the bytes of the message as our relay received it (``Received.raw``)
and returns the report as it lands in the sending mailbox. Their layout follows what
each server writes (RFC 3464 for Postfix, Exchange Online and Gmail; QSBMF for qmail),
down to where the original Message-ID is: the whole original as ``message/rfc822``
(Postfix), only ``X-Microsoft-Original-Message-ID`` inside ``text/rfc822-headers``
(Exchange Online, which gives the returned headers a Message-ID of its own), the headers
as ``text/rfc822-headers`` (Gmail), quoted text below a break line (qmail).
"""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import compat32

SHOP = "shop@contoso.example"


def _original_id(original: bytes) -> str:
    return str(message_from_bytes(original, policy=compat32)["Message-ID"])


def _headers_of(original: bytes) -> str:
    return original.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").replace("\r\n", "\n")


def postfix_failed(original: bytes, recipient: str, *, code: str = "5.1.1",
                   said: str = "550 5.1.1 <{r}>: Recipient address rejected: User unknown in "
                   "virtual mailbox table") -> bytes:  # fmt: skip
    diagnostic = said.format(r=recipient)
    return (
        "Return-Path: <>\n"
        "Date: Fri, 27 Nov 2026 08:02:13 +0100 (CET)\n"
        "From: MAILER-DAEMON@mail.contoso.example (Mail Delivery System)\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        f"To: {SHOP}\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status;\n'
        '\tboundary="A1B2C3.1795770133/mail.contoso.example"\n'
        "Message-Id: <20261127070213.9F2E81A0@mail.contoso.example>\n"
        "\n"
        "This is a MIME-encapsulated message.\n"
        "\n"
        "--A1B2C3.1795770133/mail.contoso.example\n"
        "Content-Description: Notification\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "This is the mail system at host mail.contoso.example.\n"
        "\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n"
        "\n"
        f"<{recipient}>: host mx.bluewin.example[195.186.1.1] said: {diagnostic}\n"
        "    (in reply to RCPT TO command)\n"
        "\n"
        "--A1B2C3.1795770133/mail.contoso.example\n"
        "Content-Description: Delivery report\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        "Reporting-MTA: dns; mail.contoso.example\n"
        "X-Postfix-Queue-ID: 9F2E81A0\n"
        f"X-Postfix-Sender: rfc822; {SHOP}\n"
        "Arrival-Date: Fri, 27 Nov 2026 08:02:11 +0100 (CET)\n"
        "\n"
        f"Final-Recipient: rfc822; {recipient}\n"
        f"Original-Recipient: rfc822;{recipient}\n"
        "Action: failed\n"
        f"Status: {code}\n"
        "Remote-MTA: dns; mx.bluewin.example\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n"
        "\n"
        "--A1B2C3.1795770133/mail.contoso.example\n"
        "Content-Description: Undelivered Message\n"
        "Content-Type: message/rfc822\n"
        "\n"
    ).replace("\n", "\r\n").encode() + original + (
        b"\r\n--A1B2C3.1795770133/mail.contoso.example--\r\n"
    )


def postfix_delayed(original: bytes, recipient: str) -> bytes:
    """Postfix's warning: still being retried (``Action: delayed``), headers only."""
    return (
        "Return-Path: <>\n"
        "Date: Fri, 27 Nov 2026 12:02:13 +0100 (CET)\n"
        "From: MAILER-DAEMON@mail.contoso.example (Mail Delivery System)\n"
        "Subject: Delayed Mail (still being retried)\n"
        f"To: {SHOP}\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="D4"\n'
        "Message-Id: <20261127110213.AA11@mail.contoso.example>\n"
        "\n"
        "--D4\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "This is the mail system at host mail.contoso.example.\n"
        "\n"
        "####################################################################\n"
        "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
        "####################################################################\n"
        "\n"
        f"<{recipient}>: connect to mx.example.net[203.0.113.5]:25: Connection timed out\n"
        "\n"
        "--D4\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        "Reporting-MTA: dns; mail.contoso.example\n"
        "\n"
        f"Final-Recipient: rfc822; {recipient}\n"
        "Action: delayed\n"
        "Status: 4.4.1\n"
        "Diagnostic-Code: X-Postfix; connect to mx.example.net[203.0.113.5]:25: Connection\n"
        "    timed out\n"
        "Will-Retry-Until: Tue, 1 Dec 2026 08:02:11 +0100 (CET)\n"
        "\n"
        "--D4\n"
        "Content-Type: text/rfc822-headers\n"
        "\n"
        f"{_headers_of(original)}\n"
        "\n"
        "--D4--\n"
    ).replace("\n", "\r\n").encode()


def exchange_online_ndr(original: bytes, recipient: str) -> bytes:
    """Exchange Online: the returned headers carry a Message-ID of Exchange's own; ours is
    only in ``X-Microsoft-Original-Message-ID``."""
    ours = _original_id(original)
    headers = _headers_of(original)
    headers = re.sub(r"(?im)^Message-ID:.*$", "Message-ID:\n <AM9PR04MB8410.eurprd04.prod.outlook"
                     ".com@AM9PR04MB8410.eurprd04.prod.outlook.com>", headers)  # fmt: skip
    headers += f"\nX-Microsoft-Original-Message-ID: {ours}\nX-MS-Exchange-Organization-SCL: 1"
    return (
        "Date: Fri, 27 Nov 2026 07:02:14 +0000\n"
        "From: Microsoft Outlook\n"
        " <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.example>\n"
        f"To: <{SHOP}>\n"
        "Subject: Undeliverable: Versandbestaetigung\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        '\tboundary="0c5b1a6e-1d7b-4f9e-bc4f-2b9d5f0f7e31"\n'
        "Message-ID: <b3f8e2a1-5d2c-4c4e-9f0a-ndr@AM9PR04MB8410.eurprd04.prod.outlook.com>\n"
        "MIME-Version: 1.0\n"
        "Auto-Submitted: auto-replied\n"
        "X-MS-Exchange-Message-Is-Ndr:\n"
        "\n"
        "--0c5b1a6e-1d7b-4f9e-bc4f-2b9d5f0f7e31\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "Your message to " + recipient + " couldn't be delivered.\n"
        "The email address wasn't found at the destination domain.\n"
        "\n"
        "--0c5b1a6e-1d7b-4f9e-bc4f-2b9d5f0f7e31\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        "Reporting-MTA: dns;AM9PR04MB8410.eurprd04.prod.outlook.com\n"
        "Received-From-MTA: dns;AM9PR04MB8410.eurprd04.prod.outlook.com\n"
        "Arrival-Date: Fri, 27 Nov 2026 07:02:12 +0000\n"
        "\n"
        f"Final-Recipient: rfc822;{recipient}\n"
        "Action: failed\n"
        "Status: 5.1.10\n"
        "Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found\n"
        " by SMTP address lookup\n"
        "\n"
        "--0c5b1a6e-1d7b-4f9e-bc4f-2b9d5f0f7e31\n"
        "Content-Type: text/rfc822-headers\n"
        "\n"
        f"{headers}\n"
        "\n"
        "--0c5b1a6e-1d7b-4f9e-bc4f-2b9d5f0f7e31--\n"
    ).replace("\n", "\r\n").encode()


def gmail_failure(original: bytes, recipient: str) -> bytes:
    """Gmail's "Delivery Status Notification (Failure)": a human part, the status, and the
    returned headers."""
    return (
        "Return-Path: <>\n"
        "Date: Fri, 27 Nov 2026 00:02:15 -0800 (PST)\n"
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n"
        f"To: {SHOP}\n"
        "Auto-Submitted: auto-replied\n"
        "Subject: Delivery Status Notification (Failure)\n"
        "Message-ID: <6543e1f7.050a0220.abcd.0001.GMR@mx.google.com>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; boundary="000000000000g1"; report-type=delivery-status\n'
        "\n"
        "--000000000000g1\n"
        'Content-Type: multipart/related; boundary="000000000000g2"\n'
        "\n"
        "--000000000000g2\n"
        'Content-Type: multipart/alternative; boundary="000000000000g3"\n'
        "\n"
        "--000000000000g3\n"
        'Content-Type: text/plain; charset="UTF-8"\n'
        "\n"
        "** Address not found **\n"
        "\n"
        f"Your message wasn't delivered to {recipient} because the address couldn't be found,\n"
        "or is unable to receive mail.\n"
        "\n"
        "--000000000000g3--\n"
        "--000000000000g2--\n"
        "--000000000000g1\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        "Reporting-MTA: dns; googlemail.com\n"
        "Arrival-Date: Fri, 27 Nov 2026 00:02:14 -0800 (PST)\n"
        "X-Original-Message-ID: " + _original_id(original) + "\n"
        "\n"
        f"Final-Recipient: rfc822; {recipient}\n"
        "Action: failed\n"
        "Status: 5.1.1\n"
        "Remote-MTA: dns; gmail-smtp-in.l.google.com. (2a00:1450:4013:c01::1b, the server for\n"
        " the domain gmail.com.)\n"
        "Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not\n"
        " exist. https://support.google.com/mail/?p=NoSuchUser\n"
        "Last-Attempt-Date: Fri, 27 Nov 2026 00:02:15 -0800 (PST)\n"
        "\n"
        "--000000000000g1\n"
        "Content-Type: text/rfc822-headers\n"
        "\n"
        f"{_headers_of(original)}\n"
        "\n"
        "--000000000000g1--\n"
    ).replace("\n", "\r\n").encode()


def qmail_failure(original: bytes, recipient: str) -> bytes:
    """qmail's QSBMF: plain text, the original quoted below the break paragraph."""
    return (
        "Return-Path: <>\n"
        "Date: 27 Nov 2026 07:02:16 -0000\n"
        "From: MAILER-DAEMON@mx.qmail.example\n"
        f"To: {SHOP}\n"
        "Subject: failure notice\n"
        "Message-ID: <20261127070216.4242.qmail@mx.qmail.example>\n"
        "\n"
        "Hi. This is the qmail-send program at mx.qmail.example.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n"
        "\n"
        f"<{recipient}>:\n"
        "Sorry, no mailbox here by that name. (#5.1.1)\n"
        "\n"
        "--- Below this line is a copy of the message.\n"
        "\n"
    ).replace("\n", "\r\n").encode() + original


def out_of_office(original: bytes, recipient: str) -> bytes:
    """An automatic reply of the customer's mailbox, quoting our Message-ID."""
    ours = _original_id(original)
    return (
        f"From: Hans Muster <{recipient}>\n"
        f"To: {SHOP}\n"
        "Subject: Automatische Antwort: Versandbestaetigung\n"
        "Date: Fri, 27 Nov 2026 08:02:17 +0100\n"
        "Message-ID: <ooo-4711@bluewin.example>\n"
        f"In-Reply-To: {ours}\n"
        f"References: {ours}\n"
        "Auto-Submitted: auto-replied\n"
        "X-Auto-Response-Suppress: All\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        "Ich bin bis am 7. Dezember abwesend und lese meine Mails nicht.\n"
    ).replace("\n", "\r\n").encode()


def customer_reply(original: bytes, recipient: str) -> bytes:
    """An ordinary mail of the customer, answering ours (quoting it)."""
    ours = _original_id(original)
    return (
        f"From: {recipient}\n"
        f"To: {SHOP}\n"
        "Subject: Re: Versandbestaetigung\n"
        "Date: Fri, 27 Nov 2026 09:15:00 +0100\n"
        "Message-ID: <reply-1@bluewin.example>\n"
        f"In-Reply-To: {ours}\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        "Danke, aber die Lieferung kam nicht an, ich habe die Mail nie erhalten (delivery\n"
        "failed?). Bitte melden Sie sich.\n"
    ).replace("\n", "\r\n").encode()


FOREIGN_MESSAGE = (
    b"From: Buchhaltung <buchhaltung@contoso.example>\r\nTo: lieferant@example.net\r\n"
    b"Subject: Rechnung\r\nMessage-ID: <not-ours-1@contoso.example>\r\n"
    b"Date: Thu, 26 Nov 2026 16:00:00 +0100\r\n\r\nAnbei die Rechnung.\r\n"
)
