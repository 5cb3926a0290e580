"""The Swiss market end to end (issue 16): French and Italian messages for languages as
ERPs store them, and the customer's objection to review requests.

Four backends, the real command line, a real SMTP server; each test looks at the mails
received, the exit code and the ledger rows.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from cli_runner import Cli
from ledger_rows import ledger_rows
from scenario import shop
from smtp_server import SmtpServer, email_section

PORTAL = "https://bewertung.example.ch/a/{order_number}"


def by_recipient(server: SmtpServer) -> dict[str, Any]:
    return {m.rcpt_tos[0]: m.message for m in server.messages}


def test_each_customer_gets_the_language_the_erp_names_however_it_spells_it(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    spellings = {
        "romand@example.ch": "F",
        "lausanne@example.ch": "fr_CH",
        "ticino@example.ch": "Italiano",
        "lugano@example.ch": "ITA",
        "zuerich@example.ch": "D",
        "unknown@example.ch": "X",
        "empty@example.ch": None,
    }
    for address, language in spellings.items():
        order = s.order(s.customer(email=address, language=language), number=f"A-{address[:3]}")
        s.delivery_note(order, datetime(2026, 11, 26, 15, 0))
    config = write_config(email=email_section(smtp_server))

    result = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-27T08:00")

    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == len(spellings)
    mails = by_recipient(smtp_server)
    # .strip(): Python folds a long subject onto the next line ("Subject:\r\n text"), as
    # EmailMessage and send_message do; a receiver unfolds it with a leading blank
    subjects = {address: str(mail["Subject"]).strip() for address, mail in mails.items()}
    for address in ("romand@example.ch", "lausanne@example.ch"):
        assert subjects[address].startswith("Confirmation d'envoi : bulletin de livraison")
        body = mails[address].get_body(("plain",)).get_content()
        assert body.startswith("Bonjour ")
        assert mails[address].get_body(("html",)).get_content().count('<html lang="fr">') == 1
    for address in ("ticino@example.ch", "lugano@example.ch"):
        assert subjects[address].startswith("Conferma di spedizione: bollettino di consegna")
    for address in ("zuerich@example.ch", "unknown@example.ch", "empty@example.ch"):
        assert subjects[address].startswith("Versandbestätigung")  # the default language


def test_an_italian_reminder_shows_swiss_italian_amounts(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    it = s.customer(email="ticino@example.ch", language="Italiano", country="CH")
    fr = s.customer(email="romand@example.ch", language="F", country="CH")
    for customer in (it, fr):
        order = s.order(customer, delivered=False)
        s.invoice(
            order,
            customer,
            amount=Decimal("1234.50"),
            open_amount=Decimal("1234.50"),
            invoice_date=date(2026, 11, 1),
        )
    config = write_config(email=email_section(smtp_server))

    result = cli("-c", config, "prepayment-reminders", "--as-of", "2026-11-09T08:00")

    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == 2
    mails = by_recipient(smtp_server)
    italian = mails["ticino@example.ch"]
    assert str(italian["Subject"]).strip().startswith("Promemoria: fattura di pagamento anticipato")
    text = italian.get_body(("plain",)).get_content()
    assert "CHF\xa01'234.50" in text  # it_CH: the currency first, the Swiss apostrophe
    assert "1 nov 2026" in text  # it_CH date
    french = mails["romand@example.ch"].get_body(("plain",)).get_content()
    assert "1'234,50\xa0CHF" in french  # fr_CH: comma and the currency after the amount


def test_an_objection_stops_review_requests_but_not_shipping_confirmations(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    objected = s.customer(email="nein@example.ch", no_marketing=True)
    listed = s.customer(email="Liste@Example.ch", no_marketing=False)
    willing = s.customer(email="gerne@example.ch", language="F")
    orders = {}
    for customer, address in ((objected, "nein"), (listed, "liste"), (willing, "gerne")):
        orders[address] = s.order(customer, number=f"A-{address}", review_mail=1)
        s.delivery_note(orders[address], datetime(2026, 11, 20, 9, 0))
    review = {"delay_days": 7, "portal_url": PORTAL, "list_unsubscribe": "mailto:stop@example.ch"}
    config: Path = write_config(email=email_section(smtp_server), review=review)

    added = cli("-c", config, "optout", "add", "liste@example.ch")
    assert added.exit_code == 0, added.stderr
    listed_now = cli("-c", config, "optout", "list", "LISTE@example.ch")
    assert listed_now.exit_code == 0, listed_now.stderr
    assert "liste@example.ch" in listed_now.stdout

    shipped = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-20T10:00")
    assert shipped.exit_code == 0, shipped.stderr
    assert len(smtp_server.messages) == 3  # not advertising: every customer gets it
    assert all("List-Unsubscribe" not in m.message for m in smtp_server.messages)
    smtp_server.messages.clear()

    due = cli("-c", config, "review-requests", "--as-of", "2026-11-27T10:00")

    assert due.exit_code == 0, due.stderr
    assert "review-requests: 1 sent, 0 failed, 2 skipped" in due.stdout
    assert len(smtp_server.messages) == 1
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ("gerne@example.ch",)
    assert mail.message["List-Unsubscribe"] == "<mailto:stop@example.ch>"
    assert "List-Unsubscribe-Post" not in mail.message  # one-click is for https only
    text = mail.message.get_body(("plain",)).get_content()
    assert "Désinscrivez-vous ici : stop@example.ch" in text  # how to object, in French
    rows = {r.key: r for r in ledger_rows(config, prefix="review:")}
    assert len(rows) == 3
    assert rows[f"review:{orders['gerne']}"].status == "sent"
    skipped_objected = rows[f"review:{orders['nein']}"]
    assert skipped_objected.status == "skipped"
    assert "no_marketing" in skipped_objected.detail
    skipped_listed = rows[f"review:{orders['liste']}"]
    assert skipped_listed.status == "skipped"
    assert "opt-out list" in skipped_listed.detail

    removed = cli("-c", config, "optout", "remove", "LISTE@example.ch")
    assert removed.exit_code == 0, removed.stderr
    assert cli("-c", config, "optout", "list", "liste@example.ch").exit_code == 1


def test_one_click_unsubscribe_carries_each_recipients_signed_token(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    for n in (1, 2):
        order = s.order(s.customer(email=f"kunde{n}@example.ch"), number=f"A-{n}", review_mail=1)
        s.delivery_note(order, datetime(2026, 11, 20, 9, 0))
    url = "https://www.example.ch/abmelden?t={token}"
    review = {
        "delay_days": 0,
        "on_delivery_note_print": True,
        "portal_url": PORTAL,
        "list_unsubscribe": url,
        "unsubscribe_secret": "0123456789abcdef-geheim",
    }
    config = write_config(email=email_section(smtp_server), review=review)

    result = cli("-c", config, "review-requests", "--as-of", "2026-11-20T10:00")

    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == 2
    links = {}
    for mail in smtp_server.messages:
        message = mail.message
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = str(message["List-Unsubscribe"]).strip("<>")
        assert link.startswith("https://www.example.ch/abmelden?t=")
        links[mail.rcpt_tos[0]] = link
        # the text tells the customer the same link
        assert link in str(message.get_body(("plain",)).get_content())
    # RFC 8058: the POST must say who objected: one link per recipient
    assert len(set(links.values())) == 2
    # the shop's web page hands the token on: the address goes on the list
    token = unquote(links["kunde2@example.ch"].partition("?t=")[2])
    added = cli("-c", config, "optout", "add", "--token", token)
    assert added.exit_code == 0, added.stderr
    assert added.stdout.startswith("kunde2@example.ch: added to the opt-out list")
    forged = cli("-c", config, "optout", "add", "--token", token[:-2] + "xx")
    assert forged.exit_code == 2
    assert "not valid" in forged.stderr


def test_an_https_link_without_a_token_gets_no_one_click(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    order = s.order(s.customer(email="kunde@example.ch"), number="A-1", review_mail=1)
    s.delivery_note(order, datetime(2026, 11, 20, 9, 0))
    url = "https://www.example.ch/abmelden"
    review = {
        "delay_days": 0,
        "on_delivery_note_print": True,
        "portal_url": PORTAL,
        "list_unsubscribe": url,
    }
    config = write_config(email=email_section(smtp_server), review=review)

    result = cli("-c", config, "review-requests", "--as-of", "2026-11-20T10:00")

    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0].message
    assert message["List-Unsubscribe"] == f"<{url}>"
    # the same link for everyone cannot say who clicked: no one-click (RFC 8058)
    assert message["List-Unsubscribe-Post"] is None


def test_an_objection_made_after_the_plan_is_honoured_at_the_re_check(
    erp_backend: Any,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from proit_notify import objections

    s = shop(erp_backend)
    customer = s.customer(email="spaet@example.ch", no_marketing=True)
    order = s.order(customer, number="A-1", review_mail=1)
    s.delivery_note(order, datetime(2026, 11, 20, 9, 0))
    # the plan sees no objection (as if the customer objected a moment after it read the
    # candidates); the re-check right before sending reads the ERP again
    monkeypatch.setattr(objections, "objection", lambda party, opted_out, region: None)
    settings = {"delay_days": 0, "on_delivery_note_print": True, "portal_url": PORTAL}
    config = write_config(email=email_section(smtp_server), review=settings)

    result = cli("-c", config, "review-requests", "--as-of", "2026-11-20T10:00")

    assert result.exit_code == 0, result.stderr
    assert smtp_server.messages == []
    assert ledger_rows(config, prefix="review:") == []  # no longer due: nothing recorded
    # the same run without the objection sends (the test can fail)
    erp_backend.update("customers", customer, no_marketing=False)
    again = cli("-c", config, "review-requests", "--as-of", "2026-11-20T10:00")
    assert again.exit_code == 0, again.stderr
    assert len(smtp_server.messages) == 1


def test_check_counts_the_customers_who_get_another_languages_templates(
    erp_backend: Any, write_config: Any, cli: Cli
) -> None:
    s = shop(erp_backend)
    for language in ["F", "F", "Italiano", "de", "R", "R", "R", "Q", "W", None]:
        s.customer(language=language)
    config = write_config(erp={"language_codes": {"fr": ["W"]}})  # the ERP's own code for fr

    result = cli("-c", config, "check", "--no-network")

    assert result.exit_code == 0, result.stderr
    [line] = [x for x in result.stdout.splitlines() if x.startswith("languages:")]
    assert "customers by template language: de 6, fr 3, it 1" in line
    assert "3 customer(s) with language 'R' get the German templates (no rm templates" in line
    assert "1 customer(s) with language 'Q' get the German templates (not a language code" in line
    assert "'W'" not in line  # mapped by [erp.language_codes]
