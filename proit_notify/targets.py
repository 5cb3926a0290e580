"""Recipient rules: which channels a notification goes out on, to whom, or why not (SPEC §4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .channels import ChannelName
from .channels.email import check_address
from .countries import country_code
from .jobs import Notification, Party
from .ledger.bounces import Bounce, address_key
from .phones import to_e164_mobile
from .settings import Settings


@dataclass(frozen=True)
class Target:
    """One channel a notification goes out on, or why it cannot."""

    channel: ChannelName | Literal["none"]
    to: str
    to_name: str | None
    account: str
    problem: str | None = None
    problem_status: Literal["failed", "skipped"] = "failed"
    #: the logical ERP field the recipient came from ("customers.email"): what to fix
    field: str = ""


def targets(
    n: Notification, settings: Settings, bounced: Mapping[str, Bounce] | None = None
) -> list[Target]:
    """Recipient and channel by info type, contact rule and SMS fallback (SPEC §4).

    The rules (docs: "Who gets what: info types and fallback" has the table of outcomes):

    - a notification whose ERP row cannot be read (``problem``) -> one ``failed`` row with
      the reason (which column to fix), nothing is sent.
    - a notification the job marked ``skip`` (a baseline, an aged-out reminder) -> one
      ``skipped`` row with the job's reason, nothing is sent.
    - info type: the customer's code mapped by ``[erp.info_types]``; empty or unknown ->
      ``service.default_info_type``. ``none`` -> one ``skipped`` row, nothing is sent.
    - email (``email``, ``email_sms``): the contact's address when the notification goes to
      the contact and it has one, else the customer's; missing or invalid -> ``failed``.
    - SMS (``sms``, ``email_sms``): the contact's mobile / the ``sms.phone_field`` column,
      normalised to E.164 with the customer's country (fallback ``service.country``); sent
      only with a provider configured and a valid mobile number. Otherwise the SMS row is
      ``failed`` with the reason, or, with ``sms.fallback_to_email``, ``skipped`` with the
      reason and (info type ``sms``) the email goes instead; ``email_sms`` has its email
      already and never gets a second one.
    - an address that bounced (``bounced``: :mod:`proit_notify.ledger.bounces`) gets no
      email: a ``skipped`` row says why and what to fix. With ``bounces.on_hard = "sms"``
      the notification goes by SMS instead when the customer has a valid mobile.
    """
    party: Party = n.party
    if n.problem is not None:  # the ERP row cannot be read: a failed row with the reason
        return [Target("none", "", None, "", n.problem, "failed")]
    if n.skip is not None:  # the job decided: a ledger row with its reason, nothing sent
        return [Target("none", "", party.name or None, "", n.skip, "skipped")]
    info_type = settings.erp.info_type_of(party.info_type_code, settings.service.default_info_type)
    account = settings.account_for_shop(n.shop)
    name = party.contact_name if n.use_contact and party.contact_name else party.name
    if info_type == "none":
        why = "info type 'none': the customer wants no messages"
        return [Target("none", "", name, "", why, "skipped")]
    from_contact = bool(n.use_contact and party.contact_email)
    email = party.contact_email if from_contact else party.email
    email_field = "contacts.email" if from_contact else "customers.email"
    bounce = (bounced or {}).get(address_key(email)) if email else None

    def by_email() -> Target:  # only when email is used: SMS customers need no address
        if bounce is not None:
            why = (
                f"{email} bounced on {bounce.bounced_at:%d.%m.%Y} ({bounce.detail[:200]}); no "
                f"email goes there until {email_field} is corrected in the ERP, or 'proit-notify "
                f"ledger resolve {bounce.key} --resend' says it works again"
            )
            return Target("email", email or "", name, account, why, "skipped", email_field)
        problem = check_address(email or "").problem
        return Target("email", email or "", name, account, problem, field=email_field)

    wanted: list[Target] = []
    if info_type in {"email", "email_sms"}:
        wanted.append(by_email())
    sms_instead = bounce is not None and settings.bounces.on_hard == "sms" and info_type == "email"
    if info_type not in {"sms", "email_sms"} and not sms_instead:
        return wanted
    from_contact = bool(n.use_contact and party.contact_mobile)
    phone = party.contact_mobile if from_contact else party.phone
    phone_field = "contacts.mobile" if from_contact else "customers.phone"
    number = to_e164_mobile(phone, country_code(party.country) or settings.service.country)
    provider = settings.sms.provider
    # the provider first: without one every SMS customer gets the same reason, and the fix
    # is in the settings, not in the ERP
    problem = "no SMS provider configured (set sms.provider)" if provider is None else number.reason
    recipient = number.e164 or phone or ""
    if problem is None and provider is not None and number.e164 is not None:
        wanted.append(Target("sms", number.e164, name, provider, field=phone_field))
    elif sms_instead:
        pass  # no SMS either: the email row says what to fix, and the bounce was alerted
    elif not settings.sms.fallback_to_email:
        wanted.append(Target("sms", recipient, name, provider or "", problem))
    else:
        # the SMS row stays (skipped, with the reason) so that the operator sees why, and so
        # that a later run does not text the customer once the number is corrected: the
        # notification went out by email
        instead = "by email instead" if info_type == "sms" else "the email goes alone"
        why = f"{problem}; {instead} (sms.fallback_to_email)"
        if info_type == "sms":
            wanted.append(by_email())
        wanted.append(Target("sms", recipient, name, provider or "", why, "skipped"))
    return wanted
