"""Procedural co-registered raster pairs: sample data for demos, tests and benchmarks.

A seeded procedural world (terrain, a river and lakes, woods, a loose grid of streets
with one major road, buildings along the streets) is drawn once as plain numpy arrays
(:func:`generate_scene`) and then rendered into two domains on the same grid, so that
the pair is perfectly co-registered and the target is known exactly:

* ``sat-map``: an aerial-photo-like RGB image and a flat-colour street map whose pixels
  are exactly the colours of :data:`MAP_PALETTE` (per-class scores are possible);
* ``dsm-imagery``: a float32 digital surface model in metres, with a few nodata voids,
  and the matching orthophoto;
* ``sar-optical``: single-band SAR backscatter in dB with speckle, and an optical image.

Everything is deterministic for a seed and size: the same call writes the same pixels.
The world is built in pixel units (streets a few pixels wide, buildings tens of pixels),
so it looks the same whichever pixel size the kind declares in its geotransform.
Memory grows with the square of the size (peak about 1.6 GB at 8192 x 8192); rendering and
writing go in strips of rows, so the two images never sit in memory whole.

The module needs numpy and rasterio only: no torch, no click, no printing. Errors are
those of :mod:`geogan.errors`.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from geogan.errors import InputError, OutputError, OutputExistsError
from geogan.raster.palette import PALETTE_TAG
from geogan.version import __version__

__all__ = [
    "CLASS_NAMES",
    "DSM_NODATA",
    "FILE_NAMES",
    "KINDS",
    "MAP_PALETTE",
    "MIN_SIZE",
    "PIXEL_SIZE",
    "SamplePair",
    "Scene",
    "generate_scene",
    "write_sample_pair",
    "write_sample_pairs",
]

KINDS = ("sat-map", "dsm-imagery", "sar-optical")
"""The kinds of pair that :func:`write_sample_pair` writes."""

FILE_NAMES: dict[str, tuple[str, str]] = {
    "sat-map": ("sat.tif", "map.tif"),
    "dsm-imagery": ("dsm.tif", "ortho.tif"),
    "sar-optical": ("sar.tif", "optical.tif"),
}
"""(input, target) file names of each kind inside the output folder."""

PIXEL_SIZE: dict[str, float] = {"sat-map": 1.0, "dsm-imagery": 1.0, "sar-optical": 10.0}
"""Ground size of a pixel in metres, per kind (aerial-like 1 m, Sentinel-1-like 10 m)."""

MAP_PALETTE: dict[str, tuple[int, int, int]] = {
    "land": (232, 229, 222),  # open ground: grass, fields, bare soil
    "vegetation": (203, 223, 172),  # woods and parks
    "water": (163, 204, 255),  # lakes and the river
    "road": (255, 255, 255),  # streets
    "major_road": (249, 178, 56),  # the through road
    "building": (244, 241, 234),
}
"""Map classes and their flat RGB colours, after the look of Google Maps' street map.

