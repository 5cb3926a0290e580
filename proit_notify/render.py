"""Message rendering (SPEC §5): Jinja2 templates per job and language, sandboxed and strict.

Templates live in ``templates/<language>/<job>.subject.txt | .txt | .html | .sms.txt``; a file
of the same relative path under ``templates.dir`` overrides the shipped one. Every Jinja
problem (syntax, unknown placeholder, missing file, sandbox violation) becomes a
:class:`TemplateError` naming the template file, the line and the placeholder.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType

import jinja2
from babel.dates import format_date, format_time
from babel.localedata import exists as locale_exists
from babel.numbers import format_currency, format_decimal
from jinja2 import pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from .countries import country_code
from .errors import TemplateError
from .languages import language_of, region_of

#: the parts of one job's templates: key -> file suffix
PARTS: dict[str, str] = {
    "subject": ".subject.txt",
    "text": ".txt",
    "html": ".html",
    "sms": ".sms.txt",
}

SHIPPED_DIR = Path(__file__).parent / "templates"
FALLBACK_LANGUAGE = "de"

#: the placeholder the renderer fills from ``items`` (SPEC §5)
ITEMS_PLACEHOLDER = "MengeUndBestellposition"


@dataclass(frozen=True)
class Item:
    """One line of ``MengeUndBestellposition``."""

    line_no: int
    article_no: str | None
    description: str
    quantity: Decimal
    unit: str | None


@dataclass(frozen=True)
class Rendered:
    """A rendered message: subject (``""`` for SMS), text, and HTML (``None`` for SMS)."""

    subject: str
    text: str
    html: str | None


# --- items ---------------------------------------------------------------------------------

_HEADERS: dict[str, tuple[str, str, str, str, str]] = {
    "de": ("Pos.", "Menge", "Einheit", "Artikel-Nr.", "Bezeichnung"),
    "en": ("Pos.", "Qty", "Unit", "Item no.", "Description"),
    "fr": ("Pos.", "Quantité", "Unité", "N° d'article", "Désignation"),
    "it": ("Pos.", "Quantità", "Unità", "N. articolo", "Descrizione"),
}


def one_line(value: object) -> str:
    """ERP text as one clean line: NFC, control characters dropped, whitespace runs -> " ".

    ERP descriptions carry tabs, CR/LF and decomposed umlauts; any of them would break the
    alignment of the text table (and a decomposed "ü" must count as one character).
    """
    text = "" if value is None else str(value)
    if text.isascii() and text.isprintable():  # the common case, without a per-character walk
        return " ".join(text.split())
    text = unicodedata.normalize("NFC", text)
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cs")
    )
    return " ".join(text.split())


def display_width(text: str) -> int:
    """Columns ``text`` takes in a monospaced font: combining marks 0, East Asian wide 2."""
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, *, right: bool = False) -> str:
    fill = " " * (width - display_width(text))
    return fill + text if right else text + fill


@functools.lru_cache(maxsize=4096)
def _quantity(value: Decimal, locale: str) -> str:
    """2.000 -> "2", 1.5 -> "1,5" (de_DE) / "1.5" (de_CH, en): never rounded.

    Cached: a batch formats the same few quantities thousands of times, and babel parses
    the locale on every call.
    """
    return format_decimal(Decimal(value), locale=locale, decimal_quantization=False)


def _item_line(item: Item, locale: str) -> str:
    unit = one_line(item.unit)
    qty = _quantity(item.quantity, locale) + (f" {unit}" if unit else "")
    return f"{qty} × {one_line(item.description)}"


def items_text(items: Sequence[Item], *, as_table: bool, language: str, locale: str) -> str:
    """Plain-text form: an aligned table (widths from the content) or lines "2 × Artikel"."""
    if not as_table:
        return "\n".join(_item_line(item, locale) for item in items)
    header = _HEADERS.get(language, _HEADERS[FALLBACK_LANGUAGE])
    rows = [
        (
            str(item.line_no),
            _quantity(item.quantity, locale),
            one_line(item.unit),
            one_line(item.article_no),
            one_line(item.description),
        )
        for item in items
    ]
    widths = [max(display_width(row[i]) for row in [header, *rows]) for i in range(5)]
    right = (True, True, False, False, False)  # numbers right-aligned

    def line(cells: Sequence[str]) -> str:
        # the last column is not padded: no trailing blanks in the mail
        padded = [_pad(c, w, right=r) for c, w, r in zip(cells[:-1], widths, right, strict=False)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def items_html(items: Sequence[Item], *, as_table: bool, language: str, locale: str) -> Markup:
    """HTML form: a table or a list; ``Markup.format`` escapes every ERP value."""
    if not as_table:
        lis = Markup("").join(Markup("<li>{}</li>").format(_item_line(i, locale)) for i in items)
        return Markup('<ul class="items">{}</ul>').format(lis)
    header = _HEADERS.get(language, _HEADERS[FALLBACK_LANGUAGE])
    head = Markup("").join(Markup("<th>{}</th>").format(h) for h in header)
    body = Markup("").join(
        Markup(
            '<tr><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}</td>'
            "<td>{}</td></tr>"
        ).format(
            item.line_no,
            _quantity(item.quantity, locale),
            one_line(item.unit),
            one_line(item.article_no),
            one_line(item.description),
        )
        for item in items
    )
    return Markup(
        '<table class="items"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>'
    ).format(head, body)


class _Lazy:
    """A placeholder value computed when a template prints it (``{{ x }}``), at most once."""

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self._value: str | None = None

    def __str__(self) -> str:
        if self._value is None:
            self._value = self._make()
        return self._value

    def __html__(self) -> str:
        # the HTML form is Markup already (escaped where built): autoescape must keep it
        return str(self)


def items_sms(items: Sequence[Item], *, locale: str) -> str:
    """Short form for SMS: "2 x Artikel, 1 x Artikel" ("×" is not in the GSM-7 alphabet)."""
    return ", ".join(
        f"{_quantity(i.quantity, locale)} x {one_line(i.description)}" for i in items
    )


# --- filters -------------------------------------------------------------------------------


def _locale_of(ctx: Context) -> str:
    value = ctx.get("locale")
    return value if isinstance(value, str) else "de_CH"


@pass_context
def _money(ctx: Context, amount: object, currency: object = None) -> str:
    """``{{ amount | money(currency) }}``: "CHF 1'234.50" (de_CH), "1.234,50 €" (de_DE)."""
    value = Decimal(str(amount))
    if not currency:
        return format_decimal(value, format="#,##0.00", locale=_locale_of(ctx))
    return format_currency(value, str(currency), locale=_locale_of(ctx))


@pass_context
def _date(ctx: Context, value: object, format: str = "medium") -> str:
    """``{{ d | date }}``: "27.11.2026" (de), "27 Nov 2026" (en_CH/en_GB); None -> ""."""
    if value is None:
        return ""
    if not isinstance(value, date):
        raise TypeError(f"the date filter needs a date, got {type(value).__name__} {value!r}")
    day = value.date() if isinstance(value, datetime) else value
    return format_date(day, format=format, locale=_locale_of(ctx))


@pass_context
def _datetime(ctx: Context, value: object) -> str:
    """``{{ t | datetime }}``: "27.11.2026 14:30"; None -> ""."""
    if value is None:
        return ""
    if not isinstance(value, datetime):
        raise TypeError(f"the datetime filter needs a datetime, got {type(value).__name__}")
    locale = _locale_of(ctx)
    day = format_date(value, "medium", locale=locale)
    return f"{day} {format_time(value, 'short', locale=locale)}"


@pass_context
def _number(ctx: Context, value: object) -> str:
    """``{{ n | number }}``: grouped and with the locale's decimal sign, never rounded."""
    return format_decimal(Decimal(str(value)), locale=_locale_of(ctx), decimal_quantization=False)


