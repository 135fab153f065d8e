"""``evaluate``: measured quality of a translated raster against a reference raster.

:func:`evaluate_rasters` compares a prediction (e.g. the output of ``translate``) with a
reference on the prediction's grid and returns an :class:`EvaluationReport`:

* per band and mean: **L1** (mean absolute error), **RMSE**, **PSNR** and **SSIM**, in
  the rasters' own units;
* with a palette (``palette="auto"`` or a JSON file): per-class accuracy and IoU, pixel
  accuracy and mean IoU, after snapping every pixel of both rasters to its nearest
  palette colour (:mod:`geogan.evaluation.class_metrics`);
* with a tile size (given, or read from the prediction's ``GEOGAN_*`` tags): the seam
  score of the prediction and of the reference on the translate engine's window
  boundaries (:mod:`geogan.evaluation.seams`).

**Common grid.** When the reference's CRS, transform or size differ from the
prediction's, it is read onto the prediction's grid: by whole-pixel offsets when the
grids coincide up to a shift, otherwise through a ``WarpedVRT`` (nearest-neighbour
resampling when a palette is used or the reference looks categorical, bilinear
otherwise; ``resampling`` chooses).

**What is scored.** A pixel counts when it is valid in every band of both rasters (not
nodata, not masked, finite), lies inside the reference's footprint and inside the
``mask`` area of interest when one is given. Everything else is ignored.

**Definitions** (all in float64):

* ``L1 = mean |p - r|``, ``RMSE = sqrt(mean (p - r)^2)`` over scored pixels, per band; the
  mean row averages the bands (RMSE: the root of the mean squared error of all bands).
* ``PSNR = 10 log10(D^2 / MSE)`` dB, capped at 100 dB, the value identical rasters get
  (geogan's one PSNR convention, :func:`geogan.evaluation.image_metrics.psnr_from_mse`). The
  data range ``D`` is 255 for uint8 references; for other types it is the reference's
  valid value range (max minus min over scored pixels of all bands, one extra read);
  ``data_range`` sets it. The mean row uses the MSE of all bands together, as
  :func:`geogan.evaluation.image_metrics.psnr` does.
* ``SSIM`` as :func:`geogan.evaluation.image_metrics.ssim` (11 x 11 Gaussian window, sigma 1.5,
  ``C1 = (0.01 D)^2``, ``C2 = (0.03 D)^2``), averaged over the window positions whose
  whole window lies on scored pixels; the same function train-time validation uses.

**Bounded memory.** The prediction is read in blocks of ``block_size`` pixels, each with
a margin of 5 pixels (half the SSIM window) so that the SSIM windows across block
borders are exact; sums of errors, SSIM values and confusion matrices are added up, so
the result equals the one-shot computation (``tests/test_evaluate.py`` checks it) and
memory depends on the block size only. Torch (for SSIM) is imported on first call.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window, from_bounds
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from geogan.errors import InputError, NoOverlapError
from geogan.evaluation.class_metrics import palette_confusion, scores_from_confusion
from geogan.evaluation.report import BandScores, EvaluationReport, SeamScores
from geogan.evaluation.seams import SeamSums, output_seam_lines, seam_sums
from geogan.grids.windows import BLENDS, LatticeRecord, check_window_options, default_overlap
from geogan.progress import ProgressCallback
from geogan.raster.flat_colours import MIN_FLAT_SHARE
from geogan.raster.footprints import crs_label, describe_bounds, load_aoi, raster_footprint
from geogan.raster.io import (
    bands_to_read,
    check_georeferenced,
    has_alpha_band,
    is_categorical,
    open_raster,
    same_grid,
    select_bands_command,
    valid_mask,
)
from geogan.raster.palette import (
    AUTO_COVERAGE,
    AUTO_MAX_CLASSES,
    PALETTE_TAG,
    detect_palette,
    given_palette,
    palette_in_tags,
)

__all__ = [
    "BLOCK_SIZE",
    "RESAMPLINGS",
    "BandScores",
    "EvaluateOptions",
    "EvaluationReport",
    "SeamScores",
    "evaluate_rasters",
]

BLOCK_SIZE = 512
"""Side of the blocks the prediction is read in (plus a 5-pixel margin): about 35 MB of
float64 working arrays for three bands."""

RESAMPLINGS = ("nearest", "bilinear", "cubic", "average", "mode")
"""Resampling methods for a reference on another grid (GDAL's names)."""

TAG_PREFIX = "GEOGAN_"
"""Prefix of the provenance tags ``translate`` writes (see :mod:`geogan.inference.scene`)."""

_MARGIN = 5  # SSIM_WINDOW // 2, kept here so that importing this module needs no torch
_SSIM_SIDE = 2 * _MARGIN + 1


@dataclass(frozen=True)
class EvaluateOptions:
    """How to evaluate. The defaults score pixels and SSIM, without classes or seams.

    Attributes:
        palette: ``None`` (no class scores), ``"auto"`` (the reference's
            ``GEOGAN_PALETTE`` tag, else its flat colours when it has few), the path of a
            JSON file ``{"class name": [r, g, b], ...}``, or such a mapping.
        mask: GeoJSON area of interest (any CRS it declares); pixels outside are ignored.
        resampling: One of :data:`RESAMPLINGS` for a reference on another grid; ``None``
            chooses nearest with a palette or a categorical reference, else bilinear.
        data_range: ``D`` of PSNR and SSIM; ``None`` chooses (255 for uint8, else the
            reference's valid value range).
        tile: Window side ``translate`` used, for the seam score; ``None`` reads the
            prediction's ``GEOGAN_TILE_SIZE`` tag (no seam score without either).
        overlap: Window overlap for the seam score; ``None`` reads the prediction's tags,
            else a quarter of the tile (translate's default).
        blend: Blend for the seam score; ``None`` reads the tags, else ``cosine``.
        block_size: Side of the blocks read at a time (memory, not results).
    """

    palette: str | os.PathLike[str] | Mapping[str, Sequence[float]] | None = None
    mask: str | os.PathLike[str] | None = None
    resampling: str | None = None
    data_range: float | None = None
    tile: int | None = None
    overlap: int | None = None
    blend: str | None = None
    block_size: int = BLOCK_SIZE

    def check(self) -> None:
        """Raise :class:`InputError` for values that cannot work (before any reading)."""
        if self.resampling is not None and self.resampling not in RESAMPLINGS:
            raise InputError(f"unknown resampling {self.resampling!r}; use one of "
                             f"{', '.join(RESAMPLINGS)}")
        if self.data_range is not None and not (math.isfinite(self.data_range)
                                                and self.data_range > 0):
            raise InputError(f"the data range must be a positive number, not {self.data_range}")
        if self.block_size < _SSIM_SIDE:
            raise InputError(f"the block size must be at least {_SSIM_SIDE}, not "
                             f"{self.block_size}")
        if self.blend is not None and self.blend not in BLENDS:
            raise InputError(f"unknown blend {self.blend!r}; use one of {', '.join(BLENDS)}")
        if self.tile is not None and self.tile < 2:
            raise InputError(f"the tile size must be at least 2 pixels, not {self.tile}")
        if self.overlap is not None and self.overlap < 0:
            raise InputError(f"the overlap must not be negative, not {self.overlap}")


# --------------------------------------------------------------------------- the work


def evaluate_rasters(prediction: str | os.PathLike[str], reference: str | os.PathLike[str],
                     options: EvaluateOptions | None = None, *,
                     progress: ProgressCallback | None = None) -> EvaluationReport:
    """Score ``prediction`` against ``reference`` on the prediction's grid.

    Args:
        prediction: The translated raster (any raster GDAL reads).
        reference: The ground truth, same band count (an alpha band of either, beyond
            the other's bands, says where it has data and is not compared), any grid that
            overlaps.
        options: What to score and how; defaults to :class:`EvaluateOptions`.
        progress: Called with (blocks done, blocks in all).

    Returns:
        The scores.

    Raises:
        InputError: If a file cannot be read (:class:`~geogan.errors.RasterNotFoundError`,
            :class:`~geogan.errors.NotARasterError`, ...), the band counts differ, the
            palette cannot be found or read, no pixel is valid in both, or an option is
            bad.
        MissingCRSError: If the grids differ and one raster has no CRS.
        NoOverlapError: If the grids (and the mask) do not overlap.
        AOIError: If the mask cannot be read.
    """
    settings = options or EvaluateOptions()
    settings.check()
    pred_name, ref_name = os.fspath(prediction), os.fspath(reference)
    with open_raster(pred_name, georeferenced=False) as pred, \
            open_raster(ref_name, georeferenced=False) as ref:
        bands = _common_bands(pred, ref, pred_name, ref_name)
        palette, palette_source = _resolve_palette(settings.palette, ref, ref_name)
        if palette is not None and len(next(iter(palette.values()))) != len(bands[0]):
            raise InputError(f"the palette's colours have {len(next(iter(palette.values())))} "
                             f"value(s) but the rasters have {len(bands[0])} band(s); give "
                             "one value per band")
        seams = _seam_settings(settings, pred)
        aligned = (pred.crs == ref.crs and pred.transform == ref.transform
                   and pred.shape == ref.shape)
        if not aligned or settings.mask is not None:
            check_georeferenced(pred, pred_name)
            check_georeferenced(ref, ref_name)
        aoi = None if settings.mask is None else load_aoi(settings.mask, pred.crs)
        region = _region(pred, ref, aoi, aligned, pred_name, ref_name)
        resampling = settings.resampling or "bilinear"
        if not aligned and settings.resampling is None and (palette is not None
                                                            or is_categorical(ref)):
            resampling = "nearest"  # interpolation would invent colours of no class
        with _reference_reader(pred, ref, aligned, resampling, bands[1]) as reader:
            scan = _Scan(pred, bands[0], reader, aoi, region, settings.block_size)
            if settings.data_range is not None:
                data_range, range_source = float(settings.data_range), "option"
            elif ref.dtypes[0] == "uint8":
                data_range, range_source = 255.0, "dtype"
            else:
                low, high = scan.value_range()
                if not high > low:
                    raise InputError(f"{ref_name} holds a single value ({low:g}) where it is "
                                     "scored, so PSNR and SSIM have no scale; pass "
                                     "--data-range")
                data_range, range_source = high - low, "reference"
            sums = scan.run(data_range, palette, seams, progress)
        names = [pred.descriptions[p - 1] or ref.descriptions[r - 1] or f"band {i + 1}"
                 for i, (p, r) in enumerate(zip(*bands, strict=True))]
    if sums.pixels == 0:
        raise InputError(f"no pixel is valid in both {pred_name} and {ref_name}"
                         f"{' inside the mask' if aoi is not None else ''}; check their "
                         "nodata values and masks")
    return _report(pred_name, ref_name, pred, reader.grid, reader.resampling, sums,
                   data_range, range_source, names, palette, palette_source, seams)


def _resolve_palette(spec: Any, ref: Any, ref_name: str
                     ) -> tuple[dict[str, tuple[float, ...]] | None, str | None]:
    """The palette to score classes with, and where it came from."""
    if spec is None:
        return None, None
    if isinstance(spec, Mapping) or os.fspath(spec) != "auto":
        return given_palette(spec), "given" if isinstance(spec, Mapping) else os.fspath(spec)
    # The tag names the classes and lists every one, even those a scene lacks.
    palette = palette_in_tags(ref.tags())
    if palette is not None:
        return {k: tuple(float(v) for v in c) for k, c in palette.items()}, "tag"
    detected = detect_palette(ref)
    if detected is None:
        raise InputError(f"{ref_name} is not a flat-colour map (it has no {PALETTE_TAG} tag, "
                         f"fewer than {AUTO_COVERAGE:.0%} of its pixels are in "
                         f"{AUTO_MAX_CLASSES} colours or fewer, and fewer than "
                         f"{MIN_FLAT_SHARE:.0%} lie in flat areas); pass --palette FILE, a "
                         'JSON object {"class name": [r, g, b], ...}')
    return detected, "detected"


def _seam_settings(settings: EvaluateOptions, pred: Any) -> SeamScores | None:
    """Tile, overlap and blend for the seam score (scores filled in later), or None."""
    tags = pred.tags()
    recorded: dict[str, Any] = {}
    try:
        recorded = dict(json.loads(tags.get(TAG_PREFIX + "OPTIONS", "{}")))
    except (ValueError, TypeError):
        recorded = {}
    tile, source = settings.tile, "options"
    if tile is None:
        try:
            tile = int(tags[TAG_PREFIX + "TILE_SIZE"])
            source = "tags"
        except (KeyError, ValueError):
            return None
    overlap = settings.overlap
    if overlap is None:
        overlap = recorded.get("overlap") if source == "tags" else None
        overlap = default_overlap(tile) if not isinstance(overlap, int) else overlap
    blend = settings.blend or (recorded.get("blend") if source == "tags" else None)
    blend = blend if blend in BLENDS else BLENDS[0]
    check_window_options(tile, overlap, blend)
    record = _lattice(pred)
    if record is not None and record.resampled:
        return None  # its windows lay on another grid: no seam lines on this one
    return SeamScores(tile, overlap, blend, source, None, None,
                      "scene" if record is None else record.lattice)


def _lattice(pred: Any) -> LatticeRecord | None:
    """Where translate laid the prediction's windows, from its tags (None: not said)."""
    return LatticeRecord.from_tag(pred.tags().get(TAG_PREFIX + "LATTICE"))


def _region(pred: Any, ref: Any, aoi: BaseGeometry | None, aligned: bool, pred_name: str,
            ref_name: str) -> Window:
    """The window of the prediction that the reference (and the mask) can cover.

    Raises:
        NoOverlapError: If there is no such pixel.
    """
    full = Window(0, 0, pred.width, pred.height)
    if aligned and aoi is None:
        return full
    outline = box(*pred.bounds)
    covered = outline if aligned else outline.intersection(raster_footprint(ref, pred.crs))
    if covered.is_empty or covered.area == 0:
        raise NoOverlapError(f"{pred_name} {describe_bounds(outline)} and {ref_name} "
                             f"{describe_bounds(raster_footprint(ref, pred.crs))} (both in "
                             f"{crs_label(pred.crs)}) do not overlap; compare rasters of the "
                             "same area")
    if aoi is not None:
        covered = covered.intersection(aoi)
        if covered.is_empty or covered.area == 0:
            raise NoOverlapError(f"the mask does not overlap the area that {pred_name} and "
                                 f"{ref_name} share; check the mask's CRS and extent")
    window = from_bounds(*covered.bounds, transform=pred.transform)
    window = window.round_offsets(op="floor").round_lengths(op="ceil")
    # Rounding the offsets down can lose a pixel at the far edge: add one, then clip.
    window = Window(window.col_off, window.row_off, window.width + 1, window.height + 1)
    window = window.intersection(full)
    return Window(int(window.col_off), int(window.row_off), int(window.width),
                  int(window.height))


class _Reader:
    """Reads the reference's pixels and validity on windows of the prediction's grid."""

    def __init__(self, dataset: Any, bands: list[int], grid: str, resampling: str | None,
                 offset: tuple[int, int] = (0, 0)) -> None:
        self.dataset = dataset
        self.bands = bands  # 1-based, those of the prediction's, in order
        self.grid = grid
        self.resampling = resampling
        self.offset = offset  # (rows, cols): pred pixel (r, c) is ref pixel (r - rows, c - cols)

    def read(self, window: Window) -> tuple[NDArray[Any], NDArray[np.bool_]]:
        """(C, h, w) values (raw dtype; 0 where invalid) and (h, w) validity."""
        h, w = int(window.height), int(window.width)
        if self.grid == "warped":
            data = self.dataset.read(indexes=self.bands, window=window)
            return data, valid_mask(self.dataset, window, data)
        row0 = int(window.row_off) - self.offset[0]
        col0 = int(window.col_off) - self.offset[1]
        r0, c0 = max(row0, 0), max(col0, 0)
        r1 = min(row0 + h, self.dataset.height)
        c1 = min(col0 + w, self.dataset.width)
        data = np.zeros((len(self.bands), h, w), dtype=self.dataset.dtypes[0])
        valid = np.zeros((h, w), dtype=bool)
        if r1 > r0 and c1 > c0:
            inner = Window(c0, r0, c1 - c0, r1 - r0)
            part = self.dataset.read(indexes=self.bands, window=inner)  # (C, r1-r0, c1-c0)
            rows = slice(r0 - row0, r1 - row0)
            cols = slice(c0 - col0, c1 - col0)
            data[:, rows, cols] = part
            valid[rows, cols] = valid_mask(self.dataset, inner, part)
        return data, valid


def _common_bands(pred: Any, ref: Any, pred_name: str, ref_name: str
                  ) -> tuple[list[int], list[int]]:
    """The 1-based bands of the prediction and of the reference to compare, one for one:
    all of both, or without the alpha band of the one that has one more (an RGBA map
    against an RGB translation).

    Raises:
        InputError: If the band counts differ otherwise.
    """
    fewer = min(pred.count, ref.count)
    pred_bands, ref_bands = bands_to_read(pred, fewer), bands_to_read(ref, fewer)
    if pred_bands is None or ref_bands is None:
        more = pred_name if pred.count > ref.count else ref_name  # the one to select from
        raise InputError(f"{pred_name} has {pred.count} band(s) but {ref_name} has "
                         f"{ref.count}; compare rasters with the same bands (select them "
                         f"first, e.g. `{select_bands_command(more, fewer)}`)")
    return pred_bands, ref_bands


@contextmanager
def _reference_reader(pred: Any, ref: Any, aligned: bool, resampling: str, bands: list[int]
                      ) -> Iterator[_Reader]:
    """A reader of the reference's ``bands`` on the prediction's grid: direct, shifted or
    warped."""
    if aligned:
        yield _Reader(ref, bands, "same", None)
        return
    offset = same_grid(pred, ref)
    if offset is not None:
        yield _Reader(ref, bands, "shifted", None, offset)
        return
    # The alpha band (the reference's own, or one the warp adds) marks what lies outside
    # the reference or was nodata there.
    with WarpedVRT(ref, crs=pred.crs, transform=pred.transform, width=pred.width,
                   height=pred.height, resampling=Resampling[resampling],
                   add_alpha=not has_alpha_band(ref)) as vrt:
        yield _Reader(vrt, bands, "warped", resampling)


@dataclass
class _Sums:
    """What the blocks add up to."""

    bands: int
    abs_error: NDArray[np.float64] = field(init=False)
    sq_error: NDArray[np.float64] = field(init=False)
    ssim: NDArray[np.float64] = field(init=False)
    pixels: int = 0
    ssim_positions: int = 0
    confusion: NDArray[np.int64] | None = None
    seams_pred: SeamSums = field(default_factory=SeamSums)
    seams_ref: SeamSums = field(default_factory=SeamSums)

    def __post_init__(self) -> None:
        self.abs_error = np.zeros(self.bands)
        self.sq_error = np.zeros(self.bands)
        self.ssim = np.zeros(self.bands)


class _Scan:
    """The blocks of the region, read with their SSIM margin, and what they add up to."""

    def __init__(self, pred: Any, bands: list[int], reader: _Reader, aoi: BaseGeometry | None,
                 region: Window, block: int) -> None:
        self.pred, self.bands, self.reader, self.aoi, self.region, self.block = (
            pred, bands, reader, aoi, region, block)

    def blocks(self) -> list[tuple[Window, Window]]:
        """(own part, part read with margin) of each block, row-major."""
        region, block = self.region, self.block
        r_end = int(region.row_off + region.height)
        c_end = int(region.col_off + region.width)
        out = []
        for r0 in range(int(region.row_off), r_end, block):
            for c0 in range(int(region.col_off), c_end, block):
                r1, c1 = min(r0 + block, r_end), min(c0 + block, c_end)
                rr0, cc0 = max(r0 - _MARGIN, 0), max(c0 - _MARGIN, 0)
                rr1 = min(r1 + _MARGIN, self.pred.height)
                cc1 = min(c1 + _MARGIN, self.pred.width)
                out.append((Window(c0, r0, c1 - c0, r1 - r0),
                            Window(cc0, rr0, cc1 - cc0, rr1 - rr0)))
        return out

    def read(self, window: Window) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                            NDArray[np.bool_]]:
        """Prediction and reference as float64 (0 where not scored), and the scored mask."""
        pred = self.pred
        raw = pred.read(indexes=self.bands, window=window)  # (C, h, w)
        valid = valid_mask(pred, window, raw)
        ref_raw, ref_valid = self.reader.read(window)
        valid &= ref_valid
        if self.aoi is not None:
            valid &= geometry_mask([self.aoi], out_shape=valid.shape, invert=True,
                                   transform=pred.window_transform(window), all_touched=False)
        p = raw.astype(np.float64)
        r = ref_raw.astype(np.float64)
        valid &= np.isfinite(p).all(axis=0) & np.isfinite(r).all(axis=0)
        p[:, ~valid] = 0.0
        r[:, ~valid] = 0.0
        return p, r, valid

    def value_range(self) -> tuple[float, float]:
        """Min and max of the reference over scored pixels (a pass of its own)."""
        low, high = math.inf, -math.inf
        for own, _ in self.blocks():
            _, r, valid = self.read(own)
            if valid.any():
                values = r[:, valid]
                low, high = min(low, float(values.min())), max(high, float(values.max()))
        if not math.isfinite(low):
            return 0.0, 0.0
        return low, high

    def run(self, data_range: float, palette: Mapping[str, Sequence[float]] | None,
            seams: SeamScores | None, progress: ProgressCallback | None) -> _Sums:
        """Add up every block's errors, SSIM, confusion and seam differences."""
        import torch

        # geogan.evaluation.image_metrics imports torch: loaded on first call only.
        from geogan.evaluation.image_metrics import ssim_map

        pred = self.pred
        sums = _Sums(len(self.bands))
        lines = None
        if seams is not None:
            lines = output_seam_lines(_lattice(pred), pred.height, pred.width, seams.tile,
                                      seams.overlap, seams.blend)
        colours = None if palette is None else np.asarray(list(palette.values()), np.float64)
        if colours is not None:
            sums.confusion = np.zeros((len(colours), len(colours)), dtype=np.int64)
        blocks = self.blocks()
        for done, (own, read) in enumerate(blocks, start=1):
            p, r, valid = self.read(read)
            rows = slice(int(own.row_off - read.row_off),
                         int(own.row_off - read.row_off + own.height))
            cols = slice(int(own.col_off - read.col_off),
                         int(own.col_off - read.col_off + own.width))
            core = valid[rows, cols]  # (h, w)
            error = p[:, rows, cols] - r[:, rows, cols]  # (C, h, w), 0 where not scored
            sums.abs_error += np.abs(error).sum(axis=(1, 2))
            sums.sq_error += np.square(error).sum(axis=(1, 2))
            sums.pixels += int(core.sum())
            if sums.confusion is not None and colours is not None and core.any():
                sums.confusion += palette_confusion(p[:, rows, cols], r[:, rows, cols],
                                                    colours, core)
            h, w = valid.shape
            if h >= _SSIM_SIDE and w >= _SSIM_SIDE and core.any():
                values, ok = ssim_map(torch.from_numpy(p)[None], torch.from_numpy(r)[None],
                                      torch.from_numpy(valid)[None, None], data_range)
                # Map position (i, j) is the window centred on read pixel (i + 5, j + 5).
                mrows = slice(max(rows.start - _MARGIN, 0), max(rows.stop - _MARGIN, 0))
                mcols = slice(max(cols.start - _MARGIN, 0), max(cols.stop - _MARGIN, 0))
                kept = ok[0, 0, mrows, mcols]  # (h', w')
                mine = values[0, :, mrows, mcols]  # (C, h', w')
                sums.ssim += torch.where(kept, mine, torch.zeros((), dtype=mine.dtype)
                                         ).sum(dim=(1, 2)).numpy()
                sums.ssim_positions += int(kept.sum())
            if lines is not None:
                row_lines = lines[0][int(read.row_off):int(read.row_off + read.height)]
                col_lines = lines[1][int(read.col_off):int(read.col_off + read.width)]
                own_rows, own_cols = (rows.start, rows.stop), (cols.start, cols.stop)
                sums.seams_pred += seam_sums(p, valid, row_lines, col_lines, own_rows, own_cols)
                sums.seams_ref += seam_sums(r, valid, row_lines, col_lines, own_rows, own_cols)
            if progress is not None:
                progress(done, len(blocks))
        return sums


