"""``translate``: scenes of any size through a trained model, into georeferenced GeoTIFFs.

:func:`translate_raster` translates one scene; :func:`translate_scene` is one scene of a
batch (:mod:`geogan.inference.batch`, here or on a Dask worker).
The windows and their blending are :mod:`geogan.grids.windows`; the streaming pipeline is
:mod:`geogan.inference.pipeline`. This module decides what is written: the output profile (the
input's grid, the model's bands and dtype), nodata, band names, provenance tags, the
temporary file and its rename, and the optional Cloud Optimised GeoTIFF.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import torch
from rasterio.enums import ColorInterp, Interleaving, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from geogan.errors import ConfigError, GeoganError, GeoganWarning, InputError, OutputError
from geogan.grids.windows import (
    BLENDS,
    LATTICES,
    LatticeRecord,
    check_window_options,
    default_overlap,
)
from geogan.inference.pipeline import OutputBands, Pipeline
from geogan.inference.translator import Translator, load_model
from geogan.nn.config import OUTPUTS
from geogan.nn.model_file import MODEL_FORMAT, MODEL_VERSION
from geogan.outputs import atomic_file, check_output_file
from geogan.progress import ProgressCallback
from geogan.raster.io import grid_origin, open_raster
from geogan.version import __version__

logger = logging.getLogger(__name__)

#: GDAL block cache while translating, unless GDAL_CACHEMAX is set: enough for a few
#: block rows of a wide output, and a bound on memory whatever the scene's height.
GDAL_CACHE_BYTES = 256 * 2**20

#: Output tags (default metadata domain) that say where the raster came from.
TAG_PREFIX = "GEOGAN_"


@dataclass(frozen=True)
class TranslateOptions:
    """How to translate. Defaults suit a large scene on whatever device is present."""

    overlap: int | None = None  # pixels neighbouring windows share; None = a quarter tile
    blend: str = BLENDS[0]  # cosine, linear or none (centre crop)
    batch_size: int = 8  # windows per generator call
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    precision: str = "auto"  # auto (fastest exact enough), fp32, bf16 or fp16
    direction: str = "a2b"  # b2a translates a CycleGAN model's target domain back
    samples: int = 1  # >= 2: passes with dropout on; writes their mean and a spread band
    seed: int = 0  # seeds the dropout draws of --samples
    creation_options: Mapping[str, Any] = field(default_factory=dict)  # GDAL, e.g. ZLEVEL
    cog: bool = False  # write a Cloud Optimised GeoTIFF with overviews
    overwrite: bool = False  # replace an existing output
    tta: bool = False  # average the 8 flips and rotations of every window (8 x the work)
    output: str = "auto"  # image, palette or classes (models with a class head); auto
    lattice: str = LATTICES[0]  # grid: windows anchored to the CRS's pixel grid; scene

    def check(self) -> None:
        """Raise :class:`ConfigError` for values that cannot work (before any work)."""
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, not {self.batch_size}")
        if self.samples < 1:
            raise ConfigError(f"samples must be at least 1, not {self.samples}")
        if self.blend not in BLENDS:
            raise ConfigError(f"unknown blend {self.blend!r}; use one of {', '.join(BLENDS)}")
        if self.output not in OUTPUTS:
            raise ConfigError(f"unknown output {self.output!r}; use one of {', '.join(OUTPUTS)}")
        if self.lattice not in LATTICES:
            raise ConfigError(f"unknown lattice {self.lattice!r}; use one of "
                              f"{', '.join(LATTICES)}")

    def record(self, translator: Translator) -> dict[str, Any]:
        """The options as they were applied, for the output's provenance tag."""
        values = asdict(self)
        values.pop("overwrite")
        values["creation_options"] = dict(self.creation_options)
        values.update(overlap=self.overlap_for(translator), device=str(translator.device),
                      precision=translator.precision, direction=translator.direction,
                      output=translator.output, tta=translator.tta)
        return values

    def overlap_for(self, translator: Translator) -> int:
        """The overlap in pixels for ``translator``'s tile size."""
        if self.overlap is None:
            return default_overlap(translator.tile_size)
        return self.overlap


