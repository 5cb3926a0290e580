"""Access tokens for mail servers without passwords (SPEC §9): Microsoft, Google, a command.

:func:`tokens_for` gives an account's :class:`Tokens`: one per account and run, the token
reused until shortly before it expires and then fetched anew (a long run keeps sending),
never written anywhere. Each provider is one small class with one method, ``fetch``:

- ``microsoft``: app-only client credentials with a secret or a certificate, through msal's
  ``ConfidentialClientApplication``; its token endpoint is found from the tenant's OpenID
  configuration under ``authority``.
- ``google``: a service account with domain-wide delegation (google-auth, the ``[google]``
  extra), acting as the mailbox; the key's own ``token_uri``.
- ``command``: the first line a command prints, as msmtp's ``passwordeval``.

Every token endpoint is reached over :func:`proit_notify.http.session`: the account's
``ca_file`` and the system's store are trusted, whatever ``REQUESTS_CA_BUNDLE`` says. A
token that cannot be had is a configuration-level failure (:class:`UnreachableError`,
exit 4, nothing claimed) whose message names the missing admin step. Neither msal nor
google-auth is imported unless an account uses it.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, Protocol

import requests

from . import http
from .errors import ConfigError, UnreachableError
from .redaction import one_line, redact, register_bearer
from .settings import AccountSettings, OAuth2Settings

#: what the SMTP login asks for, per provider (Graph asks for its own, SPEC §9)
SMTP_SCOPES = {
    "microsoft": "https://outlook.office365.com/.default",
    "google": "https://mail.google.com/",
}
#: what Microsoft Graph's sendMail asks for (transport "graph", SPEC §9)
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
#: a token is fetched anew this long before it expires (at most half its lifetime)
REFRESH_MARGIN = 300.0
#: a token whose lifetime is not known (a command's opaque one) is used this long
UNKNOWN_LIFETIME = 300.0
#: seconds a command may take to print its token
COMMAND_TIMEOUT = 60


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it expires (``time.time()``); never shown."""

    value: str = field(repr=False)
    expires_at: float

    @property
    def claims(self) -> dict[str, Any]:
        """The claims of a JWT (audience, roles, expiry) for ``auth test``; unverified,
        only to say what the token allows. Empty for an opaque token."""
        parts = self.value.split(".")
        if len(parts) != 3:
            return {}
        try:
            payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
            claims = json.loads(payload)
        except (ValueError, UnicodeError):
            return {}
        return claims if isinstance(claims, dict) else {}


class TokenSource(Protocol):
    """One provider: a fresh token from the identity provider per call."""

    def fetch(self) -> AccessToken: ...

    def describe(self) -> str:
        """How the account gets its token, for ``auth test``."""
        ...


class Tokens:
    """An account's token for one run: reused, and fetched anew before it expires."""

    def __init__(self, source: TokenSource, user: str) -> None:
        self.source = source
        self.user = user
        self.fetched = 0  # requests made to the identity provider in this run
        self._token: AccessToken | None = None
        self._lock = threading.Lock()  # several connections of the account log in at once

    def get(self) -> AccessToken:
        with self._lock:
            token = self._token
            now = time.time()
            if token is None or now >= token.expires_at - _margin(token, now):
                token = self.source.fetch()
                self.fetched += 1
                register_bearer(token.value, self.user)  # from now on hidden in every output
                self._token = token
            return token

    def xoauth2(self) -> str:
        """The SASL XOAUTH2 initial response for the account's mailbox (before base64)."""
        return f"user={self.user}\x01auth=Bearer {self.get().value}\x01\x01"


def _margin(token: AccessToken, now: float) -> float:
    lifetime = max(token.expires_at - now, 0.0)
    return min(REFRESH_MARGIN, lifetime / 2) if lifetime > 0 else 0.0


def tokens_for(name: str, account: AccountSettings, scope: str | None = None) -> Tokens:
    """The :class:`Tokens` of email account ``name`` (``auth = "oauth2"``); ``scope``: the
    API asked for (default: SMTP's for the provider)."""
    settings = account.oauth2
    if settings is None:
        raise ConfigError(f'email.accounts.{name}: auth = "oauth2" needs an [oauth2] table')
    wanted = scope or SMTP_SCOPES.get(settings.provider, "")
    source: TokenSource
    if settings.provider == "microsoft":
        source = MicrosoftTokens(name, settings, account.ca_file, wanted)
    elif settings.provider == "google":
        source = GoogleTokens(name, settings, account.ca_file, wanted, account.username)
    else:
        source = CommandTokens(name, settings)
    return Tokens(source, account.username)


# --- Microsoft ------------------------------------------------------------------------------

