"""One email account's state in a run: parsed settings, connections, token, pace.

Every transport (:data:`~proit_notify.channels.email.TRANSPORTS`) works on an
:class:`Account`: the SMTP transport keeps its open connections in ``idle`` and its TLS
context here, every transport keeps to ``max_per_minute`` through :meth:`Account.throttle`.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...redaction import reveals
from ...settings import AccountSettings

if TYPE_CHECKING:  # requests (75 ms to import) only for an account that speaks HTTP
    import requests

    from ...oauth2 import Tokens

#: what is shown instead of a server's answer that repeats the login
ECHO_WITHHELD = "(the answer is not shown: it repeats the login)"


def reply_line(code: int, text: bytes | str) -> str:
    """A server's answer on one line."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


@dataclass
class Account:
    """One account's parsed settings and its connection state for the current batch.

    Up to ``connections`` threads talk to the server at once (``slots``); open connections
    wait in ``idle`` for the next message, so a batch reuses them.
    """

    name: str
    settings: AccountSettings
    envelope_from: str
    bcc: list[str]
    message_id_domain: str
    #: open connections of a transport that keeps them (SMTP), waiting for the next message
    idle: list[Any] = field(default_factory=list)
    prepared: bool = False  # reached and logged in once in this batch
    last_send: float | None = None
    #: the server asked to wait until then (``time.monotonic()``; Graph's Retry-After)
    resume_at: float | None = None
    _tls: ssl.SSLContext | None = field(default=None, repr=False)
    _tokens: Tokens | None = field(default=None, repr=False)
    _http: requests.Session | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    slots: threading.BoundedSemaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(self.settings.connections)

    def tokens(self) -> Tokens:
        """The account's OAuth2 tokens for this run (one source, refreshed before expiry),
        for its transport: SMTP's scope, or Graph's."""
        from ...oauth2 import GRAPH_SCOPE, tokens_for

        with self.lock:
            if self._tokens is None:
                scope = GRAPH_SCOPE if self.settings.transport == "graph" else None
                self._tokens = tokens_for(self.name, self.settings, scope)
            return self._tokens

    def http(self) -> requests.Session:
        """One HTTPS session of the account (its ca_file trusted), for an HTTP transport."""
        from ... import http

        with self.lock:
            if self._http is None:
                self._http = http.session(self.settings.ca_file)
            return self._http

    def pause(self, seconds: float) -> None:
        """The server asked to wait: no message of the account goes before then."""
        with self.lock:
            until = time.monotonic() + seconds
            self.resume_at = max(until, self.resume_at or until)

    def take(self) -> Any:
        with self.lock:
            return self.idle.pop() if self.idle else None

    def give_back(self, smtp: Any) -> None:
        with self.lock:
            self.idle.append(smtp)

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.effective_port}"

    def reply(self, code: int, text: bytes | str) -> str:
        """A server's answer on one line, as details and messages show it; an answer that
        repeats the login (the password, or the user name in an escaped form, read in every
        decoding ``redaction.decodings`` knows) is not shown at all."""
        said = reply_line(code, text)
        settings = self.settings
        if reveals(said, [settings.password]) or (
            settings.username not in said and reveals(said, [settings.username])
        ):
            return f"{code} {ECHO_WITHHELD}"
        return said

    def throttle(self) -> None:
        """Space messages evenly so no minute sees more than ``max_per_minute``, and none
        goes before the time the server asked to wait for (:meth:`pause`)."""
        limit = self.settings.max_per_minute
        with self.lock:  # one schedule for all connections of the account
            now = time.monotonic()
            if self.resume_at is not None and self.resume_at > now:
                time.sleep(self.resume_at - now)
                now = time.monotonic()
            if limit is None:
                return
            if self.last_send is not None:
                wait = self.last_send + 60.0 / limit - now
                if wait > 0:
                    time.sleep(wait)
                    now = time.monotonic()
            self.last_send = now

    def tls_context(self) -> ssl.SSLContext:
        # created once per account: loading the trust store costs milliseconds
        with self.lock:
            return self._tls_context()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            ca = self.settings.ca_file
            self._tls = ssl.create_default_context(cafile=str(ca) if ca else None)
        return self._tls

