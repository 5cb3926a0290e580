"""The command line (SPEC §7): parsing, calling the core, printing. The only package that
prints or exits.

The entry point answers a bare ``--version`` before anything else is imported (an
installer or a monitoring check asks it; Typer, Rich and the commands cost ten times the
interpreter's start). Everything else is :mod:`.app`'s.
"""

from __future__ import annotations

import sys
from typing import Any

from .. import __version__

__all__ = ["build_app", "err", "hoisted", "main", "out", "state"]


def main() -> None:
    """Console entry point (``proit-notify``)."""
    if sys.argv[1:] == ["--version"]:
        # what Typer's eager --version option prints, without importing Typer
        sys.stdout.write(f"proit-notify {__version__}\n")
        return
    from .app import run

    run()


def __getattr__(name: str) -> Any:
    # the application's names, imported when first asked for (never by --version)
    if name in ("build_app", "err", "hoisted", "out", "state"):
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
