"""Local stand-ins for Microsoft's and Google's identity platforms, and an XOAUTH2 relay.

- ``test_authority`` (fixture): a CA made in the test (trustme) and an HTTPS server for
  ``localhost`` signed by it that speaks like ``login.microsoftonline.com``: the tenant's
  OpenID configuration, and a token endpoint for client credentials (a secret or a
  certificate's client assertion) that answers with the real AADSTS error bodies
  (7000215, 7000222, 700016, 90002), and like Google's ``token_uri`` for a service account's
  JWT assertion with domain-wide delegation. It issues JWT-shaped tokens (audience, roles,
  expiry) and counts the token requests.
- ``XOAuth2Relay``: an aiosmtpd handler with ``auth_XOAUTH2`` that accepts only a token
  the authority issued, not expired, for the configured mailbox; otherwise Microsoft's
  ``535 5.7.3`` (or the reply set in ``refusal``), or, in Google's manner, a ``334`` JSON
  challenge and then ``535 5.7.8``. A failed AuthResult has ``handled=False`` (else the
  client would wait forever).

What the answers look like was taken from Microsoft's documentation of the client
credentials flow and the AADSTS error reference, and Google's documentation of OAuth 2.0
for server-to-server applications and of SMTP XOAUTH2 (see the session note).
"""

from __future__ import annotations

import base64
import collections
import json
import re
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import jwt
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult
from pytest_httpserver import HTTPServer
from smtp_server import RecordingHandler, SmtpServer
from werkzeug import Request, Response

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
CLIENT_SECRET = "Qx8~sEcReT.0f-fake-Az_9kL"  # a secret's Value, as Entra shows it once
EXPIRED_SECRET = "Old8~eXpIrEd.secret-value"
MAILBOX = "shop@contoso.example"
SMTP_AUDIENCE = "https://outlook.office365.com"


def json_response(data: object, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def aadsts(code: int, error: str, text: str, status: int) -> Response:
    """An error as Microsoft's identity platform answers it."""
    return json_response(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {text} Trace ID: 0ab1 Correlation ID: 2cd3 "
            "Timestamp: 2026-12-03 10:00:00Z",
            "error_codes": [code],
            "timestamp": "2026-12-03 10:00:00Z",
            "trace_id": "0ab1",
            "correlation_id": "2cd3",
        },
        status,
    )


