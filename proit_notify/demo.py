"""The embedded demo: an SQLite ERP in the logical schema of SPEC §3, and a config for it.

The data is generated with a seeded random generator relative to ``today``, so a demo made
today shows shipping confirmations, review requests, prepayment reminders and delivery-date
notices that are due now, and the same seed and day always give the same database.
"""

from __future__ import annotations

import os
import random
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import tomli_w

from .db import Dialect
from .errors import UsageError
from .logical import ddl
from .settings import DEFAULT_CONFIG_NAME

ERP_NAME = "erp.sqlite"
LEDGER_NAME = "ledger.sqlite"
OUTBOX_NAME = "outbox"
#: the ERP's PDF archive of the demo (``[attachments]``)
ARCHIVE_NAME = "archiv"
PHONE_FIELD = "mobile"
DEMO_SHOPS = {"SHOP-CH": "shop-ch", "SHOP-DE": "shop-de"}

N_CUSTOMERS = 600
N_ORDERS = 2400
ORDER_DAYS = 120


@dataclass(frozen=True)
class DemoSummary:
    """What ``create_demo`` made: where, and how many rows of each table."""

    directory: Path
    erp_path: Path
    config_path: Path
    outbox: Path
    customers: int
    contacts: int
    orders: int
    order_lines: int
    delivery_notes: int
    delivery_note_lines: int
    invoices: int
    documents: int = 0  # PDFs in the demo's archive


# --- schema -----------------------------------------------------------------------------------

#: the demo's ERP: the logical model (SPEC §3) under its own names, the customers' mobile
#: number in ``customers.mobile`` (``sms.phone_field``), and the indexes its jobs use
SCHEMA = ";\n".join(ddl(Dialect.SQLITE, extra={"customers": [(PHONE_FIELD, "text")]})) + """;
CREATE INDEX ix_contacts_customer ON contacts(customer_id);
CREATE INDEX ix_orders_customer ON orders(customer_id);
CREATE INDEX ix_orders_delivery_date ON orders(delivery_date);
CREATE INDEX ix_orders_auto_processed ON orders(auto_processed_at);
CREATE INDEX ix_order_lines_order ON order_lines(order_id);
CREATE INDEX ix_delivery_notes_printed ON delivery_notes(printed_at);
CREATE INDEX ix_delivery_notes_order ON delivery_notes(order_id);
CREATE INDEX ix_delivery_note_lines_note ON delivery_note_lines(delivery_note_id);
CREATE INDEX ix_invoices_open_prepayment ON invoices(is_prepayment, cancelled, open_amount);
CREATE INDEX ix_invoices_order ON invoices(order_id);
"""

# --- vocabulary -------------------------------------------------------------------------------

FIRST_NAMES = (
    "Anna", "Hans", "Peter", "Ursula", "Jürg", "Käthi", "René", "Sören", "Jörg", "Chantal",
    "Lukas", "Lea", "Noah", "Mia", "Reto", "Beat", "Daniela", "Stefan", "Sabine", "Thomas",
    "Andrea", "Michael", "Claudia", "Björn", "Jürgen", "Brigitte", "Ruedi", "Vreni", "Fritz",
    "Gisela", "Marco", "Nicole", "Simone", "Urs", "Heidi", "Dominik", "Zoë", "Léon", "Ömer",
    "Özlem", "Franziska", "Matthias", "Katharina", "Elif", "Luca", "Sarah", "Tobias", "Jana",
)
LAST_NAMES = (
    "Müller", "Bühler", "Schär", "Käser", "Weiß", "Größ", "Meier", "Schmid", "Keller", "Weber",
    "Huber", "Schneider", "Fischer", "Brunner", "Baumann", "Gerber", "Frei", "Zürcher", "Lüthi",
    "Bärtschi", "Hänni", "Wüthrich", "Schärer", "Gössi", "Nüesch", "Köhler", "Schäfer",
    "Krüger", "Jäger", "Böhm", "Günther", "Lehmann", "Hofmann", "Wagner", "Becker", "Schulz",
    "Zimmermann", "Roth", "Sutter", "Moser", "Blättler", "Rüegg", "Stöckli", "Dürr", "Fäh",
    "Kälin", "Märki", "Strauß", "Groß", "Voß", "Ußner", "Bösch", "Egli", "Studer", "Graf",
)
FIRM_KINDS = (
    "Haustechnik", "Gartenbau", "Bäckerei", "Schreinerei", "Elektro", "Metzgerei", "Optik",
    "Velo & Sport", "Büroservice", "Käserei", "Druckerei", "Getränkehandel", "Malerei",
    "Sanitär", "Blumen", "Weinhandlung", "Fahrschule", "Kaffeerösterei", "Apotheke",
)
FIRM_FORMS = {"CH": ("AG", "GmbH", "& Co."), "DE": ("GmbH", "KG", "e.K.", "GmbH & Co. KG"),
              "AT": ("GmbH", "OG", "KG")}
