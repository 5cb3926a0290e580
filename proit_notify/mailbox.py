"""The bounce mailbox (SPEC §10), read by IMAP: nothing marked read, nothing else touched.

``Mailbox(name, account)`` opens ``[email.accounts.<name>.imap]``: TLS (``ssl``, port 993)
or STARTTLS with the account's ``ca_file`` and the system's store, a login by password or
by the account's OAuth2 token (XOAUTH2; Microsoft: the app needs ``IMAP.AccessAsApp``).
:meth:`Mailbox.recent` fetches the mail of the last days with ``BODY.PEEK[]`` (the
``\\Seen`` flag stays as it was); :meth:`Mailbox.move` moves the reports that were ours
into ``processed_folder`` (made when missing; MOVE, or COPY + delete where a server lacks
it). Every error of imapclient, imaplib, a socket or TLS is translated here, into an
:class:`UnreachableError` that names the account, ``host:port`` and the key to fix.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from .errors import UnreachableError
from .oauth2 import SMTP_SCOPES, tokens_for
from .redaction import one_line
from .settings import AccountSettings, ImapSettings

#: messages fetched per round trip
FETCH_BATCH = 50
#: a message larger than this is no delivery report of ours: not fetched
MAX_REPORT_BYTES = 20_000_000


@dataclass(frozen=True)
class Fetched:
    """One message of the mailbox: its UID and its bytes."""

    uid: int
    raw: bytes


class Mailbox:
    """One account's bounce mailbox, open while in a ``with`` block."""

    def __init__(self, name: str, account: AccountSettings) -> None:
        if account.imap is None:
            raise ValueError(f"email account {name!r} has no [imap]")
        self.name = name
        self.account = account
        self.imap: ImapSettings = account.imap
        self.where = f"{self.imap.host}:{self.imap.effective_port}"
        self._client: Any = None

    # --- open and close --------------------------------------------------------------------
    def __enter__(self) -> Mailbox:
        from imapclient import IMAPClient  # only where a mailbox is read

        imap = self.imap
        timeout = imap.timeout or self.account.timeout
        context = ssl.create_default_context(
            cafile=str(self.account.ca_file) if self.account.ca_file else None
        )
        with self._errors("cannot connect"):
            self._client = IMAPClient(
                imap.host, port=imap.effective_port, ssl=imap.security == "ssl",
                ssl_context=context, timeout=timeout,
            )  # fmt: skip
            if imap.security == "starttls":
                self._client.starttls(context)
        with self._errors("the login was refused"):
            self._login()
        with self._errors(f"cannot open the folder {imap.folder!r}"):
            self._client.select_folder(imap.folder)
        return self

    def __exit__(self, *exc: object) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            client.shutdown()

    def _login(self) -> None:
        imap = self.imap
        if imap.auth == "oauth2":
            oauth2 = self.account.oauth2
            assert oauth2 is not None  # the settings refuse auth = "oauth2" without it
            # IMAP's scope is SMTP's (Exchange Online, Gmail), whatever the account sends by
            tokens = tokens_for(self.name, self.account, SMTP_SCOPES.get(oauth2.provider))
            self._client.oauth2_login(imap.username, tokens.get().value)
        else:
            self._client.login(imap.username, imap.password)

    # --- reading and moving ----------------------------------------------------------------
    def recent(self, since: date) -> Iterator[Fetched]:
        """The messages that arrived since ``since``, oldest first, read without marking
        them read."""
        client = self._client
        with self._errors("searching the folder failed"):
            uids = sorted(client.search(["SINCE", since]))
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start : start + FETCH_BATCH]
            with self._errors("reading the folder failed"):
                sizes = client.fetch(batch, ["RFC822.SIZE"])
                wanted = [u for u in batch if sizes.get(u, {}).get(b"RFC822.SIZE", 0)
                          <= MAX_REPORT_BYTES]  # fmt: skip
                found = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
            for uid in wanted:
                raw = found.get(uid, {}).get(b"BODY[]")
                if isinstance(raw, bytes):
                    yield Fetched(uid, raw)

    def move(self, uids: Sequence[int]) -> None:
        """Move these messages into ``processed_folder`` (made when missing)."""
        if not uids:
            return
        client = self._client
        target = self.imap.processed_folder
        with self._errors(f"moving the processed reports to {target!r} failed"):
            if not client.folder_exists(target):
                client.create_folder(target)
            if client.has_capability("MOVE"):
                client.move(list(uids), target)
            else:
                client.copy(list(uids), target)
                client.delete_messages(list(uids))
                if client.has_capability("UIDPLUS"):
                    client.uid_expunge(list(uids))
                else:
                    client.expunge()

    # --- errors ----------------------------------------------------------------------------
    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        key = f"email.accounts.{self.name}.imap"
        from imapclient.exceptions import LoginError

        try:
            yield
        except UnreachableError:
            raise
        except LoginError as exc:
            hint = (
                f"the app needs IMAP.AccessAsApp and rights on the mailbox ('proit-notify auth "
                f"setup {self.name}')"
                if self.imap.auth == "oauth2"
                else f"check {key}.username and password"
            )
            raise UnreachableError(
                f"bounce mailbox of account {self.name!r} at {self.where}: {what} "
                f"({_said(exc)}); {hint}"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise UnreachableError(
                f"bounce mailbox of account {self.name!r}: the TLS certificate of {self.where} "
                f"is not trusted ({exc.verify_message}); with a private CA set "
                f"email.accounts.{self.name}.ca_file"
            ) from None
        except (TimeoutError, imaplib.IMAP4.error, OSError) as exc:
            raise UnreachableError(
                f"bounce mailbox of account {self.name!r} at {self.where}: {what} "
                f"({_said(exc)}); check {key}.host, port and security"
            ) from None


def _said(exc: BaseException) -> str:
    text = exc.args[0] if exc.args else exc
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return one_line(str(text))[:300] or type(exc).__name__
