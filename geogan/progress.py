"""Progress reporting shared by the long-running library functions.

Library functions report progress through an optional ``(done, total)`` callback (the
CLI turns it into a tqdm bar); :class:`Counter` turns "one more item finished" into
those calls.
"""

from __future__ import annotations

from collections.abc import Callable

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
