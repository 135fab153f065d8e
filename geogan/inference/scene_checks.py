"""Is a scene like what the model was trained on? Its pixel size and its values, against
the training chips' (``trained_on`` in the model file).

* **Pixel size.** A generator learns shapes at the scale of its chips: a scene whose
  pixels are more than :data:`RESOLUTION_LIMIT` times coarser or finer than the training
  chips' shows it objects at another size, and its output is usually poor. A finer scene
  is therefore translated at the model's pixel size by default (averaged down, the result
  brought back onto its grid: fewer pixels to run, and the model sees what it learnt), and
  so is a scene up to :data:`READ_UP_LIMIT` times coarser (read up by Lanczos: no detail
  is added, but the model sees objects at the size it learnt, for up to 4 times the
  pixels); a coarser one still gets a warning, since reading it up would cost the square
  of the ratio (``--resample`` does it anyway, ``--no-resample`` neither). Pixel
  sizes compare in metres (linear units by their factor, degrees at the scene's
  latitude) or, when both are in the same unit, in that unit.
* **Values.** A sample of the scene's valid pixels (:func:`geogan.raster.io.sample_values`)
  is compared band by band with the input domain's training values: the distance of the
  two distributions (:meth:`geogan.nn.data_profile.BandProfile.distance`, in training
  standard deviations), of the values themselves and of each band's share of the pixel's
  total (its colour, :func:`geogan.nn.data_profile.band_shares`). A band beyond
  :data:`DOMAIN_LIMIT` (values) or :data:`COLOUR_LIMIT` (shares) is named in the warning:
  the model has not seen values like these (another sensor, other units, a colour cast,
  snow...).

Each finding is one ``Warning:`` line (``--strict`` makes them one error, before anything
is written); the figures go into the output's tags either way. What the model file does
not record (files from before it was), or a scene without a CRS, is not compared.
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
from geogan.inference.scene_norms import PRIOR_WINDOWS
from geogan.inference.translator import Translator
from geogan.nn.data_profile import BandProfile, PixelSize, band_shares
from geogan.raster.io import sample_values
from geogan.raster.resolution import (
    centre_latitude,
    default_resampling,
    in_metres,
    pixel_size,
)

#: A scene whose pixels are more than this many times finer or coarser than the training
#: chips' is translated at the model's pixel size (up to :data:`READ_UP_LIMIT` when
#: coarser; unless ``resample`` is False: then it gets a warning).
RESOLUTION_LIMIT = 1.25

#: The coarsest scene, in times the model's pixel size, read up to it by default; a
#: coarser one gets a warning. Measured on the real aerial → map pairs made 1.5 × and
#: 2 × coarser than the chips: read up by Lanczos, two models beat the constant map on
#: PSNR and SSIM in each case (at their own pixels, PSNR fell under it on the validation
#: pairs), with 0.05–0.09 more SSIM, 0.3–0.5 dB more PSNR and 0.06–0.08 more mIoU there
#: than at the scene's own pixels, for 0.005–0.009 of δ5; on the unfamiliar pairs SSIM
#: +0.010 to +0.031, PSNR −0.13 to +0.48 dB, δ5 −0.04 to +0.006
#: (``benchmarks/README.md``, stop 71). At 3 × coarser, read up, the default model lost
#: 0.9 dB of validation PSNR to its own pixels (0.2 dB on the unfamiliar pairs), for 9 ×
#: the pixels.
READ_UP_LIMIT = 2.0

#: A band whose values lie further than this from the training chips' (in training
#: standard deviations, :meth:`~geogan.nn.data_profile.BandProfile.distance`) is named
#: in a warning. Calibrated on an aerial-photo → map model (``benchmarks/scene_checks.py``):
#: held-out aerial photos reach 0.77, Landsat RGB 2.4 (8-bit) and 142 (16-bit).
DOMAIN_LIMIT = 1.0

#: The same for a band's share of the pixel's total (colour balance), whose training
#: spread is narrow: held-out aerial photos reach 2.1 (woods), rasterio's Landsat
#: ``RGB.byte.tif`` 7.1 (its red band).
COLOUR_LIMIT = 3.0


@dataclass(frozen=True)
class ResolutionCheck:
    """The scene's pixel size against the model's.

    Attributes:
        scene: The scene's pixel size (``pixel_size``'s dict), or None without a CRS.
        model: The training chips' pixel size, or None when the model file lacks it.
        ratio: Scene pixel over model pixel (the geometric mean of both axes; above 1:
            the scene is coarser), or None when they cannot be compared.
        model_pixel: The model's pixel size in the scene's CRS units (x, y), or None.
        resample: Translated at ``model_pixel`` (``--resample``, or by default for a
            finer scene or one up to :data:`READ_UP_LIMIT` times coarser).
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
        return self.ratio is not None and _beyond_limit(self.ratio)

    @property
    def resample_grid(self) -> tuple[float, float] | None:
        """The pixel size to translate at, when resampling (else None)."""
        return self.model_pixel if self.resample else None

    def resampling(self, asked: str | None) -> str:
        """How the scene is warped onto the model's grid: ``asked``, else the default
        for its direction (:func:`~geogan.raster.resolution.default_resampling`)."""
        return asked or default_resampling(self.ratio if self.ratio is not None else 1.0)

    def summary(self, resampling: str) -> str:
        """What was done to the scene's pixels, for the command's last line; ``""`` when
        it was translated at its own."""
        if not self.resample or self.model is None or self.ratio is None:
            return ""
        return (f"translated at the model's {self.model.x:.4g} × {self.model.y:.4g} "
                f"{self.model.unit} pixels: the scene's are {_how_far(self.ratio)}, read by "
                f"{resampling}")

    def problem(self, source: str) -> str | None:
        """The warning's text, or None when there is nothing to say."""
        if self.far and not self.resample and self.scene is not None and \
                self.model is not None and self.ratio is not None:
            cost = (f" ({self.ratio ** 2:.3g} × the pixels to translate)" if self.ratio > 1
                    else "")
            return (f"{source} has {self.scene['x']:.4g} × {self.scene['y']:.4g} "
                    f"{self.scene['unit']} pixels, {_how_far(self.ratio)} than the "
                    f"{self.model.x:.4g} × {self.model.y:.4g} {self.model.unit} pixels the "
                    "model was trained on, so it "
                    "sees objects at another size; pass --resample to translate it at "
                    f"the model's pixel size{cost}")
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


