"""Options shared by several commands, defined once.

Where rasterio's ``rio`` already defines an option users know (``--overwrite``,
``--co``), it is reused as is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from rasterio.rio import options as rio_options

from geogan.progress import Bar

__all__ = [
    "ProgressBar", "creation_options", "overwrite_opt", "seed_opt", "show_progress"
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


def show_progress() -> bool:
    """Whether progress bars should be drawn (not with ``geogan -q``)."""
    ctx = click.get_current_context(silent=True)
    return not (ctx is not None and ctx.find_root().meta.get("geogan.quiet", False))


class ProgressBar(Bar):
    """A command's bar on stderr: drawn on a terminal only, once work starts, and not
    with ``geogan -q``; fed by the library's (done, total) callbacks, or by training
    progress through :meth:`~geogan.progress.Bar.steps`."""

    def __init__(self, desc: str, unit: str) -> None:
        super().__init__(desc, unit, enabled=show_progress, terminal_only=True)
