"""``geogan demo``: the whole job on the shipped sample data, in a few minutes on a CPU.

One call runs every step a user would run by hand, on one sample pair of
:mod:`geogan.sampledata.world` (the files in the repository's ``sample_data/``, or the same
pair generated again when the package is installed without them):

1. the **training area** is the northern three quarters of the scene, written as a
   GeoJSON polygon in the raster's CRS (``train-area.geojson``); the southern quarter
   is never seen in training: it is the held-out area;
2. **export chips** inside the training area (stride half a tile);
3. **train** the default (``faithful``) recipe at the ``tiny`` preset's widths, for a
   step count chosen per kind so that the
   whole demo stays well under five minutes on two CPU cores;
4. **translate** the whole scene, larger than the training area, into
   ``translated.tif`` (the input's grid);
5. **score** the translation against the reference on the held-out quarter and on the
   whole scene: PSNR and SSIM in [-1, 1] units, and for maps (a reference with a
   palette tag) per-class accuracy, pixel accuracy and mean IoU;
6. write ``preview.png``: input | translated | reference side by side, with a line
   marking the boundary between the training area and the held-out quarter.

The outcome is a :class:`DemoReport` (paths, figures, seconds per stage), also written
as ``metrics.json``. Like the rest of the library this module never prints; the
``geogan demo`` command prints the report.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from numpy.typing import NDArray
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions, ExportReport
from geogan.errors import InputError, OutputError, OutputExistsError
from geogan.evaluation.class_metrics import PaletteScores, palette_scores
from geogan.evaluation.image_metrics import psnr, ssim
from geogan.inference.scene import TranslateReport, translate_raster
from geogan.nn.config import PRESETS
from geogan.nn.devices import resolve_device
from geogan.outputs import atomic_file
from geogan.progress import ProgressCallback
from geogan.raster.io import valid_mask
from geogan.raster.palette import palette_in_tags
from geogan.raster.preview import downsample_for_preview, grid, to_display_rgb, write_png
from geogan.sampledata.render import write_sample_pair
from geogan.sampledata.world import FILE_NAMES, KINDS
from geogan.training.loop import TrainOptions, TrainProgress, TrainReport, train

__all__ = [
    "DEFAULT_STEPS",
    "DEMO_PRESET",
    "DEMO_RECIPE",
    "DEMO_WIDTHS",
    "SAMPLE_PAIRS",
    "TILE_SIZES",
    "TRAIN_SHARE",
    "DemoProgress",
    "DemoReport",
    "Quality",
    "run_demo",
    "sample_data_folder",
]

SAMPLE_PAIRS: dict[str, tuple[int, int]] = {
    "sat-map": (1024, 1),
    "dsm-imagery": (512, 0),
    "sar-optical": (512, 1),
}
"""(size, seed) of each kind's sample pair, as ``sample_data/README.md`` lists them."""

TILE_SIZES: dict[str, int] = {"sat-map": 256, "dsm-imagery": 128, "sar-optical": 128}
"""Chip and model tile size per kind. The 512-pixel scenes use 128-pixel tiles: with
256-pixel tiles their training area (512 x 384) would hold only 3 x 2 chip positions at
stride 128, too few to fill a validation split."""

DEFAULT_STEPS: dict[str, int] = {"sat-map": 1000, "dsm-imagery": 2000, "sar-optical": 2000}
"""Training steps per kind, sized for the slowest host the demo promises five minutes
on: two CPU cores without native bf16, where training runs in float32. There a step
took 0.10 s at 128 px (2026-12-01) and 0.16 s at 256 px for the map, which trains
without a discriminator (2026-12-05; 0.24–0.26 s with one), so each kind trains in
about 3–4 minutes. At 1000 steps the sat-map model draws woods, water, streets,
buildings and the orange major road in the map's colours (97.7 % of the held-out pixels
in the right class; 97.8 % with a discriminator, and 98.6 % at 2500 steps with one). The
128 px kinds get twice the steps for about the same time, which their photo-like targets
need for roofs and woods to show."""

