"""The windows ``translate`` lays over a scene, and the weights that blend them.

Windows are the model's tile size, one every ``tile - overlap`` pixels (the *step*) along
each axis. Where they start is the *lattice*:

* ``grid`` (north-up scenes with a CRS): anchored to the CRS's pixel grid. A window
  starts wherever the pixel's global column (or row) on that grid is a multiple of the
  step (:func:`grid_origin` in :mod:`geogan.raster.io` gives the global index of a
  scene's first pixel). Two scenes on the same pixel grid, a crop and its whole scene,
  or a tile and its mosaic, therefore share every window that lies inside both, and
  translate to the same pixels there.
* ``scene`` (scenes without a CRS, or rotated): every step from the scene's first pixel.

Either way a first window starts at 0 when the lattice does not, and the last one is
shifted inwards so that it ends on the raster's edge: every pixel is covered and no window
hangs over the edge (an axis shorter than a tile has one window, padded by reflection by
the engine). These two edge windows, and the tapers of their neighbours towards them,
touch only pixels less than a tile from the edge: further in, a pixel's windows and
weights depend on the lattice alone, not on where the raster was cut.

Each window's prediction is weighted by a separable 2-D weight, the outer product of
one weight per axis. Along an axis the weight is 1 in the window's own part and tapers
towards 0 over the pixels it shares with the previous and the next window; the taper of
one window and the rise of its neighbour add up to exactly 1 over a two-window overlap
(cosine: ``sin² + cos²``; linear: ``x + (1 - x)``), so a flat prediction stays flat.
Edges of the raster are not tapered (no neighbour to hand over to). ``none`` gives each
pixel to the window whose centre is nearest along each axis (a centre crop). The engine
divides the weighted sum by the summed weights, so three-window overlaps (where the
last window was shifted inwards) are blended correctly too. This module needs numpy only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from geogan.errors import ConfigError

#: Blending modes, the first being the default.
BLENDS = ("cosine", "linear", "none")

#: Lattices: anchored to the CRS's pixel grid, or to the scene's first pixel.
LATTICES = ("grid", "scene")


def default_overlap(tile_size: int) -> int:
    """The overlap used when none is given: a quarter of the tile."""
    return tile_size // 4


def check_window_options(tile_size: int, overlap: int, blend: str) -> None:
    """Raise :class:`ConfigError` for an overlap or blend that cannot work with the tile.

    Raises:
        ConfigError: If ``overlap`` is negative or not smaller than half the tile, or
            ``blend`` is unknown.
    """
    if blend not in BLENDS:
        raise ConfigError(f"unknown blend {blend!r}; use one of {', '.join(BLENDS)}")
    if not 0 <= overlap <= tile_size // 2:
        raise ConfigError(f"overlap must be between 0 and half the model's tile "
                          f"({tile_size // 2} px), not {overlap}")


def axis_starts(length: int, tile_size: int, overlap: int,
                anchor: int | None = None) -> tuple[int, ...]:
    """Start offsets of the windows along an axis of ``length`` pixels.

    Every ``tile_size - overlap`` pixels, plus a last window shifted inwards to end at
    ``length``; a single window at 0 when the axis is not longer than a tile.

    Args:
        length: Pixels along the axis.
        tile_size: Window length.
        overlap: Pixels neighbouring windows share.
        anchor: Global index of the axis's first pixel on the CRS's pixel grid: windows
            then start where ``anchor + start`` is a multiple of the step, after a first
            window at 0. ``None``: every step from 0 (the scene's own lattice).
    """
    if length <= tile_size:
        return (0,)
    step = tile_size - overlap
    first = 0 if anchor is None else -anchor % step
    starts = [0] if first else []
    starts += range(first, length - tile_size, step)
    starts.append(length - tile_size)
    return tuple(sorted(set(starts)))


def _ramp(x: NDArray[np.float64], blend: str) -> NDArray[np.float64]:
    """Rises from 0 to 1 as ``x`` goes from 0 to 1."""
    x = np.clip(x, 0.0, 1.0)
    if blend == "linear":
        return x
    return np.sin(x * (np.pi / 2)) ** 2  # = (1 - cos(pi x)) / 2


def axis_weights(starts: tuple[int, ...], tile_size: int, blend: str) -> list[NDArray[np.float32]]:
    """One weight vector of ``tile_size`` per window along an axis.

    Args:
        starts: Window starts, increasing, as :func:`axis_starts` gives them.
        tile_size: Window length.
        blend: ``cosine``, ``linear`` or ``none``.

    Returns:
        float32 vectors; every pixel of the axis gets a positive total weight.
    """
    centres = np.arange(tile_size, dtype=np.float64) + 0.5  # pixel centres in the window
    weights = []
    for k, start in enumerate(starts):
        w = np.ones(tile_size, dtype=np.float64)
        if blend == "none":
            # Own the pixels nearer to this window's centre than to a neighbour's.
            if k > 0:
                cut = (starts[k - 1] + tile_size + start) // 2 - start
                w[:cut] = 0.0
            if k + 1 < len(starts):
                cut = (start + tile_size + starts[k + 1]) // 2 - start
                w[cut:] = 0.0
        else:
            if k > 0:
                shared = starts[k - 1] + tile_size - start  # pixels shared with the previous
                if shared > 0:
                    w = np.minimum(w, _ramp(centres / shared, blend))
            if k + 1 < len(starts):
                shared = start + tile_size - starts[k + 1]
                if shared > 0:
                    w = np.minimum(w, _ramp((tile_size - centres) / shared, blend))
        weights.append(w.astype(np.float32))
    return weights


@dataclass(frozen=True)
class Window:
    """One window: its grid position, pixel offsets and blend weight vectors."""

    row: int  # window row in the grid
    col: int  # window column in the grid
    row_off: int
    col_off: int


@dataclass(frozen=True)
class WindowGrid:
    """The windows over a ``height`` × ``width`` raster, row-major, and their weights.

    ``anchor`` is the global (row, column) of the raster's first pixel on the CRS's pixel
    grid, for the ``grid`` lattice; ``None`` lays the ``scene`` lattice.
    """

    height: int
    width: int
    tile_size: int
    overlap: int
    blend: str
    anchor: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        check_window_options(self.tile_size, self.overlap, self.blend)
        if self.height < 1 or self.width < 1:
            raise ConfigError(f"a raster of {self.width} x {self.height} pixels has no windows")

    @cached_property
    def row_starts(self) -> tuple[int, ...]:
        """First pixel row of each window row."""
        anchor = None if self.anchor is None else self.anchor[0]
        return axis_starts(self.height, self.tile_size, self.overlap, anchor)

    @cached_property
    def col_starts(self) -> tuple[int, ...]:
        """First pixel column of each window column."""
        anchor = None if self.anchor is None else self.anchor[1]
        return axis_starts(self.width, self.tile_size, self.overlap, anchor)

    @property
    def lattice(self) -> str:
        """``grid`` (anchored to the CRS's pixel grid) or ``scene``."""
        return LATTICES[self.anchor is None]

    @cached_property
    def row_weights(self) -> list[NDArray[np.float32]]:
        """Weight along the rows of each window row."""
        return axis_weights(self.row_starts, self.tile_size, self.blend)

    @cached_property
    def col_weights(self) -> list[NDArray[np.float32]]:
        """Weight along the columns of each window column."""
        return axis_weights(self.col_starts, self.tile_size, self.blend)

    @property
    def rows(self) -> int:
        """Number of window rows."""
        return len(self.row_starts)

    @property
    def cols(self) -> int:
        """Number of windows per row."""
        return len(self.col_starts)

    def __len__(self) -> int:
        return self.rows * self.cols

    def __iter__(self) -> Iterator[Window]:
        for i, row_off in enumerate(self.row_starts):
            for j, col_off in enumerate(self.col_starts):
                yield Window(i, j, row_off, col_off)

    def weight(self, row: int, col: int) -> NDArray[np.float32]:
        """The (tile, tile) blend weight of window (``row``, ``col``)."""
        return np.outer(self.row_weights[row], self.col_weights[col])

    def final_rows(self, row: int) -> int:
        """Pixel rows ``[0, n)`` no window after window row ``row`` touches."""
        if row + 1 < self.rows:
            return self.row_starts[row + 1]
        return self.height


@dataclass(frozen=True)
class LatticeRecord:
    """Where ``translate`` laid an output's windows: what its ``GEOGAN_LATTICE`` tag holds.

    The windows were laid over a raster of ``size`` pixels (the scene itself, or the part
    of a mosaic around it) in which the output's first pixel is at ``offset``.

    Attributes:
        lattice: ``grid`` or ``scene`` (see the module docstring).
        why: What chose it: ``crs`` (a north-up scene with a CRS), ``no crs``,
            ``rotated`` or ``asked`` (the ``scene`` lattice by request).
        anchor: For ``grid``, the global (row, column) of that raster's first pixel.
        offset: (row, column) of the output's first pixel in that raster.
        size: (height, width) of that raster.
        resampled: The windows lay on a grid at the model's pixel size (``--resample``),
            not the output's: their lines are not the output's pixel lines.
    """

    lattice: str
    why: str
    anchor: tuple[int, int] | None
    offset: tuple[int, int]
    size: tuple[int, int]
    resampled: bool = False

    def window_grid(self, tile_size: int, overlap: int, blend: str) -> WindowGrid:
        """The windows, over the raster they were laid over."""
        return WindowGrid(self.size[0], self.size[1], tile_size, overlap, blend, self.anchor)

    def to_tag(self) -> str:
        """The tag's JSON text."""
        return json.dumps({"lattice": self.lattice, "why": self.why,
                           "anchor": None if self.anchor is None else list(self.anchor),
                           "offset": list(self.offset), "size": list(self.size),
                           "resampled": self.resampled})

    @classmethod
    def from_tag(cls, text: str | None) -> LatticeRecord | None:
        """The record in a ``GEOGAN_LATTICE`` tag; None when absent or unreadable (outputs
        of geogan before the tag: the ``scene`` lattice over the output itself)."""
        if not text:
            return None
        try:
            value = json.loads(text)
            anchor = value["anchor"]
            record = cls(str(value["lattice"]), str(value.get("why", "")),
                         None if anchor is None else (int(anchor[0]), int(anchor[1])),
                         (int(value["offset"][0]), int(value["offset"][1])),
                         (int(value["size"][0]), int(value["size"][1])),
                         bool(value.get("resampled", False)))
        except (ValueError, TypeError, KeyError, IndexError):
            return None
        if record.lattice not in LATTICES or (record.lattice == "grid") != (anchor is not None):
            return None
        return record
