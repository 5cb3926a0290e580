"""The logical ERP model of SPEC §3: tables, their fields, each field's kind, and the DDL
that makes it.

The mapping's defaults (:data:`LOGICAL_SCHEMA`), the demo's ERP, the test suite's German
ERP and the benches are all made from :data:`FIELDS`: a new field is added here once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # db imports settings, which imports this module
    from .db import Dialect

#: id: the table's key; int: a reference or a 0/1 flag; code: a short text (a number, a
#: currency, a language); number: an amount or a quantity
Kind = Literal["id", "int", "text", "code", "date", "timestamp", "number"]

FIELDS: dict[str, dict[str, Kind]] = {
    "customers": {
        "id": "id", "name": "text", "email": "text", "country": "code", "language": "code",
        "info_type": "code", "no_marketing": "int",
    },
    "contacts": {
        "id": "id", "customer_id": "int", "name": "text", "email": "text", "mobile": "text",
    },
    "orders": {
        "id": "id", "number": "code", "customer_id": "int", "contact_id": "int",
        "shop": "code", "order_date": "date", "review_mail": "int",
        "auto_processed_at": "timestamp", "delivery_date": "date",
    },
    "order_lines": {
        "order_id": "int", "line_no": "int", "article_no": "code", "description": "text",
        "quantity": "number", "delivered_quantity": "number", "unit": "code",
    },
    "delivery_notes": {
        "id": "id", "number": "code", "order_id": "int", "printed_at": "timestamp",
        "tracking_number": "text", "carrier": "code",
    },
    "delivery_note_lines": {
        "delivery_note_id": "int", "line_no": "int", "article_no": "code",
        "description": "text", "quantity": "number", "unit": "code",
    },
    "invoices": {
        "id": "id", "number": "code", "order_id": "int", "customer_id": "int",
        "contact_id": "int", "invoice_date": "date", "amount": "number",
        "open_amount": "number", "currency": "code", "is_prepayment": "int",
        "cancelled": "int", "payment_reference": "text",
    },
}  # fmt: skip

#: Fields a mapping may name but need not: unmapped, they read as NULL. ``no_marketing``:
#: 1 = the customer objected to advertising (no review requests), SPEC §3; the parcel's
#: tracking number(s) and carrier, and the invoice's payment reference (QR or SCOR), §11.
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "customers": ("no_marketing",),
    "delivery_notes": ("tracking_number", "carrier"),
    "invoices": ("payment_reference",),
}

#: table -> the fields every mapping has (the defaults of ``[erp.columns]``)
LOGICAL_SCHEMA: dict[str, tuple[str, ...]] = {
    table: tuple(f for f in fields if f not in OPTIONAL_FIELDS.get(table, ()))
    for table, fields in FIELDS.items()
}


def column_type(kind: Kind, dialect: Dialect) -> str:
    """The column type of ``kind`` on ``dialect``."""
    text = "NVARCHAR" if dialect == "mssql" else "VARCHAR"
    timestamp = {"mysql": "DATETIME", "mssql": "DATETIME2"}.get(dialect.value, "TIMESTAMP")
    return {
        "id": "INTEGER NOT NULL PRIMARY KEY",
        "int": "INTEGER",
        "text": f"{text}(200)",
        "code": f"{text}(20)",
        "date": "DATE",
        "timestamp": timestamp,
        "number": "DECIMAL(12,2)",
    }[kind]


def create_table(dialect: Dialect, name: str, columns: Iterable[tuple[str, str]]) -> str:
    """``CREATE TABLE`` of ``name`` (quoted here) with (column as written, type) pairs."""
    body = ", ".join(f"{column} {kind}" for column, kind in columns)
    suffix = " DEFAULT CHARSET=utf8mb4" if dialect == "mysql" else ""
    return f"CREATE TABLE {dialect.quote(name)} ({body}){suffix}"


def ddl(
    dialect: Dialect,
    table_name: Callable[[str], str] = lambda table: table,
    extra: Mapping[str, Iterable[tuple[str, Kind]]] | None = None,
) -> list[str]:
    """The logical model's tables, under their logical names unless ``table_name`` maps
    them, with ``extra`` columns (the customers' phone column of ``sms.phone_field``)."""
    statements = []
    for table, fields in FIELDS.items():
        columns = [*fields.items(), *(extra or {}).get(table, ())]
        typed = [(dialect.quote(name), column_type(kind, dialect)) for name, kind in columns]
        statements.append(create_table(dialect, table_name(table), typed))
    return statements
