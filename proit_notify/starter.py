"""The commented starter config ``proit-notify init`` writes for a real installation.

Hand-written TOML text rather than ``tomli_w`` output: the comments are the point.
Every key is explained in ``config.example.toml`` at the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError

STARTER_CONFIG = """\
# proit-notify settings: the "Email / SMS Service" of ProIT Handel.
#
# Found by: --config PATH, else $PROIT_NOTIFY_CONFIG, else ./proit-notify.toml.
# ${NAME} in any string is replaced by the environment variable NAME; keep passwords there.
# Relative paths are relative to this file. Check everything with: proit-notify check
# Every key, its default and its allowed values: config.example.toml.

[service]
# Email / SMS Service verwenden: false = nothing is sent by any command
enabled = true
# Standard Info-Art: for customers without (or with an unknown) info type
# "email", "sms", "email_sms" or "none"
default_info_type = "email"
timezone = "Europe/Zurich"   # ERP times are local times in this zone
country = "CH"               # phone numbers without a country prefix are read as CH numbers
language = "de"              # template language when the customer has none (de, fr, it, en)
# When to send: nothing goes out at night, on Sundays or on the canton's public holidays
# (nothing ages out for it: what fell due meanwhile goes on the next send day)
# send_window = "07:00-20:00"  # email.send_window / sms.send_window for one channel
# send_days = "Mon-Sat"
# holidays = "CH-ZH"

[erp]
# The ERP database through ODBC: here Microsoft SQL Server with Windows authentication.
# Linux / SQL login instead:
#   odbc = "DRIVER={ODBC Driver 18 for SQL Server};SERVER=erp-sql01,1433;DATABASE=ProIT;UID=proit_notify;PWD=${PROIT_ERP_PASSWORD};Encrypt=yes;TrustServerCertificate=yes"
odbc = "DRIVER={ODBC Driver 18 for SQL Server};SERVER=erp-sql01,1433;DATABASE=ProIT;Trusted_Connection=yes;Encrypt=yes;TrustServerCertificate=yes"
login_timeout = 15    # seconds to wait for the server
query_timeout = 120   # seconds per query, 0 = no limit

# The mapping: which table and column of YOUR ERP holds each field proit-notify reads.
# Without it the logical names are used (customers.id, orders.number, ...).
# 'proit-notify schema' lists the ERP's tables, 'proit-notify schema TABLE' its columns.
#
# [erp.tables]
# customers = "dbo.Kunden"
# contacts = "dbo.Kontakte"
# orders = "dbo.Auftraege"
# order_lines = "dbo.AuftragsPositionen"
# delivery_notes = "dbo.Lieferscheine"
# delivery_note_lines = "dbo.LieferscheinPositionen"
# invoices = "dbo.Rechnungen"
#
# [erp.columns.customers]
# id = "KundenNr"
# name = "Firma"
# email = "EMail"
# country = "Land"
# language = "Sprache"
# info_type = "InfoArt"
# no_marketing = { sql = "CASE WHEN Werbesperre = 'J' THEN 1 ELSE 0 END" }  # optional
#
# [erp.columns.orders]
# number = "AuftragsNr"
# customer_id = "KundenNr"
# review_mail = { sql = "CASE Bewertungsmail WHEN 'J' THEN 1 WHEN 'N' THEN 0 END" }
#
# [erp.info_types]   # the ERP's own info-type codes
# email = ["E"]
# sms = ["S"]
# email_sms = ["ES"]
# none = ["K"]
#
# [erp.language_codes]   # the ERP's own language codes, if F/I/D/E and names are not enough
# fr = ["W"]
#
# [erp.columns.delivery_notes]   # optional: the parcels' tracking links
# tracking_number = "Sendungsnummern"   # one or several, separated by , ; or blanks
# carrier = "Versandart"
# [erp.carrier_codes]   # the ERP's carrier codes -> post, dhl, dpd, ups, gls, planzer
# post = ["P", "PostPac"]
# [erp.columns.invoices]   # optional: the QR reference of the QR-bill
# payment_reference = "QR_Referenz"

[email]
# Standard Emailkonto: one of the [email.accounts.NAME] tables below
default_account = "shop"
# Menge / Bestellpost als Tabelle: the items as a table (true) or as lines "2 × Artikel"
items_as_table = true

# EMail-Konto / Shop-Zuordnung: orders of a web shop are sent from that shop's account
# [email.shop_accounts]
# "SHOP-CH" = "shop"

[email.accounts.shop]
transport = "smtp"
host = "smtp.example.ch"
port = 587
security = "starttls"          # "starttls", "ssl" (port 465) or "none"
username = "shop@example.ch"
password = "${PROIT_SMTP_PASSWORD}"
from = "Example Shop <shop@example.ch>"
# reply_to = "service@example.ch"
# bcc = "archiv@example.ch"
# max_per_minute = 60          # the provider's sending limits, if any
# max_per_day = 2000

