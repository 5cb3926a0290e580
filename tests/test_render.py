"""Rendering of the message templates (SPEC §5)."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proit_notify.errors import TemplateError
from proit_notify.jobs.registry import samples
from proit_notify.render import (
    Item,
    Renderer,
    display_width,
    items_text,
)

#: the registered jobs' sample contexts, by template name (the registry owns them)
SAMPLE_CONTEXTS = samples()
JOBS = tuple(SAMPLE_CONTEXTS)

# GSM 03.38 basic alphabet (+ the extension table, which costs two characters each)
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT = set("^{}\\[~]|€")

DOCUMENT_WORDS = {
    ("de", "shipping"): ("LS-4711", "A-1234"),
    ("de", "review"): ("A-1234",),
    ("de", "prepayment"): ("R-2026-0815",),
    ("de", "delivery_date"): ("A-1234",),
    ("en", "shipping"): ("LS-4711", "A-1234"),
    ("en", "review"): ("A-1234",),
    ("en", "prepayment"): ("R-2026-0815",),
    ("en", "delivery_date"): ("A-1234",),
    ("fr", "shipping"): ("LS-4711", "A-1234"),
    ("fr", "review"): ("A-1234",),
    ("fr", "prepayment"): ("R-2026-0815",),
    ("fr", "delivery_date"): ("A-1234",),
    ("it", "shipping"): ("LS-4711", "A-1234"),
    ("it", "review"): ("A-1234",),
    ("it", "prepayment"): ("R-2026-0815",),
    ("it", "delivery_date"): ("A-1234",),
}
GREETINGS = {"de": "Guten Tag", "en": "Dear", "fr": "Bonjour", "it": "Buongiorno"}


def renderer(
    templates_dir: Path | None = None, *, as_table: bool = True, language: str = "de"
) -> Renderer:
    return Renderer(
        templates_dir=templates_dir,
        items_as_table=as_table,
        default_language=language,
        default_country="CH",
    )


def override(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("language", ["de", "fr", "it", "en"])
@pytest.mark.parametrize("job", JOBS)
def test_each_job_names_its_document_in_every_part(language: str, job: str) -> None:
    r = renderer()
    msg = r.email(job, language=language, country="CH", context=SAMPLE_CONTEXTS[job])
    sms = r.sms(job, language=language, country="CH", context=SAMPLE_CONTEXTS[job])
    for word in DOCUMENT_WORDS[(language, job)]:
        assert word in msg.subject
        assert word in msg.text
        assert msg.html is not None
        assert word in msg.html
        assert word in sms
    assert "\n" not in msg.subject
    assert "\r" not in msg.subject
    assert msg.html is not None
    assert msg.html.startswith("<!DOCTYPE html>")
    assert f'<html lang="{language}">' in msg.html
    assert "Jürg Müller" in msg.text
    assert msg.text.startswith(f"{GREETINGS[language]} Jürg Müller")
    # SMS: one GSM-7 message for typical data, in every language (README "SMS")
    assert set(sms) <= GSM7 | GSM7_EXT, set(sms) - GSM7 - GSM7_EXT
    assert len(sms) + sum(ch in GSM7_EXT for ch in sms) <= 160
    if job == "review":  # advertising: every language says how to object (SPEC §5)
        assert "abmelden@example.ch" in sms
        assert "abmelden@example.ch" in msg.text
        assert "abmelden@example.ch" in msg.html


def test_check_passes_on_shipped_templates() -> None:
    assert renderer().check() == []
    assert renderer(as_table=False).check() == []


@pytest.mark.parametrize(
    ("language", "expected"),
    [(None, "Guten Tag"), ("pt", "Guten Tag"), ("", "Guten Tag"), ("de-CH", "Guten Tag"),
     ("DE", "Guten Tag"), ("en", "Dear"), ("en-GB", "Dear"), (" EN_us ", "Dear"),
     # languages as ERPs store them: letters, alpha-3, names, locales (issue 16)
     ("F", "Bonjour"), ("fra", "Bonjour"), ("Français", "Bonjour"), ("fr_CH", "Bonjour"),
     ("I", "Buongiorno"), ("Italiano", "Buongiorno"), ("ita", "Buongiorno"),
     ("D", "Guten Tag"), ("deutsch", "Guten Tag"), ("E", "Dear"), ("eng", "Dear"),
     ("rm", "Guten Tag"), ("R", "Guten Tag"), ("X", "Guten Tag"), ("??", "Guten Tag")],
)
def test_language_picks_folder_with_fallback(language: str | None, expected: str) -> None:
    msg = renderer().email("shipping", language=language, country=None,
                           context=SAMPLE_CONTEXTS["shipping"])
    assert msg.text.startswith(expected)


def test_unknown_language_falls_back_to_service_language() -> None:
    msg = renderer(language="en").email("review", language="pt", country="PT",
                                        context=SAMPLE_CONTEXTS["review"])
    assert msg.text.startswith("Dear")


def test_override_from_templates_dir_wins_other_files_stay_shipped(tmp_path: Path) -> None:
    override(tmp_path, "de/shipping.subject.txt", "Unterwegs: {{ delivery_note_number }}")
    override(tmp_path, "pt/shipping.txt", "Bonjour {{ recipient_name }}")
    override(tmp_path, "pt/review.txt", "Bonjour {{ recipient_name }}")
    override(tmp_path, "pt/review.subject.txt", "Votre commande {{ order_number }}")
    override(tmp_path, "pt/review.html", "<p>Bonjour {{ recipient_name }}</p>")
    r = renderer(tmp_path)
    ctx = SAMPLE_CONTEXTS["shipping"]
    msg = r.email("shipping", language="de", country="CH", context=ctx)
    assert msg.subject == "Unterwegs: LS-4711"
    assert msg.text.startswith("Guten Tag")  # not overridden: shipped text
    # a language present only in templates.dir is used where all parts of a message exist
    fr = r.email("review", language="pt", country="PT", context=SAMPLE_CONTEXTS["review"])
    assert fr.subject == "Votre commande A-1234"
    assert fr.text.startswith("Bonjour Jürg Müller")
    # pt/shipping has no subject and html: the whole mail falls back to German
    assert r.email("shipping", language="pt", country="PT", context=ctx).text.startswith("Guten")
    assert r.sms("review", language="pt", country="PT",
                 context=SAMPLE_CONTEXTS["review"]).startswith("Wie zufrieden")


def test_unknown_placeholder_names_file_line_and_placeholder(tmp_path: Path) -> None:
    path = override(tmp_path, "de/review.txt", "Guten Tag\n\n{{ recipient_name }} {{ nope }}\n")
    with pytest.raises(TemplateError) as info:
        renderer(tmp_path).email("review", language="de", country="CH",
                                 context=SAMPLE_CONTEXTS["review"])
    message = str(info.value)
    assert f"{path}:3" in message
    assert "nope" in message
    assert "recipient_name" in message  # lists what is available


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = override(tmp_path, "de/shipping.html", "<p>\n{% if order_number %}\n<p>{{ x </p>\n")
    with pytest.raises(TemplateError) as info:
        renderer(tmp_path).email("shipping", language="de", country="CH",
                                 context=SAMPLE_CONTEXTS["shipping"])
    assert f"{path}:3" in str(info.value)
    assert "syntax" in str(info.value)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ order_number.__class__.__mro__[1].__subclasses__() }}",
        "{{ items[0].__init__.__globals__ }}",
        "{{ ''.format.__self__ }}",
        "{{ '{0.__class__.__mro__}'.format(order_number) }}",
    ],
)
def test_sandbox_blocks_attribute_escapes(tmp_path: Path, source: str) -> None:
    path = override(tmp_path, "de/shipping.sms.txt", source)
    with pytest.raises(TemplateError) as info:
        renderer(tmp_path).sms("shipping", language="de", country="CH",
                               context=SAMPLE_CONTEXTS["shipping"])
    assert str(path) in str(info.value)
    assert "<class" not in str(info.value)  # nothing of the interpreter leaks out


def test_a_template_cannot_change_the_values_it_is_given(tmp_path: Path) -> None:
    # the context is shared by every channel of a notification: a template that appends to
    # the items would change the next message (and the ledger's info)
    override(tmp_path, "de/shipping.sms.txt", "{{ items.append(items[0]) }}{{ items|length }}")
    context = dict(SAMPLE_CONTEXTS["shipping"])
    before = list(context["items"])  # type: ignore[call-overload]
    with pytest.raises(TemplateError):
        renderer(tmp_path).sms("shipping", language="de", country="CH", context=context)
    assert context["items"] == before


def test_missing_file_everywhere_is_a_template_error(tmp_path: Path) -> None:
    r = renderer(tmp_path)
    with pytest.raises(TemplateError, match="unknown job"):
        r.email("invoices", language="de", country="CH", context={})


def test_templates_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="not a folder"):
        renderer(tmp_path / "missing")


def test_html_escapes_descriptions_text_keeps_them() -> None:
    ctx = dict(SAMPLE_CONTEXTS["shipping"])
    ctx["items"] = [Item(1, "X<1>", "<script>alert('x')</script> & Co", Decimal("2.000"), "Stk")]
    ctx["recipient_name"] = "Ann <b>"
    for as_table in (True, False):
        msg = renderer(as_table=as_table).email("shipping", language="de", country="CH",
                                                context=ctx)
        assert msg.html is not None
        assert "<script>" not in msg.html
        assert "&lt;script&gt;" in msg.html
        assert "&amp; Co" in msg.html
        assert "Ann &lt;b&gt;" in msg.html
        assert "<script>alert('x')</script> & Co" in msg.text
        assert "Ann <b>" in msg.text


def test_items_table_vs_lines() -> None:
    ctx = SAMPLE_CONTEXTS["shipping"]
    table = renderer(as_table=True).email("shipping", language="de", country="DE", context=ctx)
    lines = renderer(as_table=False).email("shipping", language="de", country="DE", context=ctx)
    assert table.html is not None
    assert lines.html is not None
    assert "<table" in table.html
    assert "<th>Artikel-Nr.</th>" in table.html
    assert "<table" not in lines.html
    assert "<li>10 Stk × Pressfitting" in lines.html
    assert "Pos.  Menge  Einheit  Artikel-Nr.  Bezeichnung" in table.text
    assert "   2     10  Stk      PF-90-15     Pressfitting Bogen 90° Ø 15 mm" in table.text
    assert "1,5 m × Kupferrohr 15 mm, weich\n10 Stk × Pressfitting" in lines.text
    assert "Bezeichnung" not in lines.text
    en = renderer().email("shipping", language="en", country="GB", context=ctx)
    assert en.html is not None
    assert "<th>Description</th>" in en.html
    assert "Qty" in en.text


@pytest.mark.parametrize(
    ("quantity", "de_de", "en_gb"),
    [("2.000", "2", "2"), ("1.5", "1,5", "1.5"), ("0.0625", "0,0625", "0.0625"),
     ("1500", "1.500", "1,500")],
)
def test_quantities_without_trailing_zeros(quantity: str, de_de: str, en_gb: str) -> None:
    items = [Item(1, None, "A", Decimal(quantity), None)]
    assert items_text(items, as_table=False, language="de", locale="de_DE") == f"{de_de} × A"
    assert items_text(items, as_table=False, language="en", locale="en_GB") == f"{en_gb} × A"


def _prepayment(language: str, country: str, currency: str) -> str:
    ctx = {**SAMPLE_CONTEXTS["prepayment"], "currency": currency}
    return renderer().email("prepayment", language=language, country=country, context=ctx).text


def test_money_and_date_formats_follow_language_and_country() -> None:
    de_ch = _prepayment("de", "CH", "CHF")
    assert "CHF\xa01'234.50" in de_ch or "CHF\xa01’234.50" in de_ch
    assert "20.11.2026" in de_ch
    de_de = _prepayment("de", "DE", "EUR")
    assert "1.234,50\xa0€" in de_de
    assert "20.11.2026" in de_de
    de_at = _prepayment("de", "AT", "EUR")
    assert "1.234,50" in de_at
    en_gb = _prepayment("en", "GB", "EUR")
    assert "€1,234.50" in en_gb
    assert "20 Nov 2026" in en_gb
    en_ch = _prepayment("en", "CH", "CHF")
    assert "1'234.50" in en_ch or "1’234.50" in en_ch
    # the country as the ERP stored it: a name, a licence-plate code
    assert "1.234,50\xa0€" in _prepayment("de", "Deutschland", "EUR")
    assert "1.234,50" in _prepayment("de", "A", "EUR")
    # a country without a locale for the language: service.country (CH)
    assert "CHF\xa01'234.50" in _prepayment("de", "FR", "CHF")
    # the region of a language tag counts when the country is unknown
    msg = renderer().email("prepayment", language="de-DE", country=None,
                           context={**SAMPLE_CONTEXTS["prepayment"], "currency": "EUR"})
    assert "1.234,50\xa0€" in msg.text


def test_sms_has_no_break_spaces_replaced() -> None:
    sms = renderer().sms("prepayment", language="de", country="DE",
                         context={**SAMPLE_CONTEXTS["prepayment"], "currency": "EUR"})
    assert "1.234,50 €" in sms
    assert "\xa0" not in sms


def test_subject_never_contains_newline(tmp_path: Path) -> None:
    override(tmp_path, "de/review.subject.txt",
             "Ihre Bestellung\n  {{ order_number }}\r\n{% if shop %}\n({{ shop }})\n{% endif %}\n")
    ctx = {**SAMPLE_CONTEXTS["review"], "order_number": "A-1\r\nBcc: x@example.com",
           "shop": "web\tshop"}
    msg = renderer(tmp_path).email("review", language="de", country="CH", context=ctx)
    assert msg.subject == "Ihre Bestellung A-1 Bcc: x@example.com (web shop)"
    assert "\n" not in msg.subject
    assert "\r" not in msg.subject


def test_check_finds_override_problems(tmp_path: Path) -> None:
    bad = override(
        tmp_path, "en/delivery_date.html", "<p>{{ delivery_date | date }} {{ tracking_url }}</p>"
    )
    broken = override(tmp_path, "de/review.sms.txt", "{% if portal_url %}kaputt")
    stray = override(tmp_path, "de/shiping.txt", "Tippfehler im Namen")
    partial = override(tmp_path, "pt/shipping.txt", "Bonjour {{ recipient_name }}")
    override(tmp_path, "README.md", "notes")  # not template-like: ignored
    override(tmp_path, "de/.shipping.txt.swp", "editor swap file")
    problems = renderer(tmp_path).check()
    text = "\n".join(problems)
    assert f"{bad}:1" in text
    assert "tracking_url" in text
    assert str(broken) in text
    assert str(stray) in text
    assert str(partial.with_name("shipping.html")) in text  # pt/shipping has only one part
    assert "pt/review" not in text  # no pt review at all: falls back to the default language
    assert len(problems) == 6, problems


def test_filter_misuse_is_a_template_error(tmp_path: Path) -> None:
    path = override(tmp_path, "de/shipping.sms.txt", "x\n{{ order_number | date }}")
    with pytest.raises(TemplateError) as info:
        renderer(tmp_path).sms("shipping", language="de", country="CH",
                               context=SAMPLE_CONTEXTS["shipping"])
    assert f"{path}:2" in str(info.value)
    assert "date filter" in str(info.value)


def test_delivery_date_without_previous_and_optional_fields() -> None:
    ctx = {**SAMPLE_CONTEXTS["delivery_date"], "previous_delivery_date": None, "order_date": None}
    msg = renderer().email("delivery_date", language="de", country="CH", context=ctx)
    assert msg.subject == "Liefertermin für Ihre Bestellung A-1234: 04.12.2026"
    assert "bisher" not in msg.text
    assert " vom " not in msg.text
    review = {**SAMPLE_CONTEXTS["review"], "portal_url": "", "delivered_at": None}
    msg = renderer().email("review", language="en", country="CH", context=review)
    assert "reply to this email" in msg.text
    assert "href" not in (msg.html or "")


@pytest.mark.parametrize("language", ["de", "en"])
def test_shipping_without_printed_at(language: str) -> None:
    ctx = {**SAMPLE_CONTEXTS["shipping"], "printed_at": None}
    msg = renderer().email("shipping", language=language, country="CH", context=ctx)
    assert "LS-4711 haben" in msg.text or "LS-4711 we" in msg.text


def test_later_reminders_are_numbered() -> None:
    ctx = {**SAMPLE_CONTEXTS["prepayment"], "reminder_no": 2,
           "open_amount": Decimal("234.50"), "invoice_date": date(2026, 11, 2)}
    msg = renderer().email("prepayment", language="de", country="CH", context=ctx)
    assert msg.subject.startswith("2. Zahlungserinnerung")
    assert "Davon sind noch CHF\xa0234.50 offen" in msg.text


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=30)  # no surrogates


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(_TEXT, _TEXT, st.one_of(st.none(), _TEXT),
                  st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False)),
        min_size=1, max_size=5,
    )
)
def test_text_table_columns_align_for_any_text(
    rows: list[tuple[str, str, str | None, Decimal]],
) -> None:
    items = [Item(i + 1, art, desc, qty, unit) for i, (desc, art, unit, qty) in enumerate(rows)]
    table = items_text(items, as_table=True, language="de", locale="de_CH").split("\n")
    header, rule, body = table[0], table[1], table[2:]
    assert len(body) == len(items)
    desc_col = display_width(rule) - len(rule.rsplit("  ", 1)[1])  # where "Bezeichnung" starts
    assert header.endswith("Bezeichnung")
    assert display_width(header.removesuffix("Bezeichnung")) == desc_col
    for line, item in zip(body, items, strict=True):
        assert "\n" not in line
        assert "\r" not in line
        assert "\t" not in line
        desc = " ".join(unicodedata.normalize("NFC", item.description).split())
        desc = "".join(ch for ch in desc if unicodedata.category(ch) != "Cc")
        desc = " ".join(desc.split())
        if desc:
            assert line.endswith(desc)
            assert display_width(line[: len(line) - len(desc)]) == desc_col
        assert display_width(line) <= display_width(rule)


def test_frozen_item_and_rendered() -> None:
    item = SAMPLE_CONTEXTS["shipping"]["items"][0]  # type: ignore[index]
    assert replace(item, quantity=Decimal(3)).quantity == 3
    with pytest.raises(AttributeError):
        item.quantity = Decimal(1)


def test_one_layout_override_frames_every_html_part(tmp_path: Path) -> None:
    (tmp_path / "layout.html").write_text(
        "<html><body><img alt='Muster AG'>{% block body %}{% endblock %}</body></html>",
        encoding="utf-8",
    )
    renderer = Renderer(
        templates_dir=tmp_path, items_as_table=True, default_language="de", default_country="CH"
    )
    assert renderer.check() == []
    for job in JOBS:
        html = renderer.email(job, language="en", country="CH", context=SAMPLE_CONTEXTS[job]).html
        assert html is not None
        assert html.startswith("<html><body><img alt='Muster AG'>")