#: AADSTS codes and the admin step each one means (Microsoft's texts do not say it)
AADSTS_STEPS: dict[int, str] = {
    7000215: "the client secret is wrong: copy the secret's Value (not its Secret ID) from "
    "'Certificates & secrets' of the app registration into {key}.client_secret",
    7000222: "the client secret has expired: add a new one under 'Certificates & secrets' "
    "of the app registration and put its Value into {key}.client_secret",
    700016: "no app with this client id in the tenant: check {key}.client_id (the app "
    "registration's 'Application (client) ID') and {key}.tenant",
    90002: "the tenant does not exist: check {key}.tenant (the 'Directory (tenant) ID' or "
    "the tenant's domain, e.g. example.onmicrosoft.com)",
    700027: "the certificate is not the one uploaded to the app registration: check "
    "{key}.certificate_file and {key}.certificate_thumbprint",
    7000112: "the app is disabled in the tenant: enable its enterprise application",
    500011: "the resource is not known in the tenant: the tenant has no Exchange Online",
}


def aadsts_step(text: str, key: str) -> str | None:
    """The admin step of the first AADSTS code in ``text`` (None: none known)."""
    for found in re.finditer(r"AADSTS(\d+)", text):
        step = AADSTS_STEPS.get(int(found.group(1)))
        if step is not None:
            return f"AADSTS{found.group(1)}: " + step.format(key=key)
    return None


class MicrosoftTokens:
    """App-only client credentials from Microsoft's identity platform (msal)."""

    def __init__(
        self, name: str, settings: OAuth2Settings, ca_file: Path | None, scope: str
    ) -> None:
        self.name = name
        self.settings = settings
        self.scope = scope
        self.key = f"email.accounts.{name}.oauth2"
        self._http = http.session(ca_file)
        self._app: Any = None

    def describe(self) -> str:
        how = "a certificate" if self.settings.certificate_file else "a client secret"
        return (
            f"Microsoft, tenant {self.settings.tenant}, app {self.settings.client_id}, "
            f"client credentials with {how}, scope {self.scope}"
        )

    def _credential(self) -> str | dict[str, str]:
        s = self.settings
        if s.certificate_file is None:
            return s.client_secret
        try:
            pem = s.certificate_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{self.key}.certificate_file {s.certificate_file}: cannot be read "
                f"({exc.strerror})"
            ) from None
        register_bearer(pem, None)  # the private key is a secret like the client secret
        return {"private_key": pem, "thumbprint": s.certificate_thumbprint}

    def _application(self) -> Any:
        if self._app is None:
            import msal  # only an account that uses Microsoft's OAuth2 imports it

            s = self.settings
            self._app = msal.ConfidentialClientApplication(
                s.client_id,
                client_credential=self._credential(),
                authority=f"{s.authority.rstrip('/')}/{s.tenant}",
                http_client=self._http,
                instance_discovery=False,  # the configured authority is trusted as it is
            )
        return self._app

    def fetch(self) -> AccessToken:
        authority = self.settings.authority
        try:
            result = self._application().acquire_token_for_client(scopes=[self.scope])
        except requests.exceptions.SSLError as exc:
            raise UnreachableError(
                f"{self.key}: the TLS certificate of {authority} is not trusted ({_cause(exc)}); "
                f"if a proxy or a private CA signs it, set email.accounts.{self.name}.ca_file"
            ) from None
        except requests.RequestException as exc:
            raise UnreachableError(
                f"{self.key}: cannot reach the identity provider {authority} ({_cause(exc)}); "
                "check the authority, the proxy (HTTPS_PROXY) and the firewall"
            ) from None
        except ValueError as exc:  # the tenant's OpenID configuration was refused
            # msal raises anew without the answer: Microsoft's text is in the one it caught
            said = f"{exc} {exc.__context__ or ''}"
            step = aadsts_step(said, self.key) or (
                f"the tenant's OpenID configuration cannot be read: {_first(said)}"
            )
            raise UnreachableError(f"{self.key}: no token: {step}") from None
        except Exception as exc:  # noqa: BLE001 - msal and PyJWT refuse a key in their ways
            raise UnreachableError(
                f"{self.key}: no token: {type(exc).__name__}: {_first(str(exc))}; check "
                "certificate_file (a PEM with the certificate's RSA private key) and "
                "certificate_thumbprint"
            ) from None
        if "access_token" not in result:
            said = f"{result.get('error', '')}: {result.get('error_description', '')}"
            step = aadsts_step(said, self.key) or f"the identity provider said {_first(said)}"
            raise UnreachableError(f"{self.key}: no token: {step}")
        expires_in = float(result.get("expires_in") or UNKNOWN_LIFETIME)
        return AccessToken(str(result["access_token"]), time.time() + expires_in)


# --- Google ---------------------------------------------------------------------------------