The order is the class index used by :attr:`Scene.classes`. Every pixel of a map target
is exactly one of these colours (no anti-aliasing), and the map GeoTIFF stores the
palette as JSON in its :data:`PALETTE_TAG` tag (see :func:`geogan.raster.palette.palette_from_tags`).
"""

CLASS_NAMES: tuple[str, ...] = tuple(MAP_PALETTE)
"""Class names in class-index order."""

DSM_NODATA = -9999.0
"""Nodata value of the DSM input (voids, as a stereo or lidar DSM has)."""

MIN_SIZE = 64
"""Smallest width and height, in pixels, of a generated scene."""

_LAND, _VEGETATION, _WATER, _ROAD, _MAJOR_ROAD, _BUILDING = range(len(CLASS_NAMES))
_EPSG = 32633  # WGS 84 / UTM zone 33N
_STRIP = 256  # rows rendered and written at a time; fixed, so results never depend on it
_NEIGHBOURHOOD = 2048  # px: above this size the world repeats its character, not its scale
_URBAN_FACTOR = 16  # the urban noise stays on a grid this much coarser than the scene

# Rendering streams: each gets its own generator, seeded with (seed, stream[, strip]).
_TEXTURE_STREAM, _GRAIN_STREAM, _SPECKLE_STREAM, _VOID_STREAM = 1, 2, 3, 4

Float32Array = NDArray[np.float32]
UInt8Array = NDArray[np.uint8]


@dataclass(frozen=True)
class SamplePair:
    """The two files of a written pair.

    Attributes:
        kind: One of :data:`KINDS`.
        input_path: The input-domain raster (satellite, DSM or SAR).
        target_path: The target-domain raster (map, orthophoto or optical image).
    """

    kind: str
    input_path: Path
    target_path: Path


@dataclass(frozen=True, eq=False)
class Scene:
    """The procedural world that both rasters of a pair are rendered from.

    All arrays are (size, size), row 0 at the north edge, in pixel units.

    Attributes:
        size: Width and height in pixels.
        seed: The seed it was generated from.
        elevation: Bare-earth terrain in metres (lakes flat at their water level).
        classes: Class index of each pixel, into :data:`CLASS_NAMES`.
        building_height: Height of buildings above the terrain in metres, 0 elsewhere.
        roof: Roof style of each building pixel (an index into the renderer's roof
            colours); 0 and meaningless elsewhere.
    """

    size: int
    seed: int
    elevation: Float32Array = field(repr=False)
    classes: UInt8Array = field(repr=False)
    building_height: Float32Array = field(repr=False)
    roof: UInt8Array = field(repr=False)


# --------------------------------------------------------------------------------------
# Public functions


def generate_scene(size: int, seed: int) -> Scene:
    """Generate the procedural world for a size and seed.

    Terrain is fractal noise with a valley carved along a meandering river; the lowest
    ground becomes lakes; woods grow where a patch noise is high (less in town);
    streets form a loose grid whose segments are kept more often where an "urban"
    noise is high; one wider major road crosses the river on a bridge; buildings of
    random footprint and height line the streets where they fit.

    Args:
        size: Width and height in pixels, at least :data:`MIN_SIZE`.
        seed: Non-negative seed of ``numpy.random.default_rng``; the same seed and size
            give the same scene.

    Returns:
        The scene's arrays.

    Raises:
        InputError: If the size is below :data:`MIN_SIZE` or the seed is negative.
    """
    _check_size(size)
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    scale = min(size, _NEIGHBOURHOOD)

    # Terrain: smooth fractal noise with a valley along a meandering river, scaled to
    # a relief that grows with the extent (hills, not cliffs) between 200 and 600 m.
    terrain = _upsample(_noise(rng, size, 8, beta=3.5, largest=2.0 * size), 8, 0, size, size)
    terrain *= np.float32(1 / terrain.std())
    river_vertical = bool(rng.random() < 0.5)
    river_width = (max(2.5, scale / 400), max(3.0, scale / 170))
    river = _Meander.random(rng, size, scale, amplitude=0.1, half_width=river_width)
    distance = river.distance(size, vertical=river_vertical)
    terrain -= np.float32(1.2) * np.exp(-np.square(distance / np.float32(scale / 5)))
    low, high = float(terrain.min()), float(terrain.max())
    relief = float(np.clip(0.05 * size, 25.0, 400.0))
    base = 200.0 + rng.uniform(0.0, 400.0 - relief)
    elevation = (terrain - np.float32(low)) * np.float32(relief / (high - low))
    elevation += np.float32(base)
    del terrain
    classes = np.zeros((size, size), np.uint8)
    in_river = np.abs(distance) <= river.half_width_at(size, river_vertical)
    del distance
    elevation[in_river] -= 1.0
    # Lakes: the lowest ground, flat at the water level.
    level = np.float32(np.quantile(elevation[::4, ::4], 0.05))
    lake = elevation < level
    elevation[lake] = level
    water = in_river | lake
    del in_river

    # Town (an "urban" noise, used at its coarse resolution) and woods: a patch noise,
    # favouring high ground, avoiding town.
    urban = _noise(rng, size, _URBAN_FACTOR, beta=3.0, largest=1.5 * scale)
    urban = _sigmoid(urban * 1.6 + 0.6)
    woods = _upsample(_noise(rng, size, 4, beta=2.5, largest=scale / 3), 4, 0, size, size)
    woods += (elevation - np.float32(base)) * np.float32(0.8 / relief)
    woods -= _upsample(urban, _URBAN_FACTOR, 0, size, size) * np.float32(1.2)
    classes[woods > 0.1] = _VEGETATION
    del woods
    classes[water] = _WATER
    del water

    # Streets, the major road, then buildings along the streets.
    streets = _street_segments(rng, size, urban, classes, lake)
    del lake
    width = int(rng.integers(5, 8))
    for segment in streets:
        classes[segment.road_slices(width)] = _ROAD
    major = _Meander.random(rng, size, scale, amplitude=0.04, half_width=(5.5, 5.5))
    major_vertical = not river_vertical  # so that it crosses the river
    on_major = np.abs(major.distance(size, major_vertical)) <= major.half_width_at(
        size, major_vertical
    )
    classes[on_major] = _MAJOR_ROAD
    del on_major

    building_height = np.zeros((size, size), np.float32)
    roof = np.zeros((size, size), np.uint8)
    for segment in streets:
        _place_buildings(rng, segment, width, urban, classes, building_height, roof)
    return Scene(size, seed, elevation, classes, building_height, roof)


def write_sample_pair(
    out_dir: str | Path,
    kind: str,
    size: int = 512,
    seed: int = 0,
    overwrite: bool = False,
) -> SamplePair:
    """Generate a scene and write it as a co-registered pair of GeoTIFFs.

    Both files share one grid: EPSG:32633 (UTM 33N), a north-up geotransform with the
    kind's :data:`PIXEL_SIZE` and an origin that moves with the seed. They are tiled,
    DEFLATE-compressed GeoTIFFs with band descriptions. Each file is written under a
    temporary name and renamed when complete, so a failure never leaves a half file.

    Args:
        out_dir: Folder to write into (created if missing); the names are
            :data:`FILE_NAMES` ``[kind]``.
        kind: One of :data:`KINDS`.
        size: Width and height in pixels, at least :data:`MIN_SIZE`.
        seed: Non-negative seed; the same seed and size give the same pixels.
        overwrite: Replace files that already exist.

    Returns:
        The kind and the paths written.

    Raises:
        InputError: For an unknown kind, a size below :data:`MIN_SIZE` or a negative
            seed.
        OutputExistsError: If an output exists and ``overwrite`` is False; nothing is
            written then.
        OutputError: If the folder cannot be created or a file cannot be written.
    """
    _check_kind(kind)
    _check_size(size)
    _check_seed(seed)
    pair = _pair_paths(Path(out_dir), kind)
    _refuse_existing([pair], overwrite)
    _write_pair(generate_scene(size, seed), pair)
    return pair


def write_sample_pairs(
    out_dir: str | Path,
    kinds: Iterable[str] = KINDS,
    size: int = 512,
    seed: int = 0,
    overwrite: bool = False,
) -> list[SamplePair]:
    """Write several kinds of pair from one scene, each in ``out_dir/<kind>/``.

    The scene is generated once and rendered into every kind, so the pairs show the
    same place. Existing outputs are checked for all kinds before anything is written.

    Args:
        out_dir: Parent folder; each kind goes into a sub-folder named after it.
        kinds: Kinds to write, each one of :data:`KINDS`.
        size: Width and height in pixels, at least :data:`MIN_SIZE`.
        seed: Non-negative seed; the same seed and size give the same pixels.
        overwrite: Replace files that already exist.

    Returns:
        One pair per kind, in the order given.

    Raises:
        InputError: For an unknown kind, a size below :data:`MIN_SIZE` or a negative
            seed.
        OutputExistsError: If any output exists and ``overwrite`` is False; nothing is
            written then.
        OutputError: If a folder cannot be created or a file cannot be written.
    """
    kinds = list(dict.fromkeys(kinds))
    if not kinds:
        raise InputError(f"No kind given; choose among {', '.join(KINDS)}.")
    for kind in kinds:
        _check_kind(kind)
    _check_size(size)
    _check_seed(seed)
    pairs = [_pair_paths(Path(out_dir) / kind, kind) for kind in kinds]
    _refuse_existing(pairs, overwrite)
    scene = generate_scene(size, seed)
    for pair in pairs:
        _write_pair(scene, pair)
    return pairs


# --------------------------------------------------------------------------------------
# Checks


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"Unknown kind {kind!r}; choose one of {', '.join(KINDS)}.")


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < MIN_SIZE:
        raise InputError(f"Size must be an integer of at least {MIN_SIZE} pixels, got {size!r}.")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"Seed must be a non-negative integer, got {seed!r}.")


def _pair_paths(out_dir: Path, kind: str) -> SamplePair:
    input_name, target_name = FILE_NAMES[kind]
    return SamplePair(kind, out_dir / input_name, out_dir / target_name)


def _refuse_existing(pairs: Iterable[SamplePair], overwrite: bool) -> None:
    if overwrite:
        return
    for pair in pairs:
        for path in (pair.input_path, pair.target_path):
            if path.exists():
                raise OutputExistsError(
                    f"{path} already exists; pass --overwrite (overwrite=True) to replace it."
                )


# --------------------------------------------------------------------------------------
# Noise


def _noise(
    rng: np.random.Generator, size: int, factor: int, beta: float, largest: float
) -> Float32Array:
    """Gaussian noise on a coarse grid, for :func:`_upsample` by ``factor``.

    Spectral synthesis: white noise filtered in the Fourier domain to a power spectrum
    falling as ``f**-beta`` (larger beta: smoother), with features larger than
    ``largest`` full-resolution pixels removed. The grid is padded before the FFT and
    cropped after, so that the field does not wrap around at the edges.

    Returns:
        Zero-mean, unit-variance float32 noise of shape (n, n), n = size / factor + 4.
    """
    n = -(-size // factor) + 4
    padded = n + n // 4 + 8
    spectrum = np.fft.rfft2(rng.standard_normal((padded, padded), dtype=np.float32))
    fy = np.fft.fftfreq(padded).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(padded).astype(np.float32)[None, :]
    frequency = np.hypot(fy, fx) / np.float32(factor)  # cycles per full-resolution pixel
    frequency[0, 0] = 1.0
    gain = frequency ** np.float32(-beta / 2)
    gain *= -np.expm1(-np.square(frequency * np.float32(largest)))  # high-pass
    gain *= np.exp(-np.square(frequency * np.float32(2.0 * factor)))  # anti-alias
    gain[0, 0] = 0.0
    noise = np.fft.irfft2(spectrum * gain, s=(padded, padded))[:n, :n]
    noise -= noise.mean()
    noise /= noise.std()
    return noise.astype(np.float32)


def _upsample(coarse: Float32Array, factor: int, row0: int, rows: int, width: int) -> Float32Array:
    """Rows ``row0 .. row0 + rows`` of a coarse grid upsampled by ``factor`` (cubic).

    Catmull-Rom interpolation keeps slopes continuous, so hillshading shows no facets;
    rows are computed on their own, so a strip never needs the whole upsampled field.
    The coarse grid must have 4 cells of margin (as :func:`_noise` makes it).
    """
    row_index, row_weight = _cubic_taps(row0, rows, factor)
    column_index, column_weight = _cubic_taps(0, width, factor)
    partial = np.zeros((rows, coarse.shape[1]), np.float32)
    for k in range(4):
        partial += row_weight[k][:, None] * coarse[row_index[k]]
    out = np.zeros((rows, width), np.float32)
    for k in range(4):
        out += column_weight[k][None, :] * np.take(partial, column_index[k], axis=1)
    return out


def _cubic_taps(start: int, count: int, factor: int) -> tuple[NDArray[np.intp], Float32Array]:
    position = (np.arange(start, start + count) + 0.5) / factor + 1.5
    cell = np.floor(position).astype(np.intp)
    t = (position - cell).astype(np.float32)
    t2, t3 = t * t, t * t * t
    weights = np.stack(
        [
            (-t3 + 2 * t2 - t) / 2,
            (3 * t3 - 5 * t2 + 2) / 2,
            (-3 * t3 + 4 * t2 + t) / 2,
            (t3 - t2) / 2,
        ]
    ).astype(np.float32)
    return cell[None, :] + np.arange(-1, 3)[:, None], weights


def _sigmoid(x: Float32Array) -> Float32Array:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


# --------------------------------------------------------------------------------------
# Linear features: river and major road


@dataclass(frozen=True)
class _Meander:
    """A smooth curve across the scene, ``across = centre(along)``, with a width."""

    offset: float
    amplitudes: tuple[float, float]
    wavelengths: tuple[float, float]
    phases: tuple[float, float]
    half_width: tuple[float, float]  # at the start and at the end of the curve

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        size: int,
        scale: int,
        amplitude: float,
        half_width: tuple[float, float],
    ) -> _Meander:
        return cls(
            offset=size * rng.uniform(0.25, 0.75),
            amplitudes=(scale * amplitude, scale * amplitude * 0.3),
            wavelengths=(scale * rng.uniform(0.7, 1.3), scale * rng.uniform(0.2, 0.35)),
            phases=(rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)),
            half_width=half_width,
        )

    def distance(self, size: int, vertical: bool) -> Float32Array:
        """Signed distance (pixels, across the curve) of every pixel from the centre line.

        The across offset is divided by the curve's slope term, so that the band of
        pixels within a half width keeps its width where the curve bends.
        """
        along = np.arange(size, dtype=np.float64)
        centre = np.full(size, self.offset)
        slope = np.zeros(size)
        for a, w, p in zip(self.amplitudes, self.wavelengths, self.phases, strict=True):
            k = 2 * np.pi / w
            centre += a * np.sin(k * along + p)
            slope += a * k * np.cos(k * along + p)
        centre32 = centre.astype(np.float32)
        norm = np.sqrt(1.0 + slope * slope).astype(np.float32)
        across = np.arange(size, dtype=np.float32)
        if vertical:  # the curve runs north-south: along = rows, across = columns
            return (across[None, :] - centre32[:, None]) / norm[:, None]
        return (across[:, None] - centre32[None, :]) / norm[None, :]

    def half_width_at(self, size: int, vertical: bool) -> Float32Array:
        """Half width along the curve, shaped to broadcast against :meth:`distance`."""
        widths = np.linspace(*self.half_width, size, dtype=np.float32)
        return widths[:, None] if vertical else widths[None, :]


# --------------------------------------------------------------------------------------
# Streets and buildings


@dataclass(frozen=True)
class _Segment:
    """A street between two crossings: ``horizontal`` at row ``position``, else column."""

    horizontal: bool
    position: int
    start: int
    stop: int

    def road_slices(self, width: int) -> tuple[slice, slice]:
        across = slice(self.position, self.position + width)
        along = slice(self.start, self.stop + width)
        return (across, along) if self.horizontal else (along, across)


def _grid_lines(rng: np.random.Generator, size: int, spacing: tuple[int, int]) -> list[int]:
    """Jittered, irregularly spaced positions of the street grid along one axis."""
    lines = []
    position = int(rng.integers(spacing[0] // 3, spacing[1]))
    while position < size - 10:
        lines.append(position)
        position += int(rng.integers(*spacing))
    return lines


def _street_segments(
    rng: np.random.Generator,
    size: int,
    urban: Float32Array,
    classes: UInt8Array,
    lake: NDArray[np.bool_],
) -> list[_Segment]:
    """Segments of a loose street grid, kept more often in town, not into lakes.

    Every grid line is cut at its crossings with the perpendicular lines; a segment is
    kept with a probability that grows with the urban noise at its middle, and dropped
    when it would touch a lake or run along the river (bridges across it stay).
    """
    rows = _grid_lines(rng, size, (100, 190))
    columns = _grid_lines(rng, size, (120, 240))
    segments = []
    for horizontal, lines, crossings in ((True, rows, columns), (False, columns, rows)):
        bounds = [0, *crossings, size]
        for position in lines:
            for start, stop in itertools.pairwise(bounds):
                middle = (position, (start + stop) // 2)
                row, column = middle if horizontal else middle[::-1]
                keep = 0.25 + 0.75 * _urban_at(urban, row, column)
                segment = _Segment(horizontal, position, start, min(stop, size))
                line = segment.road_slices(1)
                on_water = np.mean(classes[line] == _WATER)
                if rng.random() < keep and on_water < 1 / 6 and not lake[line].any():
                    segments.append(segment)
    return segments


def _urban_at(urban: Float32Array, row: int, column: int) -> float:
    """The coarse urban noise (factor :data:`_URBAN_FACTOR`) near a full-size pixel."""
    last = urban.shape[0] - 1
    return float(
        urban[
            min(max(row // _URBAN_FACTOR + 2, 0), last),
            min(max(column // _URBAN_FACTOR + 2, 0), last),
        ]
    )


# Building footprints: the road setback, the frontage and depth in pixels; the height
# of the tallest building in metres.
_SETBACK, _FRONTAGE, _DEPTH = (2, 7), (8, 26), (8, 22)
_TALLEST = 45.0


def _place_buildings(
    rng: np.random.Generator,
    segment: _Segment,
    width: int,
    urban: Float32Array,
    classes: UInt8Array,
    building_height: Float32Array,
    roof: UInt8Array,
) -> None:
    """Line both sides of a street with rectangular buildings where they fit.

    Walking along each side, a building is tried with a probability that grows with the
    urban noise; it is drawn only if its footprint and a 2-pixel margin are open land or
    woods (no road, water or other building). Random draws are made in batches, one per
    side, to keep the Python loop light.
    """
    size = classes.shape[0]
    length = segment.stop - segment.start
    for side in (-1, 1):
        count = length // 8 + 1
        setbacks = rng.integers(*_SETBACK, count)
        frontages = rng.integers(*_FRONTAGE, count)
        depths = rng.integers(*_DEPTH, count)
        gaps = rng.integers(2, 9, count)
        tries = rng.random(count)
        heights = rng.gamma(2.0, 1.0, count)
        styles = rng.integers(0, len(_ROOF_COLOURS), count)
        along = segment.start + width + int(rng.integers(0, 8))
        for i in range(count):
            frontage = int(frontages[i])
            if along + frontage > segment.stop:
                break
            if side < 0:
                near = segment.position - int(setbacks[i])
                across = (near - int(depths[i]), near)
            else:
                near = segment.position + width + int(setbacks[i])
                across = (near, near + int(depths[i]))
            if segment.horizontal:
                row, column = across, (along, along + frontage)
            else:
                row, column = (along, along + frontage), across
            inside = min(row[0], column[0]) >= 2 and max(row[1], column[1]) <= size - 2
            u = _urban_at(urban, row[0], column[0])
            # Land and woods have the lowest class indices: anything else is in the way.
            if (
                inside
                and tries[i] < 0.15 + 0.85 * u
                and classes[row[0] - 2 : row[1] + 2, column[0] - 2 : column[1] + 2].max()
                <= _VEGETATION
            ):
                footprint = (slice(*row), slice(*column))
                classes[footprint] = _BUILDING
                height = 3.0 + float(heights[i]) * (2.0 + 8.0 * u)
                building_height[footprint] = min(height, _TALLEST)
                roof[footprint] = styles[i]
                along += frontage + int(gaps[i])
            else:
                along += int(gaps[i]) + 4


# --------------------------------------------------------------------------------------
# Rendering


# Photo materials: the classes in class order, then one per roof style in place of
# "building". Each has two RGB colours that a texture mixes per pixel (see
# _render_photo), and a grain: the standard deviation of pixel noise in grey levels.
_ROOF_COLOURS = [
    (168, 164, 158),
    (118, 116, 116),
    (146, 74, 60),
    (172, 100, 80),
    (86, 86, 90),
    (204, 200, 192),
    (130, 120, 104),
]
_PHOTO_COLOURS = np.array(
    [
        [  # first colour: meadow, shaded crowns, deep water, asphalt, roofs
            (98, 112, 66),
            (30, 52, 28),
            (26, 44, 56),
            (112, 112, 110),
            (92, 92, 96),
            *_ROOF_COLOURS,
        ],
        [  # second colour: bare soil, lit crowns, shallow water, asphalt, roofs
            (146, 132, 104),
            (74, 102, 52),
            (48, 70, 72),
            (112, 112, 110),
            (92, 92, 96),
            *_ROOF_COLOURS,
        ],
    ],
    np.float32,
)  # (2, materials, 3)
_PHOTO_GRAIN = np.array([5, 5, 2, 4, 4] + [4] * len(_ROOF_COLOURS), np.float32)
# Mean backscatter in dB per class (land, vegetation, water, road, major road, building).
_SAR_DB = np.array([-14.0, -10.0, -22.0, -18.0, -18.0, 2.0], np.float32)
_SAR_LOOKS = 4
_SHADOW_PER_METRE = 0.35  # px of shadow per metre of building (sun about 70 deg high)
_SHADOW_MAX = int(_TALLEST * _SHADOW_PER_METRE) + 1


@dataclass(frozen=True)
class _Texture:
    """A coarse noise grid and the factor that upsamples it to the scene."""

    coarse: Float32Array
    factor: int


@dataclass(frozen=True)
class _Textures:
    """Noise shared by the renderers of a scene, upsampled strip by strip.

    The same textures drive every rendering of a scene, so that e.g. the tree crowns
    of the DSM's canopy sit under the crowns of the orthophoto.
    """

    crowns: _Texture  # tree crowns, a few pixels across
    patches: _Texture  # meadow and bare-soil patches
    tone: _Texture  # broad colour variation

    @classmethod
    def for_scene(cls, scene: Scene) -> _Textures:
        rng = np.random.default_rng([scene.seed, _TEXTURE_STREAM])
        size, scale = scene.size, min(scene.size, _NEIGHBOURHOOD)
        return cls(
            crowns=_Texture(_noise(rng, size, 2, beta=1.0, largest=12.0), 2),
            patches=_Texture(_noise(rng, size, 16, beta=1.5, largest=scale / 4), 16),
            tone=_Texture(_noise(rng, size, 32, beta=3.0, largest=float(scale)), 32),
        )


@dataclass(frozen=True)
class _Strip:
    """The rows ``start .. stop`` of a scene, with what the renderers share."""

    scene: Scene
    textures: _Textures
    start: int
    stop: int

    @property
    def rows(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def classes(self) -> UInt8Array:
        return self.scene.classes[self.rows]

    def upsample(self, texture: _Texture) -> Float32Array:
        rows = self.stop - self.start
        return _upsample(texture.coarse, texture.factor, self.start, rows, self.scene.size)

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.scene.seed, stream, self.start])

    def gradient(self, surface: Float32Array) -> tuple[Float32Array, Float32Array]:
        """d/drow and d/dcolumn of a full-size surface over the strip (a 1-row halo)."""
        low, high = max(self.start - 1, 0), min(self.stop + 1, self.scene.size)
        window = surface[low:high]
        keep = slice(self.start - low, self.start - low + self.stop - self.start)
        d_row = np.gradient(window, axis=0)[keep]
        d_column = np.gradient(window[keep], axis=1)
        return d_row.astype(np.float32), d_column.astype(np.float32)


def _strips(scene: Scene) -> Iterator[_Strip]:
    textures = _Textures.for_scene(scene)
    for start in range(0, scene.size, _STRIP):
        yield _Strip(scene, textures, start, min(start + _STRIP, scene.size))


def _render_map(strip: _Strip) -> UInt8Array:
    """Flat-colour map: each pixel exactly its class's palette colour. (3, rows, W)."""
    lut = np.array(list(MAP_PALETTE.values()), np.uint8)  # (classes, 3)
    return np.stack([np.take(lut[:, band], strip.classes) for band in range(3)])


