"""The layered layout: every subpackage is installed, and no module grows past ~600 lines.

The import rules between layers are import-linter contracts (``lint-imports``, configured
in ``pyproject.toml``), run by the test command; these checks cover what it does not.
"""

from __future__ import annotations

import ast
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
             for folder in ("geogan", "cli", "qgis_plugin") for p in (ROOT / folder).rglob("*.py")}
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}


def imported_roots(folder: Path) -> dict[str, set[str]]:
    """The top-level names each module under ``folder`` imports (relative imports aside)."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names = found.setdefault(str(path.relative_to(ROOT)), set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return found


def test_the_library_never_imports_the_qgis_plugin_nor_the_plugin_geogan():
    for folder in ("geogan", "cli"):
        for path, names in imported_roots(ROOT / folder).items():
            assert not names & {"qgis", "processing", "geogan_processing"}, path
    # QGIS's Python runs geogan as a command: it never loads torch, nor geogan itself.
    for path, names in imported_roots(ROOT / "qgis_plugin" / "geogan_processing").items():
        assert not names & {"geogan", "torch", "numpy", "rasterio", "click"}, path
