"""Settings validation (SPEC §2): one test per rule, asserting on the message a user reads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from proit_notify.errors import ConfigError
from proit_notify.settings import ErpSettings, SqlExpression, load_settings, parse_settings

SOURCE = Path("/etc/proit/proit-notify.toml")


def minimal() -> dict[str, Any]:
    """The smallest valid settings document."""
    return {
        "erp": {"sqlite": "erp.db"},
        "email": {
            "accounts": {
                "default": {"transport": "file", "directory": "outbox", "from": "shop@example.ch"}
            }
        },
    }


def problems_of(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    """The problems ``parse_settings`` reports (fails the test when there are none)."""
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, SOURCE, env={} if env is None else env)
    assert caught.value.exit_code == 3
    assert caught.value.problems, "a ConfigError lists its problems"
    return list(caught.value.problems)


def only_problem(data: dict[str, Any], env: dict[str, str] | None = None) -> str:
    problems = problems_of(data, env)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{SOURCE}: "), "every problem names the file"
    return problems[0]


def test_minimal_settings_are_valid_with_the_documented_defaults() -> None:
    settings = parse_settings(minimal(), SOURCE, env={})
    assert settings.service.enabled is True
    assert settings.service.default_info_type == "email"
    assert settings.service.timezone == "Europe/Zurich"
    assert settings.shipping.max_age_days == 14
    assert settings.email.default_account == "default"
    assert settings.email.items_as_table is True


def test_unknown_key_lists_the_allowed_keys() -> None:
    data = minimal()
    data["service"] = {"enabeld": False}
    problem = only_problem(data)
    assert "service.enabeld: unknown key" in problem
    allowed = (
        "country, default_info_type, enabled, holidays, language, log_file, send_days, "
        "send_window, timezone"
    )
    assert f"allowed here: {allowed}" in problem


def test_a_near_miss_is_named_and_a_misplaced_key_gets_its_section() -> None:
    data = minimal()
    data["review"] = {"delay_day": 3, "max_mails": 2}
    problems = problems_of(data)
    assert len(problems) == 2
    assert "review.delay_day: unknown key (did you mean delay_days?" in problems[0]
    assert "review.max_mails: unknown key (it belongs in [prepayment], not [review])" in problems[1]


def test_unknown_key_inside_an_account_lists_the_account_keys() -> None:
    data = minimal()
    data["email"]["accounts"]["default"]["hots"] = "smtp.example.ch"
    problem = only_problem(data)
    assert "email.accounts.default.hots: unknown key" in problem
    assert "host" in problem
    assert "from" in problem
    assert "transport" in problem


def test_unknown_section_is_an_error() -> None:
    data = minimal()
    data["reviews"] = {"delay_days": 3}
    assert "reviews: unknown key" in only_problem(data)


def test_wrong_type_is_refused_not_coerced() -> None:
    data = minimal()
    data["review"] = {"delay_days": "7"}
    problem = only_problem(data)
    assert "review.delay_days" in problem
    assert "must be a whole number (without quotes)" in problem
    assert "'7'" in problem


def test_bool_given_as_text_is_refused() -> None:
    data = minimal()
    data["service"] = {"enabled": "yes"}
    problem = only_problem(data)
    assert "service.enabled" in problem
    assert "must be true or false (without quotes)" in problem
    assert "'yes'" in problem


def test_literal_lists_the_allowed_values() -> None:
    data = minimal()
    data["service"] = {"default_info_type": "mail"}
    problem = only_problem(data)
    assert "service.default_info_type" in problem
    for allowed in ("'email'", "'sms'", "'email_sms'", "'none'"):
        assert allowed in problem


def test_sms_provider_lists_the_known_providers() -> None:
    data = minimal()
    data["sms"] = {"provider": "smsbox"}
    problem = only_problem(data)
    for provider in ("aspsms", "ecall", "smsup", "seven", "twilio", "http"):
        assert provider in problem


@pytest.mark.parametrize(
    ("section", "key", "bad", "bound"),
    [
        ("review", "delay_days", -1, 0),
        ("prepayment", "delay_days", -1, 0),
        ("prepayment", "repeat_days", 0, 1),
        ("prepayment", "max_mails", -1, 0),
        ("shipping", "max_age_days", -1, 0),
        ("delivery_date", "max_age_days", -1, 0),
    ],
)
def test_int_bounds(section: str, key: str, bad: int, bound: int) -> None:
    data = minimal()
    data[section] = {key: bad}
    problem = only_problem(data)
    assert f"{section}.{key}" in problem
    assert f"greater than or equal to {bound}" in problem


def test_int_bounds_accept_the_bound_itself() -> None:
    data = minimal()
    data["prepayment"] = {"delay_days": 0, "repeat_days": 1, "max_mails": 0}
    settings = parse_settings(data, SOURCE, env={})
    assert settings.prepayment.max_mails == 0


def test_unknown_default_account_lists_the_defined_accounts() -> None:
    data = minimal()
    data["email"]["accounts"]["shop"] = {"host": "smtp.example.ch", "from": "info@example.ch"}
    data["email"]["default_account"] = "haupt"
    problem = only_problem(data)
    assert "default_account 'haupt' is not defined" in problem
    assert "defined accounts: default, shop" in problem


def test_shop_account_must_be_defined() -> None:
    data = minimal()
    data["email"]["shop_accounts"] = {"CH": "default", "DE": "shop-de"}
    problem = only_problem(data)
    assert "shop_accounts.DE = 'shop-de' is not a defined account" in problem
    assert "defined accounts: default" in problem


def test_shop_accounts_choose_the_account() -> None:
    data = minimal()
    data["email"]["accounts"]["de"] = {"host": "smtp.example.de", "from": "info@example.de"}
    data["email"]["shop_accounts"] = {"DE": "de"}
    email = parse_settings(data, SOURCE, env={}).email
    assert email.account_for_shop("DE") == "de"
    assert email.account_for_shop("CH") == "default"
    assert email.account_for_shop(None) == "default"


@pytest.mark.parametrize(
    "erp",
    [
        {},
        {"sqlite": "erp.db", "odbc": "DRIVER={SQLite3};Database=erp.db"},
    ],
    ids=["neither", "both"],
)
def test_exactly_one_of_sqlite_or_odbc(erp: dict[str, Any]) -> None:
    data = minimal()
    data["erp"] = erp
    problem = only_problem(data)
    assert "exactly one of erp.sqlite" in problem
    assert "erp.odbc" in problem


def test_unknown_logical_table() -> None:
    data = minimal()
    data["erp"]["tables"] = {"order": "Auftraege"}
    problem = only_problem(data)
    assert "unknown logical table(s) order" in problem
    assert "orders" in problem
    assert "delivery_notes" in problem


def test_unknown_logical_field_lists_the_fields_of_its_table() -> None:
    data = minimal()
    data["erp"]["columns"] = {"orders": {"nummer": "AuftragNr"}}
    problem = only_problem(data)
    assert "orders.nummer: unknown field" in problem
    assert "number" in problem
    assert "delivery_date" in problem


def test_unknown_table_under_columns() -> None:
    data = minimal()
    data["erp"]["columns"] = {"kunden": {"id": "KdNr"}}
    assert "kunden: unknown logical table" in only_problem(data)


@pytest.mark.parametrize(
    ("where", "hostile"),
    [("tables", "Orders; DROP TABLE x"), ("columns", "Nr; DROP TABLE x")],
)
def test_hostile_identifier_is_refused(where: str, hostile: str) -> None:
    data = minimal()
    if where == "tables":
        data["erp"]["tables"] = {"orders": hostile}
    else:
        data["erp"]["columns"] = {"orders": {"number": hostile}}
    problems = problems_of(data)
    text = "\n".join(problems)
    assert f"erp.{where}.orders" in text
    assert "is not a plain table or column name" in text
    assert '{ sql = "..." }' in text


@pytest.mark.parametrize("name", ["Lieferschein Positionen", "dbo.Kunden", "_x1"])
def test_plain_names_with_spaces_or_schema_are_accepted(name: str) -> None:
    data = minimal()
    data["erp"]["tables"] = {"customers": name}
    assert parse_settings(data, SOURCE, env={}).erp.table("customers") == name


def test_column_cannot_be_schema_qualified() -> None:
    data = minimal()
    data["erp"]["columns"] = {"orders": {"number": "dbo.AuftragNr"}}
    assert "cannot contain '.'" in "\n".join(problems_of(data))


def test_sql_expression_field_is_accepted() -> None:
    data = minimal()
    expression = "CASE WHEN Zahlungsart = 'VK' THEN 1 ELSE 0 END"
    data["erp"]["columns"] = {"invoices": {"is_prepayment": {"sql": expression}}}
    erp = parse_settings(data, SOURCE, env={}).erp
    assert erp.column("invoices", "is_prepayment") == SqlExpression(sql=expression)
    assert erp.column("invoices", "amount") == "amount", "unmapped fields keep their name"


def test_empty_sql_expression_is_refused() -> None:
    data = minimal()
    data["erp"]["columns"] = {"invoices": {"is_prepayment": {"sql": ""}}}
    assert "erp.columns.invoices.is_prepayment" in "\n".join(problems_of(data))


def test_info_type_code_listed_twice_is_refused() -> None:
    data = minimal()
    data["erp"]["info_types"] = {"email": ["E"], "sms": ["S", " e"]}
    problem = only_problem(data)
    assert "erp.info_types" in problem
    assert "listed under both 'email' and 'sms'" in problem


def test_env_substitution_in_any_string() -> None:
    data = minimal()
    data["sms"] = {"provider": "aspsms", "username": "${SMS_USER}", "password": "${SMS_PW}"}
    data["email"]["accounts"]["default"]["from"] = "Shop <${SHOP_MAIL}>"
    env = {"SMS_USER": "muster", "SMS_PW": "s3cret", "SHOP_MAIL": "info@example.ch"}
    settings = parse_settings(data, SOURCE, env=env)
    assert settings.sms.username == "muster"
    assert settings.sms.password == "s3cret"
    assert settings.email.accounts["default"].from_ == "Shop <info@example.ch>"


def test_missing_env_variable_is_a_config_error() -> None:
    data = minimal()
    data["sms"] = {"password": "${SMS_PASSWORD}"}
    problem = only_problem(data, env={})
    assert "sms.password" in problem
    assert "environment variable SMS_PASSWORD is not set" in problem


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "proit-notify.toml"
    path.write_text('[service]\nenabled = true\ntimezone = "Europe/Zurich\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert str(path) in message
    assert "TOML syntax error" in message
    assert "line 3" in message
    assert "column" in message


def test_missing_settings_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "nope.toml")
    assert "not found" in str(caught.value)
    assert "proit-notify init" in str(caught.value)


def test_all_errors_are_reported_at_once(tmp_path: Path) -> None:
    data = minimal()
    data["service"] = {"default_info_type": "fax", "enabeld": True}
    data["review"] = {"delay_days": -3}
    data["email"]["default_account"] = "haupt"
    data["sms"] = {"password": "${NOT_SET}"}
    path = tmp_path / "proit-notify.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    text = str(caught.value)
    for key in (
        "service.default_info_type",
        "service.enabeld",
        "review.delay_days",
        "default_account 'haupt'",
        "NOT_SET",
    ):
        assert key in text
    assert len(caught.value.problems) == 5
    assert "5 problem(s)" in text
    assert "nothing was sent" in text


def test_relative_paths_are_resolved_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    data = minimal()
    data["ledger"] = {"sqlite": "state/ledger.sqlite"}
    data["templates"] = {"dir": "templates"}
    path = folder / "proit-notify.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # somewhere else than the config's folder
    settings = load_settings(Path("etc/proit-notify.toml"), env={})
    assert settings.erp.sqlite == folder.resolve() / "erp.db"
    assert settings.ledger_path == folder.resolve() / "state" / "ledger.sqlite"
    assert settings.templates.dir == folder.resolve() / "templates"
    assert settings.email.accounts["default"].directory == folder.resolve() / "outbox"
    assert settings.lock_path == folder.resolve() / "state" / "ledger.sqlite.lock"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    data = minimal()
    data["erp"]["sqlite"] = str(tmp_path / "erp.db")
    assert parse_settings(data, SOURCE, env={}).erp.sqlite == tmp_path / "erp.db"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["email"]["accounts"]["default"].update(password=4711),
        lambda d: d.update(sms={"password": 4711}),
        lambda d: d["erp"].update(odbc="DRIVER={X};SERVER=db;UID=sa;PWD=4711"),
        lambda d: d["erp"].update(sqlite=None, odbc=4711),
    ],
    ids=["account-password", "sms-password", "odbc-and-sqlite", "odbc-wrong-type"],
)
def test_password_never_in_the_error_text(mutate: Any) -> None:
    data = minimal()
    mutate(data)
    data["erp"] = {k: v for k, v in data["erp"].items() if v is not None}
    problems = problems_of(data)
    text = "\n".join(problems)
    assert "4711" not in text
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, SOURCE, env={})
    assert "4711" not in str(caught.value)
    assert "4711" not in repr(caught.value)


def test_password_not_in_the_settings_repr() -> None:
    data = minimal()
    data["email"]["accounts"]["default"]["password"] = "geheim"
    data["sms"] = {"password": "geheim"}
    settings = parse_settings(data, SOURCE, env={})
    assert "geheim" not in repr(settings)


class TestInfoTypeOf:
    """``ErpSettings.info_type_of``: ERP codes -> info types, blank/unknown -> the default."""

    erp = ErpSettings.model_validate(
        {
            "sqlite": "erp.db",
            "info_types": {"email": ["E"], "sms": ["S"], "email_sms": ["ES", "E+S"], "none": ["K"]},
        }
    )

    @pytest.mark.parametrize(
        ("code", "expected"),
        [
            ("E", "email"),
            ("S", "sms"),
            ("ES", "email_sms"),
            ("E+S", "email_sms"),
            ("K", "none"),
            ("es  ", "email_sms"),  # CHAR(n) padding and case do not matter
            (" k", "none"),
        ],
    )
    def test_codes(self, code: str, expected: str) -> None:
        assert self.erp.info_type_of(code, "sms") == expected

    @pytest.mark.parametrize("code", [None, "", "   ", "X", "email", 7])
    def test_blank_or_unknown_gives_the_default(self, code: object) -> None:
        assert self.erp.info_type_of(code, "sms") == "sms"
        assert self.erp.info_type_of(code, "none") == "none"

    def test_without_mapping_the_logical_names_are_the_codes(self) -> None:
        erp = ErpSettings.model_validate({"sqlite": "erp.db"})
        assert erp.info_type_of("email_sms", "email") == "email_sms"
        assert erp.info_type_of("SMS", "email") == "sms"
        assert erp.info_type_of("E", "none") == "none"

    def test_partial_mapping_keeps_logical_names_for_the_rest(self) -> None:
        erp = ErpSettings.model_validate({"sqlite": "erp.db", "info_types": {"sms": ["1"]}})
        assert erp.info_type_of("1", "email") == "sms"
        assert erp.info_type_of("none", "email") == "none"
        assert erp.info_type_of("sms", "email") == "email", "sms is now coded as '1'"


def _smtp(**account: Any) -> dict[str, Any]:
    data = minimal()
    data["email"]["accounts"]["default"] = {
        "host": "mail.example.ch",
        "from": "shop@example.ch",
        **account,
    }
    return data


def test_a_password_over_a_connection_without_tls_needs_allow_plaintext_auth() -> None:
    plain = {"security": "none", "username": "shop", "password": "geheim"}
    problem = only_problem(_smtp(**plain))
    assert "email.accounts.default" in problem
    assert "allow_plaintext_auth = true" in problem
    assert "unencrypted" in problem
    assert "geheim" not in problem
    parse_settings(_smtp(**plain, allow_plaintext_auth=True), SOURCE, env={})
    parse_settings(_smtp(**{**plain, "host": "127.0.0.1"}), SOURCE, env={})  # loopback
    parse_settings(_smtp(**{**plain, "host": "localhost"}), SOURCE, env={})
    parse_settings(_smtp(security="none"), SOURCE, env={})  # no login, no password sent
    parse_settings(_smtp(**{**plain, "security": "starttls"}), SOURCE, env={})


def test_a_non_ascii_smtp_password_is_refused_at_load_without_showing_it() -> None:
    problem = only_problem(_smtp(username="shop", password="Grüezi2026"))
    assert "ASCII" in problem
    assert "Grüezi" not in problem
    assert "ü" not in problem


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://gateway.example.ch/send", True),
        ("http://127.0.0.1:8080/send", True),
        ("http://localhost:8080/send", True),
        ("http://gateway.example.ch/send", False),
        ("ftp://gateway.example.ch/send", False),
    ],
)
def test_sms_url_must_be_https_unless_to_loopback(url: str, ok: bool) -> None:
    data = minimal()
    data["sms"] = {"provider": "aspsms", "username": "u", "password": "p", "url": url}
    if ok:
        parse_settings(data, SOURCE, env={})
    else:
        assert "https://" in only_problem(data)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX (Windows has ACLs)")
@pytest.mark.parametrize(
    ("section", "secret"),
    [
        ("sms", {"provider": "aspsms", "username": "u", "password": "geheim"}),
        ("erp", {"odbc": "DRIVER={X};SERVER=s;UID=u;PWD={ge;heim}"}),
        ("account", {"password": "geheim"}),
    ],
)
def test_a_literal_secret_in_a_file_others_can_read_is_refused_with_the_chmod(
    tmp_path: Path, section: str, secret: dict[str, Any]
) -> None:
    data = minimal()
    if section == "account":
        data["email"]["accounts"]["default"].update(secret)
    else:
        data[section] = secret
    path = tmp_path / "proit-notify.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    path.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert caught.value.exit_code == 3
    assert f"chmod 600 {path}" in str(caught.value)
    assert "geheim" not in str(caught.value)
    path.chmod(0o600)
    load_settings(path, env={})


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_secret_from_the_environment_needs_no_chmod(tmp_path: Path) -> None:
    data = minimal()
    data["sms"] = {"provider": "aspsms", "username": "u", "password": "${SMS_PW}"}
    path = tmp_path / "proit-notify.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    path.chmod(0o644)
    assert load_settings(path, env={"SMS_PW": "geheim"}).sms.password == "geheim"


# --- the Swiss market (issue 16) ----------------------------------------------------------


@pytest.mark.parametrize(
    "address", ["abmelden@example.ch", "http://www.example.ch/abmelden", "mailto:", "ftp://x"]
)
def test_list_unsubscribe_must_be_a_mailto_or_https_address(address: str) -> None:
    data = minimal()
    data["review"] = {"list_unsubscribe": address}
    problem = only_problem(data)
    assert "review.list_unsubscribe" in problem
    assert "mailto: or https:" in problem


def test_list_unsubscribe_takes_mailto_and_https() -> None:
    for address in ("mailto:abmelden@example.ch", "https://www.example.ch/abmelden?k=1"):
        data = minimal()
        data["review"] = {"list_unsubscribe": address}
        assert parse_settings(data, SOURCE, env={}).review.list_unsubscribe == address


def test_language_codes_are_checked_like_info_types() -> None:
    data = minimal()
    data["erp"]["language_codes"] = {"FR": ["V"], "it": ["W"], "fr": ["W"]}
    problems = "\n".join(problems_of(data))  # all at once
    assert "'FR': a language is a two-letter ISO code in lower case" in problems
    assert "code 'W' is listed under both 'it' and 'fr'" in problems


def test_no_marketing_is_an_optional_customer_field() -> None:
    data = minimal()
    flag = {"sql": "CASE WHEN W = 'J' THEN 1 END"}
    data["erp"]["columns"] = {"customers": {"no_marketing": flag}}
    erp = parse_settings(data, SOURCE, env={}).erp
    assert erp.maps("customers", "no_marketing")
    assert not ErpSettings(sqlite="erp.db").maps("customers", "no_marketing")  # unmapped: NULL
    data["erp"]["columns"] = {"customers": {"no_marketng": "Werbesperre"}}
    assert "customers.no_marketng: unknown field" in only_problem(data)


# --- OAuth2 accounts (SPEC §9) -----------------------------------------------------------------


def m365(**oauth2: Any) -> dict[str, Any]:
    data = minimal()
    data["email"]["accounts"]["m365"] = {
        "host": "smtp.office365.com",
        "from": "Shop <shop@example.ch>",
        "auth": "oauth2",
        "oauth2": {
            "provider": "microsoft",
            "tenant": "contoso.onmicrosoft.com",
            "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e",
            "client_secret": "${M365_SECRET}",
            **oauth2,
        },
    }
    return data


def test_an_m365_account_logs_in_as_its_from_address_30_messages_a_minute() -> None:
    settings = parse_settings(m365(), SOURCE, env={"M365_SECRET": "s3cr3t-value-x"})
    account = settings.email.accounts["m365"]
    assert account.username == "shop@example.ch"
    assert account.max_per_minute == 30
    assert account.oauth2 is not None
    assert account.oauth2.authority == "https://login.microsoftonline.com"


@pytest.mark.parametrize(
    ("oauth2", "said"),
    [
        ({"tenant": ""}, "provider microsoft needs tenant"),
        ({"client_secret": ""}, "needs either client_secret or certificate_file"),
        ({"certificate_file": "app.pem", "certificate_thumbprint": "A" * 40},
         "needs either client_secret or certificate_file"),
        ({"client_secret": "", "certificate_file": "app.pem", "certificate_thumbprint": "x"},
         "certificate_thumbprint: the 40 hex digits"),
        ({"authority": "http://login.example"}, "an https:// address"),
        ({"provider": "google"}, "provider google needs service_account_file"),
        ({"provider": "command"}, "provider command needs token_command"),
    ],
)  # fmt: skip
def test_an_oauth2_table_missing_what_its_provider_needs_is_refused(
    oauth2: dict[str, Any], said: str
) -> None:
    problems = problems_of(m365(**oauth2), env={"M365_SECRET": "s3cr3t-value-x"})
    assert any(said in p for p in problems), problems


def test_auth_oauth2_needs_its_table_and_no_password() -> None:
    data = m365()
    del data["email"]["accounts"]["m365"]["oauth2"]
    assert 'needs an [email.accounts.NAME.oauth2] table' in only_problem(data)
    data = m365()
    data["email"]["accounts"]["m365"]["password"] = "${PW}"
    assert "remove password" in only_problem(data, env={"PW": "x", "M365_SECRET": "y"})


def test_a_literal_client_secret_in_a_readable_file_is_refused(tmp_path: Path) -> None:
    data = m365(client_secret="literal-secret-value")
    data["erp"]["sqlite"] = str(tmp_path / "erp.db")
    path = tmp_path / "p.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    path.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert "email.accounts.m365.oauth2.client_secret" in str(caught.value)
    assert f"chmod 600 {path}" in str(caught.value)