MAIL_DOMAINS = {
    "CH": ("bluewin.example", "gmx.example", "sunrise.example", "hispeed.example"),
    "DE": ("web.example", "gmx.example", "t-online.example", "posteo.example"),
    "AT": ("aon.example", "chello.example", "gmx.example"),
}
#: (article no, description, unit, price CHF)
ARTICLES = (
    ("KM-100", "Kaffeemühle Edelstahl", "Stk", "89.00"),
    ("KM-210", "Espressotassen 6er-Set", "Set", "34.90"),
    ("GS-020", "Gartenschlauch 20 m", "Stk", "39.50"),
    ("GS-050", "Schlauchtrommel mit Kurbel", "Stk", "74.00"),
    ("WZ-310", "Schraubendreher-Set 12-teilig", "Set", "29.90"),
    ("WZ-420", "Akku-Bohrschrauber 18 V", "Stk", "149.00"),
    ("WZ-421", "Ersatzakku 18 V / 4 Ah", "Stk", "69.00"),
    ("BU-001", "Bürostuhl ergonomisch, grau", "Stk", "329.00"),
    ("BU-014", "Schreibtischlampe LED, dimmbar", "Stk", "59.90"),
    ("PA-500", "Druckerpapier A4 80 g/m²", "Pkg", "6.40"),
    ("PA-510", "Briefumschläge C5 mit Fenster", "Pkg", "12.80"),
    ("LE-220", "Lederhandschuhe Größe 9", "Paar", "24.50"),
    ("KA-750", "Käsefondue-Caquelon Gusseisen", "Stk", "64.00"),
    ("KA-751", "Fonduegabeln 6 Stück", "Set", "18.90"),
    ("DR-004", "Drahtseil verzinkt 4 mm", "m", "2.30"),
    ("SA-025", "Streusalz 25 kg", "Sack", "19.80"),
    ("HO-110", "Holzpellets Sackware 15 kg", "Sack", "8.90"),
    ("TE-300", "Teppich Schurwolle 200 × 300", "Stk", "489.00"),
    ("GL-060", "Weißweingläser 6er-Set", "Set", "42.00"),
    ("RE-812", "Regalsystem Stahl verzinkt", "Stk", "119.00"),
)
EUR_RATE = Decimal("1.05")  # demo prices are in CHF; EUR orders are priced a bit lower
CH_MOBILE_PREFIXES = ("075", "076", "077", "078", "079")
DE_MOBILE_PREFIXES = ("0151", "0152", "0160", "0170", "0171", "0176", "0157")
AT_MOBILE_PREFIXES = ("0664", "0660", "0676", "0699")
INVALID_EMAILS = ("hans.muster@", "peter.kaeser(at)bluewin.example")


def _ascii_local(text: str) -> str:
    """An e-mail local part from a name, the way people transliterate umlauts."""
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "è": "e",
                           "ë": "e", "&": "", ".": "", ",": "", "'": ""})
    parts = text.lower().translate(table).split()
    return ".".join(p for p in parts if p)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _mobile(rng: random.Random, country: str) -> str:
    """A mobile number written the way customers type it into a form."""
    style = rng.randrange(4)
    if country == "CH":
        pre = rng.choice(CH_MOBILE_PREFIXES)
        a, b, c = _digits(rng, 3), _digits(rng, 2), _digits(rng, 2)
        return (
            f"{pre} {a} {b} {c}",
            f"+41 {pre[1:]} {a} {b} {c}",
            f"0041{pre[1:]}{a}{b}{c}",
            f"{pre}{a}{b}{c}",
        )[style]
    if country == "DE":
        pre = rng.choice(DE_MOBILE_PREFIXES)
        rest = _digits(rng, 8 if pre in {"0176", "0157", "0152"} else 7 + rng.randrange(2))
        return (f"{pre} {rest}", f"+49 {pre[1:]} {rest}", f"0049{pre[1:]}{rest}", f"{pre}/{rest}")[
            style
        ]
    pre, rest = rng.choice(AT_MOBILE_PREFIXES), _digits(rng, 7)
    return (f"{pre} {rest}", f"+43 {pre[1:]} {rest}", f"0043{pre[1:]}{rest}", f"{pre}-{rest}")[
        style
    ]