@dataclass
class Authority:
    """The identity provider on ``url`` (see the module)."""

    server: HTTPServer
    ca_file: Path
    #: token -> (who it is for, when it expires)
    issued: dict[str, tuple[str, float]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # grant types asked for, in order
    lifetime: float = 3599.0
    roles: tuple[str, ...] = ("SMTP.SendAsApp",)
    #: the mailbox an app's IMAP token is good for (token introspection, dovecot's oauth2)
    imap_mailbox: str = MAILBOX
    introspected: int = 0  # token introspections asked for
    #: google: the public key of the service account and the scopes delegated to it
    google_public_key: Any = None
    google_scopes: tuple[str, ...] = ("https://mail.google.com/",)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def microsoft_settings(self, **overrides: Any) -> dict[str, Any]:
        """``[oauth2]`` of an account that gets its token here."""
        settings = {
            "provider": "microsoft",
            "tenant": TENANT,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authority": self.url,
            **overrides,
        }
        return {k: v for k, v in settings.items() if v is not None}  # None: left out

    def valid(self, token: str, who: str) -> bool:
        with self._lock:
            found = self.issued.get(token)
        return found is not None and found[0] == who and found[1] > time.time()

    def _issue(self, who: str, audience: str) -> str:
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{TENANT}/",
            "roles": list(self.roles),
            "appid": who,
            "exp": int(time.time() + self.lifetime),
            "jti": secrets.token_hex(8),
        }
        head = base64.urlsafe_b64encode(b'{"typ":"JWT","alg":"RS256"}').rstrip(b"=").decode()
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        token = f"{head}.{body}.{secrets.token_urlsafe(32)}"
        with self._lock:
            self.issued[token] = (who, time.time() + self.lifetime)
        return token

    # --- Microsoft -------------------------------------------------------------------------
    def openid_configuration(self, request: Request) -> Response:
        tenant = request.path.split("/")[1]
        if tenant != TENANT:
            return aadsts(
                90002, "invalid_tenant", f"Tenant '{tenant}' not found. Check to make sure you "
                "have the correct tenant ID and are signing into the correct cloud.", 400
            )  # fmt: skip
        base = f"{self.url}/{tenant}"
        return json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{self.url}/{tenant}/v2.0",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post", "private_key_jwt", "client_secret_basic",
                ],
            }
        )

    def microsoft_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        self.requests.append(form.get("grant_type", ""))
        if form.get("client_id") != CLIENT_ID:
            return aadsts(
                700016, "unauthorized_client", f"Application with identifier "
                f"'{form.get('client_id')}' was not found in the directory '{TENANT}'.", 400,
            )  # fmt: skip
        if "client_assertion" in form:
            # a certificate: the assertion is a JWT signed with its key (x5t = thumbprint)
            ok = self._certificate_ok(form["client_assertion"])
        else:
            secret = form.get("client_secret")
            if secret == EXPIRED_SECRET:
                return aadsts(
                    7000222, "invalid_client", "The provided client secret keys for app "
                    f"'{CLIENT_ID}' are expired. Visit the Azure portal to create new keys "
                    "for your app.", 401,
                )  # fmt: skip
            ok = secret == CLIENT_SECRET
        if not ok:
            return aadsts(
                7000215, "invalid_client", "Invalid client secret provided. Ensure the "
                "secret being sent in the request is the client secret value, not the "
                f"client secret ID, for a secret added to app '{CLIENT_ID}'.", 401,
            )  # fmt: skip
        audience = form.get("scope", "").removesuffix("/.default")
        token = self._issue(CLIENT_ID, audience)
        return json_response(
            {"token_type": "Bearer", "expires_in": int(self.lifetime),
             "ext_expires_in": int(self.lifetime), "access_token": token}
        )  # fmt: skip

    certificate_public_key: Any = None
    certificate_thumbprint: str = ""

    def _certificate_ok(self, assertion: str) -> bool:
        if self.certificate_public_key is None:
            return False
        try:
            head = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion, self.certificate_public_key, algorithms=["RS256", "PS256"],
                audience=f"{self.url}/{TENANT}/oauth2/v2.0/token",
            )  # fmt: skip
        except jwt.PyJWTError:
            return False
        x5t = head.get("x5t", "")
        thumb = base64.urlsafe_b64decode(x5t + "=" * (-len(x5t) % 4)).hex().upper()
        return claims.get("iss") == CLIENT_ID and thumb == self.certificate_thumbprint.upper()

    def introspect(self, request: Request) -> Response:
        """RFC 7662 token introspection, as dovecot's oauth2 passdb asks it: an app token for
        Exchange Online with IMAP.AccessAsApp is good for :attr:`imap_mailbox`."""
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        token = form.get("token", "")
        self.introspected += 1
        parts = token.split(".")
        claims: dict[str, Any] = {}
        if len(parts) == 3:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        ok = (
            self.valid(token, CLIENT_ID)
            and claims.get("aud") == SMTP_AUDIENCE
            and "IMAP.AccessAsApp" in claims.get("roles", [])
        )
        if not ok:
            return json_response({"active": False})
        return json_response({"active": True, "username": self.imap_mailbox,
                              "scope": "https://outlook.office365.com/.default"})  # fmt: skip

    # --- Google ---------------------------------------------------------------------------
    def google_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        self.requests.append(form.get("grant_type", ""))
        try:
            claims = jwt.decode(
                # Google's token endpoint is the audience, whatever the key's token_uri
                form.get("assertion", ""), self.google_public_key, algorithms=["RS256"],
                audience="https://oauth2.googleapis.com/token",
            )  # fmt: skip
        except jwt.PyJWTError as exc:
            return json_response({"error": "invalid_grant", "error_description": str(exc)}, 400)
        if not set(str(claims.get("scope", "")).split()) <= set(self.google_scopes):
            return json_response(
                {"error": "unauthorized_client", "error_description": "Client is unauthorized "
                 "to retrieve access tokens using this method, or client not authorized for "
                 "any of the scopes requested."}, 401,
            )  # fmt: skip
        token = self._issue(str(claims.get("sub")), "google")
        return json_response(
            {"access_token": token, "expires_in": int(self.lifetime), "token_type": "Bearer"}
        )


