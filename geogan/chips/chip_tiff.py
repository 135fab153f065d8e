"""Chip GeoTIFFs without GDAL's cost per file, byte for byte as GDAL writes them.

Creating a GeoTIFF through GDAL costs about a millisecond and a half per chip (driver,
dataset, georeferencing and header set up each time), all of it holding Python's GIL, for
a file that holds a quarter of a megabyte: it set the pace of ``export-chips``. But the
chips of one layer differ only in their pixels and their origin: an uncompressed GeoTIFF
of a fixed size, bands, data type, CRS and pixel size is the same header, then the pixels
in a fixed order, then the same trailer, with the origin (``ModelTiepointTag``'s X and Y)
at fixed places: in the header, and again in the trailer when GDAL rewrites the image's
directory after the pixels (band descriptions set after them do that, leaving the first
copy in place).

:class:`ChipEncoder` learns that template from the bytes GDAL writes for a layer's first
chip (where its pixels and its origin lie in them), and checks it on the second: only if
the template, filled with the second chip's pixels and origin, gives exactly GDAL's bytes
is it used for the chips after. Anything it cannot reproduce (compression and other
creation options that make the layout depend on the pixels, chips with an internal mask,
a rotated grid) it leaves to GDAL, so the output is always what GDAL would have written.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: GDAL's encoder: (pixels (C, H, W), valid (H, W), chip transform) → the file's bytes.
GdalEncode = Callable[[np.ndarray, np.ndarray, Any], bytes]


@dataclass(frozen=True)
class _Template:
    """GDAL's bytes for one chip, with where the pixels and the origin lie in them."""

    content: bytes
    shape: tuple[int, ...]  # (C, H, W) of the pixels
    dtype: np.dtype[Any]
    pixel_interleaved: bool  # bands interleaved per pixel (else band after band)
    pixels_at: int
    origins_at: tuple[int, ...]  # every copy of the origin (a rewritten directory's too)
    byte_order: str  # struct's "<" or ">"

    def fill(self, data: np.ndarray, transform: Any) -> bytearray:
        """The template with ``data`` as its pixels and ``transform``'s origin."""
        content = bytearray(self.content)
        # The pixels copied straight into place, reordered on the way: no other copy.
        channels, height, width = self.shape
        shape = (height, width, channels) if self.pixel_interleaved else self.shape
        pixels = np.frombuffer(content, self.dtype, data.size, self.pixels_at).reshape(shape)
        if self.pixel_interleaved:
            # Band by band: five times faster than one copy of the moved axes, whose
            # innermost stride is a whole band.
            for band in range(channels):
                pixels[..., band] = data[band]
        else:
            pixels[...] = data
        origin = struct.pack(f"{self.byte_order}dd", transform.c, transform.f)
        for at in self.origins_at:
            content[at:at + 16] = origin
        return content

    def same_pixels(self, data: np.ndarray) -> bool:
        """Whether ``data`` are the pixels the template was learnt from."""
        raw = _raw(data, self.pixel_interleaved)
        return self.content[self.pixels_at:self.pixels_at + len(raw)] == raw


def _raw(data: np.ndarray, pixel_interleaved: bool) -> bytes:
    """The pixels in file order: (H, W, C) when interleaved by pixel, else (C, H, W)."""
    ordered = np.moveaxis(data, 0, -1) if pixel_interleaved else data
    return np.ascontiguousarray(ordered).tobytes()


def _learn(content: bytes, data: np.ndarray, transform: Any) -> _Template | None:
    """Where ``data`` and ``transform``'s origin lie in ``content`` (GDAL's bytes for
    them): the pixels found exactly once, the origin at least once and never inside
    them; None otherwise. A copy of the origin's bytes that is not an origin field is
    caught by the check on the next chip, whose origin differs."""
    if content[:2] not in (b"II", b"MM") or data.dtype.byteorder not in "=|":
        return None
    order = "<" if content[:2] == b"II" else ">"
    if data.dtype.itemsize > 1 and (order == "<") != np.little_endian:
        return None  # the file's byte order is not the array's
    origin = struct.pack(f"{order}dd", transform.c, transform.f)
    origins_at = _find_all(content, origin)
    if not origins_at:
        return None
    # A single band has one order; several are tried pixel-interleaved first (chips are).
    for interleaved in (True, False) if data.shape[0] > 1 else (True,):
        pixels_at = _find_once(content, _raw(data, interleaved))
        if pixels_at is not None:
            overlap = any(pixels_at - 16 < at < pixels_at + data.nbytes for at in origins_at)
            if not overlap:
                return _Template(content, data.shape, data.dtype, interleaved, pixels_at,
                                 origins_at, order)
    return None


def _find_all(content: bytes, part: bytes) -> tuple[int, ...]:
    """Every offset of ``part`` in ``content``, overlapping ones included."""
    found: list[int] = []
    at = content.find(part)
    while at >= 0:
        found.append(at)
        at = content.find(part, at + 1)
    return tuple(found)


def _find_once(content: bytes, part: bytes) -> int | None:
    """The offset of ``part`` in ``content`` if it occurs exactly once, else None."""
    at = content.find(part)
    if at < 0 or content.find(part, at + 1) >= 0:
        return None
    return at


class ChipEncoder:
    """The bytes of one layer's chip GeoTIFFs: GDAL's, or a checked template of them.

    A chip whose bytes cannot be located (pixels that also occur in the header, a
    constant chip) is no lesson: up to :data:`LEARNING_CHIPS` chips are tried. A second
    chip whose pixels differ from the first's is the check: if the template does not
    give GDAL's bytes for it, every chip of the layer is left to GDAL. Safe to share
    between threads: learning takes a lock, and a template once accepted never changes.
    """

    #: Chips tried before the layer is left to GDAL.
    LEARNING_CHIPS = 8

    def __init__(self, gdal_encode: GdalEncode) -> None:
        self._gdal_encode = gdal_encode
        self._lock = threading.Lock()
        self._candidate: _Template | None = None
        self._template: _Template | None = None
        self._tries_left = self.LEARNING_CHIPS
        self._gave_up = False

    @property
    def templated(self) -> bool:
        """Whether chips are now written from the template."""
        return self._template is not None

    def encode(self, data: np.ndarray, valid: np.ndarray, transform: Any) -> bytes | bytearray:
        """The chip file's bytes: exactly what ``gdal_encode`` returns for these."""
        template = self._template
        whole = bool(valid.all())  # a chip with invalid pixels gets a mask: GDAL's job
        if (template is not None and whole and data.shape == template.shape
                and data.dtype == template.dtype):
            return template.fill(data, transform)
        content = self._gdal_encode(data, valid, transform)
        if whole and template is None and not self._gave_up:
            with self._lock:
                self._check(content, data, transform)
        return content

    def _check(self, content: bytes, data: np.ndarray, transform: Any) -> None:
        """Learn the template from a first chip, then accept it or give up on the next
        (called under the lock)."""
        if self._template is not None or self._gave_up:
            return
        candidate = self._candidate
        if candidate is None:
            self._candidate = _learn(content, data, transform)
            self._tries_left -= 1
            self._gave_up = self._candidate is None and self._tries_left <= 0
        elif data.shape != candidate.shape or data.dtype != candidate.dtype:
            self._gave_up = True
        elif candidate.fill(data, transform) == content:
            if not candidate.same_pixels(data):  # else no check of where they go
                self._template = candidate
        else:
            self._gave_up = True