# Microsoft 365 refuses passwords for SMTP (from the end of December 2026): log in with an
# app's token instead. Set default_account = "m365" above, then run
# 'proit-notify auth setup m365' for the admin steps and 'proit-notify auth test m365'.
# [email.accounts.m365]
# host = "smtp.office365.com"  # max_per_minute = 30 is the default here (Microsoft's limit)
# from = "Example Shop <shop@example.ch>"   # the mailbox
# auth = "oauth2"
# [email.accounts.m365.oauth2]
# provider = "microsoft"       # or "google" (service_account_file) or "command"
# tenant = "example.onmicrosoft.com"
# client_id = "00000000-0000-0000-0000-000000000000"
# client_secret = "${M365_SECRET}"

[sms]
# Telefonfeld: the customers column that holds the mobile number
# phone_field = "Natel"
# Provider: "aspsms", "ecall", "smsup", "seven", "twilio" or "http"
# provider = "aspsms"
# username = "..."             # Benutzername
# password = "${PROIT_SMS_PASSWORD}"   # Passwort
# sender = "ExampleShop"
fallback_to_email = true       # no valid mobile number: send the SMS text by email

[shipping]
# Versandbestätigung bei Druck LS
on_delivery_note_print = true
# Versandbestätigung an Kontakt
to_contact = false
max_age_days = 14              # older delivery notes are never confirmed

[review]
# Verzögerung Bewertungsportal (days after the shipping confirmation)
delay_days = 7
# Bewertungsmailstatus autom. setzen: send to orders whose review flag is empty
default_status = false
# Bewertungsmail bei vollständiger Lieferung
only_complete_delivery = false
# Bewertungsmail bei autom. Auftragsverarbeitung senden
on_auto_processing = false
# Bewertungsmail bei Druck LS
on_delivery_note_print = false
portal_url = "https://www.example.ch/bewertung"
max_age_days = 14
# list_unsubscribe = "mailto:abmelden@example.ch"   # List-Unsubscribe of review requests
# one-click (RFC 8058) needs each recipient's token: an https link with {token}, signed with
# unsubscribe_secret; your web page hands the token to 'proit-notify optout add --token'
# list_unsubscribe = "https://www.example.ch/abmelden?t={token}"
# unsubscribe_secret = "${UNSUBSCRIBE_SECRET}"

[prepayment]
delay_days = 7     # Verzögerung Vorkasse
repeat_days = 7    # Wiedervorlage Vorkasse
max_mails = 3      # Max. Anz. Mails (0 = no reminders)
max_age_days = 60  # a first reminder due longer ago is never sent; a started series goes on
# a Swiss QR-bill for the open amount on each reminder without the invoice PDF attached
# [prepayment.qr_bill]
# account = "CH44 3199 9123 0008 8901 2"   # IBAN or QR-IBAN (QR-IBAN: map payment_reference)
# creditor = { name = "Example Shop AG", street = "Bahnhofstrasse", house_num = "1", pcode = "8001", city = "Zürich" }

# The ERP's archived PDFs on the messages ({number}, {id}, {order_number} of the document)
# [attachments]
# delivery_note = '\\\\srv\\archiv\\LS_{number}.pdf'   # shipping confirmations
# invoice = '\\\\srv\\archiv\\RE_{number}.pdf'         # prepayment reminders
# wait_hours = 24      # a file not there yet holds the message back this long, then it goes without

# Each web shop's own face (by orders.shop): account, templates, review portal, name
# [shops."SHOP-CH"]
# account = "shop"
# templates_dir = "templates-shop-ch"
# portal_url = "https://www.example.ch/bewertung"
# sender_name = "Example Shop Schweiz"

[delivery_date]
# Lieferterminmail bearbeiten: keep notices as drafts for 'proit-notify drafts'
edit_before_send = false
# false: the first run takes the current dates as the baseline and sends nothing
notify_existing = false

[alerts]
# a summary mail after a run with problems (nobody reads the Task Scheduler's output);
# try it with: proit-notify test-send --alert
to = ["it@example.ch"]
on = "problems"

[ledger]
# what was sent: an SQLite file next to this file (or erp = true: a table in the ERP)
sqlite = "proit-notify-ledger.sqlite"
"""  # noqa: E501 - a connection string is one line in TOML


def write_starter_config(path: Path, force: bool = False) -> Path:
    """Write :data:`STARTER_CONFIG` to ``path``; an existing file is kept unless ``force``."""
    if path.is_dir():
        raise UsageError(f"{path} is a directory: give the path of the settings file to write")
    if path.exists() and not force:
        raise UsageError(f"{path} already exists: pass --force to overwrite it, or another PATH")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(STARTER_CONFIG, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    return path
