"""docs/CONTRIBUTING-internal.md is the newcomer's first map: its tree names every module of
the package and nothing that is gone."""

from __future__ import annotations

import re
from pathlib import Path

import proit_notify

ROOT = Path(__file__).resolve().parents[1]
MAP = ROOT / "docs" / "CONTRIBUTING-internal.md"
PACKAGE = Path(proit_notify.__file__).resolve().parent
#: "│   ├── name.py   what it is": the indentation is 4 characters per level
_ENTRY = re.compile(r"^((?:[│ ]   )*)[├└]── (\S+)")


def tree_paths(text: str) -> set[str]:
    """The paths (relative to the package) the tree of the map names."""
    block = text.split("\nproit_notify/\n", 1)[1].split("\n```", 1)[0]
    paths: set[str] = set()
    parents: list[str] = []
    for line in block.splitlines():
        match = _ENTRY.match(line)
        assert match, f"not a tree line: {line!r}"
        depth = len(match.group(1)) // 4
        name = match.group(2)
        parents[depth:] = [name.rstrip("/")] if name.endswith("/") else []
        paths.add("/".join([*parents[:depth], name]).rstrip("/"))
    return paths


def modules() -> set[str]:
    found = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    return found | {"templates"}


def test_the_map_names_every_module_and_nothing_that_is_gone() -> None:
    named = tree_paths(MAP.read_text(encoding="utf-8"))
    packages = {p.rpartition("/")[0] for p in modules() if "/" in p}
    assert modules() - named == set(), "modules missing from docs/CONTRIBUTING-internal.md"
    assert named - modules() - packages == set(), "the map names modules that are gone"


def test_the_tree_is_read_as_written() -> None:
    # the reader of the tree itself: nesting by indentation, a package's modules under it
    text = (
        "x\nproit_notify/\n├── a.py   one\n├── jobs/   rules\n│   ├── __init__.py   j\n"
        "│   └── sub/   s\n│       └── deep.py   d\n└── z.py   last\n```\n"
    )
    assert tree_paths(text) == {
        "a.py", "jobs", "jobs/__init__.py", "jobs/sub", "jobs/sub/deep.py", "z.py"
    }
