"""Is a scene like what the model was trained on? Its pixel size, against the training
chips' (``trained_on`` in the model file).

A generator learns shapes at the scale of its chips: a scene whose pixels are more than
:data:`RESOLUTION_LIMIT` times coarser or finer than the training chips' shows it objects
at another size, and its output is usually poor. ``translate`` then warns in one line
(``--strict`` makes it an error before anything is written), unless ``--resample``
translates it at the model's pixel size. The figures go into the output's tags either way.

Pixel sizes compare in metres (linear units by their factor, degrees at the scene's
latitude) or, when both are in the same unit, in that unit. A model file without a
recorded pixel size, or a scene without a CRS, is not compared.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from geogan.errors import GeoganWarning, SceneMismatchError
from geogan.inference.options import TranslateOptions
from geogan.inference.translator import Translator
from geogan.nn.data_profile import PixelSize
from geogan.raster.resolution import centre_latitude, in_metres, pixel_size

#: A scene whose pixels are more than this many times coarser or finer than the training
#: chips' gets a warning.
RESOLUTION_LIMIT = 1.25


@dataclass(frozen=True)
class ResolutionCheck:
    """The scene's pixel size against the model's.

    Attributes:
        scene: The scene's pixel size (``pixel_size``'s dict), or None without a CRS.
        model: The training chips' pixel size, or None when the model file lacks it.
        ratio: Scene pixel over model pixel (the geometric mean of both axes; above 1:
            the scene is coarser), or None when they cannot be compared.
        model_pixel: The model's pixel size in the scene's CRS units (x, y), or None.
        resample: Translated at ``model_pixel`` (``--resample``).
        why_not: Why the sizes could not be compared, or ``""``.
    """

    scene: Mapping[str, Any] | None
    model: PixelSize | None
    ratio: float | None
    model_pixel: tuple[float, float] | None
    resample: bool
    why_not: str = ""

    @property
    def far(self) -> bool:
        """Whether the scene's pixels are more than :data:`RESOLUTION_LIMIT` times
        coarser or finer than the model's."""
        return self.ratio is not None and not (
            1 / RESOLUTION_LIMIT <= self.ratio <= RESOLUTION_LIMIT)

    @property
    def resample_grid(self) -> tuple[float, float] | None:
        """The pixel size to translate at, when resampling (else None)."""
        return self.model_pixel if self.resample else None

    def problem(self, source: str) -> str | None:
        """The warning's text, or None when there is nothing to say."""
        if self.far and not self.resample and self.scene is not None and \
                self.model is not None and self.ratio is not None:
            how = (f"{self.ratio:.3g} × coarser" if self.ratio > 1
                   else f"{1 / self.ratio:.3g} × finer")
            return (f"{source} has {self.scene['x']:.4g} × {self.scene['y']:.4g} "
                    f"{self.scene['unit']} pixels, {how} than the {self.model.x:.4g} × "
                    f"{self.model.y:.4g} {self.model.unit} the model was trained on, so it "
                    "sees objects at another size; pass --resample to translate it at "
                    "the model's pixel size")
        return None

    def record(self, resampling: str) -> dict[str, Any]:
        """The figures, for the output's ``GEOGAN_RESOLUTION`` tag."""
        return {
            "scene": None if self.scene is None else
            [self.scene["x"], self.scene["y"], self.scene["unit"]],
            "model": "unknown" if self.model is None else
            [self.model.x, self.model.y, self.model.unit],
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "limit": RESOLUTION_LIMIT, "resampled": self.resample,
            "resampling": resampling if self.resample else None,
            "model_pixel": None if self.resample_grid is None else list(self.resample_grid),
            **({"not_compared": self.why_not} if self.why_not else {}),
        }


@dataclass(frozen=True)
class SceneChecks:
    """What translate found comparing a scene with the model's training chips."""

    resolution: ResolutionCheck
    resampling: str

    def tags(self) -> dict[str, str]:
        """Output tags (without the ``GEOGAN_`` prefix)."""
        return {"RESOLUTION": json.dumps(self.resolution.record(self.resampling))}


def check_scene(dataset: Any, source: str, bands: list[int], translator: Translator,
                settings: TranslateOptions) -> SceneChecks:
    """Compare the scene with what the model was trained on; warn about what is far.

    Args:
        dataset: The scene, open.
        source: Its name, for messages.
        bands: Its bands the model reads.
        translator: The model.
        settings: ``resample`` (translate at the model's pixel size), ``strict``.

    Returns:
        The figures.

    Raises:
        SceneMismatchError: With ``strict``, if the scene is far from the training chips.
    """
    resolution = check_resolution(dataset, translator.model.trained_on.pixel_size,
                                  settings.resample)
    problems = [text for text in (resolution.problem(source),) if text]
    if settings.resample and resolution.why_not:
        warnings.warn(f"cannot resample {source}: {resolution.why_not}; it is translated "
                      "at its own pixel size", GeoganWarning, stacklevel=3)
    if problems and settings.strict:
        raise SceneMismatchError("; ".join(problems) + " (--strict: nothing was written; "
                                 "translate it without --strict to go on anyway)")
    for text in problems:
        warnings.warn(text, GeoganWarning, stacklevel=3)
    return SceneChecks(resolution, settings.resampling)


def check_resolution(dataset: Any, model: PixelSize | None, resample: bool
                     ) -> ResolutionCheck:
    """The scene's pixel size against ``model``'s (see the module docstring); with
    ``resample``, the grid to translate at when the two differ."""
    scene = pixel_size(dataset)
    if scene is None or model is None:
        why = ("the scene has no CRS or is not north-up" if scene is None
               else "the model file does not record the pixel size of its training chips")
        return ResolutionCheck(scene, model, None, None, False, why)
    if scene["unit"] == model.unit:
        ratio = math.sqrt(scene["x"] / model.x * scene["y"] / model.y)
        model_pixel = (model.x, model.y)
    else:
        latitude = centre_latitude(dataset)
        scene_m, model_m = in_metres(scene, latitude), in_metres(model.to_dict(), latitude)
        if scene_m is None or model_m is None:
            return ResolutionCheck(scene, model, None, None, False,
                                   f"the scene's {scene['unit']} and the model's "
                                   f"{model.unit} cannot be compared without a latitude")
        ratio = math.sqrt(scene_m[0] / model_m[0] * scene_m[1] / model_m[1])
        model_pixel = (scene["x"] * model_m[0] / scene_m[0],
                       scene["y"] * model_m[1] / scene_m[1])
    same = math.isclose(model_pixel[0], scene["x"], rel_tol=1e-6) and \
        math.isclose(model_pixel[1], scene["y"], rel_tol=1e-6)  # nothing to resample
    return ResolutionCheck(scene, model, ratio, model_pixel, resample and not same)
