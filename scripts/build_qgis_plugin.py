"""Build the QGIS plugin zip: ``python3 scripts/build_qgis_plugin.py [-o ZIP]``.

The zip holds ``geogan_processing/`` (the folder in ``qgis_plugin/``) as QGIS's
*Plugins › Manage and Install Plugins › Install from ZIP* expects it. Standard library
only, so any Python 3 builds it; the same sources give a byte-identical zip (fixed
timestamps, sorted names).
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "qgis_plugin" / "geogan_processing"
#: 1980-01-01, the earliest time a zip entry can hold: no build time in the zip.
STAMP = (1980, 1, 1, 0, 0, 0)


def plugin_files() -> list[Path]:
    """The plugin's files, without caches."""
    return sorted(p for p in PLUGIN.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def build(output: Path) -> Path:
    """Write the zip to ``output`` (whole, then renamed) and return it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in plugin_files():
            info = zipfile.ZipInfo(str(path.relative_to(PLUGIN.parent)), STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    partial.replace(output)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path,
                        default=ROOT / "dist" / "geogan_processing.zip",
                        help="zip to write [default: dist/geogan_processing.zip]")
    built = build(parser.parse_args().output)
    print(f"Wrote {built}: install it in QGIS with Plugins › Manage and Install Plugins › "
          "Install from ZIP.")


if __name__ == "__main__":
    main()
