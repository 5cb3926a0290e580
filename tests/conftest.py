"""Shared fixtures. The ERP backends and how to use them: see ``tests/erp_backends.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from erp_backends import BACKENDS, ErpBackend, ServerPool, open_backend

from proit_notify import redaction

WriteConfig = Callable[..., Path]

#: every statement the suite sends, checked as T-SQL at the end (see the module)
pytest_plugins = ["sql_record"]


@pytest.fixture(autouse=True)
def _secrets_of_this_test_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no registered secret: a process of the tool loads one settings
    file, while the suite loads hundreds (a test's password "secret" would otherwise mask
    the word in every later test's messages)."""
    monkeypatch.setattr(redaction, "_forms", [])
    monkeypatch.setattr(redaction, "_secrets", [])


@pytest.fixture(scope="session")
def erp_server_pool() -> Iterator[ServerPool]:
    pool = ServerPool()
    yield pool
    pool.close()


@pytest.fixture(params=BACKENDS)
def erp_backend(
    request: pytest.FixtureRequest, tmp_path: Path, erp_server_pool: ServerPool
) -> Iterator[ErpBackend]:
    """The German test ERP on sqlite, sqlite-odbc, postgresql and mariadb, tables empty."""
    with open_backend(request.param, tmp_path, erp_server_pool) as backend:
        yield backend


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of settings tables; a ``None`` value removes the key."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def base_settings(tmp_path: Path, erp: dict[str, Any], phone_field: str | None) -> dict[str, Any]:
    """A complete, valid settings document: file transport, ledger in ``tmp_path``."""
    data: dict[str, Any] = {
        "service": {"timezone": "Europe/Zurich", "country": "CH", "language": "de"},
        "erp": erp,
        "email": {
            "default_account": "default",
            "accounts": {
                "default": {
                    "transport": "file",
                    "directory": str(tmp_path / "outbox"),
                    "from": "Muster Handel AG <shop@example.ch>",
                }
            },
        },
        "ledger": {"sqlite": str(tmp_path / "ledger.sqlite")},
    }
    if phone_field:
        data["sms"] = {"phone_field": phone_field}
    return data


@pytest.fixture
def write_config(tmp_path: Path, erp_backend: ErpBackend) -> WriteConfig:
    """``write_config(**sections) -> Path`` of a valid settings file for ``erp_backend``."""

    def write(**sections: Any) -> Path:
        base = base_settings(tmp_path, erp_backend.erp_toml(), erp_backend.phone_field)
        data = merge(base, sections)
        path = tmp_path / "proit-notify.toml"
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
        path.chmod(0o600)  # the test servers' passwords are written into the file
        return path

    return write
