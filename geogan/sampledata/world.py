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

Rendering and writing are :mod:`geogan.sampledata.render`. The package needs numpy and
rasterio only: no torch, no click, no printing. Errors are
those of :mod:`geogan.errors`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from geogan.errors import InputError

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
palette as JSON in its ``GEOGAN_PALETTE`` tag (see
:func:`geogan.raster.palette.palette_from_tags`).
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


# Roof styles: photo colours (RGB) of the building classes' roofs, one per style.
_ROOF_COLOURS = [
    (168, 164, 158),
    (118, 116, 116),
    (146, 74, 60),
    (172, 100, 80),
    (86, 86, 90),
    (204, 200, 192),
    (130, 120, 104),
]


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < MIN_SIZE:
        raise InputError(f"Size must be an integer of at least {MIN_SIZE} pixels, got {size!r}.")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"Seed must be a non-negative integer, got {seed!r}.")
