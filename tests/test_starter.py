"""The starter config of 'proit-notify init' and config.example.toml both load, and the
example documents every settings key (so it cannot go stale)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from proit_notify.errors import ConfigError, UsageError
from proit_notify.settings import Settings, load_settings
from proit_notify.starter import STARTER_CONFIG, write_starter_config

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"
EXAMPLE_ENV = {
    "PROIT_ERP_PASSWORD": "erp-secret",
    "PROIT_SMTP_PASSWORD": "smtp-secret",
    "PROIT_SMS_PASSWORD": "sms-secret",
    "M365_SECRET": "m365-secret-value",
}

#: SPEC §2: the seed settings page's German labels and their keys
SEED_LABELS = {
    "Email / SMS Service verwenden": "service.enabled",
    "Standard Info-Art": "service.default_info_type",
    "Provider": "sms.provider",
    "Benutzername": "sms.username",
    "Passwort": "sms.password",
    "Öffentliche IP": "sms.public_ip",
    "Telefonfeld": "sms.phone_field",
    "Verzögerung Bewertungsportal": "review.delay_days",
    "Verzögerung Vorkasse": "prepayment.delay_days",
    "Wiedervorlage Vorkasse": "prepayment.repeat_days",
    "Max. Anz. Mails": "prepayment.max_mails",
    "Standard Emailkonto": "email.default_account",
    "Versandbestätigung bei Druck LS": "shipping.on_delivery_note_print",
    "Bewertungsmailstatus autom. setzen": "review.default_status",
    "Versandbestätigung an Kontakt": "shipping.to_contact",
    "Bewertungsmail bei vollständiger Lieferung": "review.only_complete_delivery",
    "Bewertungsmail bei autom. Auftragsverarbeitung senden": "review.on_auto_processing",
    "Bewertungsmail bei Druck LS": "review.on_delivery_note_print",
    "Menge / Bestellpost als Tabelle": "email.items_as_table",
    "Lieferterminmail bearbeiten": "delivery_date.edit_before_send",
    "EMail-Konto / Shop-Zuordnung": "email.shop_accounts",
}


# --- starter ---------------------------------------------------------------------------------


def test_starter_loads_with_the_smtp_password_set(tmp_path: Path) -> None:
    path = write_starter_config(tmp_path / "proit-notify.toml")
    settings = load_settings(path, env={"PROIT_SMTP_PASSWORD": "s3cret"})
    account = settings.email.accounts[settings.email.default_account]
    assert account.password == "s3cret"
    assert settings.erp.odbc is not None
    assert "SQL Server" in settings.erp.odbc
    assert settings.ledger_path == tmp_path / "proit-notify-ledger.sqlite"


def test_starter_without_the_password_names_the_variable(tmp_path: Path) -> None:
    path = write_starter_config(tmp_path / "proit-notify.toml")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert "PROIT_SMTP_PASSWORD" in str(caught.value)


def test_starter_has_the_mapping_commented_out() -> None:
    assert "# [erp.tables]" in STARTER_CONFIG
    assert "# [erp.columns.customers]" in STARTER_CONFIG
    assert "${PROIT_SMTP_PASSWORD}" in STARTER_CONFIG


def test_starter_keeps_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "proit-notify.toml"
    path.write_text("# mine\n")
    with pytest.raises(UsageError, match="--force"):
        write_starter_config(path)
    assert path.read_text() == "# mine\n"
    write_starter_config(path, force=True)
    assert path.read_text() == STARTER_CONFIG


def test_starter_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="directory"):
        write_starter_config(tmp_path)


# --- config.example.toml ---------------------------------------------------------------------


def test_example_loads() -> None:
    settings = load_settings(EXAMPLE, env=EXAMPLE_ENV)
    assert settings.email.accounts["shop"].password == "smtp-secret"
    assert settings.sms.password == "sms-secret"
    assert settings.erp.odbc is not None
    assert "erp-secret" in settings.erp.odbc
    m365 = settings.email.accounts["m365"]
    assert (m365.auth, m365.username, m365.max_per_minute) == ("oauth2", "shop@example.ch", 30)


def _documented_paths(text: str) -> set[str]:
    """Every key path the file shows, set or commented out: ``[a.b]`` headers and ``k =``."""
    paths: set[str] = set()
    section = ""
    header = re.compile(r"^#?\s*\[([A-Za-z0-9_.\-\"]+)\]")
    key = re.compile(r"^#?\s*\"?([A-Za-z_][A-Za-z0-9_\-]*)\"?\s*=(.*)$")
    for line in text.splitlines():
        stripped = line.strip()
        found = header.match(stripped)
        if found:
            section = found.group(1).replace('"', "")
            parts = section.split(".")
            paths.update(".".join(parts[: i + 1]) for i in range(len(parts)))
            continue
        found = key.match(stripped)
        if found:
            name, rest = found.groups()
            paths.add(f"{section}.{name}")
            # keys of an inline table: review_mail = { sql = "..." }
            if rest.strip().startswith("{"):
                for inner in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", rest):
                    paths.add(f"{section}.{name}.{inner}")
    return paths


def _model_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every key path of a settings model; a dict level is ``*``."""
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        path = f"{prefix}{field.alias or name}"
        yield path
        yield from _nested(field.annotation, path)


def _nested(annotation: Any, path: str) -> Iterator[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from _model_paths(annotation, path + ".")
        return
    origin = getattr(annotation, "__origin__", None)
    args: tuple[Any, ...] = getattr(annotation, "__args__", ())
    if origin is dict:
        yield from _nested(args[1], path + ".*")
        return
    for arg in args:
        yield from _nested(arg, path)


def test_example_documents_every_settings_key() -> None:
    documented = _documented_paths(EXAMPLE.read_text(encoding="utf-8"))
    expected = set(_model_paths(Settings))
    assert "email.accounts.*.from" in expected  # the walk reaches into dict values
    assert "erp.columns.*.*.sql" in expected
    missing = sorted(
        path for path in expected if not any(fnmatch.fnmatchcase(d, path) for d in documented)
    )
    assert missing == []


def test_example_names_the_seed_labels_next_to_their_keys() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    section = ""
    label_at: dict[str, str] = {}  # label -> key of the first key line after it
    pending: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped.strip("[]")
            if pending and section.endswith(("shop_accounts",)):
                label_at.update(dict.fromkeys(pending, section))
                pending = []
            continue
        if stripped.startswith("#"):
            pending += [label for label in SEED_LABELS if f'"{label}"' in stripped]
            continue
        if "=" in stripped and pending:
            label_at.update(dict.fromkeys(pending, f"{section}.{stripped.split('=')[0].strip()}"))
            pending = []
    assert label_at == SEED_LABELS
