"""The SMS channel: one :class:`SmsChannel` in front of the configured provider.

``SmsChannel(settings.sms)`` picks the provider of ``sms.provider`` (aspsms, ecall, smsup,
seven, twilio, or the generic http gateway), keeps one ``requests.Session`` for the batch
(connection reuse), shortens texts to ``sms.max_segments`` parts and hands each message to
the provider, which classifies the gateway's answer (see :mod:`.base`).
``Outgoing.to`` must already be E.164 ("+41791234567"): :func:`proit_notify.phones.to_e164_mobile`
makes it from the ERP's column.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ... import http as https
from ...errors import ConfigError
from ...settings import SmsProvider, SmsSettings
from .. import ChannelName, Outgoing, SendResult
from .aspsms import AspsmsProvider
from .base import Gateway, Provider
from .ecall import EcallProvider
from .http import HttpProvider
from .segments import count_segments, fit_segments
from .seven import SevenProvider
from .smsup import SmsupProvider
from .twilio import TwilioProvider

__all__ = [
    "PROVIDERS",
    "Provider",
    "SmsChannel",
    "count_segments",
    "fit_segments",
]

PROVIDERS: dict[SmsProvider, Callable[[Gateway], Provider]] = {
    "aspsms": AspsmsProvider,
    "ecall": EcallProvider,
    "smsup": SmsupProvider,
    "seven": SevenProvider,
    "twilio": TwilioProvider,
    "http": HttpProvider,
}

#: the keys each provider cannot work without
_NEEDS: dict[SmsProvider, tuple[str, ...]] = {
    "aspsms": ("username", "password"),
    "ecall": ("username", "password"),
    "smsup": ("password",),
    "seven": ("password",),
    "twilio": ("username", "password", "sender"),
    "http": (),
}
_E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")


class SmsChannel:
    """Sends SMS through the provider of ``sms.provider``."""

    name: ChannelName = "sms"

    def __init__(self, settings: SmsSettings) -> None:
        if settings.provider is None:
            raise ConfigError("sms.provider is not set: choose one of " + ", ".join(PROVIDERS))
        missing = [f"sms.{key}" for key in _NEEDS[settings.provider] if not getattr(settings, key)]
        if missing:
            raise ConfigError(
                f"SMS provider {settings.provider} needs {', '.join(missing)}",
                tuple(f"sms.{settings.provider}: set {key}" for key in missing),
            )
        self.settings = settings
        # the system's trust store, as for every HTTPS the tool speaks (proit_notify.http)
        self.session = https.session()
        self.provider: Provider = PROVIDERS[settings.provider](
            Gateway(settings.provider, settings, self.session)
        )

    def send(self, message: Outgoing) -> SendResult:
        """Send ``message.text`` to ``message.to``; never raises except for a refused login."""
        if not _E164_RE.match(message.to):
            return SendResult("failed", f"not an E.164 mobile number: {message.to!r}")
        text = fit_segments(message.text.strip(), self.settings.max_segments)
        if not text:
            return SendResult("failed", "empty SMS text")
        return self.provider.send(message.to, text, self.settings.sender)

    def prepare(self, account: str | None) -> None:
        """Nothing to open: each SMS is one HTTPS request (a refused login raises in send)."""

    def check(self) -> list[str]:
        """Log in to the gateway without sending (balance call where there is one)."""
        return self.provider.check()

    def encode(self, message: Outgoing) -> Outgoing:
        return message  # a request is a few hundred bytes: built where it is sent

    def capacity(self, account: str | None) -> int:
        return 1  # one request at a time: gateways count parallel requests against limits

    def message_id(self, message: Outgoing) -> str | None:
        return None  # the gateway's id comes with its answer (the row's detail)

    def refuse(self, message: Outgoing) -> str | None:
        """Nothing: an SMS is plain text, its number was checked when it was chosen."""
        return None

    def close(self) -> None:
        self.session.close()
