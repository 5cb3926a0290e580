"""A real IMAP server for the tests: Debian's dovecot-imapd, started unprivileged.

Dovecot runs from a generated config in a folder of its own under /tmp: plain IMAP and
IMAPS (a certificate of the test CA, trustme) on free loopback ports, one password for
every user (each test takes a user of its own: its own mailbox), maildirs in the folder.
Its login processes refuse to run as root, so when the tests run as root the whole server
runs as ``nobody`` (setpriv), and the folder belongs to that user.

- ``imap_server`` (session): one server; ``imap_server.mailbox()`` makes a fresh user (its
  own empty mailbox) for one test.
- ``oauth2_imap_server(authority)``: a server whose logins are XOAUTH2 only, checked by
  token introspection at the test's identity provider (dovecot's oauth2 passdb), as
  Microsoft 365 checks an app's token for ``IMAP.AccessAsApp``.

A mailbox is filled with IMAP APPEND, as a mail server would deliver; flags and folders
are read back over IMAP too.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from erp_backends import unavailable
from imapclient import IMAPClient
from smtp_server import HOST, free_port

DOVECOT = "/usr/sbin/dovecot"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
{passdb}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/mail/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""
#: every user logs in with the one password (a new user is a new mailbox, no file to reload)
PASSWD_DB = """\
passdb {{
  driver = static
  args = password={password}
}}"""
PASSWORD = "s3cret-imap"
OAUTH2_DB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}"""
OAUTH2_CONF = """\
introspection_mode = post
introspection_url = {url}
tls_ca_cert_file = {root}/ca.pem
username_attribute = username
active_attribute = active
active_value = true
"""


@dataclass
class ImapServer:
    """One running dovecot (see the module)."""

    root: Path
    port: int
    ssl_port: int
    ca_file: Path
    process_user: str
    passwords: dict[str, str] = field(default_factory=dict)
    _count: int = 0

    def mailbox(self) -> str:
        """A new user with an empty mailbox (every user has :data:`PASSWORD`); its address."""
        self._count += 1
        user = f"bounces{self._count}@contoso.example"
        self.passwords[user] = PASSWORD
        return user

    def client(self, user: str) -> IMAPClient:
        client = IMAPClient(HOST, port=self.port, ssl=False, timeout=10)
        client.login(user, self.passwords[user])
        return client

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver ``raw`` into ``folder`` (unread, as a new mail arrives)."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw, flags=(), msg_time=None)
            client.logout()

    def contents(self, user: str, folder: str = "INBOX") -> list[tuple[set[bytes], bytes]]:
        """(flags, the message) of every message in ``folder``, by UID; [] if no folder."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.logout()
                return []
            client.select_folder(folder, readonly=True)
            found = client.fetch(client.search(["ALL"]), ["FLAGS", "BODY.PEEK[]"])
            client.logout()
        return [
            ({f for f in data[b"FLAGS"] if f != b"\\Recent"}, data[b"BODY[]"])
            for _, data in sorted(found.items())
        ]


def _wait_for(port: int, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                if sock.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.1)
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else "(no log)"
    raise RuntimeError(f"dovecot did not answer on port {port}:\n{text}")


def start_dovecot(ca: trustme.CA, *, introspection_url: str | None = None) -> ImapServer:
    """A started dovecot (see the module); stop it with :func:`stop_dovecot`."""
    if not Path(DOVECOT).exists():
        unavailable("dovecot is not installed (apt-get install dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="proit-notify-imap-"))
    as_root = os.geteuid() == 0
    user = "nobody" if as_root else pwd.getpwuid(os.geteuid()).pw_name
    group = "nogroup" if as_root else ""
    if not as_root:
        import grp

        group = grp.getgrgid(os.getegid()).gr_name
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(root / "key.pem"))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    if introspection_url is None:
        passdb, mechanisms = PASSWD_DB.format(password=PASSWORD), "plain login"
    else:
        passdb, mechanisms = OAUTH2_DB.format(root=root), "xoauth2 oauthbearer"
        conf = OAUTH2_CONF.format(url=introspection_url, root=root)
        (root / "oauth2.conf.ext").write_text(conf, encoding="utf-8")
    port, ssl_port = free_port(), free_port()
    config = CONFIG.format(
        root=root, user=user, group=group, port=port, ssl_port=ssl_port,
        passdb=passdb, mechanisms=mechanisms,
    )  # fmt: skip
    (root / "dovecot.conf").write_text(config, encoding="utf-8")
    if as_root:
        subprocess.run(["chown", "-R", f"{user}:{group}", str(root)], check=True)
        os.chmod(root, 0o755)
    command = [DOVECOT, "-c", str(root / "dovecot.conf")]
    if as_root:
        command = ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups", *command]
    # the master daemonizes: its children would hold pipes open, so nothing is captured
    with open(root / "start.log", "wb") as started:
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=started,
                       stderr=subprocess.STDOUT, timeout=30)  # fmt: skip
    _wait_for(port, root / "dovecot.log")
    return ImapServer(root, port, ssl_port, root / "ca.pem", user)


def stop_dovecot(server: ImapServer) -> None:
    pid_file = server.root / "run" / "master.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
    except (OSError, ValueError):
        pass
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def imap_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def imap_server(imap_ca: trustme.CA) -> Iterator[ImapServer]:
    server = start_dovecot(imap_ca)
    yield server
    stop_dovecot(server)
