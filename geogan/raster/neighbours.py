"""Scenes of a batch that lie on one pixel grid, each with the neighbours around it.

``translate --mosaic`` translates a tiled delivery (a hundred 1 km orthophoto tiles) as the
one raster it was cut from: a scene's windows read context across its edges from the
tiles next to it, and its output is still its own file on its own grid.
:func:`plan_neighbourhoods` groups the scenes by pixel grid (the same CRS, pixel size and
grid phase, band count, data type and nodata: what :func:`~geogan.raster.mosaic.check_same_grid`
accepts) and gives each scene of a group of two or more a VRT of itself and the
neighbours that reach within ``margin`` pixels of it, in the group's frame, so that every
scene's pixel coordinates are the whole mosaic's. Where tiles overlap, the scene's own
pixels are read (it is the VRT's last source). A scene alone on its grid gets none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from geogan.errors import GeoganError
from geogan.raster.mosaic import MosaicError, check_same_grid, mosaic_frame, read_tile, vrt_document


@dataclass(frozen=True)
class Surroundings:
    """A scene within its group's mosaic.

    Attributes:
        vrt: VRT XML of the neighbours within the margin and then the scene, in the
            group's frame.
        region: ``(row_off, col_off, height, width)`` in the VRT's pixels: the scene and
            up to ``margin`` pixels around it (less at the mosaic's edges).
        crop: ``(row_off, col_off, height, width)`` of the scene within ``region``.
        group: The number of the scene's group (its pixel grid).
        neighbours: The other scenes the VRT holds.
    """

    vrt: str
    region: tuple[int, int, int, int]
    crop: tuple[int, int, int, int]
    group: int
    neighbours: int


def plan_neighbourhoods(paths: Sequence[str], margin: int) -> list[Surroundings | None]:
    """Group ``paths`` by pixel grid and place each scene among its neighbours.

    Args:
        paths: The scenes of a batch.
        margin: Pixels of context around each scene (a tile, for ``translate``).

    Returns:
        Per scene its :class:`Surroundings`; None when it is alone on its grid, or is no
        tile of any mosaic (no CRS, rotated, unreadable: it is then translated, or
        fails, on its own).
    """
    tiles: dict[int, dict[str, Any]] = {}
    for index, path in enumerate(paths):
        try:
            tiles[index] = read_tile(path)
        except GeoganError:
            continue
    groups: list[list[int]] = []
    for index, tile in tiles.items():
        for group in groups:
            try:
                check_same_grid(tiles[group[0]], tile, "the batch")
            except MosaicError:
                continue
            group.append(index)
            break
        else:
            groups.append([index])
    places: list[Surroundings | None] = [None] * len(paths)
    for number, group in enumerate(groups):
        if len(group) < 2:
            continue
        members = [tiles[i] for i in group]
        frame = mosaic_frame(members)
        boxes = {i: _box(frame.offset(tiles[i]), tiles[i]) for i in group}
        for index in group:
            top, left, bottom, right = boxes[index]
            region = (max(0, top - margin), max(0, left - margin),
                      min(frame.height, bottom + margin), min(frame.width, right + margin))
            near = [i for i in group if i != index and _meet(boxes[i], region)]
            places[index] = Surroundings(
                vrt=vrt_document([tiles[i] for i in near] + [tiles[index]], frame),
                region=(region[0], region[1], region[2] - region[0], region[3] - region[1]),
                crop=(top - region[0], left - region[1], bottom - top, right - left),
                group=number, neighbours=len(near))
    return places


def _box(offset: tuple[int, int], tile: dict[str, Any]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a tile in its frame's pixels."""
    col, row = offset
    return row, col, row + tile["height"], col + tile["width"]


def _meet(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two (top, left, bottom, right) boxes share a pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