def _render_photo(strip: _Strip) -> UInt8Array:
    """Aerial-photo-like RGB: class colours with texture, hillshade and shadows.

    Open land mixes meadow and bare soil in patches; woods are dark green with tree
    crowns; water is dark blue-green; roads are grey asphalt; roofs take their
    building's style colour with a lit and a shaded half. The terrain is hillshaded
    (sun from the south-west) and buildings cast shadows to the north-east.

    Returns:
        (3, rows, W) uint8.
    """
    classes = strip.classes
    building = classes == _BUILDING
    crowns = strip.upsample(strip.textures.crowns)
    tone = strip.upsample(strip.textures.tone)
    # Which of its material's two colours each pixel leans to: soil or meadow,
    # lit or shaded tree crowns, deep or shallow water.
    mix = _sigmoid(strip.upsample(strip.textures.patches) * 2.5)
    vegetation, water = classes == _VEGETATION, classes == _WATER
    mix[vegetation] = _sigmoid(crowns * 1.8 + tone * 0.5)[vegetation]
    mix[water] = _sigmoid(tone * 1.5 - 1.0)[water]
    material = np.where(building, _BUILDING + strip.scene.roof[strip.rows], classes)
    colour = np.empty((3, *classes.shape), np.float32)
    for band in range(3):
        low = np.take(_PHOTO_COLOURS[0, :, band], material)
        high = np.take(_PHOTO_COLOURS[1, :, band], material)
        colour[band] = low + (high - low) * mix

    # Terrain hillshade (sun from the south-west), crown relief, broad tone, building
    # shadows and pitched roofs all scale the brightness; then pixel grain.
    d_row, d_column = strip.gradient(strip.scene.elevation)
    light = (np.float32(0.7) * (d_row - d_column)) / np.sqrt(1 + d_row**2 + d_column**2)
    shade = 1.0 + np.clip(light, -0.5, 0.5) * np.float32(0.8)
    shade[vegetation] *= 0.9 + 0.25 * np.tanh(crowns[vegetation])
    shade *= 1.0 + 0.06 * tone
    shade[_shadows(strip)] *= 0.42
    shade *= _roof_pitch(strip)
    grain = strip.rng(_GRAIN_STREAM).standard_normal(classes.shape, dtype=np.float32)
    grain *= np.take(_PHOTO_GRAIN, material)
    for band in range(3):
        colour[band] = colour[band] * shade + grain
    return np.clip(colour + 0.5, 0, 255).astype(np.uint8)


