"""How a command shows progress: a tqdm bar, JSON lines for programs, or nothing.

``geogan --progress json …`` (or ``GEOGAN_PROGRESS=json``) writes one JSON object a line
on stderr for each step a bar would draw, so that a program running geogan (the QGIS
plugin, a workflow engine) can show its own progress bar without parsing tqdm's drawing.
A line looks like::

    {"progress": "translate", "unit": "win", "done": 12, "total": 40, "fraction": 0.3}

Training lines add ``"start"`` (the step a resumed run started from) and ``"losses"``.
A bar writes a line when its done count first reaches a new tenth of a percent (and on
its last step), so a long run writes at most about a thousand lines a bar. Everything
else stays as it is: ``Error:`` and ``Warning:`` lines on stderr, the summary on stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping

import click

#: The values of ``--progress`` / ``GEOGAN_PROGRESS``.
MODES = ("bar", "json", "none")


def progress_mode() -> str:
    """The current command's progress mode: bar, json or none (``-q`` means none)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return "bar"
    meta = ctx.find_root().meta
    if meta.get("geogan.quiet", False):
        return "none"
    return str(meta.get("geogan.progress", "bar"))


class JsonLines:
    """Writes one bar's progress as JSON lines on stderr (see the module's docstring)."""

    def __init__(self, desc: str, unit: str) -> None:
        self._desc, self._unit = desc, unit
        self._last: tuple[int, int] | None = None  # (per-mille written, total)

    def update(self, done: int, total: int, *, start: int = 0,
               postfix: Mapping[str, float] | None = None) -> None:
        """Write a line when ``done`` reaches a new per-mille of ``total``, or its end."""
        per_mille = 1000 * done // total if total > 0 else 0
        if self._last == (per_mille, total) and done != total:
            return
        self._last = (per_mille, total)
        line: dict[str, object] = {
            "progress": self._desc, "unit": self._unit, "done": done, "total": total,
            "fraction": round(done / total, 4) if total > 0 else None,
        }
        if start:
            line["start"] = start
        if postfix:
            line["losses"] = {k: float(f"{v:.4g}") for k, v in postfix.items()}
        sys.stderr.write(json.dumps(line) + "\n")
        sys.stderr.flush()