DEMO_PRESET = "faithful"
DEMO_WIDTHS = {"ngf": 16, "ndf": 16, "batch_size": 1,
               "map_discriminator": PRESETS[DEMO_PRESET]["map_discriminator"]}
DEMO_RECIPE = "faithful recipe, tiny widths"
"""The demo trains the default recipe at the ``tiny`` preset's widths (ngf, ndf 16), a
chip per step (the recipe's 4 would make it 3 times slower). The narrow discriminator
is for the image targets: the map keeps the recipe's choice of none (``ndf`` given alone
would bring it back, see :data:`~geogan.nn.config.DISCRIMINATOR_SETTINGS`)."""

TRAIN_SHARE = 0.75
"""Share of the scene's rows, from the north edge, that training may see."""

CHIP_VAL_FRACTION = 0.0
"""Share of the training area's chips kept for validation during training: none. The
held-out quarter is the demo's validation; a validation split of overlapping chips would
also drop the chips beside it (10 of the 35 sat-map chips), all for 2 validation chips."""

LOG_LINES = 4
"""Lines of the training log (each with a checkpoint) written during training."""

PREVIEW_WIDTH = 512
"""Largest width of each preview panel, in pixels."""

PREVIEW_GAP = 6
"""Pixels between preview panels."""

PREVIEW_BACKGROUND = 96
"""Grey level of the gaps between panels: apart from light maps and dark photos alike."""

BOUNDARY_COLOUR = (230, 25, 75)
"""RGB of the line between the training area and the held-out quarter in the preview."""

BOUNDARY_WIDTH = 2
"""Thickness of that line, in preview pixels."""

STAGES = ("data", "export", "train", "translate", "evaluate", "preview")
"""The stages timed in :attr:`DemoReport.seconds`, in the order they run."""


@dataclass(frozen=True)
class DemoProgress:
    """Progress callbacks of the demo's stages; any may be ``None``.

    Attributes:
        stage: Called with a stage name of :data:`STAGES` as that stage starts.
        export: (windows done, windows in all) while chips are exported.
        train: :class:`~geogan.training.loop.TrainProgress` every few training steps.
        translate: (windows done, windows in all) while the scene is translated.
    """

    stage: Callable[[str], None] | None = None
    export: ProgressCallback | None = None
    train: Callable[[TrainProgress], None] | None = None
    translate: ProgressCallback | None = None


@dataclass(frozen=True)
class Quality:
    """How close the translation is to the reference over one area.

    Attributes:
        psnr: Peak signal-to-noise ratio in dB, in [-1, 1] units (data range 2).
        ssim: Structural similarity (11 x 11 Gaussian window), mean over bands.
        pixels: Pixels scored (valid in both the translation and the reference).
        palette: Class scores, when the reference is a flat-colour map with a palette.
    """

    psnr: float
    ssim: float
    pixels: int
    palette: PaletteScores | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON."""
        return {"psnr": self.psnr, "ssim": self.ssim, "pixels": self.pixels,
                "palette": None if self.palette is None else self.palette.to_dict()}


@dataclass(frozen=True)
class DemoReport:
    """What :func:`run_demo` wrote and measured.

    Attributes:
        kind: The sample pair's kind, one of :data:`~geogan.sampledata.world.KINDS`.
        out_dir: The demo folder.
        input_path: The input-domain scene (satellite, DSM or SAR).
        reference_path: The target-domain scene the translation is scored against.
        sample_data_shipped: Whether the pair came from the repository's ``sample_data/``
            (else it was generated into ``out_dir/data/``).
        train_area_path: GeoJSON polygon of the training area, in the scene's CRS.
        chips_dir: The chip folder.
        model_path: The model file.
        checkpoint_dir: Training log and checkpoint.
        translated_path: The translated scene, a GeoTIFF on the input's grid.
        preview_path: PNG of input | translated | reference.
        metrics_path: This report's figures as JSON.
        width: Scene width in pixels.
        height: Scene height in pixels.
        held_out_row: First row of the held-out area (rows above it are the training area).
        tile_size: Chip and model tile size.
        steps: Training steps.
        chips_train: Chip pairs in the training split.
        chips_val: Chip pairs in the validation split.
        device: Where training ran.
        precision: Training arithmetic.
        held_out: Quality over the held-out area.
        whole: Quality over the whole scene.
        seconds: Seconds per stage, keyed by :data:`STAGES`.
        recipe: The training recipe, in words (:data:`DEMO_RECIPE`).
    """

    kind: str
    out_dir: Path
    input_path: Path
    reference_path: Path
    sample_data_shipped: bool
    train_area_path: Path
    chips_dir: Path
    model_path: Path
    checkpoint_dir: Path
    translated_path: Path
    preview_path: Path
    metrics_path: Path
    width: int
    height: int
    held_out_row: int
    tile_size: int
    steps: int
    chips_train: int
    chips_val: int
    device: str
    precision: str
    held_out: Quality
    whole: Quality
    seconds: Mapping[str, float] = field(default_factory=dict)
    recipe: str = DEMO_RECIPE

    @property
    def total_seconds(self) -> float:
        """Wall time of all stages together."""
        return sum(self.seconds.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain values (paths as strings), for JSON."""
        values: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Path):
                value = os.fspath(value)
            elif isinstance(value, Quality):
                value = value.to_dict()
            elif isinstance(value, Mapping):
                value = dict(value)
            values[name] = value
        values["total_seconds"] = self.total_seconds
        return values


