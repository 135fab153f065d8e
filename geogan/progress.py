"""Progress reporting shared by the long-running library functions.

Library functions report progress through an optional ``(done, total)`` callback;
:class:`Counter` turns "one more item finished" into those calls, and :class:`Bar` turns
them into a tqdm bar (the commands', and the Python API's with ``verbose=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

ProgressCallback = Callable[[int, int], None]
"""Called with (items done, items in all)."""


class Counter:
    """Counts finished items and tells ``callback`` (if any) after each one."""

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self._callback = callback

    def __call__(self) -> None:
        self.done += 1
        if self._callback is not None:
            self._callback(self.done, self.total)


class Bar:
    """A tqdm bar made when work first reports, fed by ``(done, total)`` callbacks or,
    through :meth:`steps`, by training progress. One class for every bar geogan draws:
    the commands' (on a terminal only, ``-q`` turns them off) and the Python API's
    (``verbose=True``; ``tqdm.auto`` draws a notebook widget in Jupyter).

    Args:
        desc: The bar's label.
        unit: What it counts.
        enabled: Whether to draw, or a function asked at each report; nothing is drawn
            while it is false, nor if the work fails before it reports.
        terminal_only: Draw only on a terminal, never into a log, and remove the bar
            when done (the commands' bars, followed by a summary line).
    """

    def __init__(self, desc: str, unit: str, *, enabled: bool | Callable[[], bool] = True,
                 terminal_only: bool = False) -> None:
        self._desc, self._unit, self._terminal_only = desc, unit, terminal_only
        self._enabled = enabled if callable(enabled) else (lambda: enabled)
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        self.update(done, total)

    def steps(self, progress: Any) -> None:
        """Show a :class:`geogan.training.loop.TrainProgress`: steps from the run's start, and the
        latest mean losses."""
        self.update(progress.step, progress.total, start=progress.start,
                    postfix=progress.losses)

    def update(self, done: int, total: int, *, start: int = 0,
               postfix: Mapping[str, float] | None = None) -> None:
        """Move the bar to ``done`` of ``total`` (a smaller ``done`` starts it over: the
        next scene of a batch)."""
        if not self._enabled():
            return
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(desc=self._desc, unit=self._unit, total=total, initial=start,
                             leave=not self._terminal_only,
                             disable=None if self._terminal_only else False)
        if self._bar.disable:
            return
        if done < self._bar.n:
            self._bar.reset(total)
        self._bar.total = total
        if postfix:
            self._bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)
        self._bar.update(done - self._bar.n)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