def _beyond_limit(ratio: float) -> bool:
    """Whether a scene pixel ``ratio`` times the model's is more than
    :data:`RESOLUTION_LIMIT` times coarser or finer."""
    return not 1 / RESOLUTION_LIMIT <= ratio <= RESOLUTION_LIMIT


def _how_far(ratio: float) -> str:
    """``2 × coarser`` or ``2.35 × finer``, for a scene pixel ``ratio`` times the model's."""
    return f"{ratio:.3g} × coarser" if ratio > 1 else f"{1 / ratio:.3g} × finer"


@dataclass(frozen=True)
class DomainCheck:
    """The scene's sampled values against the input domain's training values.

    Attributes:
        names: A label per band (``band 1 (red)``).
        distances: Per band, the distance in training standard deviations; None when the
            model file has no value profile or no valid pixel was sampled.
        shifts: Per band, the sample's mean minus the training mean, in training
            standard deviations (signed: brighter or darker); None likewise.
        colours: Per band, the distance of its shares of the pixels' totals; None for a
            single band, negative values or a model file without share profiles.
        pixels: Valid pixels sampled.
        dtypes: The scene's and the training chips' data types.
    """

    names: tuple[str, ...]
    distances: tuple[float, ...] | None
    shifts: tuple[float, ...] | None
    colours: tuple[float, ...] | None
    pixels: int
    dtypes: tuple[str, str]

    @property
    def far(self) -> list[str]:
        """The bands beyond a limit, and how far (``band 1 (red) 2.3 brighter``)."""
        found = []
        shifts = self.shifts or ()
        for b, name in enumerate(self.names):
            parts = []
            if self.distances is not None and self.distances[b] > DOMAIN_LIMIT:
                how = "brighter" if shifts[b] > 0 else "darker"
                parts.append(f"values {self.distances[b]:.3g} ({how})")
            if self.colours is not None and self.colours[b] > COLOUR_LIMIT:
                parts.append(f"colour share {self.colours[b]:.3g}")
            if parts:
                found.append(f"{name} {', '.join(parts)}")
        return found

    def problem(self, source: str) -> str | None:
        """The warning's text, or None when there is nothing to say."""
        scene_dtype, model_dtype = self.dtypes
        other = f" (it is {scene_dtype}, the chips were {model_dtype})" \
            if scene_dtype != model_dtype else ""
        if self.distances is None:
            if not other:
                return None
            return (f"{source} is {scene_dtype} but the model was trained on {model_dtype} "
                    "rasters; its values are mapped with the training statistics all the "
                    "same")
        far = self.far
        if not far:
            return None
        return (f"{source}'s values are far from the training chips'{other}, in training "
                f"standard deviations (limits {DOMAIN_LIMIT:g} for values, {COLOUR_LIMIT:g} "
                f"for colour shares): {'; '.join(far)}; the model has not seen scenes like "
                "it, so expect a poor translation")

    def record(self) -> dict[str, Any]:
        """The figures, for the output's ``GEOGAN_DOMAIN`` tag."""
        def rounded(values: tuple[float, ...] | None) -> list[float] | None:
            return None if values is None else [round(v, 4) for v in values]
        return {"bands": list(self.names), "distance": rounded(self.distances),
                "mean_shift": rounded(self.shifts), "colour_distance": rounded(self.colours),
                "limit": DOMAIN_LIMIT, "colour_limit": COLOUR_LIMIT, "far": self.far,
                "pixels": self.pixels, "dtype": self.dtypes[0],
                "trained_dtype": self.dtypes[1]}


