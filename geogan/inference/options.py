"""The settings and reports of ``translate``: one scene's, a batch's, each scene's outcome.

:class:`TranslateOptions` are the fields ``translate_raster`` and ``translate_batch`` take
as keywords (the command's options); :class:`TranslateReport` is what one scene wrote,
:class:`SceneOutcome` and :class:`BatchReport` what a batch did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from geogan.errors import ConfigError
from geogan.grids.windows import BLENDS, LATTICES, default_overlap
from geogan.inference.translator import Translator
from geogan.inference.unsure_blur import DEFAULT_SIGMA
from geogan.nn.config import OUTPUTS, check_unsure_below
from geogan.raster.resolution import RESAMPLINGS
from geogan.raster.sharpness import MAX_SIGMA

__all__ = ["ADAPT_WINDOWS", "RESAMPLINGS", "BatchReport", "SceneOutcome", "TranslateOptions",
           "TranslateReport"]

ADAPT_WINDOWS = 64
"""Windows, spread evenly over a scene, that ``adapt_norm`` takes its statistics from:
enough to describe a varied scene, a small share of a large one's work."""


@dataclass(frozen=True)
class TranslateOptions:
    """How to translate. Defaults suit a large scene on whatever device is present."""

    overlap: int | None = None  # pixels neighbouring windows share; None = a quarter tile
    blend: str = BLENDS[0]  # cosine, linear or none (centre crop)
    batch_size: int | None = None  # windows per generator call; None: 8 on a CPU, by GPU memory
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    precision: str = "auto"  # auto (fastest exact enough), fp32, bf16 or fp16
    direction: str = "a2b"  # b2a translates a CycleGAN model's target domain back
    samples: int = 1  # >= 2: passes with dropout on; writes their mean and a spread band
    seed: int = 0  # seeds the dropout draws of --samples
    creation_options: Mapping[str, Any] = field(default_factory=dict)  # GDAL, e.g. ZLEVEL
    cog: bool = False  # write a Cloud Optimised GeoTIFF with overviews
    overwrite: bool = False  # replace an existing output
    tta: bool | None = None  # average the 8 flips and rotations of every window (8 x the
    # work); None: as the model file says (on for faithful models)
    output: str = "auto"  # image, palette or classes (models with a class head); auto
    unsure_blur: float | None = None  # px, smooths a shaded map's unsure pixels (0: off);
    # None: 1.5 px (DEFAULT_SIGMA), or what a translator given was loaded with
    unsure_below: float | None = None  # odds of the most likely class under which a shaded
    # pixel is unsure (blurred); None: as the model file says (0.45 for faithful models)
    lattice: str = LATTICES[0]  # grid: windows anchored to the CRS's pixel grid; scene
    resample: bool | None = None  # translate at the model's pixel size, then back onto the
    # scene's grid: True whenever the sizes differ, False never, None (auto) when the
    # scene's pixels are finer than the model's by more than the check's limit (1.25 x),
    # or coarser by more than that and at most READ_UP_LIMIT (2 x)
    resampling: str | None = None  # how the scene is warped (and image outputs back);
    # None: average to read a finer scene down, lanczos to read a coarser one up, and
    # bilinear back
    strict: bool = False  # a scene unlike the training chips is an error, not a warning
    adapt_norm: bool | None = None  # BatchNorm normalises with statistics of the scene's
    # own windows (ADAPT_WINDOWS of them, spread over it), not the training chips' (AdaBN):
    # True on any scene; None (auto) on a scene whose values are far from the training
    # chips', part of the way (scene_norms.PRIOR_WINDOWS); False never
    sharpen: float | None = None  # px of Gaussian blur taken out of every window before
    # the generator sees it (0: never); None (auto): what the scene measures softer than
    # the model's training chips, beyond a tolerance (geogan.inference.scene_sharpness)

    def check(self) -> None:
        """Raise :class:`ConfigError` for values that cannot work (before any work)."""
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, not {self.batch_size}")
        if self.unsure_blur is not None and not self.unsure_blur >= 0:
            raise ConfigError(f"the blur of unsure pixels must be 0 (off) or more pixels, "
                              f"not {self.unsure_blur}")
        if self.unsure_below is not None:
            check_unsure_below(self.unsure_below)
        if self.samples < 1:
            raise ConfigError(f"samples must be at least 1, not {self.samples}")
        if self.blend not in BLENDS:
            raise ConfigError(f"unknown blend {self.blend!r}; use one of {', '.join(BLENDS)}")
        if self.output not in OUTPUTS:
            raise ConfigError(f"unknown output {self.output!r}; use one of {', '.join(OUTPUTS)}")
        if self.lattice not in LATTICES:
            raise ConfigError(f"unknown lattice {self.lattice!r}; use one of "
                              f"{', '.join(LATTICES)}")
        if self.sharpen is not None and not 0 <= self.sharpen <= MAX_SIGMA:
            raise ConfigError(f"--sharpen takes 0 (off) to {MAX_SIGMA:g} px of blur out, "
                              f"not {self.sharpen}")
        if self.resampling is not None and self.resampling not in RESAMPLINGS:
            raise ConfigError(f"unknown resampling {self.resampling!r}; use one of "
                              f"{', '.join(RESAMPLINGS)}")

    def record(self, translator: Translator) -> dict[str, Any]:
        """The options as they were applied, for the output's provenance tag."""
        values = asdict(self)
        values.pop("overwrite")
        values["creation_options"] = dict(self.creation_options)
        values.update(overlap=self.overlap_for(translator),
                      batch_size=self.batch_size_for(translator), device=str(translator.device),
                      precision=translator.precision, direction=translator.direction,
                      output=translator.output, tta=translator.tta,
                      unsure_blur=translator.unsure_blur if translator.blur_radius else 0.0,
                      unsure_below=translator.unsure_below if translator.blur_radius else None,
                      resample="auto" if self.resample is None else self.resample,
                      adapt_norm="auto" if self.adapt_norm is None else self.adapt_norm,
                      sharpen="auto" if self.sharpen is None else self.sharpen,
                      resampling=self.resampling or "auto")
        return values

    @property
    def blur_to_load(self) -> float:
        """The blur of unsure pixels a model is loaded with: the option, else the default."""
        return DEFAULT_SIGMA if self.unsure_blur is None else self.unsure_blur

    def batch_size_for(self, translator: Translator) -> int:
        """Windows per generator call: the option, else :meth:`Translator.auto_batch_size`."""
        return translator.auto_batch_size() if self.batch_size is None else self.batch_size

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
    resampled: str = ""
    """How the scene's pixels were brought to the model's (``translated at the model's
    1.406 × 1.406 metre pixels: the scene's are 2.35 × finer, read by average``), or
    ``""`` when they were not."""
    adapted: str = ""
    """How BatchNorm's averages were taken from the scene (``BatchNorm's averages 36 %
    of the way to those of 9 windows of the scene``), or ``""`` when they were not."""
    sharpened: str = ""
    """How the windows were sharpened (``sharpened by 0.98 px (the scene measured 1.00 px
    softer than the training chips)``), or ``""`` when they were not."""


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
    warnings: tuple[str, ...] = ()
    """The ``GeoganWarning`` messages a cluster's worker met translating it (warned again
    where the batch was started; here they are warned as they happen)."""


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
