"""Microsoft 365 and Google Workspace without passwords (issue 22, SPEC §9).

Through the whole CLI against local stand-ins (``tests/identity.py``): an HTTPS identity
provider with a CA made in the test, and an aiosmtpd relay that takes only XOAUTH2 with a
token that provider issued for the right mailbox. Assertions are on mails received, token
requests counted, ledger rows, exit codes and the absence of every secret form.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult
from cli_runner import Cli, cli
from erp_backends import ErpBackend
from identity import (
    CLIENT_ID,
    CLIENT_SECRET,
    EXPIRED_SECRET,
    MAILBOX,
    Authority,
    XOAuth2Relay,
    relay_server,
    test_authority,
    test_ca_tls,
)
from ledger_rows import ledger_rows
from scenario import shop
from smtp_server import HOST, RecordingHandler, SmtpServer, free_port, smtp_server

__all__ = ["cli", "smtp_server", "test_authority", "test_ca_tls"]  # fixtures

AS_OF = "2026-11-27T08:00"
PRINTED = datetime(2026, 11, 26, 9, 0)

pytestmark = pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)


@pytest.fixture
def relay(test_authority: Authority) -> Iterator[tuple[SmtpServer, XOAuth2Relay]]:
    handler = XOAuth2Relay(test_authority)
    server = relay_server(handler)
    yield server, handler
    server.stop()


def m365_email(server: SmtpServer, idp: Authority, **oauth2: Any) -> dict[str, Any]:
    """``[email]`` with one Microsoft 365 account at the local relay and identity provider."""
    return {
        "default_account": "shop",
        "accounts": {
            "shop": {
                "host": HOST,
                "port": server.port,
                "security": "none",  # loopback: the relay of the test has no TLS
                "from": f"Contoso Shop <{MAILBOX}>",
                "auth": "oauth2",
                "timeout": 5,
                "ca_file": str(idp.ca_file),
                "oauth2": idp.microsoft_settings(**oauth2),
            },
        },
    }


def notes(erp_backend: ErpBackend, n: int) -> list[int]:
    s = shop(erp_backend)
    customers = [s.customer(email=f"k{i}@example.ch") for i in range(n)]
    return [s.delivery_note(s.order(c), PRINTED) for c in customers]


def test_microsoft_client_credentials_send_through_xoauth2_with_one_token_per_run(
    erp_backend: ErpBackend,
    write_config: Any,
    relay: tuple[SmtpServer, XOAuth2Relay],
    test_authority: Authority,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, handler = relay
    notes(erp_backend, 3)
    monkeypatch.setenv("M365_SECRET", CLIENT_SECRET)
    config = write_config(email=m365_email(server, test_authority, client_secret="${M365_SECRET}"))

    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 0, run.stderr
    assert sorted(m.rcpt_tos for m in server.messages) == [
        ("k0@example.ch",), ("k1@example.ch",), ("k2@example.ch",),
    ]  # fmt: skip
    assert test_authority.requests == ["client_credentials"]  # one token for the run
    assert handler.logins
    assert all(ok and user == MAILBOX for user, ok in handler.logins)
    assert {r.status for r in ledger_rows(config)} == {"sent"}
    # the next run gets its own token (never written anywhere), and sends nothing twice
    again = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert again.exit_code == 0
    assert len(server.messages) == 3
    # no run needs the SMTP server when nothing is due: its token is not even asked for
    assert len(test_authority.requests) <= 2
    assert not any(config.parent.glob("*token*"))


@pytest.mark.parametrize(
    ("oauth2", "said"),
    [
        ({"client_secret": "Wrong8~secret.value"}, "AADSTS7000215: the client secret is wrong"),
        ({"client_secret": EXPIRED_SECRET}, "AADSTS7000222: the client secret has expired"),
        ({"client_id": "00000000-0000-0000-0000-000000000000"},
         "AADSTS700016: no app with this client id"),
        ({"tenant": "nowhere.onmicrosoft.com"}, "AADSTS90002: the tenant does not exist"),
        ({"authority": f"https://127.0.0.1:{free_port()}"}, "cannot reach the identity provider"),
        ({"authority": "UNTRUSTED"}, "is not trusted"),
    ],
    ids=["wrong-secret", "expired-secret", "unknown-app", "unknown-tenant", "unreachable",
         "untrusted"],
)  # fmt: skip
def test_a_token_that_cannot_be_had_claims_nothing_exits_4_and_names_the_step(
    erp_backend: ErpBackend,
    write_config: Any,
    relay: tuple[SmtpServer, XOAuth2Relay],
    test_authority: Authority,
    cli: Cli,
    oauth2: dict[str, Any],
    said: str,
) -> None:
    server, _ = relay
    notes(erp_backend, 2)
    email = m365_email(server, test_authority, **oauth2)
    if oauth2.get("authority") == "UNTRUSTED":  # the identity provider, but no ca_file
        email["accounts"]["shop"]["oauth2"]["authority"] = test_authority.url
        del email["accounts"]["shop"]["ca_file"]
    config = write_config(email=email)
    for _ in range(2):  # on every run, until it is fixed
        run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
        assert run.exit_code == 4, run.stderr
        assert said in run.stderr
        assert "email.accounts.shop.oauth2" in run.stderr
        assert server.messages == []
        assert ledger_rows(config) == []  # nothing claimed, no back-off started


@pytest.mark.parametrize(
    ("refusal", "said"),
    [
        ("535 5.7.3 Authentication unsuccessful [SN4PR0501CA0054.namprd05.prod.outlook.com]",
         "New-ServicePrincipal with the ENTERPRISE application's object id"),
        ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for "
         "the Mailbox.", "Set-CASMailbox -Identity shop@contoso.example "
         "-SmtpClientAuthenticationDisabled $false"),
    ],
    ids=["5.7.3", "5.7.139"],
)  # fmt: skip
def test_a_refused_xoauth2_login_names_the_missing_exchange_step(
    erp_backend: ErpBackend,
    write_config: Any,
    relay: tuple[SmtpServer, XOAuth2Relay],
    test_authority: Authority,
    cli: Cli,
    refusal: str,
    said: str,
) -> None:
    server, handler = relay
    handler.mailbox = "someone-else@contoso.example"  # the token is not for this mailbox
    handler.refusal = refusal
    notes(erp_backend, 1)
    config = write_config(email=m365_email(server, test_authority))
    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 4, run.stderr
    assert said in run.stderr
    assert server.messages == []
    assert ledger_rows(config) == []


def test_a_password_refused_with_5_7_30_says_to_use_oauth2(
    erp_backend: ErpBackend, write_config: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BasicAuthOff(RecordingHandler):
        def authenticate(self, *args: Any) -> AuthResult:
            return AuthResult(
                success=False,
                handled=False,
                message="535 5.7.30 Basic authentication is not supported for Client Submission.",
            )

    server = SmtpServer(BasicAuthOff(), auth=True)
    server._kwargs["auth_require_tls"] = False
    server.start()
    try:
        notes(erp_backend, 1)
        account = {"host": HOST, "port": server.port, "security": "none", "timeout": 5,
                   "from": MAILBOX, "username": MAILBOX, "password": "${PW}"}  # fmt: skip
        monkeypatch.setenv("PW", "an-old-password")
        config = write_config(email={"default_account": "shop", "accounts": {"shop": account}})
        run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    finally:
        server.stop()
    assert run.exit_code == 4
    assert 'set auth = "oauth2"' in run.stderr


def test_a_token_that_expires_midway_is_renewed_and_the_run_keeps_sending(
    erp_backend: ErpBackend,
    write_config: Any,
    relay: tuple[SmtpServer, XOAuth2Relay],
    test_authority: Authority,
    cli: Cli,
) -> None:
    server, handler = relay
    test_authority.lifetime = 2.0  # a token lives 2 s; renewed after half of it
    handler.one_message_per_connection = True  # each message needs a login
    handler.delay = 0.4
    notes(erp_backend, 8)
    config = write_config(email=m365_email(server, test_authority))
    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 0, run.stderr
    assert len(server.messages) == 8
    assert len(test_authority.requests) >= 2  # renewed during the run
    assert all(ok for _, ok in handler.logins)  # never an expired token at the login


def test_a_certificate_instead_of_a_secret(
    erp_backend: ErpBackend,
    write_config: Any,
    relay: tuple[SmtpServer, XOAuth2Relay],
    test_authority: Authority,
    cli: Cli,
    tmp_path: Path,
) -> None:
    server, _ = relay
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    app = ca.issue_cert("proit-notify-app.example", key_type=trustme.KeyType.RSA)
    pem = tmp_path / "app.pem"
    pem.write_bytes(app.private_key_and_cert_chain_pem.bytes())
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(app.cert_chain_pems[0].bytes())
    thumbprint = hashlib.sha1(cert.public_bytes(Encoding.DER)).hexdigest()
    test_authority.certificate_public_key = cert.public_key()
    test_authority.certificate_thumbprint = thumbprint
    notes(erp_backend, 1)
    config = write_config(
        email=m365_email(
            server, test_authority, client_secret=None, certificate_file=str(pem),
            certificate_thumbprint=thumbprint.upper(),
        )
    )  # fmt: skip
    run = cli("-c", config, "-v", "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 0, run.stderr
    assert len(server.messages) == 1
    key = app.private_key_pem.bytes().decode()
    body = key.split("-----")[2].strip().splitlines()[1]  # a line of the key itself
    assert body not in run.stdout + run.stderr


def test_requests_ca_bundle_never_replaces_the_accounts_ca_file(
    erp_backend: ErpBackend,
    write_config: Any,
    relay: tuple[SmtpServer, XOAuth2Relay],
    test_authority: Authority,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # another CA in the environment: requests would use it instead of the session's verify
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(other))
    server, _ = relay
    notes(erp_backend, 1)
    config = write_config(email=m365_email(server, test_authority))
    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 0, run.stderr
    assert len(server.messages) == 1


# --- Google and a command ---------------------------------------------------------------------


@pytest.fixture
def google_key(test_authority: Authority, tmp_path: Path) -> Path:
    """A service account's JSON key whose token_uri is the local identity provider."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    test_authority.google_public_key = key.public_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "contoso-mail",
                "private_key_id": "0123456789abcdef",
                "private_key": pem,
                "client_email": "notify@contoso-mail.iam.gserviceaccount.com",
                "client_id": "104857600000000000001",
                "token_uri": f"{test_authority.url}/google/token",
            }
        ),
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def google_email(server: SmtpServer, authority: Authority, key: Path) -> dict[str, Any]:
    email = m365_email(server, authority)
    email["accounts"]["shop"]["oauth2"] = {"provider": "google", "service_account_file": str(key)}
    return email