def sample_data_folder() -> Path:
    """The repository's ``sample_data/`` folder beside the package (it may not exist:
    an installed wheel does not carry it)."""
    return Path(__file__).resolve().parents[2] / "sample_data"


def run_demo(out_dir: str | os.PathLike[str], *, kind: str = "sat-map",
             steps: int | None = None, device: str = "auto", overwrite: bool = False,
             progress: DemoProgress | None = None) -> DemoReport:
    """Export chips, train, translate and score one sample pair, end to end.

    Args:
        out_dir: Folder for everything the demo writes (created if missing).
        kind: Which sample pair: ``sat-map``, ``dsm-imagery`` or ``sar-optical``.
        steps: Training steps; ``None`` for the kind's :data:`DEFAULT_STEPS`.
        device: Where to train and translate: ``auto``, ``cpu`` or ``cuda``.
        overwrite: Replace the demo's files in an existing, non-empty ``out_dir``
            (other files there are left alone).
        progress: Callbacks that follow the stages.

    Returns:
        Paths written, quality figures and seconds per stage.

    Raises:
        InputError: For an unknown kind or a step count below 1.
        DeviceError: If ``device`` names a device PyTorch does not see.
        OutputExistsError: If ``out_dir`` exists, is not empty and ``overwrite`` is false.
        OutputError: If ``out_dir`` cannot be created or written.
        GeoganError: Whatever a stage raises (device not available, disk full, ...).
    """
    if kind not in KINDS:
        raise InputError(f"unknown sample kind {kind!r}; use one of {', '.join(KINDS)}")
    steps = DEFAULT_STEPS[kind] if steps is None else steps
    if steps < 1:
        raise InputError(f"the demo needs at least 1 training step, not {steps}")
    resolve_device(device)  # a device that is not there fails now, not after the export
    out = Path(out_dir)
    _prepare_folder(out, overwrite)
    callbacks = progress or DemoProgress()
    seconds: dict[str, float] = {}

    def clock(name: str) -> AbstractContextManager[None]:
        return _timed(name, seconds, callbacks.stage)

    with clock("data"):
        input_path, reference_path, shipped = _sample_pair(out, kind, overwrite)
        with rasterio.open(input_path) as scene:
            width, height, crs, transform = scene.width, scene.height, scene.crs, scene.transform
        held_out_row = round(height * TRAIN_SHARE)
        train_area = out / "train-area.geojson"
        _write_train_area(train_area, crs, transform, width, held_out_row)

    tile = TILE_SIZES[kind]
    with clock("export"):
        exported = _export(input_path, reference_path, out / "chips", train_area, tile,
                           callbacks.export)

    with clock("train"):
        trained = _train(exported.out_dir, out / "m.pt", steps, device, callbacks.train)

    with clock("translate"):
        translated = _translate(input_path, out / "translated.tif", trained.model_path,
                                device, callbacks.translate)

    with clock("evaluate"):
        held_out, whole = _evaluate(translated.output, reference_path, held_out_row)

    with clock("preview"):
        preview = out / "preview.png"
        write_png(preview, _preview(input_path, translated.output, reference_path,
                                    held_out_row))

    report = DemoReport(
        kind=kind, out_dir=out, input_path=input_path, reference_path=reference_path,
        sample_data_shipped=shipped, train_area_path=train_area, chips_dir=exported.out_dir,
        model_path=trained.model_path, checkpoint_dir=trained.checkpoint_dir,
        translated_path=translated.output, preview_path=preview,
        metrics_path=out / "metrics.json", width=width, height=height,
        held_out_row=held_out_row, tile_size=tile, steps=trained.steps,
        chips_train=exported.train, chips_val=exported.val, device=trained.device,
        precision=trained.precision, held_out=held_out, whole=whole, seconds=seconds,
    )
    with atomic_file(report.metrics_path, "metrics file") as temporary:
        temporary.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=True))
    return report