@dataclass(frozen=True)
class SceneChecks:
    """What translate found comparing a scene with the model's training chips, and so
    how it translates the scene."""

    resolution: ResolutionCheck
    domain: DomainCheck
    resampling: str
    adapt_prior: int | None = None  # BatchNorm's averages from the scene's windows,
    # against a prior of that many windows (0: theirs as they are); None: the model's

    def tags(self) -> dict[str, str]:
        """Output tags (without the ``GEOGAN_`` prefix)."""
        return {"RESOLUTION": json.dumps(self.resolution.record(self.resampling)),
                "DOMAIN": json.dumps(self.domain.record())}


def check_scene(dataset: Any, source: str, bands: list[int], translator: Translator,
                settings: TranslateOptions, mosaic: bool = False) -> SceneChecks:
    """Compare the scene with what the model was trained on; warn about what is far.

    Args:
        dataset: The scene, open.
        source: Its name, for messages.
        bands: Its bands the model reads.
        translator: The model.
        settings: ``resample`` (translate at the model's pixel size: True, False or
            None for a finer scene only), ``resampling``, ``strict``, ``adapt_norm``
            (BatchNorm's averages from the scene: True, False or None for a scene whose
            values are far from the training chips').
        mosaic: The scene is translated as part of a ``--mosaic`` (never adapted on its
            own: its edges would not meet its neighbours').

    Returns:
        The figures.

    Raises:
        SceneMismatchError: With ``strict``, if the scene is far from the training chips.
    """
    resolution = check_resolution(dataset, translator.model.trained_on.pixel_size,
                                  settings.resample)
    domain = check_domain(dataset, bands, translator)
    adapt_prior = _adapt_prior(settings.adapt_norm, bool(domain.far),
                               translator.has_batch_norm, mosaic)
    values = domain.problem(source)
    if values and settings.adapt_norm is None and adapt_prior is not None:
        values += ("; BatchNorm's averages are therefore moved towards the scene's own "
                   "(AdaBN; --no-adapt-norm keeps the training chips')")
    elif values and domain.far and translator.has_batch_norm and not settings.adapt_norm \
            and not mosaic:  # a mosaic refuses --adapt-norm
        values += ("; if the scene is large and varied, --adapt-norm (the normalisation's "
                   "statistics taken from the scene itself) may draw it better")
    problems = [text for text in (resolution.problem(source), values) if text]
    if settings.resample and resolution.why_not:
        warnings.warn(f"cannot resample {source}: {resolution.why_not}; it is translated "
                      "at its own pixel size", GeoganWarning, stacklevel=3)
    if problems and settings.strict:
        raise SceneMismatchError("; ".join(problems) + " (--strict: nothing was written; "
                                 "translate it without --strict to go on anyway)")
    for text in problems:
        warnings.warn(text, GeoganWarning, stacklevel=3)
    return SceneChecks(resolution, domain, resolution.resampling(settings.resampling),
                       adapt_prior)


