"""Ctrl-C during training: stop after the current step, with a checkpoint."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class StopFlag:
    """Turns the first Ctrl-C into a request to stop after the current step; the second
    one interrupts at once, except under torchrun, which passes on the Ctrl-C that
    every process already had (and kills them itself if they are not done in 30 s).
    Only the main thread can own signal handlers."""

    def __init__(self, second_interrupts: bool = True) -> None:
        self.requested = False
        self.second_interrupts = second_interrupts
        self._previous: Any = None

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and self.second_interrupts:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


__all__ = ["StopFlag"]