@pytest.fixture(scope="session")
def test_ca_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """A CA made for the tests (trustme) and its certificate as a file (a ca_file)."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("idp") / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture
def test_authority(test_ca_tls: tuple[trustme.CA, Path]) -> Iterator[Authority]:
    """The identity provider on https://localhost:PORT (see the module)."""
    ca, ca_file = test_ca_tls
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = HTTPServer(host="localhost", port=0, ssl_context=context)
    server.start()
    authority = Authority(server, ca_file)
    server.expect_request(
        re.compile(r"/[^/]+/v2\.0/\.well-known/openid-configuration"), method="GET"
    ).respond_with_handler(authority.openid_configuration)
    server.expect_request(
        f"/{TENANT}/oauth2/v2.0/token", method="POST"
    ).respond_with_handler(authority.microsoft_token)
    server.expect_request("/google/token", method="POST").respond_with_handler(
        authority.google_token
    )
    server.expect_request("/introspect", method="POST").respond_with_handler(authority.introspect)
    yield authority
    server.clear()
    if server.is_running():
        server.stop()


class XOAuth2Relay(RecordingHandler):
    """An SMTP relay that logs in with XOAUTH2 only (see the module)."""

    def __init__(self, authority: Authority, mailbox: str = MAILBOX, who: str = CLIENT_ID,
                 google: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.authority = authority
        self.mailbox = mailbox
        self.who = who
        self.google = google
        #: the reply to a refused token (Microsoft's default: no mailbox rights)
        self.refusal = "535 5.7.3 Authentication unsuccessful [SN4PR0501CA0054.namprd05.prod]"
        self.logins: list[tuple[str, bool]] = []  # (user, accepted)
        #: a careless relay repeats the XOAUTH2 string it was sent in its refusal
        self.echo = False
        self.last_blob = ""
        #: close the connection after each message (a relay that ends sessions): every
        #: message then needs a login, with a token that is still valid
        self.one_message_per_connection = False

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self.one_message_per_connection and getattr(session, "delivered", False):
            server.transport.close()  # the session is over: the client must log in anew
            return "421 4.7.0 closing"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer: str = await super().handle_DATA(server, session, envelope)
        session.delivered = True
        return answer

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        if len(args) > 1:
            raw = base64.b64decode(args[1])
        else:  # no initial response: ask for it (the answer comes decoded)
            raw = await server.challenge_auth("", encode_to_b64=False)
        text = raw.decode("utf-8", "replace")
        self.last_blob = base64.b64encode(raw).decode()
        parts = dict(p.split("=", 1) for p in text.split("\x01") if "=" in p)
        user = parts.get("user", "")
        token = parts.get("auth", "").removeprefix("Bearer ")
        ok = user == self.mailbox and self.authority.valid(token, self.who if not self.google
                                                           else self.mailbox)  # fmt: skip
        self.logins.append((user, ok))
        if ok:
            return AuthResult(success=True, auth_data=user)
        if self.google:
            challenge = json.dumps(
                {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}
            )
            await server.challenge_auth(challenge)
            return AuthResult(
                success=False,
                handled=False,
                message="535-5.7.8 Username and Password not accepted. For more information, "
                "go to\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials",
            )
        echo = f" (you sent {self.last_blob})" if self.echo else ""
        return AuthResult(success=False, handled=False, message=self.refusal + echo)


class _LongAuthLines(SMTP):
    """RFC 4954 lets an AUTH command line be 12,288 octets: an XOAUTH2 string with a real
    token (1.5 to 3 kB) is longer than aiosmtpd's 512 by default, not than Exchange's."""

    command_size_limit = 12288
    command_size_limits: ClassVar[dict[str, int]] = collections.defaultdict(lambda: 12288)
    line_length_limit = 12290


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _LongAuthLines(self.handler, **self.SMTP_kwargs)


def relay_server(handler: XOAuth2Relay) -> SmtpServer:
    """A started loopback server for ``handler``: AUTH offered without TLS (the client
    allows that for loopback only), AUTH lines as long as RFC 4954 allows."""
    server = SmtpServer(handler)
    server._kwargs["auth_require_tls"] = False
    server.controller_class = _Controller
    server.start()
    return server


# --- Microsoft Graph's sendMail ---------------------------------------------------------------

GRAPH_AUDIENCE = "https://graph.microsoft.com"


def graph_error(status: int, code: str, message: str, **headers: str) -> Response:
    """An error as Graph answers it: ``{"error": {"code", "message", "innerError"}}``."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"date": "2026-12-03T10:00:00", "request-id": "9f1e-err",
                           "client-request-id": "9f1e-err"},
        }
    }  # fmt: skip
    return Response(json.dumps(body), status=status, content_type="application/json",
                    headers=headers)  # fmt: skip


@dataclass
class Graph:
    """``POST /v1.0/users/{mailbox}/sendMail`` as Graph speaks it (MIME form): it checks the
    token (issued by the authority, audience Graph, role Mail.Send), the mailbox and the
    base64 MIME body, then answers 202 with a ``request-id``, or what ``answers`` says for
    the next request: a Response, or ``"stall"`` (the message is taken, as Graph would,
    and the answer comes only after ``stall_seconds``: a lost 202)."""

    server: HTTPServer
    authority: Authority
    mailbox: str = MAILBOX
    #: messages Graph took (what would be delivered), as parsed MIME
    messages: list[Any] = field(default_factory=list)
    posts: int = 0  # every sendMail request that arrived
    answers: collections.deque[Response | str] = field(default_factory=collections.deque)
    stall_seconds: float = 4.0
    #: when each request arrived (time.monotonic())
    arrivals: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def send_mail(self, request: Request) -> Response:
        import email
        from email import policy

        with self._lock:
            self.posts += 1
            self.arrivals.append(time.monotonic())
            answer = self.answers.popleft() if self.answers else None
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        claims = _claims(token)
        if not self.authority.valid(token, CLIENT_ID) or claims.get("aud") != GRAPH_AUDIENCE:
            return graph_error(401, "InvalidAuthenticationToken",
                               "Access token validation failure. Invalid audience.")  # fmt: skip
        if "Mail.Send" not in claims.get("roles", []):
            return graph_error(403, "ErrorAccessDenied",
                               "Access is denied. Check credentials and try again.")  # fmt: skip
        user = request.path.split("/")[3]
        if user.lower() != self.mailbox.lower():
            return graph_error(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
        if request.headers.get("Content-Type", "").split(";")[0] != "text/plain":
            return graph_error(415, "UnsupportedMediaType", "Content-Type must be text/plain")
        try:
            raw = base64.b64decode(request.get_data(), validate=True)
        except ValueError:
            return graph_error(400, "ErrorMimeContentInvalidBase64String",
                               "Invalid base64 string for MIME content.")  # fmt: skip
        if isinstance(answer, Response):
            return answer
        message = email.message_from_bytes(raw, policy=policy.default)
        with self._lock:
            self.messages.append(message)
        if answer == "stall":
            time.sleep(self.stall_seconds)
        return Response(status=202, headers={"request-id": secrets.token_hex(8)})


def _claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        found = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


@pytest.fixture
def graph(test_ca_tls: tuple[trustme.CA, Path], test_authority: Authority) -> Iterator[Graph]:
    """Graph on https://localhost:PORT, its own threaded server (a stalled request must not
    hold up the next one, nor the token endpoint)."""
    ca, _ = test_ca_tls
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = HTTPServer(host="localhost", port=0, ssl_context=context, threaded=True)
    server.start()
    stand_in = Graph(server, test_authority)
    test_authority.roles = ("Mail.Send",)
    server.expect_request(
        re.compile(r"/v1\.0/users/[^/]+/sendMail"), method="POST"
    ).respond_with_handler(stand_in.send_mail)
    yield stand_in
    server.clear()
    if server.is_running():
        server.stop()
