"""targets(): info type, contact rule and SMS fallback decide channel and recipient (SPEC §4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proit_notify.jobs import Notification, Party
from proit_notify.settings import Settings, parse_settings
from proit_notify.targets import targets


def settings(tmp_path: Path, **sections: Any) -> Settings:
    (tmp_path / "erp.sqlite").touch()
    data: dict[str, Any] = {
        "service": {"country": "CH"},
        "erp": {"sqlite": str(tmp_path / "erp.sqlite"), "info_types": {"sms": ["S"]}},
        "email": {
            "default_account": "default",
            "shop_accounts": {"WEB": "web"},
            "accounts": {
                "default": {"transport": "file", "directory": str(tmp_path), "from": "a@b.ch"},
                "web": {"transport": "file", "directory": str(tmp_path), "from": "w@b.ch"},
            },
        },
        **sections,
    }
    return parse_settings(data, tmp_path / "proit-notify.toml", env={})


def note(shop: str | None = None, use_contact: bool = False, **party: Any) -> Notification:
    fields: dict[str, Any] = {
        "customer_id": "1", "name": "Jürg Müller", "email": "juerg@example.ch",
        "phone": "079 123 45 67", "country": "CH", "language": "de", "info_type_code": None,
        **party,
    }  # fmt: skip
    return Notification(
        key="shipping:1", job="shipping", template="shipping", document="LS 1",
        party=Party(**fields), shop=shop, context={}, use_contact=use_contact,
    )  # fmt: skip


def shape(found: list[Any]) -> list[tuple[str, str, str, str | None]]:
    return [(t.channel, t.to, t.account, t.problem_status if t.problem else None) for t in found]


def test_email_customer_goes_by_the_shop_account(tmp_path: Path) -> None:
    got = targets(note(shop="WEB"), settings(tmp_path))
    assert shape(got) == [("email", "juerg@example.ch", "web", None)]
    assert shape(targets(note(), settings(tmp_path))) == [
        ("email", "juerg@example.ch", "default", None)
    ]


def test_the_contact_gets_it_when_the_job_says_so_and_has_an_address(tmp_path: Path) -> None:
    with_contact = note(use_contact=True, contact_name="Anna", contact_email="anna@example.ch")
    [target] = targets(with_contact, settings(tmp_path))
    assert (target.to, target.to_name) == ("anna@example.ch", "Anna")
    [fallback] = targets(note(use_contact=True, contact_name="Anna"), settings(tmp_path))
    assert fallback.to == "juerg@example.ch"


@pytest.mark.parametrize("address", [None, "", "not an address", "a@@b.ch"])
def test_a_missing_or_invalid_address_is_a_failed_target(tmp_path: Path, address: Any) -> None:
    [target] = targets(note(email=address), settings(tmp_path))
    assert target.channel == "email"
    assert target.problem_status == "failed"
    assert target.problem


def test_info_type_none_is_one_skipped_target(tmp_path: Path) -> None:
    s = settings(tmp_path, erp={"sqlite": str(tmp_path / "erp.sqlite"),
                               "info_types": {"none": ["X"]}})  # fmt: skip
    [target] = targets(note(info_type_code=" x "), s)  # CHAR(n) padding, any case
    assert (target.channel, target.problem_status) == ("none", "skipped")


def test_sms_without_provider_falls_back_to_email_with_the_reason_kept(tmp_path: Path) -> None:
    got = targets(note(info_type_code="S"), settings(tmp_path))
    assert shape(got) == [
        ("email", "juerg@example.ch", "default", None),
        ("sms", "+41791234567", "", "skipped"),
    ]
    assert "sms.provider" in (got[1].problem or "")


def test_sms_without_fallback_is_failed_and_no_email_goes(tmp_path: Path) -> None:
    s = settings(tmp_path, sms={"fallback_to_email": False})
    got = targets(note(info_type_code="S"), s)
    assert shape(got) == [("sms", "+41791234567", "", "failed")]


def test_sms_with_a_provider_goes_to_the_e164_number(tmp_path: Path) -> None:
    s = settings(tmp_path, sms={"provider": "aspsms", "username": "u", "password": "p"})
    got = targets(note(info_type_code="S", phone="+49 151 2345 6789", country="Deutschland"), s)
    assert shape(got) == [("sms", "+4915123456789", "aspsms", None)]