@dataclass(frozen=True)
class TranslateReport:
    """What one scene's translation wrote."""

    source: str
    output: Path
    width: int
    height: int
    bands: int
    dtype: str
    windows: int  # windows laid over the scene
    windows_run: int  # windows the generator ran (the others held no valid pixel)
    seconds: float
    device: str
    precision: str


@dataclass(frozen=True)
class SceneOutcome:
    """One scene of a batch: ``done``, ``skipped`` (output existed) or ``failed``."""

    source: str
    output: Path
    status: str
    message: str = ""
    report: TranslateReport | None = None
    worker: str = ""
    """The Dask worker that translated it (on a cluster)."""


@dataclass(frozen=True)
class BatchReport:
    """Every scene of a batch, in the order given."""

    outcomes: tuple[SceneOutcome, ...]
    seconds: float

    def count(self, status: str) -> int:
        """Number of scenes with ``status``."""
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def failures(self) -> list[SceneOutcome]:
        """The scenes that failed."""
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]


def translate_raster(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                     model: str | os.PathLike[str] | Translator, *,
                     progress: ProgressCallback | None = None,
                     **options: Any) -> TranslateReport:
    """Translate the raster ``src`` into the GeoTIFF ``dst`` with ``model``.

    The output has ``src``'s CRS, transform, width and height, and the model's output
    bands and data type; pixels that are nodata in ``src`` are nodata in ``dst``. It is
    written under a temporary name and renamed when complete.

    Args:
        src: The scene: any raster GDAL reads, with the bands the model was trained on.
        dst: The GeoTIFF to write.
        model: A model file, or a :class:`~geogan.inference.translator.Translator` already loaded
            (then ``device``, ``precision`` and ``direction`` are the translator's).
        progress: Called with (windows done, windows in all).
        **options: Fields of :class:`TranslateOptions`.

    Returns:
        What was written.

    Raises:
        InputError: If ``src`` cannot be read or does not fit the model (band count), or
            an option is out of range (:class:`~geogan.errors.ConfigError`).
        ModelFileError: If the model file is missing or damaged.
        OutputExistsError: If ``dst`` exists and ``overwrite`` is false.
        OutputError: If ``dst`` cannot be written.
    """
    settings = TranslateOptions(**options)
    settings.check()
    translator = translator_for(model, settings)
    return _translate(os.fspath(src), Path(dst), translator, settings, progress)


def translate_scene(source: str, output: Path, translator: Translator,
                    settings: TranslateOptions,
                    progress: ProgressCallback | None = None) -> SceneOutcome:
    """One scene of a batch, here or on a cluster's worker: skipped when its output
    exists (and ``overwrite`` is off), failed with the error's message, or done."""
    if _same_file(source, output):
        return SceneOutcome(source, output, "failed", f"the output {output} is the scene "
                            "itself; choose another --out-dir")
    if output.exists() and not settings.overwrite:
        return SceneOutcome(source, output, "skipped", "output exists")
    try:
        report = _translate(source, output, translator, settings, progress)
    except GeoganError as error:
        return SceneOutcome(source, output, "failed", str(error))
    return SceneOutcome(source, output, "done", report=report)


def translator_for(model: str | os.PathLike[str] | Translator,
                   settings: TranslateOptions) -> Translator:
    """``model`` loaded as ``settings`` ask (or checked against them, if loaded)."""
    if not isinstance(model, Translator):
        return load_model(model, direction=settings.direction, device=settings.device,
                          precision=settings.precision, tta=settings.tta, output=settings.output)
    if settings.direction != model.direction:
        raise ConfigError(f"the translator was loaded for {model.direction}, not "
                          f"{settings.direction}; load the model again with "
                          f"direction={settings.direction!r}")
    if settings.tta != model.tta or settings.output not in ("auto", model.output):
        raise ConfigError(f"the translator was loaded with tta={model.tta} and output="
                          f"{model.output!r}; load the model again with the options wanted")
    return model