def _shadows(strip: _Strip) -> NDArray[np.bool_]:
    """Pixels in the shadow of a building (sun from the south-west): (rows, W) bool.

    A pixel is shaded if a building ``s`` pixels to its south-west reaches further
    than ``s`` (its shadow length is proportional to its height); roofs are not shaded.
    """
    size = strip.scene.size
    rows = strip.stop - strip.start
    reach = _halo(strip, strip.scene.building_height, 0, _SHADOW_MAX)
    reach *= np.float32(_SHADOW_PER_METRE)
    shadow = np.zeros((rows, size), bool)
    for s in range(1, _SHADOW_MAX + 1):  # the source of pixel (r, c) is (r + s, c - s)
        shadow[:, s:] |= reach[s : s + rows, : size - s] >= s
    shadow &= strip.classes != _BUILDING
    return shadow


def _roof_pitch(strip: _Strip) -> Float32Array:
    """Shading factor of pitched roofs, ridge east-west: southern half lit. (rows, W).

    A building pixel is in the southern half when its run of building pixels to the
    north is longer than the run to the south. Tall buildings keep flat roofs.
    """
    reach = _DEPTH[1]
    building = strip.classes == _BUILDING
    halo = _halo(strip, strip.scene.classes == _BUILDING, reach, reach)
    rows = building.shape[0]
    north = np.zeros(building.shape, np.int16)
    south = np.zeros(building.shape, np.int16)
    run_north, run_south = building.copy(), building.copy()
    for step in range(1, reach + 1):
        run_north &= halo[reach - step : reach - step + rows]
        run_south &= halo[reach + step : reach + step + rows]
        north += run_north
        south += run_south
    pitched = building & (strip.scene.building_height[strip.rows] <= 18.0)
    factor = np.ones(building.shape, np.float32)
    factor[pitched & (north > south)] = 1.12
    factor[pitched & (north < south)] = 0.88
    return factor


