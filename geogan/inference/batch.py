"""Batches: many scenes with one model, here or on a Dask cluster.

:func:`translate_batch` translates each scene with :func:`geogan.inference.scene.translate_scene`,
skipping scenes already done and carrying on past failures; with ``cluster`` it hands the
scenes to :mod:`geogan.inference.cluster` (which imports the scene module, never this one).

With ``mosaic``, scenes on one pixel grid are translated as the mosaic they form
(:mod:`geogan.raster.neighbours`): each scene's windows lie on the mosaic's lattice and
read up to a tile of context from its neighbours, so the outputs, each on its own scene's
grid, are the whole mosaic's translation cut into the scenes' footprints, without seams
along the joins. Memory stays a scene's strip plus a tile on each side.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from geogan.errors import ConfigError, InputError
from geogan.inference.cluster import translate_on_cluster
from geogan.inference.scene import (
    BatchReport,
    Neighbourhood,
    SceneOutcome,
    TranslateOptions,
    translate_scene,
    translator_for,
)
from geogan.inference.translator import Translator, drawn_output
from geogan.inference.unsure_blur import blur_radius
from geogan.nn.model_file import read_model_file
from geogan.outputs import check_output_file
from geogan.progress import ProgressCallback
from geogan.raster.io import scene_stem
from geogan.raster.mosaic import scene_list
from geogan.raster.neighbours import plan_neighbourhoods

__all__ = ["BatchReport", "SceneOutcome", "output_names", "translate_batch"]


def translate_batch(scenes: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                    model: str | os.PathLike[str] | Translator, *,
                    progress: ProgressCallback | None = None,
                    scene_progress: ProgressCallback | None = None,
                    cluster: Any = None, mosaic: bool = False,
                    **options: Any) -> BatchReport:
    """Translate many scenes with one model into ``out_dir/<scene name>.tif``.

    Scenes whose output exists are skipped unless ``overwrite`` (so a rerun resumes
    where an interrupted batch stopped); a scene that fails is reported in its outcome
    and the others go on.

    Args:
        scenes: The scenes, translated in this order (on a cluster: in any order, and
            reported in this one): files, VRTs, URLs (``https://``, ``s3://``,
            ``/vsicurl/...``), ``@list.txt`` files of them (one a line) and quoted globs.
        out_dir: Folder for the outputs; created if missing.
        model: A model file or a loaded :class:`~geogan.inference.translator.Translator` (a
            model file only, with ``cluster``).
        progress: Called with (windows done, windows in all) for the current scene
            (not with ``cluster``: the windows run on the workers).
        scene_progress: Called with (scenes finished, scenes in all).
        cluster: ``None`` to translate here, one scene after another; else a Dask
            distributed scheduler's address, ``local:N`` for a local cluster of N
            worker processes, or a ``distributed.Client`` (see :mod:`geogan.inference.cluster`).
        mosaic: Translate scenes that lie on one pixel grid as one mosaic, each reading
            context from its neighbours (see the module docstring); scenes on other grids
            form their own mosaics, and a scene alone on its grid is translated alone.
        **options: Fields of :class:`~geogan.inference.options.TranslateOptions`.

    Raises:
        InputError: If two scenes would write the same output, a list or glob names no
            scene, or an option is bad.
        ModelFileError: If the model file is missing or damaged.
        OutputError: If ``out_dir`` is not a writable folder.
        ConfigError: If ``cluster`` is given and Dask distributed is not installed, or
            the scheduler cannot be reached; or ``mosaic`` with ``resample`` or
            ``adapt_norm``.
    """
    settings = TranslateOptions(**options)
    settings.check()
    scenes = scene_list(scenes)
    if mosaic and settings.adapt_norm:
        raise ConfigError("--mosaic and --adapt-norm do not work together: each scene would "
                          "take its own statistics and the joins would show; build a VRT of "
                          "the tiles and translate it as one scene")
    if mosaic and settings.resample:
        raise ConfigError("--mosaic and --resample do not work together yet: resample "
                          "the tiles first (gdalwarp -tr), or translate them without --mosaic")
    if mosaic:  # a mosaic is read on its tiles' grid: not at the model's pixel size either
        settings = replace(settings, resample=False)
    folder = Path(out_dir)
    outputs = output_names(scenes, folder)
    check_output_file(folder / "probe.tif", overwrite=True, what="output")
    sources = [os.fspath(scene) for scene in scenes]
    if cluster is not None:
        if isinstance(model, Translator):
            raise ConfigError("a cluster's workers load the model themselves: give the "
                              "model file, not a loaded Translator")
        arch = read_model_file(model).architecture
        shaded = drawn_output(arch, settings.direction, settings.output) == "shaded"
        margin = arch.tile_size + (blur_radius(settings.blur_to_load) if shaded else 0)
        places = neighbourhoods(sources, margin) if mosaic else [None] * len(sources)
        return translate_on_cluster(sources, outputs, model, settings, cluster,
                                    scene_progress, places)
    translator = translator_for(model, settings)
    places = (neighbourhoods(sources, translator.tile_size + translator.blur_radius) if mosaic
              else [None] * len(sources))
    start = time.perf_counter()
    outcomes: list[SceneOutcome] = []
    for number, (source, output) in enumerate(zip(sources, outputs, strict=True)):
        outcomes.append(translate_scene(source, output, translator, settings, progress,
                                        places[number]))
        if scene_progress is not None:
            scene_progress(number + 1, len(outputs))
    return BatchReport(tuple(outcomes), time.perf_counter() - start)


def neighbourhoods(sources: Sequence[str], margin: int) -> list[Neighbourhood | None]:
    """Each scene's place among its neighbours, with ``margin`` pixels of context: beyond
    a tile from its region's edges a pixel's windows and weights are the whole mosaic's
    (:mod:`geogan.grids.windows`), so a tile is all the context a scene needs, and as
    many pixels more as the blur of a shaded map's unsure pixels reaches."""
    return [None if place is None else Neighbourhood(place.vrt, place.region, place.crop)
            for place in plan_neighbourhoods(sources, margin)]


def output_names(scenes: Sequence[str | os.PathLike[str]], folder: Path) -> list[Path]:
    """``folder/<scene stem>.tif`` for each scene.

    Raises:
        InputError: If two scenes have the same name (their outputs would collide).
    """
    outputs = [folder / f"{scene_stem(os.fspath(scene))}.tif" for scene in scenes]
    seen: dict[Path, str] = {}
    for scene, output in zip(scenes, outputs, strict=True):
        if output in seen:
            raise InputError(f"{seen[output]} and {os.fspath(scene)} would both be written to "
                             f"{output}; rename one, or translate them in separate batches")
        seen[output] = os.fspath(scene)
    return outputs