@contextmanager
def _timed(name: str, seconds: dict[str, float],
           announce: Callable[[str], None] | None) -> Iterator[None]:
    """Announce the stage ``name``, run it, and record its wall time in ``seconds``."""
    if announce is not None:
        announce(name)
    start = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - start


# --------------------------------------------------------------------------- the steps


def _prepare_folder(out: Path, overwrite: bool) -> None:
    """Create ``out``, or refuse an existing non-empty one without ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"the demo folder {out} is a file; give a folder name")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"the demo folder {out} exists and is not empty; pass "
                                "--overwrite to replace the demo's files in it, or choose "
                                "another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the demo folder {out}: "
                          f"{error.strerror or error}") from None


def _sample_pair(out: Path, kind: str, overwrite: bool) -> tuple[Path, Path, bool]:
    """(input, reference, shipped): the repository's sample pair, else the same pair
    generated into ``out/data/`` (an installed package does not carry ``sample_data/``)."""
    input_name, reference_name = FILE_NAMES[kind]
    shipped = sample_data_folder() / kind
    if (shipped / input_name).is_file() and (shipped / reference_name).is_file():
        return shipped / input_name, shipped / reference_name, True
    size, seed = SAMPLE_PAIRS[kind]
    pair = write_sample_pair(out / "data", kind, size=size, seed=seed, overwrite=overwrite)
    return pair.input_path, pair.target_path, False


def _write_train_area(path: Path, crs: Any, transform: Any, width: int, rows: int) -> None:
    """The northern ``rows`` rows of the scene as a GeoJSON polygon in the scene's CRS.

    The legacy ``crs`` member (``EPSG:32633`` for the sample pairs) is what GDAL, QGIS
    and :func:`geogan.raster.footprints.load_aoi` read; without it GeoJSON means WGS 84.
    """
    left, bottom, right, top = window_bounds(Window(0, 0, width, rows), transform)
    ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
    epsg = crs.to_epsg()
    name = f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()
    document = {
        "type": "FeatureCollection",
        "name": "train-area",
        "crs": {"type": "name", "properties": {"name": name}},
        "features": [{
            "type": "Feature",
            "properties": {"role": "training area: the northern rows the model may see",
                           "rows": [0, rows]},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }],
    }
    with atomic_file(path, "training area") as temporary:
        temporary.write_text(json.dumps(document, indent=1))


def _export(input_path: Path, reference_path: Path, chips: Path, train_area: Path, tile: int,
            progress: ProgressCallback | None) -> ExportReport:
    """Chips of the training area, overlapping by half a tile."""
    options = ExportOptions(tile_size=tile, stride=tile // 2, aoi=train_area,
                            val_fraction=CHIP_VAL_FRACTION, overwrite=True)
    return export_chips(input_path, reference_path, chips, options, progress)


def _train(chips: Path, model: Path, steps: int, device: str,
           progress: Callable[[TrainProgress], None] | None) -> TrainReport:
    """The narrow faithful Pix2Pix for ``steps`` steps, logged and checkpointed a few times."""
    overrides = {"steps": steps, "seed": 0, "val_every": max(1, steps // LOG_LINES),
                 **DEMO_WIDTHS}
    options = TrainOptions(kind="pix2pix", preset=DEMO_PRESET, overrides=overrides,
                           device=device, overwrite=True)
    return train(chips, model, options, progress)


def _translate(scene: Path, output: Path, model: Path, device: str,
               progress: ProgressCallback | None) -> TranslateReport:
    """The whole scene, training area and held-out quarter alike."""
    return translate_raster(scene, output, model, progress=progress, device=device,
                            overwrite=True)


def _read_with_mask(path: Path) -> tuple[NDArray[Any], NDArray[np.bool_], dict[str, str]]:
    """Pixels (C, H, W), validity (H, W: every band present, as for chips), and the
    default-domain tags."""
    with rasterio.open(path) as dataset:
        pixels = dataset.read()  # (C, H, W)
        valid = valid_mask(dataset, Window(0, 0, dataset.width, dataset.height), pixels)
        return pixels, valid, dict(dataset.tags())


def _unit_range(pixels: NDArray[Any]) -> torch.Tensor:
    """uint8 (C, H, W) as a (1, C, H, W) float tensor in [-1, 1], the models' space."""
    if pixels.dtype != np.uint8:
        raise InputError(f"the demo scores uint8 references only, not {pixels.dtype}")
    return torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0)[None]


