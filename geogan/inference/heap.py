"""Keeping the C heap of a translation at what its stages hold (glibc)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

#: glibc's ``mallopt`` parameters: the size from which blocks are mapped (and returned to
#: the system when freed), and the most heaps threads may get.
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8
_HEAP_MMAP_BYTES = 2**20


@functools.cache
def bound_heap() -> None:
    """Keep the C heap at what the stages hold, not at what each has ever held (once per
    process, glibc only; elsewhere nothing happens).

    By default glibc raises its mmap threshold each time a large block is freed, up to
    32 MiB, after which freed strips and batches stay in the heap of the thread that
    freed them: at 16384 pixels wide the three stages' heaps kept about 165 MB more than
    they held at any one time. Blocks of 1 MiB and more are mapped instead (and returned
    when freed), and new threads share the heaps that exist. Process-wide, but it only
    changes where large blocks come from. Only wide scenes do it: mapping each large
    block anew costs page faults (glibc's adaptive threshold off made translation half
    as fast under Dask, see the CLI reference), which a narrow scene has no memory to
    gain from.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_MMAP_BYTES)
        libc.mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):  # not glibc
        return