def _translate(source: str, output: Path, translator: Translator, settings: TranslateOptions,
               progress: ProgressCallback | None) -> TranslateReport:
    start = time.perf_counter()
    overlap = settings.overlap_for(translator)
    check_window_options(translator.tile_size, overlap, settings.blend)
    check_output_file(output, settings.overwrite)
    if _same_file(source, output):
        raise InputError(f"the output {output} is the scene itself; choose another name")
    if settings.samples >= 2 and not translator.has_dropout:
        raise ConfigError("--samples needs a generator with dropout (Pix2Pix has it); "
                          "this model has none, so every sample would be the same")
    with open_raster(source, georeferenced=False) as dataset:
        bands = _model_bands(dataset, source, translator)
        if dataset.crs is None:
            warnings.warn(f"{source} has no CRS; its output will have none either",
                          GeoganWarning, stacklevel=2)
        if dataset.dtypes[0] != translator.input_normalization.dtype:
            warnings.warn(f"{source} is {dataset.dtypes[0]} but the model was trained on "
                          f"{translator.input_normalization.dtype} rasters; its values are "
                          "mapped with the training statistics all the same", GeoganWarning,
                          stacklevel=2)
        lattice = scene_lattice(dataset, settings.lattice)
        grid = lattice.window_grid(translator.tile_size, overlap, settings.blend)
        bands_out = _output_bands(dataset, translator, settings)
        profile = _profile(dataset, translator, settings, bands_out)
    pipeline: Pipeline | None = None
    env: dict[str, Any] = {"GDAL_TIFF_INTERNAL_MASK": True}
    if "GDAL_CACHEMAX" not in os.environ:
        env["GDAL_CACHEMAX"] = GDAL_CACHE_BYTES
    with atomic_file(output) as temporary, rasterio.Env(**env):
        written = temporary.with_name(temporary.name + ".gtiff") if settings.cog else temporary
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                out = rasterio.open(written, "w", **profile)
            try:
                pipeline = Pipeline(source, bands, out, grid, translator, bands_out,
                                    batch_size=settings.batch_size, samples=settings.samples,
                                    progress=progress)
                with _dropout_rng(translator, settings.seed):
                    pipeline.run()
                _describe(out, translator, settings, source, lattice)
            finally:
                with gdal_messages() as messages:  # the last blocks are written here
                    out.close()
            check_blocks_written(written, output, messages)
            if settings.cog:
                with gdal_messages() as messages:
                    _write_cog(written, temporary, settings)
                check_blocks_written(temporary, output, messages)
        except RasterioError as error:
            raise OutputError(f"cannot write {output}: {error}") from None
        finally:
            if settings.cog:
                written.unlink(missing_ok=True)
    return TranslateReport(
        source=source, output=output, width=grid.width, height=grid.height,
        bands=profile["count"], dtype=profile["dtype"], windows=len(grid),
        windows_run=pipeline.windows_run, seconds=time.perf_counter() - start,
        device=str(translator.device), precision=translator.precision)


@contextlib.contextmanager
def _dropout_rng(translator: Translator, seed: int) -> Iterator[None]:
    """Seed the dropout draws of ``--samples`` without touching the caller's RNG state."""
    device = translator.device
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _same_file(source: str, output: Path) -> bool:
    try:
        return output.exists() and Path(source).samefile(output)
    except OSError:
        return False


