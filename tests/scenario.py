"""Small builders of ERP situations for the job tests, in logical names.

``shop(backend)`` gives a :class:`Shop` that adds customers, orders, delivery notes and
invoices to an ``erp_backend`` with sensible defaults, so a test states only what matters.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from erp_backends import ErpBackend


@dataclass
class Shop:
    backend: ErpBackend
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def customer(self, **fields: Any) -> int:
        n = next(self._numbers)
        values: dict[str, Any] = {
            "name": f"Kunde {n}",
            "email": f"kunde{n}@example.ch",
            "country": "CH",
            "language": "de",
            "info_type": "email",
        }
        values.update(fields)
        cid = self.backend.insert("customers", **values)
        assert cid is not None
        return cid

    def order(
        self, customer_id: int, *, lines: int = 1, delivered: bool = True, **fields: Any
    ) -> int:
        n = next(self._numbers)
        values: dict[str, Any] = {
            "number": f"A-{n}",
            "customer_id": customer_id,
            "order_date": date(2026, 11, 1),
        }
        values.update(fields)
        oid = self.backend.insert("orders", **values)
        assert oid is not None
        for line in range(1, lines + 1):
            self.backend.insert(
                "order_lines",
                order_id=oid,
                line_no=line,
                article_no=f"ART-{line}",
                description=f"Artikel {line} – Größe M",
                quantity=Decimal(line + 1),
                delivered_quantity=Decimal(line + 1) if delivered else Decimal(0),
                unit="Stk",
            )
        return oid

    def delivery_note(
        self, order_id: int, printed_at: datetime | None, *, lines: int = 1, **fields: Any
    ) -> int:
        n = next(self._numbers)
        values: dict[str, Any] = {
            "number": f"LS-{n}",
            "order_id": order_id,
            "printed_at": printed_at,
        }
        values.update(fields)
        did = self.backend.insert("delivery_notes", **values)
        assert did is not None
        for line in range(1, lines + 1):
            self.backend.insert(
                "delivery_note_lines",
                delivery_note_id=did,
                line_no=line,
                article_no=f"ART-{line}",
                description=f"Artikel {line} – Größe M",
                quantity=Decimal(line + 1),
                unit="Stk",
            )
        return did

    def invoice(self, order_id: int | None, customer_id: int, **fields: Any) -> int:
        n = next(self._numbers)
        values: dict[str, Any] = {
            "number": f"R-{n}",
            "order_id": order_id,
            "customer_id": customer_id,
            "invoice_date": date(2026, 11, 1),
            "amount": Decimal("100.00"),
            "open_amount": Decimal("100.00"),
            "currency": "CHF",
            "is_prepayment": True,
            "cancelled": 0,
        }
        values.update(fields)
        iid = self.backend.insert("invoices", **values)
        assert iid is not None
        return iid


def shop(backend: ErpBackend) -> Shop:
    return Shop(backend)
