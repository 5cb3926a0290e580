"""Fixtures of the job tests: the CLI runner and the loopback SMTP servers."""

from cli_runner import cli
from smtp_server import smtp_server, test_ca, tls_server

__all__ = ["cli", "smtp_server", "test_ca", "tls_server"]