def _report(pred_name: str, ref_name: str, pred: Any, grid: str, resampling: str | None,
            sums: _Sums, data_range: float, range_source: str, names: list[str],
            palette: Mapping[str, Sequence[float]] | None, palette_source: str | None,
            seams: SeamScores | None) -> EvaluationReport:
    from geogan.evaluation.image_metrics import psnr_from_mse  # torch: on first call only

    n = sums.pixels
    positions = sums.ssim_positions
    mse = sums.sq_error / n  # (C,)
    ssim = sums.ssim / positions if positions else np.full(sums.bands, math.nan)
    bands = tuple(
        BandScores(band=i + 1, name=names[i], l1=float(sums.abs_error[i] / n),
                   rmse=float(math.sqrt(mse[i])), psnr=psnr_from_mse(float(mse[i]), data_range),
                   ssim=float(ssim[i]))
        for i in range(sums.bands))
    mean_mse = float(mse.mean())
    mean = BandScores(band=None, name="mean", l1=float(sums.abs_error.sum() / (n * sums.bands)),
                      rmse=math.sqrt(mean_mse), psnr=psnr_from_mse(mean_mse, data_range),
                      ssim=float(np.mean(ssim)))
    scores = None
    if palette is not None and sums.confusion is not None:

        scores = scores_from_confusion(sums.confusion, list(palette))
    seam_scores = None
    if seams is not None:
        seam_scores = SeamScores(seams.tile, seams.overlap, seams.blend, seams.source,
                                 sums.seams_pred.score, sums.seams_ref.score, seams.lattice)
    return EvaluationReport(
        prediction=pred_name, reference=ref_name, width=pred.width, height=pred.height,
        grid=grid, resampling=resampling, pixels=n, ssim_positions=positions,
        data_range=data_range, data_range_source=range_source, bands=bands, mean=mean,
        palette=scores, palette_source=palette_source, seams=seam_scores)

