"""Each web shop's own face (SPEC §11): ``[shops."CODE"]`` account, templates, review portal
and sender name; ``email.shop_accounts`` keeps working beside it; on the four backends."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli
from scenario import shop
from smtp_server import SmtpServer, email_section

from proit_notify.errors import ConfigError
from proit_notify.settings import load_settings


def shops_config(write_config: Any, server: SmtpServer, tmp_path: Path) -> Path:
    own = tmp_path / "templates-ch" / "de"
    own.mkdir(parents=True)
    (own / "shipping.subject.txt").write_text(
        "Ihr Paket vom Shop Schweiz: {{ delivery_note_number }}\n", encoding="utf-8"
    )
    path: Path = write_config(
        email={
            **email_section(
                server,
                ch={"from": "Webshop <web-ch@example.ch>"},
                de={"from": "Webshop DE <web-de@example.de>"},
            ),
            "shop_accounts": {"SHOP-DE": "de"},  # the older way, still valid
        },
        shops={
            "SHOP-CH": {
                "account": "ch",
                "templates_dir": "templates-ch",
                "portal_url": "https://ch.example.ch/bewerten/{order_number}",
                "sender_name": "Müller Velos Schweiz",
            },
            "SHOP-DE": {"portal_url": "https://de.example.de/bewerten"},
        },
        review={"delay_days": 7, "portal_url": "https://www.example.ch/bewertung"},
    )
    return path


def test_each_shop_sends_from_its_account_in_its_name_with_its_templates_and_portal(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, tmp_path: Path
) -> None:
    s = shop(erp_backend)
    ch = s.order(s.customer(email="ch@example.ch"), shop="SHOP-CH", number="A-1", review_mail=1)
    de = s.order(s.customer(email="de@example.de"), shop="SHOP-DE", number="A-2", review_mail=1)
    phone = s.order(s.customer(email="tel@example.ch"), number="A-3", review_mail=1)
    for order in (ch, de, phone):
        s.delivery_note(order, datetime(2026, 11, 20, 9, 0), number=f"LS-{order}")
    config = shops_config(write_config, smtp_server, tmp_path)

    shipped = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-20T10:00")

    assert shipped.exit_code == 0, shipped.stderr
    assert len(smtp_server.messages) == 3
    by_rcpt = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    swiss = by_rcpt["ch@example.ch"]
    assert swiss.mail_from == "web-ch@example.ch"
    sender = swiss.message["From"].addresses
    assert sender == (Address("Müller Velos Schweiz", "web-ch", "example.ch"),)
    assert swiss.message["Subject"] == f"Ihr Paket vom Shop Schweiz: LS-{ch}"
    german = by_rcpt["de@example.de"]
    assert german.mail_from == "web-de@example.de"  # email.shop_accounts
    assert str(german.message["From"]) == "Webshop DE <web-de@example.de>"
    assert "Shop Schweiz" not in german.message["Subject"]  # the shipped template
    assert by_rcpt["tel@example.ch"].mail_from == "shop@example.ch"  # no shop: the default
    smtp_server.messages.clear()

    reviews = cli("-c", config, "review-requests", "--as-of", "2026-11-27T08:00")

    assert reviews.exit_code == 0, reviews.stderr
    assert len(smtp_server.messages) == 3
    texts = {
        m.rcpt_tos[0]: m.message.get_body(("plain",)).get_content() for m in smtp_server.messages
    }
    assert "https://ch.example.ch/bewerten/A-1" in texts["ch@example.ch"]
    assert "https://de.example.de/bewerten" in texts["de@example.de"]
    assert "https://www.example.ch/bewertung" in texts["tel@example.ch"]


@pytest.mark.parametrize(
    ("shop_toml", "said"),
    [
        ('account = "nope"\ntemplates_dir = "missing"\n',
         ["shops.SHOP-CH.account = 'nope' is not a defined account", "is not a folder"]),
        ('sender_name = "Evil <x@y>"\n', ["sender_name: one line, without < > or quotes"]),
    ],
)  # fmt: skip
def test_a_shop_naming_what_is_not_there_is_a_settings_error(
    shop_toml: str, said: list[str], tmp_path: Path
) -> None:
    config = tmp_path / "proit-notify.toml"
    config.write_text(
        'erp = { sqlite = "erp.sqlite" }\nledger = { sqlite = "ledger.sqlite" }\n'
        '[email.accounts.default]\ntransport = "file"\ndirectory = "out"\n'
        'from = "Shop <shop@example.ch>"\n[shops."SHOP-CH"]\n' + shop_toml,
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    text = "\n".join(caught.value.problems)
    assert len(said) >= 1
    for words in said:
        assert words in text