def _landline(rng: random.Random, country: str) -> str:
    if country == "CH":
        pre = rng.choice(("044", "031", "061", "071", "041"))
        return f"{pre} {_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 2)}"
    if country == "DE":
        return rng.choice(("030", "089", "040", "0711")) + " " + _digits(rng, 7)
    return "01 " + f"{_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 2)}"


def _weighted(rng: random.Random, choices: dict[Any, int]) -> Any:
    return rng.choices(list(choices), weights=list(choices.values()))[0]


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _money(value: Decimal) -> float:
    # SQLite NUMERIC stores REAL; a 2-decimal float reads back exactly through its repr
    return float(value.quantize(Decimal("0.01")))


# --- data -------------------------------------------------------------------------------------


@dataclass
class _Rows:
    customers: list[tuple[Any, ...]]
    contacts: list[tuple[Any, ...]]
    orders: list[tuple[Any, ...]]
    order_lines: list[tuple[Any, ...]]
    delivery_notes: list[tuple[Any, ...]]
    delivery_note_lines: list[tuple[Any, ...]]
    invoices: list[tuple[Any, ...]]


def _generate(today: date, seed: int) -> _Rows:
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    midnight = datetime(today.year, today.month, today.day)
    rows = _Rows([], [], [], [], [], [], [])

    # customers: (id, name, email, country, language, info_type, mobile) ----------------
    countries: dict[int, str] = {}
    contacts_of: dict[int, list[int]] = {}
    used_locals: set[str] = set()
    for cid in range(1, N_CUSTOMERS + 1):
        country = _weighted(rng, {"CH": 60, "DE": 34, "AT": 6})
        is_firm = rng.random() < 0.3
        last = rng.choice(LAST_NAMES)
        if is_firm:
            name = f"{last} {rng.choice(FIRM_KINDS)} {rng.choice(FIRM_FORMS[country])}"
            local = rng.choice(("info", "office", "buchhaltung", "einkauf"))
            domain = _ascii_local(last) + "-" + _ascii_local(name.split()[1]) + ".example"
        else:
            first = rng.choice(FIRST_NAMES)
            name = f"{first} {last}"
            local = _ascii_local(name)
            domain = rng.choice(MAIL_DOMAINS[country])
        while f"{local}@{domain}" in used_locals:
            local = f"{local}{rng.randrange(2, 99)}"
        used_locals.add(f"{local}@{domain}")
        email: str | None = f"{local}@{domain}"
        if rng.random() < 0.04:
            email = rng.choice((None, ""))
        language = _language(rng.random(), country, cid)
        info_type = _weighted(
            rng, {"email": 66, "sms": 9, "email_sms": 10, "none": 5, None: 6, "": 4}
        )
        phone = _weighted(rng, {"mobile": 70, "landline": 12, "none": 18})
        mobile = (
            _mobile(rng, country) if phone == "mobile"
            else _landline(rng, country) if phone == "landline"
            else rng.choice((None, ""))
        )
        countries[cid] = country
        # every 23rd customer objected to advertising: no review requests (SPEC §5)
        no_marketing = 1 if cid % 23 == 0 else 0
        rows.customers.append(
            (cid, name, email, country, language, info_type, mobile, no_marketing)
        )
        # a firm names a contact person ("zuhanden"), some private customers too
        if rng.random() < (0.7 if is_firm else 0.08):
            for _ in range(rng.randint(1, 2)):
                kid = len(rows.contacts) + 1
                cname = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
                cmail = (
                    f"{_ascii_local(cname)}@{domain}" if rng.random() < 0.7 else None
                )
                cmobile = _mobile(rng, country) if rng.random() < 0.5 else None
                rows.contacts.append((kid, cid, cname, cmail, cmobile))
                contacts_of.setdefault(cid, []).append(kid)
    # two visibly wrong addresses, so the demo shows how failures are reported
    for index, bad in zip((4, 11), INVALID_EMAILS, strict=True):
        c = rows.customers[index]
        rows.customers[index] = (c[0], c[1], bad, c[3], c[4], "email", c[6], c[7])

    # orders, lines, delivery notes, invoices ----------------------------------------------
    note_id = 0
    invoice_id = 0
    for oid in range(1, N_ORDERS + 1):
        cid = rng.randint(1, N_CUSTOMERS)
        country = countries[cid]
        age = rng.randrange(ORDER_DAYS)
        order_day = midnight - timedelta(days=age)
        ordered = order_day + timedelta(hours=rng.randint(6, 21), minutes=rng.randrange(60))
        if age == 0:
            ordered = order_day + timedelta(hours=rng.randint(0, 6), minutes=rng.randrange(60))
        shop = _weighted(
            rng,
            {"SHOP-CH": 70, "SHOP-DE": 10, None: 20}
            if country == "CH"
            else {"SHOP-DE": 75, "SHOP-CH": 5, None: 20},
        )
        currency = "EUR" if shop == "SHOP-DE" or (shop is None and country != "CH") else "CHF"
        contact = (
            rng.choice(contacts_of[cid]) if cid in contacts_of and rng.random() < 0.6 else None
        )
        review_mail = _weighted(rng, {1: 50, 0: 20, None: 30})
        auto = None
        if shop is not None and rng.random() < 0.35 and _reachable(rows.customers[cid - 1]):
            # the shop processes orders of customers it can write to (after the draw, so
            # the rest of the data stays as the seed made it)
            auto = _stamp(ordered + timedelta(minutes=rng.randint(2, 90)))
        number = f"A{today.year % 100:02d}-{100000 + oid}"

        # lines: (order_id, line_no, article_no, description, quantity, delivered, unit)
        articles = rng.sample(ARTICLES, rng.choices((1, 2, 3, 4, 5), (30, 30, 20, 12, 8))[0])
        quantities = [
            rng.choice((5, 10, 25)) if unit == "m" else rng.choice((1, 1, 1, 2, 2, 3, 4, 5, 10))
            for _, _, unit, _ in articles
        ]
        total = sum(
            (Decimal(price) * q for (_, _, _, price), q in zip(articles, quantities, strict=True)),
            Decimal(0),
        )
        if currency == "EUR":
            total = total / EUR_RATE

        # prepayment (Vorkasse): a share of web-shop orders waits for the money first
        prepaid_state = None
        if shop is not None and rng.random() < 0.14:
            prepaid_state = _weighted(rng, {"paid": 45, "part": 12, "unpaid": 33, "cancelled": 10})
            invoice_id += 1
            open_amount = {
                "paid": Decimal(0),
                "part": total * Decimal(rng.choice(("0.3", "0.5", "0.8"))),
                "unpaid": total,
                "cancelled": total,
            }[prepaid_state]
            rows.invoices.append((
                invoice_id, f"VK{today.year % 100:02d}-{50000 + invoice_id}", oid, cid, contact,
                order_day.date().isoformat(), _money(total), _money(open_amount), currency, 1,
                1 if prepaid_state == "cancelled" else 0, _qr_reference(invoice_id),
            ))

        # how far the order got: delivered in one go, in parts, or still open
        if prepaid_state in {"unpaid", "part", "cancelled"}:
            progress = "open"
        elif age <= 1:
            progress = _weighted(rng, {"open": 60, "full": 30, "partial": 10})
        elif age <= 10:
            progress = _weighted(rng, {"open": 20, "full": 60, "partial": 20})
        else:
            progress = _weighted(rng, {"open": 4, "full": 84, "partial": 12})

        delivered = [0] * len(articles)
        shipments: list[list[int]] = []
        if progress == "full":
            shipments.append(list(quantities))
        elif progress == "partial":
            # first shipment: part of the goods; with luck a later one brings the rest
            part = [rng.randint(0, q) for q in quantities]
            if part == quantities:
                part[-1] -= 1
            if not any(part):
                shipments.append(list(quantities))  # a single piece cannot go in parts
            else:
                shipments.append(part)
                if age > 6 and rng.random() < 0.6:
                    shipments.append([q - f for q, f in zip(quantities, part, strict=True)])
        day_shipped = order_day
        for n, shipment in enumerate(shipments):
            if not any(shipment):
                continue
            note_id += 1
            days_later = rng.randint(0, 3) if n == 0 else rng.randint(3, 6)
            day_shipped = min(day_shipped + timedelta(days=days_later), midnight)
            printed: str | None = _stamp(
                max(day_shipped + timedelta(hours=rng.randint(7, 17), minutes=rng.randrange(60)),
                    ordered + timedelta(minutes=30))
            )
            if day_shipped == midnight:
                # printed this morning, or not printed yet
                printed = (
                    _stamp(midnight + timedelta(hours=7, minutes=rng.randrange(60)))
                    if rng.random() < 0.5 else None
                )
            elif rng.random() < 0.02:
                printed = None  # the warehouse forgot to print it
            rows.delivery_notes.append((
                note_id, f"LS{today.year % 100:02d}-{200000 + note_id}", oid, printed,
                *_parcels(note_id, currency, printed),
            ))
            line_no = 0
            for i, ((art, desc, unit, _), qty) in enumerate(zip(articles, shipment, strict=True)):
                if qty:
                    line_no += 1
                    rows.delivery_note_lines.append((note_id, line_no, art, desc, qty, unit))
                    delivered[i] += qty

        complete = all(d >= q for d, q in zip(delivered, quantities, strict=True))
        delivery_date = None
        if not complete and prepaid_state not in {"cancelled"} and rng.random() < 0.55:
            delivery_date = (midnight + timedelta(days=rng.randint(-3, 30))).date().isoformat()
        rows.orders.append(
            (oid, number, cid, contact, shop, _stamp(ordered), review_mail, auto, delivery_date)
        )
        for i, ((art, desc, unit, _), qty) in enumerate(zip(articles, quantities, strict=True)):
            rows.order_lines.append((oid, i + 1, art, desc, qty, delivered[i], unit))

        # an ordinary invoice once the goods went out (prepaid orders were invoiced before)
        if prepaid_state is None and shipments and any(delivered):
            invoice_id += 1
            paid = age > 30 or rng.random() < 0.5
            rows.invoices.append((
                invoice_id, f"RE{today.year % 100:02d}-{300000 + invoice_id}", oid, cid, contact,
                day_shipped.date().isoformat(), _money(total), 0.0 if paid else _money(total),
                currency, 0, 0, _qr_reference(invoice_id),
            ))
    return rows


