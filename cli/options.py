"""Options shared by several commands, defined once.

Where rasterio's ``rio`` already defines an option users know (``--overwrite``,
``--co``), it is reused as is.
"""

from __future__ import annotations

import click
from rasterio.rio.options import creation_options, overwrite_opt

__all__ = ["creation_options", "overwrite_opt", "seed_opt", "show_progress"]

seed_opt = click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed; the same seed gives the same result.",
)


def show_progress() -> bool:
    """Whether progress bars should be drawn (not with ``geogan -q``)."""
    ctx = click.get_current_context(silent=True)
    return not (ctx is not None and ctx.find_root().meta.get("geogan.quiet", False))
