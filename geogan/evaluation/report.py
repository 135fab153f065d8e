"""What ``geogan evaluate`` reports: :class:`EvaluationReport` with its :class:`BandScores`
and :class:`SeamScores`, and their JSON form (computed by :mod:`geogan.evaluation.rasters`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from geogan.evaluation.class_metrics import PaletteScores

__all__ = ["BandScores", "EvaluationReport", "SeamScores"]


@dataclass(frozen=True)
class BandScores:
    """Pixel scores of one band (``band`` 1-based), or of all bands (``band`` None).

    ``psnr`` is 100 dB (the cap) when the band is identical to the reference; ``ssim`` is NaN when
    no 11 x 11 window lies wholly on scored pixels.
    """

    band: int | None
    name: str
    l1: float
    rmse: float
    psnr: float
    ssim: float


@dataclass(frozen=True)
class SeamScores:
    """Seam scores on the window boundaries of ``translate`` (1.0 = no seams).

    Attributes:
        tile: Window side in pixels.
        overlap: Pixels neighbouring windows share.
        blend: The blend whose boundary lines are scored.
        source: ``options`` (given) or ``tags`` (read from the prediction).
        prediction: Seam score of the prediction; ``None`` for a single window.
        reference: Seam score of the reference on the same lines, for comparison: what
            the scene itself shows there.
        lattice: Where the windows lay: ``grid`` (anchored to the CRS's pixel grid) or
            ``scene``, from the prediction's ``GEOGAN_LATTICE`` tag (``scene`` without it).
    """

    tile: int
    overlap: int
    blend: str
    source: str
    prediction: float | None
    reference: float | None
    lattice: str = "scene"


@dataclass(frozen=True, eq=False)
class EvaluationReport:
    """What :func:`evaluate_rasters` measured.

    Attributes:
        prediction: The prediction's path.
        reference: The reference's path.
        width: Width of the grid scored on (the prediction's).
        height: Its height.
        grid: ``same`` (identical grids), ``shifted`` (whole-pixel offset) or ``warped``.
        resampling: The resampling used when ``warped``, else ``None``.
        pixels: Pixels scored.
        ssim_positions: SSIM window positions averaged (per band).
        data_range: ``D`` of PSNR and SSIM.
        data_range_source: ``dtype`` (uint8), ``reference`` (its valid range) or ``option``.
        bands: Scores per band.
        mean: Scores of all bands together.
        palette: Class scores, with a palette.
        palette_source: Where the palette came from (``tag``, ``detected``, a file, ``given``).
        seams: Seam scores, when the tile size is known.
    """

    prediction: str
    reference: str
    width: int
    height: int
    grid: str
    resampling: str | None
    pixels: int
    ssim_positions: int
    data_range: float
    data_range_source: str
    bands: tuple[BandScores, ...]
    mean: BandScores
    palette: PaletteScores | None = None
    palette_source: str | None = None
    seams: SeamScores | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON: infinite PSNR as the string ``"inf"``, NaN as ``None``."""
        values: dict[str, Any] = {
            "prediction": self.prediction, "reference": self.reference,
            "width": self.width, "height": self.height, "grid": self.grid,
            "resampling": self.resampling, "pixels": self.pixels,
            "ssim_positions": self.ssim_positions, "data_range": self.data_range,
            "data_range_source": self.data_range_source,
            "bands": [band.__dict__ for band in self.bands], "mean": self.mean.__dict__,
            "palette": None if self.palette is None else self.palette.to_dict(),
            "palette_source": self.palette_source,
            "seams": None if self.seams is None else self.seams.__dict__,
        }
        return _plain(values)  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    """``value`` with floats JSON can hold: ±inf as ``"inf"``/``"-inf"``, NaN as None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        return number
    if isinstance(value, np.integer):
        return int(value)
    return value