def _reachable(customer: tuple[Any, ...]) -> bool:
    """A demo customer with a usable email address (a shop's automatic processing needs
    one: the review request it triggers goes by email)."""
    email, info_type = customer[2], customer[5]
    domain = email.rpartition("@")[2] if email else ""
    return "." in domain and info_type != "none"


def _parcels(note_id: int, currency: str, printed: str | None) -> tuple[str | None, str | None]:
    """A printed note's tracking number(s) and the ERP's carrier code (derived from the
    note, so the rest of the data stays as the seed made it): Swiss Post for CHF, DHL in
    Germany, now and then two parcels, and some notes without (picked up at the counter)."""
    if printed is None or note_id % 11 == 0:
        return None, None
    if currency == "CHF":
        first, second = 100000 + note_id * 7919 % 900000, 10000000 + note_id * 104729 % 90000000
        number = f"99.60.{first}.{second}"
        carrier = "PostPac"
    else:
        number = f"00340434{note_id * 15485863 % 10**10:010d}"
        carrier = "DHL Paket"
    if note_id % 7 == 0:  # two parcels
        number += f", {number[:-3]}{(int(number[-3:]) + 1) % 1000:03d}"
    return number, carrier


def _qr_reference(invoice_id: int) -> str:
    """A QR reference (27 digits, the last one the check digit), as the ERP prints it."""
    from stdnum.ch import esr

    digits = f"{invoice_id:026d}"
    return digits + esr.calc_check_digit(digits)


