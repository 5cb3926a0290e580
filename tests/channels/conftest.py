"""Fixtures of the channel tests: the loopback SMTP servers of ``tests/smtp_server.py``."""

from smtp_server import smtp_server, smtp_ssl_server, test_ca, tls_server

__all__ = ["smtp_server", "smtp_ssl_server", "test_ca", "tls_server"]