class GoogleTokens:
    """A service account with domain-wide delegation, acting as the mailbox (google-auth)."""

    def __init__(
        self, name: str, settings: OAuth2Settings, ca_file: Path | None, scope: str, user: str
    ) -> None:
        self.name = name
        self.settings = settings
        self.scope = scope
        self.user = user
        self.key = f"email.accounts.{name}.oauth2"
        self._http = http.session(ca_file)
        self._credentials: Any = None

    def describe(self) -> str:
        return f"Google service account, acting as {self.user}, scope {self.scope}"

    def client_id(self) -> str:
        """The service account's client id (what domain-wide delegation is granted to)."""
        return str(self._key().get("client_id", "?"))

    def _key(self) -> dict[str, Any]:
        path = self.settings.service_account_file
        assert path is not None  # the settings require it for provider google
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{self.key}.service_account_file {path}: cannot be read ({exc})"
            ) from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ConfigError(
                f"{self.key}.service_account_file {path}: not a service account key (JSON "
                "with type service_account, from the Google Cloud console)"
            )
        register_bearer(str(info.get("private_key", "")), None)
        return info

    def _credentials_(self) -> Any:
        if self._credentials is None:
            try:
                from google.oauth2 import service_account
            except ImportError:
                raise ConfigError(
                    f"{self.key}: provider google needs Google's library: "
                    "pip install 'proit-notify[google]'"
                ) from None
            make: Any = service_account.Credentials.from_service_account_info
            self._credentials = make(self._key(), scopes=[self.scope], subject=self.user)
        return self._credentials

    def fetch(self) -> AccessToken:
        credentials = self._credentials_()
        from google.auth import exceptions
        from google.auth.transport.requests import Request

        try:
            credentials.refresh(Request(session=self._http))
        except exceptions.RefreshError as exc:
            said = _first(str(exc.args[0] if exc.args else exc))
            raise UnreachableError(f"{self.key}: no token: {self._step(said)}") from None
        except exceptions.TransportError as exc:
            raise UnreachableError(
                f"{self.key}: cannot reach Google's token endpoint ({_first(str(exc))}); check "
                "the proxy (HTTPS_PROXY) and the firewall"
            ) from None
        expiry = credentials.expiry  # a naive UTC datetime
        expires_at = (
            time.time() + UNKNOWN_LIFETIME
            if expiry is None
            else expiry.replace(tzinfo=UTC).timestamp()
        )
        return AccessToken(str(credentials.token), expires_at)

    def _step(self, said: str) -> str:
        if "unauthorized_client" in said:
            return (
                f"domain-wide delegation is not granted: in the Google Admin console, "
                f"Security > Access and data control > API controls > Domain-wide delegation, "
                f"add client id {self.client_id()} with the scope {self.scope} ({said})"
            )
        if "invalid_grant" in said:
            return (
                f"Google does not accept the service account's key or the mailbox {self.user} "
                f"(a user of your Workspace domain?): {said}"
            )
        return said


# --- a command ------------------------------------------------------------------------------


class CommandTokens:
    """The first line a command prints (a token helper of the operator's choice)."""

    def __init__(self, name: str, settings: OAuth2Settings) -> None:
        self.name = name
        self.command = settings.token_command
        self.key = f"email.accounts.{name}.oauth2.token_command"

    def describe(self) -> str:
        return f"the command of {self.key}"

    def fetch(self) -> AccessToken:
        try:
            # a shell, as msmtp's passwordeval: the operator writes the command line
            done = subprocess.run(  # noqa: S602 - the operator's own command from the settings
                self.command,
                shell=True,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UnreachableError(f"{self.key}: cannot run it ({exc})") from None
        lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        if done.returncode != 0 or not lines:
            said = _first(redact(done.stderr)) or f"exit code {done.returncode}, no output"
            raise UnreachableError(f"{self.key}: printed no token ({said})")
        token = AccessToken(lines[0], time.time() + UNKNOWN_LIFETIME)
        exp = token.claims.get("exp")
        if isinstance(exp, int | float):
            token = AccessToken(lines[0], float(exp))
        return token


# --- helpers --------------------------------------------------------------------------------


def _first(text: str) -> str:
    """The first line of a library's message, control characters escaped, not too long."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return one_line(redact(line))[:300]


def _cause(exc: BaseException) -> str:
    """The innermost cause of a requests error, without the URL's query."""
    seen: BaseException = exc
    while seen.__cause__ is not None or (seen.args and isinstance(seen.args[0], BaseException)):
        seen = seen.__cause__ or seen.args[0]
    text = re.sub(r"https?://\S+", "(url)", str(seen))
    return _first(re.sub(r"\w*\(host='[^']*', port=\d+\): ", "", text)) or type(exc).__name__
