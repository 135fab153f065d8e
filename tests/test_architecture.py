"""The layered layout: every subpackage is installed, and no module grows past ~600 lines.

The import rules between layers are import-linter contracts (``lint-imports``, configured
in ``pyproject.toml``), run by the test command; these checks cover what it does not.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 620  # "about 600"


def test_every_subpackage_is_listed_for_installation():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {"geogan"} | {f"geogan.{p.parent.name}"
                          for p in (ROOT / "geogan").glob("*/__init__.py")}
    assert found | {"geogan.cli"} == listed


def test_no_library_module_is_over_about_600_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for folder in ("geogan", "cli") for p in (ROOT / folder).rglob("*.py")}
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}