def _adapt_prior(asked: bool | None, far: bool, batch_norm: bool, mosaic: bool) -> int | None:
    """The prior, in windows, that the scene's BatchNorm statistics are weighed against:
    0 (theirs as they are) when asked for, :data:`PRIOR_WINDOWS` on its own for a scene
    far from the training chips (a model with BatchNorm, not in a mosaic), else None."""
    if asked is None:
        return PRIOR_WINDOWS if far and batch_norm and not mosaic else None
    return 0 if asked else None


def check_domain(dataset: Any, bands: list[int], translator: Translator) -> DomainCheck:
    """The scene's sampled values against the translator's input domain (see the module
    docstring)."""
    domain = "a" if translator.direction == "a2b" else "b"
    names = tuple(f"band {b + 1}" + (f" ({name})" if name else "")
                  for b, name in enumerate(translator.model.band_descriptions(domain)))
    dtypes = (str(dataset.dtypes[bands[0] - 1]), translator.input_normalization.dtype)
    trained = translator.model.trained_on.domain(domain)
    if trained is None or len(trained) != len(bands):
        return DomainCheck(names, None, None, None, 0, dtypes)
    sample = sample_values(dataset, bands)  # (C, N)
    if sample.shape[1] == 0:
        return DomainCheck(names, None, None, None, 0, dtypes)
    profiles = [BandProfile.of(values) for values in sample]
    distances = tuple(t.distance(p) for t, p in zip(trained, profiles, strict=True))
    shifts = tuple((p.mean - t.mean) / (t.std if t.std > 0 else 1.0)
                   for t, p in zip(trained, profiles, strict=True))
    colours = None
    trained_shares = translator.model.trained_on.domain_shares(domain)
    shares = band_shares(sample)
    if trained_shares is not None and shares is not None and shares.shape[1] and \
            len(trained_shares) == len(bands):
        colours = tuple(t.distance(BandProfile.of(values))
                        for t, values in zip(trained_shares, shares, strict=True))
    return DomainCheck(names, distances, shifts, colours, int(sample.shape[1]), dtypes)


def check_resolution(dataset: Any, model: PixelSize | None, resample: bool | None
                     ) -> ResolutionCheck:
    """The scene's pixel size against ``model``'s (see the module docstring), and whether
    to translate at the model's: with ``resample`` True whenever the two differ, with
    None (the default) when the scene's pixels are finer or coarser by more than
    :data:`RESOLUTION_LIMIT` (coarser by at most :data:`READ_UP_LIMIT`), with False
    never."""
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
    wanted = _beyond_limit(ratio) and ratio <= READ_UP_LIMIT if resample is None else resample
    return ResolutionCheck(scene, model, ratio, model_pixel, wanted and not same)
