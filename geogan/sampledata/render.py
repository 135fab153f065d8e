"""Rendering the procedural world into raster pairs, and writing them as GeoTIFFs.

:func:`write_sample_pair` and :func:`write_sample_pairs` render a
:class:`~geogan.sampledata.world.Scene` (see :func:`~geogan.sampledata.world.generate_scene`)
into the two domains of each kind, strip by strip, on one georeferenced grid. What the
kinds are is described in :mod:`geogan.sampledata.world`.
"""

from __future__ import annotations

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
from geogan.sampledata.world import (
    _BUILDING,
    _DEPTH,
    _EPSG,
    _GRAIN_STREAM,
    _LAND,
    _NEIGHBOURHOOD,
    _ROOF_COLOURS,
    _SPECKLE_STREAM,
    _STRIP,
    _TALLEST,
    _TEXTURE_STREAM,
    _VEGETATION,
    _VOID_STREAM,
    _WATER,
    DSM_NODATA,
    FILE_NAMES,
    KINDS,
    MAP_PALETTE,
    PIXEL_SIZE,
    Float32Array,
    SamplePair,
    Scene,
    UInt8Array,
    _check_seed,
    _check_size,
    _noise,
    _sigmoid,
    _upsample,
    generate_scene,
)
from geogan.version import __version__

__all__ = ["write_sample_pair", "write_sample_pairs"]


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
# Rendering


# Photo materials: the classes in class order, then one per roof style in place of
# "building". Each has two RGB colours that a texture mixes per pixel (see
# _render_photo), and a grain: the standard deviation of pixel noise in grey levels.
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
                    # The generator's name as sample data has always carried it (the
                    # bytes of regenerated sample data stay the same across the move).
                    TIFFTAG_SOFTWARE=f"geogan {__version__} (geogan.synthetic)",
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
