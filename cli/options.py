"""Options shared by several commands, defined once.

Where rasterio's ``rio`` already defines an option users know (``--overwrite``,
``--co``), it is reused as is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click
from rasterio.rio import options as rio_options

from geogan.progress import Bar

from .progress import JsonLines, progress_mode

__all__ = [
    "ProgressBar", "creation_options", "overwrite_opt", "seed_opt"
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

#: ``--co NAME=VALUE`` (repeatable), rasterio's own: GDAL creation options as a dict.
creation_options: Decorator = rio_options.creation_options
#: ``--overwrite``, rasterio's own.
overwrite_opt: Decorator = rio_options.overwrite_opt

seed_opt = click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Random seed; the same seed gives the same result.",
)


class ProgressBar(Bar):
    """A command's bar on stderr: drawn on a terminal only, once work starts, and not
    with ``geogan -q``; fed by the library's (done, total) callbacks, or by training
    progress through :meth:`~geogan.progress.Bar.steps`. With ``geogan --progress json``
    it writes JSON lines instead (:mod:`geogan.cli.progress`), terminal or not."""

    def __init__(self, desc: str, unit: str) -> None:
        # The mode is read here, in the command's thread: click's context is per thread,
        # and the library may report from its worker threads.
        self._mode = progress_mode()
        super().__init__(desc, unit, enabled=self._mode == "bar", terminal_only=True)
        self._lines = JsonLines(desc, unit)

    def update(self, done: int, total: int, *, start: int = 0,
               postfix: Mapping[str, float] | None = None) -> None:
        """Draw the bar, or write a JSON line in ``--progress json`` mode."""
        if self._mode == "json":
            self._lines.update(done, total, start=start, postfix=postfix)
        else:
            super().update(done, total, start=start, postfix=postfix)