def _model_bands(dataset: Any, source: str, translator: Translator) -> list[int]:
    """The 1-based bands to read: all of them, or all but an alpha band when that makes
    the count the model's.

    Raises:
        InputError: If the band count does not match the model's.
    """
    bands = list(range(1, dataset.count + 1))
    if len(bands) != translator.in_bands:
        colour = [b for b in bands if dataset.colorinterp[b - 1] != ColorInterp.alpha]
        if len(colour) == translator.in_bands:
            return colour
        raise InputError(f"{source} has {dataset.count} band(s) but the model reads "
                         f"{translator.in_bands}; give a scene of the kind it was trained on "
                         "(select bands first, e.g. with `rio convert --bidx`)")
    return bands


def _output_bands(dataset: Any, translator: Translator, settings: TranslateOptions) -> OutputBands:
    """How invalid input pixels are marked in the output, and whether it has a spread band.

    The target domain's nodata value when it had one; else NaN for float outputs and
    a dataset mask for integer outputs, but only when the scene can hold invalid pixels
    at all (a nodata value, a mask or alpha band, or a float type that may hold NaN).
    """
    flags = dataset.mask_flag_enums
    may_be_invalid = (dataset.nodata is not None or dataset.dtypes[0].startswith("float")
                      or any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags))
    uncertainty = settings.samples >= 2
    nodata = translator.output_nodata
    if nodata is not None:
        return OutputBands(nodata, mask=False, uncertainty=uncertainty)
    if not may_be_invalid:
        return OutputBands(None, mask=False, uncertainty=uncertainty)
    if np.dtype(translator.output_dtype).kind == "f":
        return OutputBands(math.nan, mask=False, uncertainty=uncertainty)
    return OutputBands(None, mask=True, uncertainty=uncertainty)


def _profile(dataset: Any, translator: Translator, settings: TranslateOptions,
             bands_out: OutputBands) -> dict[str, Any]:
    """The output's profile: the scene's grid, the model's bands, a tiled compressed
    GeoTIFF; ``--co`` options win."""
    dtype = translator.output_dtype
    count = translator.out_bands + int(bands_out.uncertainty)
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": dataset.width, "height": dataset.height,
        "count": count, "dtype": dtype, "crs": dataset.crs, "transform": dataset.transform,
        "nodata": bands_out.nodata, "tiled": True, "blockxsize": 256, "blockysize": 256,
        "compress": "deflate", "predictor": 3 if np.dtype(dtype).kind == "f" else 2,
        "interleave": "pixel", "bigtiff": "if_safer",
    }
    if not settings.cog:  # with --cog, --co is for the COG driver (see _write_cog)
        profile.update({k.lower(): v for k, v in settings.creation_options.items()})
    if str(profile["compress"]).lower() == "deflate":
        # Level 1 compresses a 2048 x 256 RGB block row in 6 ms instead of 33 ms at GDAL's
        # default 6, for files about 15 % larger: it keeps the writer off the generator's
        # cores. --co ZLEVEL=6 (or COMPRESS=ZSTD) chooses otherwise.
        profile.setdefault("zlevel", 1)
    if count == 3 and dtype == "uint8" and profile.get("compress") != "jpeg":
        profile.setdefault("photometric", "rgb")
    return profile


def scene_lattice(dataset: Any, lattice: str) -> LatticeRecord:
    """Where the windows go over the whole of ``dataset``: the ``grid`` lattice when asked
    and the scene is north-up with a CRS, else the ``scene`` lattice (and why)."""
    size = (dataset.height, dataset.width)
    origin = grid_origin(dataset)
    if lattice == "grid" and origin is not None:
        return LatticeRecord("grid", "crs", origin, (0, 0), size)
    transform = dataset.transform
    why = ("asked" if lattice != "grid" else "no crs" if dataset.crs is None
           else "rotated" if transform.b or transform.d else "no transform")
    return LatticeRecord("scene", why, None, (0, 0), size)


