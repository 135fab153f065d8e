"""Options shared by several commands, defined once.

Where rasterio's ``rio`` already defines an option users know (``--overwrite``,
``--co``), it is reused as is.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import click
from rasterio.rio import options as rio_options
from tqdm import tqdm

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


class ProgressBar:
    """A tqdm bar drawn on stderr once work starts, fed by the library's (done, total)
    progress callbacks; nothing is drawn if the command fails before any work, or with -q."""

    def __init__(self, desc: str, unit: str) -> None:
        self._desc, self._unit = desc, unit
        self._bar: tqdm[None] | None = None

    def __call__(self, done: int, total: int) -> None:
        if not show_progress():
            return
        if self._bar is None:
            # disable=None: drawn on a terminal only, never into logs.
            self._bar = tqdm(desc=self._desc, unit=self._unit, total=total, leave=False,
                             disable=None)
        if self._bar.disable:
            return
        if done < self._bar.n:  # the next item of a batch starts over
            self._bar.reset(total)
        self._bar.total = total
        self._bar.update(done - self._bar.n)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()