def _pdf(path: Path, title: str, lines: list[str]) -> None:
    """A one-page sample PDF, as the ERP archives its documents."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    page = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    page.setFont("Helvetica-Bold", 16)
    page.drawString(72, 770, title)
    page.setFont("Helvetica", 11)
    for i, line in enumerate(lines):
        page.drawString(72, 740 - 16 * i, line)
    page.save()


def _write_archive(folder: Path, rows: _Rows, today: date) -> int:
    """The ERP's PDF archive of the demo: the delivery notes printed in the last two weeks,
    and every other prepayment invoice (the rest get a QR-bill). The number written."""
    folder.mkdir(exist_ok=True)
    since = (today - timedelta(days=15)).isoformat()
    written = 0
    for _, number, order_id, printed, tracking, _carrier in rows.delivery_notes:
        if printed is not None and printed >= since:
            lines = [f"Auftrag {order_id}", f"Gedruckt {printed}", f"Sendung {tracking or '-'}"]
            _pdf(folder / f"LS_{number}.pdf", f"Lieferschein {number}", lines)
            written += 1
    for invoice_id, number, *rest in rows.invoices:
        if rest[-3] == 1 and invoice_id % 2 == 0:  # a prepayment invoice
            lines = [f"Betrag {rest[-6]:.2f} {rest[-4]}", f"Referenz {rest[-1]}"]
            _pdf(folder / f"RE_{number}.pdf", f"Vorauskasse-Rechnung {number}", lines)
            written += 1
    return written


def _write_erp(path: Path, rows: _Rows) -> None:
    conn = sqlite3.connect(str(path))
    try:
        # a fresh file nobody else reads yet: no journal needed while filling it
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(SCHEMA)
        conn.executemany(
            f"INSERT INTO customers (id, name, email, country, language, info_type, {PHONE_FIELD}, "
            "no_marketing) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows.customers,
        )
        conn.executemany("INSERT INTO contacts VALUES (?, ?, ?, ?, ?)", rows.contacts)
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.orders)
        conn.executemany("INSERT INTO order_lines VALUES (?, ?, ?, ?, ?, ?, ?)", rows.order_lines)
        conn.executemany(
            "INSERT INTO delivery_notes VALUES (?, ?, ?, ?, ?, ?)", rows.delivery_notes
        )
        conn.executemany(
            "INSERT INTO delivery_note_lines VALUES (?, ?, ?, ?, ?, ?)", rows.delivery_note_lines
        )
        conn.executemany(
            "INSERT INTO invoices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.invoices
        )
        conn.commit()
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("ANALYZE")
    finally:
        conn.close()


#: how the demo ERP's users typed the languages over the years (as real ERPs hold them)
_SPELLINGS = {"fr": ("F", "fr", "Français"), "it": ("I", "Italiano", "it_CH"), "en": ("E", "en")}


def _language(draw: float, country: str, cid: int) -> str:
    """A customer's language, from one random draw: Swiss customers read German, French
    or Italian (and some English), the others German or English."""
    if country == "CH":
        lang = "en" if draw < 0.05 else "fr" if draw < 0.27 else "it" if draw < 0.35 else "de"
    else:
        lang = "en" if draw < 0.12 else "de"
    if lang == "de":
        return "de" if cid % 4 else "D"
    spellings = _SPELLINGS[lang]
    return spellings[cid % len(spellings)]


# --- config -----------------------------------------------------------------------------------


def demo_config() -> dict[str, Any]:
    """The demo's settings as a TOML document (paths relative to the config file)."""
    outbox = {"transport": "file", "directory": OUTBOX_NAME}
    return {
        "service": {
            "enabled": True,
            "default_info_type": "email",
            "timezone": "Europe/Zurich",
            "country": "CH",
            "language": "de",
        },
        # optional fields of a mapping (SPEC §3, §11); the demo ERP has these columns
        "erp": {
            "sqlite": ERP_NAME,
            "columns": {
                "customers": {"no_marketing": "no_marketing"},
                "delivery_notes": {"tracking_number": "tracking_number", "carrier": "carrier"},
                "invoices": {"payment_reference": "payment_reference"},
            },
            # the ERP's own carrier codes -> the shipped tracking pages
            "carrier_codes": {"post": ["PostPac"], "dhl": ["DHL Paket"]},
        },
        "email": {
            "default_account": "demo",
            "items_as_table": True,
            "shop_accounts": dict(DEMO_SHOPS),
            "accounts": {
                "demo": {**outbox, "from": "ProIT Demo Handel <service@demo.example>"},
                "shop-ch": {
                    **outbox,
                    "from": "ProIT Demo Shop Schweiz <shop@ch.demo.example>",
                    "reply_to": "kundendienst@ch.demo.example",
                },
                "shop-de": {
                    **outbox,
                    "from": "ProIT Demo Shop Deutschland <shop@de.demo.example>",
                    "reply_to": "kundenservice@de.demo.example",
                },
            },
        },
        "sms": {"phone_field": PHONE_FIELD, "fallback_to_email": True},
        "shipping": {"on_delivery_note_print": True, "to_contact": False},
        "review": {
            "delay_days": 7,
            "default_status": False,
            "on_delivery_note_print": False,
            # the web shops' orders processed automatically a week ago are due at once:
            # the demo's preview shows review requests (the others fall due a week after
            # their shipping confirmation)
            "on_auto_processing": True,
            "portal_url": "https://bewertungen.demo.example/proit-demo-shop",
            "list_unsubscribe": "mailto:abmelden@demo.example",
        },
        "prepayment": {
            "delay_days": 5,
            "repeat_days": 7,
            "max_mails": 3,
            # invoices without a PDF in the archive get a QR-bill (the SIX sample QR-IBAN)
            "qr_bill": {
                "account": "CH44 3199 9123 0008 8901 2",
                "creditor": {
                    "name": "ProIT Demo Handel AG", "street": "Bahnhofstrasse",
                    "house_num": "1", "pcode": "8001", "city": "Zürich", "country": "CH",
                },
            },
        },
        "attachments": {
            "delivery_note": f"{ARCHIVE_NAME}/LS_{{number}}.pdf",
            "invoice": f"{ARCHIVE_NAME}/RE_{{number}}.pdf",
        },
        "shops": {
            "SHOP-CH": {"sender_name": "Demo Shop Schweiz",
                        "portal_url": "https://bewertungen.demo.example/shop-ch"},
            "SHOP-DE": {"sender_name": "Demo Shop Deutschland",
                        "portal_url": "https://bewertungen.demo.example/shop-de"},
        },
        # the demo shows every notice; a real first run takes a baseline instead (README)
        "delivery_date": {"edit_before_send": False, "notify_existing": True},
        "ledger": {"sqlite": LEDGER_NAME},
    }


