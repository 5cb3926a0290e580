"""The documentation stays true: the settings reference is what the models and
config.example.toml say, every page is in the site's navigation, the README's links lead
to pages that exist. (CI also builds the site with ``mkdocs build --strict``: a broken link
fails it.)"""

from __future__ import annotations

import re
import runpy
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_the_settings_reference_is_generated_from_the_models_and_the_example() -> None:
    generator = runpy.run_path(str(DOCS / "settings_reference.py"))
    expected = generator["render"]()
    committed = (DOCS / "settings.md").read_text(encoding="utf-8")
    assert committed == expected, (
        "docs/settings.md is stale: python docs/settings_reference.py > docs/settings.md"
    )
    # a setting added in this issue shows with its words from config.example.toml
    assert "| `holidays` | text | not set | str, optional: no sending on the public" in expected
    assert "## `[shops.*]`" in expected
    assert "| `max_total_mb` | number | `10` |" in expected


def test_every_page_is_in_the_navigation() -> None:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w.-]+\.md)\s*$", text, re.MULTILINE))
    pages = {p.name for p in DOCS.glob("*.md")}
    assert pages == listed


def test_the_readme_is_a_few_screens_with_the_two_commands_and_links_that_exist() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 80
    blocks = re.findall(r"```sh\n(.*?)\n```", text, re.DOTALL)
    assert blocks[:2] == ["pip install . && proit-notify demo", "pip install '.[test]' && pytest"]
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert len(links) >= 15
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert missing == []


def test_the_docs_extra_installs_the_site_builder() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    docs = " ".join(project["optional-dependencies"]["docs"])
    assert "mkdocs>=" in docs
    assert "mkdocs-material" in docs