def _describe(out: Any, translator: Translator, settings: TranslateOptions, source: str,
              lattice: LatticeRecord) -> None:
    """Band names and provenance tags."""
    names = list(translator.output_descriptions)
    if settings.samples >= 2:
        names.append(f"uncertainty: per-pixel standard deviation of {settings.samples} samples")
    for band, name in enumerate(names, start=1):
        if name:
            out.set_band_description(band, name)
    model = translator.model
    tags = {
        "GENERATED": "yes: translated by a generative model (geogan), not measured",
        "MODEL": os.path.basename(model.path or "") or "unknown",
        "MODEL_SHA256": model.sha256 or "unknown",
        "MODEL_FORMAT": f"{MODEL_FORMAT} {MODEL_VERSION}",
        "MODEL_KIND": translator.architecture.kind,
        "VERSION": __version__,
        "SOURCE": os.path.basename(source),
        "TILE_SIZE": str(translator.tile_size),  # with OPTIONS: the windows (seam score)
        "OPTIONS": json.dumps(settings.record(translator), sort_keys=True),
        "LATTICE": lattice.to_tag(),  # where the windows lay (seam score)
    }
    palette = translator.palette
    if palette and translator.output == "palette":
        # evaluate --palette auto reads the classes from here.
        tags["PALETTE"] = json.dumps({k: [int(v) for v in c] for k, c in palette.items()})
    if palette and translator.output == "classes":
        tags["CLASSES"] = json.dumps(list(palette))
        if all(len(c) in (1, 3) and all(0 <= v <= 255 for v in c) for c in palette.values()):
            out.write_colormap(1, {i: (*_rgb(c), 255) for i, c in enumerate(palette.values())})
    out.update_tags(TIFFTAG_SOFTWARE=f"geogan {__version__}",
                    **{TAG_PREFIX + key: value for key, value in tags.items()})


def _rgb(colour: tuple[float, ...]) -> tuple[int, int, int]:
    """An RGB triple of a palette colour (grey for one band)."""
    r, g, b = (colour * 3)[:3] if len(colour) == 1 else colour[:3]
    return int(r), int(g), int(b)


@contextlib.contextmanager
def gdal_messages() -> Iterator[list[str]]:
    """Collect what GDAL's libtiff prints on the process's stderr (file descriptor 2)
    while the block runs: it reports failed writes there, not to the caller. The lines
    are in the yielded list once the block has run; :func:`check_blocks_written` puts
    the first in its error, and they are logged as warnings when nothing failed."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def check_blocks_written(path: Path, output: Path, messages: Sequence[str] = ()) -> None:
    """Raise :class:`OutputError` unless every block of the GeoTIFF ``path`` lies inside
    the file.

    GDAL reports some write failures (disk full, a file-size limit) only on its error
    stream while it closes a file, not to the caller, and leaves a truncated file; so the
    layout of what was written is read back before the file may replace ``output``.
    This reads the TIFF directory, not the pixels.
    """
    reason = f": {messages[0]}" if messages else " (disk full or a file-size limit?)"
    size = path.stat().st_size
    try:
        with rasterio.open(path) as written:
            bands = [1] if written.interleaving != Interleaving.band else written.indexes
            for band in bands:
                for (row, col), _ in written.block_windows(band):
                    offset = written.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=band)
                    length = written.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=band)
                    if int(offset or 0) + int(length or 0) > size:
                        raise OutputError(f"cannot write {output}: the file came out "
                                          f"truncated{reason}")
    except RasterioError:
        raise OutputError(f"cannot write {output}: the file came out unreadable"
                          f"{reason}") from None
    for message in messages:  # nothing failed: pass them on, as GDAL's other messages
        logger.warning("GDAL: %s", message)


def _write_cog(source: Path, target: Path, settings: TranslateOptions) -> None:
    """Copy the finished GeoTIFF into a Cloud Optimised GeoTIFF with overviews."""
    options: dict[str, Any] = {"compress": "deflate", "predictor": "yes", "bigtiff": "if_safer",
                               "overview_resampling": "average"}
    options.update({k.lower(): v for k, v in settings.creation_options.items()})
    rasterio.shutil.copy(source, target, driver="COG", **options)