def _quality(prediction: NDArray[Any], reference: NDArray[Any], valid: NDArray[np.bool_],
             palette: Mapping[str, tuple[int, int, int]] | None) -> Quality:
    """PSNR, SSIM and (with a palette) class scores over one area."""
    mask = torch.from_numpy(valid)[None, None]  # (1, 1, H, W)
    x, y = _unit_range(prediction), _unit_range(reference)  # (1, C, H, W)
    scores = None
    if palette is not None:
        scores = palette_scores(prediction, reference, palette, valid)
    return Quality(psnr=float(psnr(x, y, mask)[0]), ssim=float(ssim(x, y, mask)[0]),
                   pixels=int(valid.sum()), palette=scores)


def _evaluate(translated: Path, reference: Path, held_out_row: int) -> tuple[Quality, Quality]:
    """Quality over the held-out rows and over the whole scene."""
    prediction, predicted_valid, _ = _read_with_mask(translated)
    target, target_valid, tags = _read_with_mask(reference)
    valid = predicted_valid & target_valid  # (H, W)
    palette = palette_in_tags(tags)
    south = slice(held_out_row, None)
    held_out = _quality(prediction[:, south], target[:, south], valid[south], palette)
    whole = _quality(prediction, target, valid, palette)
    return held_out, whole


def _panel(path: Path, held_out_row: int, height: int) -> NDArray[np.uint8]:
    """One scene as a preview panel at most :data:`PREVIEW_WIDTH` wide, with the
    held-out boundary drawn across it. Non-8-bit rasters (a DSM, SAR in dB) are shown in
    grey stretched between their 2nd and 98th percentiles; invalid pixels in black."""
    pixels, valid, _ = _read_with_mask(path)
    pixels = downsample_for_preview(pixels, PREVIEW_WIDTH)  # (C, h, w)
    valid = downsample_for_preview(valid, PREVIEW_WIDTH)  # (h, w)
    rgb = to_display_rgb(pixels, mask=valid)  # (3, h, w)
    row = min(rgb.shape[1] - BOUNDARY_WIDTH,
              math.floor(held_out_row * rgb.shape[1] / height) - BOUNDARY_WIDTH // 2)
    rgb[:, row:row + BOUNDARY_WIDTH] = np.asarray(BOUNDARY_COLOUR, np.uint8)[:, None, None]
    return rgb


def _preview(input_path: Path, translated: Path, reference: Path,
             held_out_row: int) -> NDArray[np.uint8]:
    """Input | translated | reference, side by side."""
    with rasterio.open(input_path) as scene:
        height = scene.height
    panels = [_panel(path, held_out_row, height) for path in (input_path, translated, reference)]
    return grid([panels], gutter=PREVIEW_GAP, background=PREVIEW_BACKGROUND)