def _halo(strip: _Strip, array: NDArray[Any], above: int, below: int) -> NDArray[Any]:
    """Rows ``start - above .. stop + below`` of a full-size array, zero beyond the edges."""
    size = strip.scene.size
    out = np.zeros((strip.stop - strip.start + above + below, *array.shape[1:]), array.dtype)
    low, high = max(strip.start - above, 0), min(strip.stop + below, size)
    offset = low - (strip.start - above)
    out[offset : offset + high - low] = array[low:high]
    return out


def _render_dsm(strip: _Strip) -> Float32Array:
    """Surface heights in metres: terrain, buildings and tree canopy. (1, rows, W).

    Canopy height follows the same crown texture as the photo, so the surfaces line up;
    the void rectangles are set to :data:`DSM_NODATA`.
    """
    classes = strip.classes
    dsm = strip.scene.elevation[strip.rows] + strip.scene.building_height[strip.rows]
    trees = classes == _VEGETATION
    canopy = (
        12.0
        + 4.0 * strip.upsample(strip.textures.crowns)
        + 3.0 * strip.upsample(strip.textures.tone)
    )
    dsm[trees] += np.clip(canopy[trees], 2.0, 30.0)
    for rows, columns in _dsm_voids(strip.scene):
        low, high = max(rows.start, strip.start), min(rows.stop, strip.stop)
        if low < high:
            dsm[low - strip.start : high - strip.start, columns] = DSM_NODATA
    return dsm[None].astype(np.float32)


