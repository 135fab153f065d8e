"""``translate``: scenes of any size through a trained model, into georeferenced GeoTIFFs.

:func:`translate_raster` translates one scene; :func:`translate_scene` is one scene of a
batch (:mod:`geogan.inference.batch`, here or on a Dask worker), on its own or within a
mosaic of its neighbours (:class:`Neighbourhood`). This module decides what is read and
where the windows go (the lattice, :mod:`geogan.grids.windows`), checks the scene against
what the model was trained on (:mod:`geogan.inference.scene_checks`) and sharpens a scene
softer than its chips (:mod:`geogan.inference.scene_sharpness`), and runs the
streaming pipeline (:mod:`geogan.inference.pipeline`) into the output file
(:mod:`geogan.inference.output_file`) under a temporary name, renamed when complete: at
the model's pixel size and back with ``resample`` (:mod:`geogan.inference.resample`),
then optionally copied into a Cloud Optimised GeoTIFF.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
import torch
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile
from rasterio.windows import Window

from geogan.errors import ConfigError, GeoganError, GeoganWarning, InputError, OutputError
from geogan.grids.windows import LatticeRecord, check_window_options
from geogan.inference.options import (
    ADAPT_WINDOWS,
    BatchReport,
    SceneOutcome,
    TranslateOptions,
    TranslateReport,
)
from geogan.inference.output_file import (
    block_cache_bytes,
    check_blocks_written,
    describe,
    gdal_env,
    gdal_messages,
    open_output,
    output_bands,
    output_profile,
    write_cog,
)
from geogan.inference.pipeline import Pipeline
from geogan.inference.resample import (
    back_resampling,
    model_grid_profile,
    resampled_read,
    warp_back,
)
from geogan.inference.scene_checks import check_scene
from geogan.inference.scene_norms import adapted_share, sample_windows, scene_statistics
from geogan.inference.scene_read import SceneRead
from geogan.inference.scene_sharpness import decide_sharpening
from geogan.inference.translator import Translator, load_model
from geogan.outputs import atomic_file, check_output_file
from geogan.progress import ProgressCallback
from geogan.raster.io import bands_to_read, grid_origin, open_raster, select_bands_command

__all__ = ["BatchReport", "Neighbourhood", "SceneOutcome", "TranslateOptions",
           "TranslateReport", "translate_raster", "translate_scene", "translator_for"]


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
        **options: Fields of :class:`~geogan.inference.options.TranslateOptions`.

    Returns:
        What was written.

    Raises:
        InputError: If ``src`` cannot be read or does not fit the model (band count), or
            an option is out of range (:class:`~geogan.errors.ConfigError`).
        SceneMismatchError: With ``strict``, if the scene's pixel size or values are far
            from the training chips' (nothing is written).
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
                    progress: ProgressCallback | None = None,
                    within: Neighbourhood | None = None) -> SceneOutcome:
    """One scene of a batch, here or on a cluster's worker: skipped when its output
    exists (and ``overwrite`` is off), failed with the error's message, or done.
    ``within``: the scene's place in a mosaic of its batch (``--mosaic``)."""
    if _same_file(source, output):
        return SceneOutcome(source, output, "failed", f"the output {output} is the scene "
                            "itself; choose another --out-dir")
    if output.exists() and not settings.overwrite:
        return SceneOutcome(source, output, "skipped", "output exists")
    try:
        report = _translate(source, output, translator, settings, progress, within)
    except GeoganError as error:
        return SceneOutcome(source, output, "failed", str(error))
    return SceneOutcome(source, output, "done", report=report)


def translator_for(model: str | os.PathLike[str] | Translator,
                   settings: TranslateOptions) -> Translator:
    """``model`` loaded as ``settings`` ask (or checked against them, if loaded)."""
    if not isinstance(model, Translator):
        return load_model(model, direction=settings.direction, device=settings.device,
                          precision=settings.precision, tta=settings.tta, output=settings.output,
                          unsure_blur=settings.blur_to_load, unsure_below=settings.unsure_below)
    if settings.direction != model.direction:
        raise ConfigError(f"the translator was loaded for {model.direction}, not "
                          f"{settings.direction}; load the model again with "
                          f"direction={settings.direction!r}")
    if settings.tta not in (None, model.tta) or settings.output not in ("auto", model.output) or \
            settings.unsure_blur not in (None, model.unsure_blur) or \
            settings.unsure_below not in (None, model.unsure_below):
        raise ConfigError(f"the translator was loaded with tta={model.tta}, output="
                          f"{model.output!r}, unsure_blur={model.unsure_blur} and unsure_below="
                          f"{model.unsure_below}; load the model again with the options wanted")
    return model


