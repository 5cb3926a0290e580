"""HTTPS sessions that trust what SMTP trusts: the system's store and the account's ca_file.

Used for everything proit-notify says over HTTP: SMS gateways, the OAuth2 token endpoints
(and Microsoft Graph). ``requests`` has two traps here: it trusts certifi's bundle instead
of the system's store (a private CA installed on Windows is ignored), and an environment
variable ``REQUESTS_CA_BUNDLE`` silently replaces the ``verify`` a session was given.
:func:`session` closes both: the TLS context is the one ``ssl.create_default_context``
makes (the system's store, plus ``ca_file``), and the environment may set proxies but
never the trust.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from . import __version__


class _TrustAdapter(HTTPAdapter):
    """An adapter whose connections use one TLS context."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(proxy, **kwargs)

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Any, cert: Any = None
    ) -> Any:
        # requests 2.32 put a context of its own (certifi's) into each pool's key: ours
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        pool["ssl_context"] = self._context
        return host, pool


class TrustedSession(requests.Session):
    """A session whose trust the environment cannot change (see the module)."""

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would replace the trust: certificates are
        # checked, always, against the adapter's context
        merged["verify"] = True
        return merged


def session(ca_file: Path | None = None) -> TrustedSession:
    """A session for HTTPS that trusts the system's store and ``ca_file`` (a private CA),
    as an SMTP connection of the same account does."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    http = TrustedSession()
    http.mount("https://", _TrustAdapter(context))
    http.headers["User-Agent"] = f"proit-notify/{__version__}"
    return http


# --- what a failed request tells (SMS gateways, Graph) ------------------------------------------


def never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection was never established, so nothing reached the server (a
    retry cannot send twice); False when the request may have gone out before the failure."""
    if isinstance(exc, requests.exceptions.ProxyError | requests.exceptions.SSLError):
        return True
    cause: object = exc.args[0] if exc.args else None
    if isinstance(cause, urllib3.exceptions.MaxRetryError):
        cause = cause.reason
    return isinstance(
        cause, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
    )


def reason(exc: requests.RequestException) -> str:
    """The innermost cause of a failed request, without the URL: the texts of requests carry
    the full address, query strings with a password (GET gateways) included."""
    cause: object = exc.args[0] if exc.args else exc
    if isinstance(cause, urllib3.exceptions.MaxRetryError) and cause.reason is not None:
        cause = cause.reason
    text = str(cause)
    text = re.sub(r"\w*\(host='[^']*', port=\d+\): ", "", text)
    text = re.sub(r"https?://\S+", "(url)", text)
    return text or type(exc).__name__