def _dsm_voids(scene: Scene) -> list[tuple[slice, slice]]:
    """Nodata rectangles of the DSM: a strip along the western edge and a few holes.

    Together they cover about 1 % of the scene, enough to exercise nodata handling.
    Drawn from their own seeded stream, so they are the same for every strip.
    """
    rng = np.random.default_rng([scene.seed, _VOID_STREAM])
    size = scene.size
    voids = [(slice(0, size // 3), slice(0, max(size // 128, 1)))]  # an edge of the swath
    for _ in range(4):
        height, width = (int(v) for v in rng.integers(size // 40, size // 20 + 1, 2))
        row, column = (int(v) for v in rng.integers(0, size - max(height, width), 2))
        voids.append((slice(row, row + height), slice(column, column + width)))
    return voids


def _render_sar(strip: _Strip) -> Float32Array:
    """SAR backscatter (VV-like) in dB with speckle, radar looking from the west.

    Each class has a mean backscatter; slopes facing the radar are brighter;
    building walls facing it add a double-bounce line and buildings cast radar
    shadow eastwards. Speckle is multiplicative: the intensity is scaled by a gamma
    variate of :data:`_SAR_LOOKS` looks before conversion to dB.

    Returns:
        (1, rows, W) float32 dB, clipped to [-35, 20].
    """
    classes = strip.classes
    db = _SAR_DB[classes]
    db += np.where(classes == _VEGETATION, 1.5 * strip.upsample(strip.textures.crowns), 0.0).astype(
        np.float32
    )
    db += np.where(classes == _LAND, 2.5 * strip.upsample(strip.textures.patches), 0.0).astype(
        np.float32
    )
    _, d_column = strip.gradient(strip.scene.elevation)
    db -= np.clip(d_column, -1, 1) * np.float32(10.0)  # facing the radar (west): brighter

    building = classes == _BUILDING
    facing = building.copy()
    facing[:, 1:] &= ~building[:, :-1]  # the western wall of each building
    db[facing] += 10.0
    height = strip.scene.building_height[strip.rows]
    shadow = np.zeros_like(building)
    for s in range(1, 5):
        shadow[:, s:] |= height[:, :-s] * np.float32(0.2) >= s
    db[shadow & ~building] -= 8.0

    looks = strip.rng(_SPECKLE_STREAM).gamma(_SAR_LOOKS, 1.0 / _SAR_LOOKS, classes.shape)
    db += (10.0 * np.log10(looks)).astype(np.float32)
    return np.clip(db, -35.0, 20.0)[None].astype(np.float32)


# --------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class _Layer:
    """One raster of a pair: how it is rendered, what it holds and how it is stored."""

    role: str
    render: Callable[[_Strip], NDArray[Any]]  # (bands, rows, W) for a strip
    descriptions: tuple[str, ...]
    dtype: str
    nodata: float | None = None
    units: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


_RGB = ("red", "green", "blue")
_PHOTO = _Layer("target", _render_photo, _RGB, "uint8")
_LAYERS: dict[str, tuple[_Layer, _Layer]] = {
    "sat-map": (
        _Layer("input", _render_photo, _RGB, "uint8"),
        _Layer("target", _render_map, _RGB, "uint8", tags={PALETTE_TAG: json.dumps(MAP_PALETTE)}),
    ),
    "dsm-imagery": (
        _Layer("input", _render_dsm, ("elevation",), "float32", DSM_NODATA, units="metre"),
        _PHOTO,
    ),
    "sar-optical": (_Layer("input", _render_sar, ("VV",), "float32", units="dB"), _PHOTO),
}


def _transform(scene: Scene, kind: str) -> Affine:
    """A north-up UTM 33N geotransform whose origin moves with the seed."""
    x0 = 400_000.0 + 5_000.0 * (scene.seed % 40)
    y0 = 5_000_000.0 - 5_000.0 * ((scene.seed // 40) % 40)
    pixel = PIXEL_SIZE[kind]
    return Affine(pixel, 0.0, x0, 0.0, -pixel, y0)


def _profile(scene: Scene, kind: str, layer: _Layer) -> dict[str, Any]:
    block = next(b for b in (256, 128, 64, 32, 16) if b <= scene.size)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": scene.size,
        "height": scene.size,
        "count": len(layer.descriptions),
        "dtype": layer.dtype,
        "crs": CRS.from_epsg(_EPSG),
        "transform": _transform(scene, kind),
        "nodata": layer.nodata,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "compress": "deflate",
        "predictor": 3 if layer.dtype == "float32" else 2,
        "num_threads": "ALL_CPUS",
        "bigtiff": "IF_SAFER",
    }
    if layer.descriptions == _RGB:
        profile["photometric"] = "RGB"
    return profile


def _write_pair(scene: Scene, pair: SamplePair) -> None:
    """Render a scene into the two files of a pair, strip by strip.

    Files are written under temporary names in the output folder and renamed over the
    final names only once both are complete.
    """
    out_dir = pair.input_path.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"Cannot create the output folder {out_dir}: {error}.") from error
    layers = _LAYERS[pair.kind]
    finals = (pair.input_path, pair.target_path)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    temporaries = [final.with_name(f".{final.stem}.{token}.tmp.tif") for final in finals]
    try:
        tags = {"GEOGAN_KIND": pair.kind, "GEOGAN_SEED": str(scene.seed)}
        with (
            rasterio.open(temporaries[0], "w", **_profile(scene, pair.kind, layers[0])) as a,
            rasterio.open(temporaries[1], "w", **_profile(scene, pair.kind, layers[1])) as b,
        ):
            for dataset, layer in ((a, layers[0]), (b, layers[1])):
                for band, description in enumerate(layer.descriptions, start=1):
                    dataset.set_band_description(band, description)
                if layer.units is not None:
                    dataset.units = (layer.units,)
                dataset.update_tags(
                    **tags,
                    GEOGAN_ROLE=layer.role,
                    TIFFTAG_SOFTWARE=f"geogan {__version__} (geogan.sampledata.world)",
                    **layer.tags,
                )
            for strip in _strips(scene):
                window = Window(0, strip.start, scene.size, strip.stop - strip.start)
                a.write(layers[0].render(strip), window=window)
                b.write(layers[1].render(strip), window=window)
        for temporary, final in zip(temporaries, finals, strict=True):
            os.replace(temporary, final)
    except (OSError, RasterioError) as error:
        raise OutputError(f"Cannot write {pair.kind} pair into {out_dir}: {error}.") from error
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