@dataclass(frozen=True)
class Neighbourhood:
    """Where a scene of a ``--mosaic`` batch lies among its neighbours on one pixel grid
    (:func:`geogan.raster.neighbours.plan_neighbourhoods`): plain values, so that it
    travels to a cluster's workers.

    Attributes:
        vrt: VRT XML of the scene and its neighbours, read from memory (``/vsimem``).
        region: ``(row_off, col_off, height, width)`` of the part of it the windows are
            laid over: the scene and a margin around it (pixels of the VRT).
        crop: The scene within ``region``, likewise (region pixels).
    """

    vrt: str
    region: tuple[int, int, int, int]
    crop: tuple[int, int, int, int]


def _translate(source: str, output: Path, translator: Translator, settings: TranslateOptions,
               progress: ProgressCallback | None,
               within: Neighbourhood | None = None) -> TranslateReport:
    if within is None:
        return _translate_read(source, output, translator, settings, progress, None)
    with MemoryFile(within.vrt.encode(), ext=".vrt") as memory:
        return _translate_read(source, output, translator, settings, progress,
                               (memory.name, within))


def _translate_read(source: str, output: Path, translator: Translator,
                    settings: TranslateOptions, progress: ProgressCallback | None,
                    within: tuple[str, Neighbourhood] | None) -> TranslateReport:
    start = time.perf_counter()
    overlap = settings.overlap_for(translator)
    check_window_options(translator.tile_size, overlap, settings.blend)
    check_output_file(output, settings.overwrite)
    if _same_file(source, output):
        raise InputError(f"the output {output} is the scene itself; choose another name")
    if settings.adapt_norm and not translator.has_batch_norm:
        raise ConfigError("--adapt-norm needs a generator with BatchNorm (a Pix2Pix U-Net); "
                          "this one's instance norm already takes each window's statistics")
    if settings.samples >= 2 and not translator.has_dropout:
        raise ConfigError("--samples needs a generator with dropout (train one with "
                          "--dropout 0.5, or --preset paper); this model has none, so "
                          "every sample would be the same")
    with open_raster(source, georeferenced=False) as dataset:
        bands = _model_bands(dataset, source, translator)
        if dataset.crs is None:
            warnings.warn(f"{source} has no CRS; its output will have none either",
                          GeoganWarning, stacklevel=2)
        checks = check_scene(dataset, source, bands, translator, settings,
                             mosaic=within is not None)
        bands_out = output_bands(dataset, translator, settings)
        profile = output_profile(dataset, translator, settings, bands_out)
        cache_bytes = block_cache_bytes(dataset, profile)
        if checks.resolution.resample_grid is not None:
            read, lattice = resampled_read(dataset, source, checks.resolution.resample_grid,
                                           checks.resampling, settings)
        elif within is not None:
            read = SceneRead(within[0], _window(within[1].region), _window(within[1].crop))
            lattice = _mosaic_lattice(read)
        else:
            read = SceneRead.whole(source, dataset.height, dataset.width)
            lattice = scene_lattice(dataset, settings.lattice)
    grid = lattice.window_grid(translator.tile_size, overlap, settings.blend)
    tags = {"LATTICE": lattice.to_tag(), **checks.tags()}
    pipeline = Pipeline(read, bands, None, grid, translator, bands_out,
                        batch_size=settings.batch_size_for(translator), samples=settings.samples,
                        progress=progress)
    sharpening = decide_sharpening(pipeline, translator, settings.sharpen,
                                   mosaic=within is not None)
    pipeline.window_filter = sharpening.window_filter
    tags.update(sharpening.tags())
    with atomic_file(output) as temporary, rasterio.Env(**gdal_env(cache_bytes)):
        written = temporary.with_name(temporary.name + ".gtiff") if settings.cog else temporary
        between = temporary.with_name(temporary.name + ".model-grid.tif")
        try:
            if read.warp is None:
                with open_output(written, output, profile) as out:
                    adapted = _run(pipeline, out, translator, settings, checks.adapt_prior)
                    tags.update(adapted.tags())
                    describe(out, translator, settings, source, tags)
            else:  # at the model's pixel size, then back onto the scene's grid
                with open_output(between, output, model_grid_profile(profile, read)) as out:
                    adapted = _run(pipeline, out, translator, settings, checks.adapt_prior)
                tags.update(adapted.tags())
                with open_output(written, output, profile) as out:
                    warp_back(between, out, source, bands, bands_out,
                              back_resampling(translator, settings))
                    describe(out, translator, settings, source, tags)
            if settings.cog:
                with gdal_messages() as messages:
                    write_cog(written, temporary, settings)
                check_blocks_written(temporary, output, messages)
        except RasterioError as error:
            raise OutputError(f"cannot write {output}: {error}") from None
        finally:
            between.unlink(missing_ok=True)
            if settings.cog:
                written.unlink(missing_ok=True)
    return TranslateReport(
        source=source, output=output, width=profile["width"], height=profile["height"],
        bands=profile["count"], dtype=profile["dtype"], windows=len(grid),
        windows_run=pipeline.windows_run, seconds=time.perf_counter() - start,
        device=str(translator.device), precision=translator.precision,
        resampled=checks.resolution.summary(checks.resampling), adapted=adapted.summary(),
        sharpened=sharpening.summary())