def write_demo_config(directory: Path) -> Path:
    """Write ``proit-notify.toml`` for the demo into ``directory``; returns its path."""
    path = directory / DEFAULT_CONFIG_NAME
    header = (
        "# proit-notify settings for the embedded demo ERP (made by 'proit-notify demo').\n"
        "# Emails are written as .eml files into outbox/; nothing leaves this machine.\n"
        "# Every key is explained in config.example.toml.\n\n"
    )
    path.write_text(header + tomli_w.dumps(demo_config()), encoding="utf-8")
    return path


# --- entry point -------------------------------------------------------------------------------


def _clear_previous(directory: Path) -> None:
    """With --force: remove what an earlier demo left (its ledger belongs to the old data)."""
    for name in (ERP_NAME, LEDGER_NAME, LEDGER_NAME + ".lock", DEFAULT_CONFIG_NAME):
        (directory / name).unlink(missing_ok=True)
    outbox = directory / OUTBOX_NAME
    if outbox.is_dir():
        for eml in outbox.glob("*.eml"):
            eml.unlink()
    archive = directory / ARCHIVE_NAME
    if archive.is_dir():
        for pdf in archive.glob("*.pdf"):
            pdf.unlink()


def create_demo(
    directory: Path, *, today: date, seed: int = 7, force: bool = False
) -> DemoSummary:
    """Make the demo ERP, its config and the outbox in ``directory``.

    Refuses a directory that exists and is not empty unless ``force`` is set; then the
    files of an earlier demo (ERP, config, ledger, .eml files in the outbox) are replaced.
    """
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is a file, not a directory: choose another --dir")
    if directory.is_dir() and any(directory.iterdir()):
        if not force:
            raise UsageError(
                f"{directory} already exists and is not empty: pass --force to replace the "
                "demo in it, or choose another directory with --dir"
            )
        _clear_previous(directory)
    directory.mkdir(parents=True, exist_ok=True)
    outbox = directory / OUTBOX_NAME
    outbox.mkdir(exist_ok=True)

    rows = _generate(today, seed)
    erp_path = directory / ERP_NAME
    partial = directory / (ERP_NAME + ".part")
    partial.unlink(missing_ok=True)
    _write_erp(partial, rows)
    os.replace(partial, erp_path)  # a crash never leaves a half-filled ERP behind
    documents = _write_archive(directory / ARCHIVE_NAME, rows, today)
    config_path = write_demo_config(directory)
    return DemoSummary(
        directory=directory,
        erp_path=erp_path,
        config_path=config_path,
        outbox=outbox,
        customers=len(rows.customers),
        contacts=len(rows.contacts),
        orders=len(rows.orders),
        order_lines=len(rows.order_lines),
        delivery_notes=len(rows.delivery_notes),
        delivery_note_lines=len(rows.delivery_note_lines),
        invoices=len(rows.invoices),
        documents=documents,
    )
