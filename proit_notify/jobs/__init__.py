"""Jobs: the rules of each notification kind, one module each, no I/O of their own.

What they are made of lives in :mod:`.base` and is imported from here (``from ..jobs import
Job``). It is loaded when first asked for, not with the package: the job registry
(:mod:`.registry`) is plain data that the command line reads to build its commands and
``--help``, and base needs the ERP, the settings and the templates (pydantic, jinja2,
babel: most of the tool's start-up time).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import *  # noqa: F403 (the names of base, for the type checker)


def __getattr__(name: str) -> Any:
    # "from ..jobs import registry" asks for the attribute before it imports the module of
    # that name: a job module is not looked for in base (that would load base)
    if name.startswith("__") or importlib.util.find_spec(f"{__name__}.{name}") is not None:
        raise AttributeError(name)
    base = importlib.import_module(".base", __name__)
    try:
        return getattr(base, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