@dataclass(frozen=True)
class Adaptation:
    """How many windows of the scene BatchNorm's averages were taken from, against a
    prior of how many (None: they were not)."""

    windows: int | None = None
    prior: int = 0

    @property
    def share(self) -> float:
        """How far the averages moved from the model file's to the windows'."""
        return 0.0 if self.windows is None else adapted_share(self.windows, self.prior)

    def tags(self) -> dict[str, str]:
        """The output's ``GEOGAN_ADAPT_NORM`` tag, when the averages were adapted."""
        if self.windows is None:
            return {}
        return {"ADAPT_NORM": json.dumps({"windows": self.windows, "prior": self.prior,
                                          "share": round(self.share, 4)})}

    def summary(self) -> str:
        """For the report: ``BatchNorm's averages 36 % of the way to those of 9 windows
        of the scene``; ``""`` when not adapted."""
        if not self.windows:
            return ""
        way = "" if self.prior == 0 else f" {self.share * 100:.0f} % of the way"
        return f"BatchNorm's averages{way} to those of {self.windows} windows of the scene"


def _run(pipeline: Pipeline, out: Any, translator: Translator, settings: TranslateOptions,
         adapt_prior: int | None) -> Adaptation:
    """The pipeline into ``out``, with the dropout draws of ``--samples`` seeded and, with
    an ``adapt_prior``, BatchNorm's statistics taken from the scene."""
    pipeline.output = out
    adapting = (contextlib.nullcontext() if adapt_prior is None else scene_statistics(
        translator, sample_windows(pipeline, ADAPT_WINDOWS), prior=adapt_prior))
    with adapting as count, _dropout_rng(translator, settings.seed):
        pipeline.run()
    return Adaptation(count, adapt_prior or 0)


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
    bands = bands_to_read(dataset, translator.in_bands)
    if bands is None:
        raise InputError(f"{source} has {dataset.count} band(s) but the model reads "
                         f"{translator.in_bands}; give a scene of the kind it was trained on "
                         "(select its bands first, e.g. "
                         f"`{select_bands_command(source, translator.in_bands)}`)")
    return bands



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




def _window(box: tuple[int, int, int, int]) -> Window:
    """A ``(row_off, col_off, height, width)`` box as a rasterio window."""
    return Window(box[1], box[0], box[3], box[2])


def _mosaic_lattice(read: SceneRead) -> LatticeRecord:
    """The lattice over the region of a mosaic a scene is translated within: the grid
    lattice of the mosaic (whatever ``lattice`` asks: the tiles of a mosaic are north-up
    with a CRS), so that every scene of it has the whole mosaic's windows."""
    region, crop = read.region, read.crop
    with rasterio.open(read.path) as mosaic:
        whole = scene_lattice(mosaic, "grid")
    anchor = None if whole.anchor is None else (whole.anchor[0] + int(region.row_off),
                                                 whole.anchor[1] + int(region.col_off))
    return LatticeRecord(whole.lattice, whole.why, anchor, (int(crop.row_off),
                                                            int(crop.col_off)),
                         (int(region.height), int(region.width)))
