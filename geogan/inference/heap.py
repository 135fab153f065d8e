"""Keeping the C heap of a translation at what its stages hold (glibc)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable

#: glibc's ``mallopt`` parameters: the size from which blocks are mapped (and returned to
#: the system when freed), and the most heaps threads may get.
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8
_HEAP_MMAP_BYTES = 2**20


@functools.cache
def _mallopt() -> Callable[[int, int], object] | None:
    """glibc's ``mallopt``, or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        mallopt: Callable[[int, int], object] = ctypes.CDLL(
            ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return None
    return mallopt


@functools.cache
def share_heap() -> None:
    """Let new threads share the heaps that exist (once per process, glibc only;
    elsewhere nothing happens).

    By default glibc gives threads heaps of their own, up to 8 per core, and each heap
    keeps what its threads' allocations once took: the two generator threads each kept
    a forward's activations. With the ``faithful`` U-Net in float32 a 4096 × 1024 scene
    peaked at 1076–1117 MB, and at 940–970 MB with one heap, at the same speed (28.0–29.1
    s against 28.2–28.5 s; the ``tiny`` U-Net 2.5–2.8 s either way). Process-wide, but it
    only changes which heap a new thread's blocks come from.
    """
    mallopt = _mallopt()
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, 1)


@functools.cache
def bound_heap() -> None:
    """Keep the C heap at what the stages hold, not at what each has ever held (once per
    process, glibc only; elsewhere nothing happens).

    By default glibc raises its mmap threshold each time a large block is freed, up to
    32 MiB, after which freed strips and batches stay in the heap of the thread that
    freed them: at 16384 pixels wide the three stages' heaps kept about 165 MB more than
    they held at any one time. Blocks of 1 MiB and more are mapped instead (and returned
    when freed), and new threads share the heaps that exist (:func:`share_heap`).
    Process-wide, but it only changes where large blocks come from. Only wide scenes do
    it: mapping each large block anew costs page faults (glibc's adaptive threshold off
    made translation half as fast under Dask, see the CLI reference; the ``faithful``
    U-Net at 4096 × 1024 took 1.16 times as long, for 768 MB against 940–970 MB).
    """
    share_heap()
    mallopt = _mallopt()
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _HEAP_MMAP_BYTES)