# --- samples -------------------------------------------------------------------------------

# --- renderer ------------------------------------------------------------------------------


def _template_line(tb: TracebackType | None, filename: str | None) -> int | None:
    """The template line of the innermost frame of ``filename`` (Jinja rewrites tracebacks)."""
    line = None
    while tb is not None:
        if filename is not None and tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class Renderer:
    """Renders the four jobs' emails and SMS in the customer's language."""

    def __init__(
        self,
        *,
        templates_dir: Path | None,
        items_as_table: bool,
        default_language: str,
        default_country: str,
        language_codes: Mapping[str, Sequence[str]] | None = None,
        samples: Mapping[str, Mapping[str, object]] | None = None,
        overridden: Sequence[Path] = (),
    ) -> None:
        """``samples``: template name -> the sample context ``check`` renders it with (the
        registered jobs' by default). ``overridden``: folders ``templates_dir`` goes before
        (a shop's own folder over ``templates.dir``), before the shipped templates."""
        if templates_dir is not None and not templates_dir.is_dir():
            raise TemplateError(
                f"templates.dir {templates_dir} is not a folder: create it (with files like "
                "de/shipping.txt to override the shipped ones) or remove the setting"
            )
        if samples is None:
            from .jobs.registry import samples as registered  # jobs use the renderer's Item

            samples = registered()
        #: template name -> its sample context (one per job)
        self.samples = dict(samples)
        self.templates_dir = templates_dir
        self.overridden = tuple(overridden)
        self._shops: dict[Path, Renderer] = {}
        self.items_as_table = items_as_table
        #: ``[erp.language_codes]``: an ERP's own codes, read before the built-in spellings
        self.language_codes = dict(language_codes or {})
        self.default_language = language_of(default_language) or FALLBACK_LANGUAGE
        self.default_country = (default_country or "CH").strip().upper()
        # the override folder first: its files win over the shipped ones of the same path
        loaders: list[jinja2.BaseLoader] = [
            jinja2.FileSystemLoader(folder) for folder in self._search_folders()
        ]
        self.env = ImmutableSandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters.update(
            money=_money, date=_date, datetime=_datetime, number=_number
        )
        self._names = set(self.env.list_templates())

    # -- public API --

    def email(
        self,
        job: str,
        *,
        language: str | None,
        country: str | None,
        context: Mapping[str, object],
    ) -> Rendered:
        """Subject (one line), plain text and HTML of ``job``'s email."""
        lang = self._pick_language(job, language, ("subject", "text", "html"))
        base = self._base_context(lang, language, country, context)
        subject = self._render(self._name(lang, job, "subject"), base, part="subject")
        text = self._render(self._name(lang, job, "text"), base, part="text")
        html = self._render(self._name(lang, job, "html"), base, part="html")
        return Rendered(subject=subject, text=text, html=html)

    def sms(
        self,
        job: str,
        *,
        language: str | None,
        country: str | None,
        context: Mapping[str, object],
    ) -> str:
        """The SMS text of ``job``."""
        lang = self._pick_language(job, language, ("sms",))
        base = self._base_context(lang, language, country, context)
        return self._render(self._name(lang, job, "sms"), base, part="sms")

    def language(self, value: object) -> str | None:
        """The language an ERP value stands for ("F", "Français", "fr_CH" -> "fr")."""
        return language_of(value, self.language_codes)

    def language_used(self, value: object, job: str = "shipping") -> str:
        """The language whose templates a customer with ERP language ``value`` gets."""
        return self._pick_language(job, None if value is None else str(value), tuple(PARTS))

    def languages(self) -> list[str]:
        """Languages with at least one template (shipped or in ``templates.dir``)."""
        return sorted({n.split("/", 1)[0] for n in self._names if "/" in n})

    def check_with(self, folders: Sequence[Path]) -> list[str]:
        """:meth:`check`, and the same for each shop's ``folders`` over these templates."""
        problems = self.check()
        for folder in folders:
            problems += [p for p in self.for_folder(folder).check() if p not in problems]
        return problems

    def check(self) -> list[str]:
        """Render every job × language × part with its sample; the problems found."""
        problems: list[str] = []
        expected = {
            self._name(lang, job, part)
            for lang in self.languages()
            for job in self.samples
            for part in PARTS
        }
        if self.templates_dir is not None:
            # a misspelt name would silently leave the shipped template in use; other files
            # (notes, hidden files, images) are none of our business
            for path in sorted(self.templates_dir.glob("*/*")):
                rel = path.relative_to(self.templates_dir).as_posix()
                looks_like_template = path.suffix in (".txt", ".html") and not any(
                    part.startswith(".") for part in path.relative_to(self.templates_dir).parts
                )
                if path.is_file() and looks_like_template and rel not in expected:
                    problems.append(
                        f"{path}: not a template name proit-notify uses (expected "
                        "<language>/<job><part>, job one of "
                        f"{', '.join(self.samples)}, part one of {', '.join(PARTS.values())})"
                    )
        for lang in self.languages():
            for job in self.samples:
                names = {part: self._name(lang, job, part) for part in PARTS}
                present = [p for p, n in names.items() if n in self._names]
                if not present:
                    continue  # this job falls back to the default language
                for part, name in names.items():
                    if name not in self._names:
                        problems.append(
                            f"{self._where(name)}: missing (the other parts of {job} exist "
                            f"in {lang}/; {lang} customers get the "
                            f"{self.default_language} message instead)"
                        )
                        continue
                    base = self._base_context(lang, lang, None, self.samples[job])
                    try:
                        self._render(name, base, part=part)
                    except TemplateError as exc:
                        problems.append(str(exc))
        return problems

    # -- internals --

    @staticmethod
    def _name(lang: str, job: str, part: str) -> str:
        return f"{lang}/{job}{PARTS[part]}"

    def _where(self, name: str) -> str:
        folder = self.templates_dir if self.templates_dir is not None else SHIPPED_DIR
        return str(folder / name)

    def _pick_language(self, job: str, language: str | None, parts: Sequence[str]) -> str:
        """Customer language if its templates exist, else ``service.language``, else "de".

        A language folder counts for a message only with all of its parts, so a half-done
        translation in ``templates.dir`` falls back instead of failing (``check`` reports it).
        """
        if job not in self.samples:
            raise TemplateError(f"unknown job {job!r} (known: {', '.join(self.samples)})")
        for lang in (self.language(language), self.default_language, FALLBACK_LANGUAGE):
            if lang and all(self._name(lang, job, p) in self._names for p in parts):
                return lang
        return FALLBACK_LANGUAGE  # missing everywhere: _render reports the missing file

    def _locale(self, lang: str, language: str | None, country: str | None) -> str:
        """Babel locale from language + country: de+CH -> de_CH, en+GB -> en_GB, en+CH -> en_CH."""
        candidates = [
            country_code(country),
            region_of(language),
            self.default_country,
        ]
        for region in candidates:
            if region and locale_exists(f"{lang}_{region}"):
                return f"{lang}_{region}"
        if locale_exists(lang):
            return lang
        return "de_CH"

    def _base_context(
        self, lang: str, language: str | None, country: str | None, context: Mapping[str, object]
    ) -> dict[str, object]:
        locale = self._locale(lang, language, country)
        base = dict(context)
        base["language"] = lang
        base["country"] = locale.split("_", 1)[1] if "_" in locale else self.default_country
        base["locale"] = locale
        return base

    def _part_context(self, base: dict[str, object], part: str) -> dict[str, object]:
        ctx = dict(base)
        items = base.get("items")
        if isinstance(items, Iterable) and not isinstance(items, str | bytes):
            seq = list(items)
            locale = str(base["locale"])
            lang = str(base["language"])
            table = self.items_as_table

            def value() -> str:
                if part == "html":
                    return items_html(seq, as_table=table, language=lang, locale=locale)
                if part == "sms":
                    return items_sms(seq, locale=locale)
                as_table = table and part != "subject"
                return items_text(seq, as_table=as_table, language=lang, locale=locale)

            # built only when the template shows it (most subjects and SMS do not)
            ctx[ITEMS_PLACEHOLDER] = _Lazy(value)
        return ctx

    def _render(self, name: str, base: dict[str, object], *, part: str) -> str:
        ctx = self._part_context(base, part)
        filename: str | None = None
        try:
            template = self.env.get_template(name)
            filename = template.filename
            out = template.render(ctx)
        except jinja2.TemplateSyntaxError as exc:
            where = exc.filename or filename or self._where(name)
            raise TemplateError(
                f"{where}:{exc.lineno}: template syntax error: {exc.message}"
            ) from None
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(
                f"template {exc.name} not found (looked in "
                f"{', '.join(self._search_folders())})"
            ) from None
        except jinja2.UndefinedError as exc:
            line = _template_line(exc.__traceback__, filename)
            where = f"{filename or self._where(name)}:{line or '?'}"
            msg = exc.message or str(exc)
            placeholder = re.match(r"'([^']+)' is undefined", msg)
            if placeholder:
                known = ", ".join(sorted(k for k in ctx if not k.startswith("_")))
                raise TemplateError(
                    f"{where}: unknown placeholder {{{{ {placeholder.group(1)} }}}} "
                    f"({msg}); available here: {known}"
                ) from None
            raise TemplateError(f"{where}: {msg}") from None
        except SecurityError as exc:
            line = _template_line(exc.__traceback__, filename)
            where = f"{filename or self._where(name)}:{line or '?'}"
            raise TemplateError(f"{where}: not allowed in a template: {exc}") from None
        except jinja2.TemplateError as exc:
            line = _template_line(exc.__traceback__, filename)
            where = f"{filename or self._where(name)}:{line or '?'}"
            raise TemplateError(f"{where}: {exc.message or exc}") from None
        except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
            # a filter or an expression failed ({{ 1/0 }}, money on a text)
            line = _template_line(exc.__traceback__, filename)
            where = f"{filename or self._where(name)}:{line or '?'}"
            raise TemplateError(f"{where}: {type(exc).__name__}: {exc}") from None
        return _finish(out, part)

    def _search_folders(self) -> list[str]:
        folders = [] if self.templates_dir is None else [self.templates_dir]
        return [str(f) for f in (*folders, *self.overridden, SHIPPED_DIR)]

    def for_folder(self, folder: Path | None) -> Renderer:
        """This renderer with ``folder`` (a shop's ``templates_dir``) over its templates:
        one per folder, made once."""
        if folder is None:
            return self
        if folder not in self._shops:
            self._shops[folder] = Renderer(
                templates_dir=folder,
                items_as_table=self.items_as_table,
                default_language=self.default_language,
                default_country=self.default_country,
                language_codes=self.language_codes,
                samples=self.samples,
                overridden=[f for f in (self.templates_dir, *self.overridden) if f is not None],
            )
        return self._shops[folder]


_FINISHERS: dict[str, Callable[[str], str]] = {
    # The subject template may span lines for readability; a mail header must be one line
    # (a CR/LF would start a new header), so every whitespace run becomes a single space.
    # ERP names with CR/LF are thereby neutralised here too; the channel refuses the rest.
    "subject": lambda s: " ".join(s.split()),
    "text": lambda s: s.strip("\n") + "\n",
    "html": lambda s: s.strip() + "\n",
    # No-break spaces (babel puts them into amounts) are not in the GSM-7 alphabet.
    "sms": lambda s: s.replace("\u00a0", " ").replace("\u202f", " ").strip(),
}


def _finish(out: str, part: str) -> str:
    return _FINISHERS[part](out)


__all__ = [
    "ITEMS_PLACEHOLDER",
    "Item",
    "Rendered",
    "Renderer",
    "display_width",
    "items_html",
    "items_text",
    "one_line",
]
