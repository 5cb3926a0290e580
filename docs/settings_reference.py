"""The settings reference of the documentation site, generated (issue 26).

Each key's path, type and default come from the settings models (``proit_notify.settings``);
what it means comes from the comment above it in ``config.example.toml``, which documents
every key (tests/test_starter.py). ``python docs/settings_reference.py > docs/settings.md``
writes the page; tests/test_docs.py fails when the committed page differs, so it never goes
stale.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proit_notify.settings import Settings  # noqa: E402

EXAMPLE = ROOT / "config.example.toml"
HEADER = """# Settings reference

Every key of the settings file, generated from the settings models and the comments of
`config.example.toml` (which shows each key with an example): its type, its default and
what it does. `proit-notify check` validates a file; an unknown key is an error that names
the keys allowed in its place. A `*` in a section stands for a name you choose: an
account, a table, a shop code.

"""
_HEADER_RE = re.compile(r"^#?\s*\[([A-Za-z0-9_.\-\"]+)\]")
_KEY_RE = re.compile(r"^#?\s*\"?([A-Za-z_][A-Za-z0-9_\-]*)\"?\s*=")


def example_comments(text: str) -> dict[str, str]:
    """key path -> the comment lines right above its first line in the example."""
    found: dict[str, str] = {}
    section = ""
    said: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        header = _HEADER_RE.match(line)
        if header:
            section = header.group(1).replace('"', "")
            rest = line[header.end():].lstrip(":").strip()
            said = [rest] if rest else []
            # "# [erp.tables]: logical table -> table of your ERP": the table's own words
            if rest and section not in found:
                found[section] = rest
            continue
        key = _KEY_RE.match(line)
        if key:
            path = f"{section}.{key.group(1)}" if section else key.group(1)
            if said and path not in found:
                found[path] = " ".join(said)
            said = []
            continue
        if line.startswith("#") and not line.startswith("# ---"):
            said.append(line.lstrip("#").strip())
        elif not line:
            said = []
    return found


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    if origin is dict:
        return "table"
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is Literal:
        return " \\| ".join(f'`"{a}"`' for a in args)
    if args:  # Annotated, a union
        names = [_type_name(a) for a in args if a is not type(None) and not _is_meta(a)]
        return " or ".join(dict.fromkeys(n for n in names if n))
    names = {str: "text", int: "whole number", float: "number", bool: "true/false"}
    return names.get(annotation, "")


def _is_meta(value: Any) -> bool:
    return not (isinstance(value, type) or get_origin(value) is not None)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        return "" if isinstance(value, BaseModel) else ("empty" if not value else "shipped")
    if field.default is PydanticUndefined:
        return "**required**"
    if field.default is None:
        return "not set"
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    if isinstance(field.default, str):
        return f'`"{field.default}"`'
    return f"`{field.default}`"


def _models(annotation: Any, step: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield step, annotation
        return
    args = get_args(annotation)
    if get_origin(annotation) is dict and args:
        yield from _models(args[1], step + ".*")
        return
    for arg in args:
        yield from _models(arg, step)


Keys = list[tuple[str, FieldInfo]]


def sections(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Keys]]:
    """(section path, its keys) of ``model`` and of every model below it."""
    keys: Keys = []
    below: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        key = field.alias or name
        inner = list(_models(field.annotation))
        below += [(f"{prefix}{key}{step}", sub) for step, sub in inner]
        if not inner or prefix:
            keys.append((key, field))
    if keys:
        yield prefix.rstrip("."), keys
    for path, sub in below:
        yield from sections(sub, path + ".")


def _meaning(path: str, comments: dict[str, str]) -> str:
    for documented, said in comments.items():
        if fnmatch.fnmatchcase(documented, path):
            return said.replace("|", "\\|")
    return ""


def render() -> str:
    comments = example_comments(EXAMPLE.read_text(encoding="utf-8"))
    parts = [HEADER]
    for section, keys in sections(Settings):
        parts.append(f"## `[{section}]`\n\n| key | type | default | what it does |\n")
        parts.append("|---|---|---|---|\n")
        for key, field in keys:
            said = _meaning(f"{section}.{key}", comments)
            kind = _type_name(field.annotation)
            parts.append(f"| `{key}` | {kind} | {_default(field)} | {said} |\n")
        parts.append("\n")
    return "".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