def test_google_service_account_with_domain_wide_delegation(
    erp_backend: ErpBackend,
    write_config: Any,
    test_authority: Authority,
    google_key: Path,
    cli: Cli,
) -> None:
    handler = XOAuth2Relay(test_authority, google=True)
    server = relay_server(handler)
    try:
        notes(erp_backend, 2)
        config = write_config(email=google_email(server, test_authority, google_key))
        run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
        assert run.exit_code == 0, run.stderr
        assert len(server.messages) == 2
        assert test_authority.requests == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]

        # the scope not delegated to the service account: the admin step is named
        test_authority.google_scopes = ()
        notes(erp_backend, 1)
        refused = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
        assert refused.exit_code == 4
        assert "domain-wide delegation" in refused.stderr
        assert "104857600000000000001" in refused.stderr  # the client id to allow

        # a token Gmail does not take: its 334 JSON challenge, then 535
        test_authority.google_scopes = ("https://mail.google.com/",)
        handler.mailbox = "other@contoso.example"
        challenged = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
        assert challenged.exit_code == 4
        assert '"status": "400"' in challenged.stderr
        assert "domain-wide delegation for https://mail.google.com/" in challenged.stderr
    finally:
        server.stop()


def test_google_without_its_library_is_a_configuration_error_naming_the_extra(
    erp_backend: ErpBackend,
    write_config: Any,
    relay: tuple[SmtpServer, XOAuth2Relay],
    test_authority: Authority,
    google_key: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, _ = relay
    monkeypatch.setitem(sys.modules, "google.oauth2", None)  # as if the extra were missing
    notes(erp_backend, 1)
    config = write_config(email=google_email(server, test_authority, google_key))
    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 3
    assert "pip install 'proit-notify[google]'" in run.stderr


def test_a_token_command(
    erp_backend: ErpBackend,
    write_config: Any,
    relay: tuple[SmtpServer, XOAuth2Relay],
    test_authority: Authority,
    cli: Cli,
    tmp_path: Path,
) -> None:
    server, handler = relay
    token = test_authority._issue(CLIENT_ID, "https://outlook.office365.com")
    script = tmp_path / "token.py"
    script.write_text(f"print({token!r})\n", encoding="utf-8")
    email = m365_email(server, test_authority)
    email["accounts"]["shop"]["oauth2"] = {
        "provider": "command",
        "token_command": f'"{sys.executable}" "{script}"',
    }
    notes(erp_backend, 2)
    config = write_config(email=email)
    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 0, run.stderr
    assert len(server.messages) == 2
    assert handler.logins == [(MAILBOX, True)]
    script.write_text("import sys; sys.exit('no token for you')\n", encoding="utf-8")
    notes(erp_backend, 1)
    failing = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert failing.exit_code == 4
    assert "token_command: printed no token (no token for you)" in failing.stderr


# --- auth test, auth setup, check, and every secret out of every output -----------------------


def test_auth_test_and_setup_say_what_the_token_allows_and_what_to_do(
    erp_backend: ErpBackend,
    write_config: Any,
    relay: tuple[SmtpServer, XOAuth2Relay],
    test_authority: Authority,
    cli: Cli,
) -> None:
    server, handler = relay
    config = write_config(email=m365_email(server, test_authority))
    ok = cli("-c", config, "auth", "test", "shop")
    assert ok.exit_code == 0, ok.stderr
    assert "audience https://outlook.office365.com, roles SMTP.SendAsApp, expires" in ok.stdout
    assert f"as {MAILBOX}: ok" in ok.stdout
    checked = cli("-c", config, "check")
    assert "roles SMTP.SendAsApp" in checked.stdout

    test_authority.roles = ()  # the permission not granted: the token has no role
    handler.mailbox = "nobody@contoso.example"
    missing = cli("-c", config, "auth", "test", "shop")
    assert missing.exit_code == 4
    assert "no SMTP.SendAsApp role" in missing.stderr
    assert "535 5.7.3" in missing.stderr

    setup = cli("-c", config, "auth", "setup", "shop")
    assert setup.exit_code == 0
    assert f"New-ServicePrincipal -AppId {CLIENT_ID} -ObjectId <OBJECT_ID>" in setup.stdout
    assert f'Add-MailboxPermission -Identity "{MAILBOX}" -User <OBJECT_ID>' in setup.stdout
    assert "-SmtpClientAuthenticationDisabled $false" in setup.stdout
    assert "SMTP.SendAsApp" in setup.stdout
    assert CLIENT_SECRET not in setup.stdout
    password = cli("-c", config, "auth", "test", "nosuch")
    assert password.exit_code == 2


def test_no_secret_in_any_output_after_a_failing_and_a_working_run(
    erp_backend: ErpBackend,
    write_config: Any,
    relay: tuple[SmtpServer, XOAuth2Relay],
    test_authority: Authority,
    smtp_server: SmtpServer,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, handler = relay
    handler.echo = True  # a relay that repeats the XOAUTH2 string in its refusal
    notes(erp_backend, 2)
    monkeypatch.setenv("M365_SECRET", CLIENT_SECRET)
    email = m365_email(server, test_authority, client_secret="${M365_SECRET}")
    email["accounts"]["alerts"] = {"host": HOST, "port": smtp_server.port, "security": "none",
                                   "from": "it@contoso.example", "timeout": 5}  # fmt: skip
    log = tmp_path / "notify.log"
    config = write_config(
        email=email,
        alerts={"to": ["it@contoso.example"], "account": "alerts"},
        service={"log_file": str(log)},
    )
    outputs = []
    handler.mailbox = "nobody@contoso.example"  # refused, with the echo
    outputs.append(cli("-c", config, "-v", "shipping-confirmations", "--as-of", AS_OF))
    assert outputs[-1].exit_code == 4
    handler.mailbox = MAILBOX
    outputs.append(cli("-c", config, "-v", "--json", "shipping-confirmations", "--as-of", AS_OF))
    assert outputs[-1].exit_code == 0, outputs[-1].stderr
    outputs.append(cli("-c", config, "-v", "auth", "test", "shop"))
    outputs.append(cli("-c", config, "--json", "check"))
    tokens = list(test_authority.issued)
    assert len(tokens) >= 2
    secrets_ = {CLIENT_SECRET, *tokens}
    for token in tokens:
        sasl = f"user={MAILBOX}\x01auth=Bearer {token}\x01\x01".encode()
        secrets_.add(base64.b64encode(sasl).decode())
        secrets_.add(base64.b64encode(f"user=nobody@contoso.example\x01auth=Bearer {token}\x01\x01"
                                      .encode()).decode())  # fmt: skip
    alerts = [m.raw.decode("utf-8", "replace") for m in smtp_server.messages]
    assert len(alerts) == 1  # the failing run's alert
    texts = [r.stdout + r.stderr for r in outputs] + alerts + [log.read_text()]
    dump = "\n".join(texts)
    for secret in secrets_:
        assert secret not in dump
        assert json.dumps(secret)[1:-1] not in dump
    assert "refused the login" in dump
