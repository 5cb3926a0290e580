"""A real SMTP server on loopback (aiosmtpd) that records what it receives.

tests/ is on sys.path (like ``erp_backends``); the fixtures are made known to a folder's
tests by its conftest.py (see tests/channels/conftest.py), or to all tests by adding
``pytest_plugins = ["smtp_server"]`` to tests/conftest.py. The fixtures:

- ``smtp_server``: plain SMTP, no TLS, no AUTH (``security = "none"``).
- ``tls_server``: STARTTLS with a certificate of the test CA for ``localhost``, AUTH
  required (user ``shop`` / password ``secret``); ``test_ca.ca_file`` trusts it.
- ``smtp_ssl_server``: the same behind implicit TLS (``security = "ssl"``).
- ``test_ca``: the CA and the server certificate (made with ``openssl`` once per session).

``server.handler`` is told how to answer: ``rcpt_answers[address] = "550 5.1.1 unknown"``
(answer to RCPT TO), ``data_answers[address] = "451 4.3.0 try later"`` (answer after the
data of a message to that recipient), or ``data_answers[address] = DROP`` (the connection
is closed after the data arrived, before any reply). It records ``messages`` (envelope and
parsed message), ``dropped``, ``auth_attempts`` and ``connections``.
``server.account(...)`` is an :class:`AccountSettings` pointing at the server.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from proit_notify.settings import AccountSettings

DROP = "<drop the connection>"
USER, PASSWORD = "shop", "secret"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage


@dataclass
class RecordingHandler:
    """aiosmtpd handler: records, and answers as the test says."""

    rcpt_answers: dict[str, str] = field(default_factory=dict)
    data_answers: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    dropped: list[Received] = field(default_factory=list)
    auth_attempts: list[str] = field(default_factory=list)
    delay: float = 0.0  # seconds before answering each message (a slow server)
    peers: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def connections(self) -> int:
        """TCP connections that greeted with EHLO/HELO (STARTTLS keeps the connection)."""
        return len(self.peers)

    def _seen(self, session: Any) -> None:
        with self._lock:
            if session.peer not in self.peers:
                self.peers.append(session.peer)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self._seen(session)
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        self._seen(session)
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        answer = self.rcpt_answers.get(address)
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        raw = bytes(envelope.original_content or envelope.content)
        parsed = message_from_bytes(raw, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        received = Received(envelope.mail_from, tuple(envelope.rcpt_tos), raw, parsed)
        for rcpt in envelope.rcpt_tos:
            answer = self.data_answers.get(rcpt)
            if answer == DROP:
                with self._lock:
                    self.dropped.append(received)
                server.transport.close()
                return "250 never seen by the client"
            if answer is not None:
                return answer
        with self._lock:
            self.messages.append(received)
            return f"250 2.0.0 Ok: queued as Q{len(self.messages)}"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        with self._lock:
            self.auth_attempts.append(login)
        ok = self.users.get(login) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False)


@dataclass(frozen=True)
class TestCa:
    """A private CA and a server certificate it signed for ``localhost``."""

    __test__ = False  # not a test class despite the name

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def free_port() -> int:
    """A port nothing listens on right now (``Controller(port=0)`` cannot report its port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


class SmtpServer:
    """A running aiosmtpd server on ``HOST:port``; ``restart()`` keeps handler and port."""

    def __init__(
        self,
        handler: RecordingHandler,
        *,
        tls: TestCa | None = None,
        implicit_tls: bool = False,
        auth: bool = False,
        smtputf8: bool = True,  # what aiosmtpd offers by default
    ) -> None:
        self.handler = handler
        self.port = free_port()
        self.tls = tls
        self.implicit_tls = implicit_tls
        self._kwargs: dict[str, Any] = {"hostname": HOST, "port": self.port}
        self._kwargs["server_hostname"] = "localhost"  # no getfqdn() per connection
        self._kwargs["enable_SMTPUTF8"] = smtputf8
        if tls is not None and implicit_tls:
            self._kwargs["ssl_context"] = tls.server_context()
        elif tls is not None:
            self._kwargs["tls_context"] = tls.server_context()
        if auth:
            handler.users.setdefault(USER, PASSWORD)
            self._kwargs["authenticator"] = handler.authenticate
            # aiosmtpd counts only STARTTLS as TLS: with implicit TLS, AUTH is offered
            # but not required (requiring it would make aiosmtpd warn about clear text)
            self._kwargs["auth_require_tls"] = tls is not None and not implicit_tls
            self._kwargs["auth_required"] = self._kwargs["auth_require_tls"]
        self._controller: Controller | None = None

    #: the controller that makes the server (a subclass may make another SMTP class)
    controller_class: type[Controller] = Controller

    def start(self) -> None:
        self._controller = self.controller_class(self.handler, **self._kwargs)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def restart(self) -> None:
        """Stop (closing every connection) and listen again on the same port."""
        self.stop()
        self.start()

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def account(self, **overrides: Any) -> AccountSettings:
        """Settings of an account that sends through this server."""
        values: dict[str, Any] = {
            "host": "localhost" if self.tls is not None else HOST,
            "port": self.port,
            "security": "none" if self.tls is None else "ssl" if self.implicit_tls else "starttls",
            "from": "Beispiel Shop AG <shop@beispiel.ch>",
            "timeout": 5,
        }
        if self.handler.users:
            values["username"], values["password"] = USER, self.handler.users.get(USER, "")
        values.update(overrides)
        return AccountSettings.model_validate(values)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    """A CA and a ``localhost`` server certificate, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("tls")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=proit-notify test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
        cwd=d,
    )  # fmt: skip
    (d / "server.ext").write_text(
        "subjectAltName=DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectKeyIdentifier=hash\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=d,
    )  # fmt: skip
    return TestCa(d / "ca.pem", d / "server.pem", d / "server.key")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """Plain SMTP on loopback, no TLS, no AUTH."""
    server = SmtpServer(RecordingHandler())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls_server(test_ca: TestCa) -> Iterator[SmtpServer]:
    """STARTTLS with the test CA's ``localhost`` certificate; AUTH required."""
    server = SmtpServer(RecordingHandler(), tls=test_ca, auth=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_ssl_server(test_ca: TestCa) -> Iterator[SmtpServer]:
    """Implicit TLS (port-465 style) with the test CA's certificate; AUTH required."""
    server = SmtpServer(RecordingHandler(), tls=test_ca, implicit_tls=True, auth=True)
    server.start()
    yield server
    server.stop()


def email_section(server: SmtpServer, **extra_accounts: dict[str, Any]) -> dict[str, Any]:
    """The ``[email]`` settings (for ``write_config``) of accounts that send through
    ``server``: ``default``, plus each of ``extra_accounts`` with its own keys on top."""
    connection = {"host": HOST, "port": server.port, "security": "none", "timeout": 5}
    accounts: dict[str, Any] = {
        "default": {
            **connection,
            "transport": "smtp",
            "directory": None,  # write_config's default account writes files
            "from": "Muster Handel AG <shop@example.ch>",
        }
    }
    for name, values in extra_accounts.items():
        accounts[name] = {**connection, **values}
    return {"accounts": accounts}
