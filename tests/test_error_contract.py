"""The error contract (DESIGN.md section 5), one table for every command.

Each row drives the real command line (``geogan <command> ...`` through click's
``CliRunner``, stderr apart from stdout) with one bad input. A row that must fail
asserts:

* exit code 1 (2 for a usage error, which click reports itself);
* stderr is exactly one line, ``Error: ...``, holding the row's key words (for a usage
  error: click's usage text whose last line is ``Error: ...``);
* no traceback anywhere;
* nothing in the row's folder changed: no output, no hidden ``.partial`` leftovers, the
  inputs and any existing output untouched.

A few rows are inputs the commands accept on purpose (a one-pixel scene is translated,
a scene without a CRS is translated with a ``Warning:`` line, NaN and infinity are
nodata); those assert exit 0 and what was written.

Rows named ``.../unreadable`` and ``.../not-writable`` use ``chmod``, which root
ignores: they are skipped when running as root. Their root-proof twins are
``.../is-a-folder`` (an input that is a folder) and ``.../parent-is-a-file`` (an output
whose folder is a regular file).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from click.testing import CliRunner

from geogan.cli.main import cli
from geogan.errors import ModelFileError
from tests.helpers import save_model, textured, write_raster

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_permissions = pytest.mark.skipif(AS_ROOT, reason="root ignores file permissions")

EXPORT = ("--tile-size", "32", "--val-fraction", "0")
TRAIN = ("--preset", "tiny", "--ngf", "4", "--ndf", "4", "--steps", "1", "--workers", "0",
         "--device", "cpu", "--precision", "fp32")
TRANSLATE = ("--device", "cpu", "--precision", "fp32")
GRID = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_000_000.0)


# -- shared inputs (module scope: written once) ------------------------------------------


@dataclass(frozen=True)
class Assets:
    """Good inputs that the rows combine with one bad one."""

    a: Path  # 3 × 64 × 64 uint8 in UTM 33N
    b: Path  # 1 × 64 × 64 float32 on the same grid
    model: Path  # 3 uint8 bands -> 3 uint8 bands, tile 64
    model_f32: Path  # 3 float32 bands -> 1 float32 band with nodata -9999
    model_4: Path  # 4 input bands
    model_v99: Path  # a good model file whose version is 99
    chips: Path  # an ArcGIS-layout chip folder (images/ + images2/) of 64 × 64 chips


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    tmp = tmp_path_factory.mktemp("contract-assets")
    rng = np.random.default_rng(7)
    data = textured(rng, 3, 64, 64)
    a = write_raster(tmp / "a.tif", data, transform=GRID)
    b = write_raster(tmp / "b.tif", data.astype(np.float32).mean(axis=0, keepdims=True),
                     transform=GRID)
    model = save_model(tmp / "m.pt")
    model_f32 = save_model(tmp / "m_f32.pt", out_bands=1, in_dtype="float32",
                           in_range=(0.0, 255.0), out_dtype="float32", out_nodata=-9999.0)
    model_4 = save_model(tmp / "m4.pt", in_bands=4)
    payload = torch.load(model, weights_only=True)
    payload["version"] = 99
    model_v99 = tmp / "m_v99.pt"
    torch.save(payload, model_v99)
    chips = chip_folder(tmp / "chips", [(3, 64, 64)] * 4, [(1, 64, 64)] * 4)
    return Assets(a, b, model, model_f32, model_4, model_v99, chips)


def chip_folder(root: Path, shapes_a: list[tuple[int, int, int]],
                shapes_b: list[tuple[int, int, int]]) -> Path:
    """An ArcGIS-layout chip folder with chips of the given (bands, height, width)."""
    rng = np.random.default_rng(3)
    for folder, shapes in (("images", shapes_a), ("images2", shapes_b)):
        (root / folder).mkdir(parents=True)
        for i, shape in enumerate(shapes):
            write_raster(root / folder / f"{i:09d}.tif",
                         rng.integers(0, 255, shape, dtype=np.uint8), transform=GRID)
    return root


# -- bad inputs, written into each row's own folder --------------------------------------


def text_tif(tmp: Path) -> Path:
    path = tmp / "notes.tif"
    path.write_text("not a raster\n")
    return path


def empty_tif(tmp: Path) -> Path:
    path = tmp / "empty.tif"
    path.write_bytes(b"")
    return path


def one_pixel(tmp: Path, bands: int = 3) -> Path:
    return write_raster(tmp / "pixel.tif", np.full((bands, 1, 1), 120, np.uint8),
                        transform=GRID)


def no_crs(tmp: Path) -> Path:
    return write_raster(tmp / "nocrs.tif", textured(np.random.default_rng(1), 3, 64, 64),
                        crs=None, transform=GRID)


def far_away(tmp: Path) -> Path:
    return write_raster(tmp / "far.tif", np.ones((1, 64, 64), np.float32),
                        transform=Affine(10.0, 0.0, 900_000.0, 0.0, -10.0, 5_000_000.0))


def complex_tif(tmp: Path) -> Path:
    return write_raster(tmp / "complex.tif", np.ones((3, 64, 64), np.complex64), transform=GRID)


#: Rows and columns of NaN and of infinity in :func:`non_finite`'s rasters.
NAN_BLOCK = (slice(0, 8), slice(0, 8))
INF_BLOCK = (slice(8, 12), slice(0, 8))


def non_finite(tmp: Path) -> Path:
    """3 × 64 × 64 float32 in [0, 255] without a nodata value; NaN and ±inf blocks."""
    data = textured(np.random.default_rng(2), 3, 64, 64).astype(np.float32)
    data[(slice(None), *NAN_BLOCK)] = np.nan
    data[0][INF_BLOCK] = np.inf
    data[1][INF_BLOCK] = -np.inf
    data[2][INF_BLOCK] = np.inf
    return write_raster(tmp / "nan.tif", data, transform=GRID)


def damaged_model(tmp: Path) -> Path:
    path = tmp / "damaged.pt"
    path.write_bytes(b"PK\x03\x04 a truncated zip archive")
    return path


def unreadable(path: Path) -> Path:
    path.chmod(0)
    return path


def read_only_folder(tmp: Path) -> Path:
    folder = tmp / "locked"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)  # 0o500
    return folder


def plain_file(tmp: Path) -> Path:
    path = tmp / "plain"
    path.write_text("a file where a folder should be\n")
    return path


def existing(path: Path) -> Path:
    """An output that exists already (a file, or a folder holding one)."""
    if path.suffix:
        path.write_text("old\n")
    else:
        path.mkdir()
        (path / "old.txt").write_text("old\n")
    return path


# -- what a row runs and expects ---------------------------------------------------------


@dataclass
class Case:
    """One invocation and what it must do.

    Attributes:
        args: The command line after ``geogan``.
        message: Words the ``Error:`` line must hold (failing rows).
        code: The exit code: 1, 2 for usage errors, 0 for accepted inputs.
        check: For accepted inputs: checks of what was written (gets the row folder).
        warning: For accepted inputs: words of the one ``Warning:`` line expected.
    """

    args: list[str]
    message: str = ""
    code: int = 1
    check: Callable[[Path], None] | None = None
    warning: str | None = None


Build = Callable[[Assets, Path], Case]


def export(tmp: Path, input_: Path, additional: Path, *more: str, out: Path | None = None,
           message: str = "", code: int = 1,
           check: Callable[[Path], None] | None = None) -> Case:
    out = out if out is not None else tmp / "chips"
    # Accepted exports of EXPORT's 32-px chips also say that no geogan model trains on them.
    warning = "cannot train a geogan model" if code == 0 else None
    return Case(["-q", "export-chips", str(input_), str(additional), "-o", str(out), *EXPORT,
                 *more], message, code, check, warning)


def train(tmp: Path, chips: Path, *, out: Path | None = None, message: str = "",
          code: int = 1) -> Case:
    out = out if out is not None else tmp / "m.pt"
    return Case(["-q", "train", str(chips), "-o", str(out), *TRAIN], message, code)


def translate(tmp: Path, scene: Path, model: Path, *more: str, out: Path | None = None,
              message: str = "", code: int = 1, check: Callable[[Path], None] | None = None,
              warning: str | None = None) -> Case:
    out = out if out is not None else tmp / "out.tif"
    return Case(["-q", "translate", str(scene), "-m", str(model), "-o", str(out), *TRANSLATE,
                 *more], message, code, check, warning)


def evaluate(prediction: Path, reference: Path, *more: str, message: str = "",
             code: int = 1) -> Case:
    return Case(["evaluate", str(prediction), str(reference), *more], message, code)


def palette_file(tmp: Path, text: str) -> str:
    path = tmp / "palette.json"
    path.write_text(text)
    return str(path)


def info(model: Path, message: str = "", code: int = 1) -> Case:
    return Case(["info", str(model)], message, code)


def demo(tmp: Path, out: Path, *more: str, message: str = "", code: int = 1) -> Case:
    return Case(["-q", "demo", "--out", str(out), "--steps", "1", "--device", "cpu", *more],
                message, code)


def sample_data(out: Path, message: str = "", code: int = 1) -> Case:
    return Case(["-q", "sample-data", str(out), "--size", "64"], message, code)


def tiles_in_two_crss(tmp: Path) -> Path:
    folder = tmp / "tiles"
    folder.mkdir()
    write_raster(folder / "t1.tif", np.ones((3, 32, 32), np.uint8), transform=GRID)
    write_raster(folder / "t2.tif", np.ones((3, 32, 32), np.uint8), transform=GRID,
                 crs="EPSG:32632")
    return folder


def pairs_csv(tmp: Path, assets: Assets, missing: str) -> str:
    path = tmp / "pairs.csv"
    path.write_text(f"{assets.a},{assets.b}\n{missing},{assets.b}\n")
    return str(path)


# -- checks of accepted inputs -----------------------------------------------------------


def one_pixel_output(tmp: Path) -> None:
    """translate pads a scene smaller than the tile: a 1 × 1 scene gives a 1 × 1 output."""
    with rasterio.open(tmp / "out.tif") as out, rasterio.open(tmp / "pixel.tif") as src:
        assert (out.width, out.height, out.count) == (1, 1, 3)
        assert out.transform == src.transform and out.crs == src.crs


def no_crs_output(tmp: Path) -> None:
    with rasterio.open(tmp / "out.tif") as out:
        assert out.crs is None and (out.width, out.height) == (64, 64)


def translated_nodata(tmp: Path) -> None:
    """NaN and infinite pixels (in every band) are nodata in the translation, the
    others are finite values."""
    with rasterio.open(tmp / "out.tif") as out:
        assert out.nodata == -9999.0
        values = out.read(1)
        mask = out.read_masks(1)
    for block in (NAN_BLOCK, INF_BLOCK):
        assert (values[block] == -9999.0).all() and (mask[block] == 0).all()
    rest = np.ones(values.shape, bool)
    rest[NAN_BLOCK] = rest[INF_BLOCK] = False
    assert np.isfinite(values[rest]).all() and (values[rest] != -9999.0).all()
    assert (mask[rest] == 255).all()


def exported_nodata(tmp: Path) -> None:
    """NaN and infinite pixels count as nodata: the chip holding them is exported (it is
    valid enough for --min-valid 0.5), its valid fraction says so, and the pixels stay
    non-finite (no value is invented for them)."""
    chips = tmp / "chips"
    index = json.loads((chips / "index.geojson").read_text())
    fractions = sorted(f["properties"]["valid_fraction"] for f in index["features"])
    assert len(fractions) == 4
    assert fractions[0] == pytest.approx(1 - 96 / 1024)  # 8 × 8 NaN + 4 × 8 inf of 32 × 32
    assert fractions[1:] == [1.0, 1.0, 1.0]
    with rasterio.open(chips / "images" / "000000000.tif") as chip:
        data = chip.read()
    assert not np.isfinite(data[(slice(None), *NAN_BLOCK)]).any()
    assert not np.isfinite(data[(slice(None), *INF_BLOCK)]).any()


# -- the table ---------------------------------------------------------------------------

ROWS: list[tuple[str, Build] | tuple[str, Build, pytest.MarkDecorator]] = [
    # export-chips INPUT ADDITIONAL -o OUT
    ("export-chips/missing", lambda s, t: export(t, t / "nope.tif", s.b, message="no such file")),
    ("export-chips/unreadable",
     lambda s, t: export(t, unreadable(text_tif(t)), s.b, code=2,
                         message="is not readable"),
     needs_permissions),
    ("export-chips/is-a-folder",  # a folder is a mosaic of its rasters: this one has none
     lambda s, t: export(t, (t / "dir.tif").mkdir() or t / "dir.tif", s.b,
                         message="holds no raster file")),
    ("export-chips/tiles-in-other-crss",
     lambda s, t: export(t, tiles_in_two_crss(t), s.b, message="not in one CRS")),
    ("export-chips/pairs-missing-file",
     lambda s, t: Case(["-q", "export-chips", "--pairs", pairs_csv(t, s, "gone.tif"), "-o",
                        str(t / "chips"), *EXPORT], "row 2 (gone.tif")),
    ("export-chips/not-a-raster",
     lambda s, t: export(t, s.a, text_tif(t), message="not a raster")),
    ("export-chips/zero-size",
     lambda s, t: export(t, empty_tif(t), s.b, message="empty (0 bytes)")),
    ("export-chips/one-pixel",  # no chip fits a 1 × 1 raster
     lambda s, t: export(t, one_pixel(t), s.b, message="--tile-size")),
    ("export-chips/no-crs",
     lambda s, t: export(t, no_crs(t), s.b, message="no coordinate reference system")),
    ("export-chips/no-overlap", lambda s, t: export(t, s.a, far_away(t), message="overlap")),
    ("export-chips/complex", lambda s, t: export(t, complex_tif(t), s.b, message="complex64")),
    ("export-chips/nan-inf",  # accepted: NaN and ±inf are nodata
     lambda s, t: export(t, non_finite(t), s.b, "--min-valid", "0.5", code=0,
                         check=exported_nodata)),
    ("export-chips/output-exists",
     lambda s, t: export(t, s.a, s.b, out=existing(t / "chips"), message="--overwrite")),
    ("export-chips/parent-is-a-file",
     lambda s, t: export(t, s.a, s.b, out=plain_file(t) / "chips", message="plain")),
    ("export-chips/not-writable",
     lambda s, t: export(t, s.a, s.b, out=read_only_folder(t) / "chips", message="locked"),
     needs_permissions),

    # train CHIPS -o MODEL
    ("train/missing", lambda s, t: train(t, t / "nope", message="does not exist")),
    ("train/unreadable",
     lambda s, t: train(t, unreadable(chip_folder(t / "c", [(3, 64, 64)] * 2, [(1, 64, 64)] * 2)),
                        code=2, message="is not readable"),
     needs_permissions),
    ("train/is-a-file",  # click: CHIPS is a folder argument
     lambda s, t: train(t, plain_file(t), code=2, message="is a file")),
    ("train/not-a-raster",
     lambda s, t: train(t, _with_chip(chip_folder(t / "c", [(3, 64, 64)] * 2, [(1, 64, 64)] * 2),
                                      "images/000000001.tif", text_tif), message="cannot read")),
    ("train/zero-size",
     lambda s, t: train(t, _with_chip(chip_folder(t / "c", [(3, 64, 64)] * 2, [(1, 64, 64)] * 2),
                                      "images2/000000000.tif", empty_tif),
                        message="empty (0 bytes)")),
    ("train/one-pixel",
     lambda s, t: train(t, chip_folder(t / "c", [(3, 1, 1)] * 2, [(1, 1, 1)] * 2),
                        message="tile size 1")),
    ("train/band-mismatch",
     lambda s, t: train(t, chip_folder(t / "c", [(3, 64, 64), (3, 64, 64), (4, 64, 64)],
                                       [(1, 64, 64)] * 3), message="bands")),
    ("train/mixed-sizes",
     lambda s, t: train(t, chip_folder(t / "c", [(3, 64, 64), (3, 64, 64), (3, 32, 32)],
                                       [(1, 64, 64), (1, 64, 64), (1, 32, 32)]), message="size")),
    ("train/folders-of-other-bands",  # several folders: they must agree
     lambda s, t: Case(["-q", "train", str(s.chips),
                        str(chip_folder(t / "c4", [(4, 64, 64)] * 2, [(1, 64, 64)] * 2)),
                        "-o", str(t / "m.pt"), *TRAIN], "c4 holds paired 4-band uint8")),
    ("train/output-exists",
     lambda s, t: train(t, s.chips, out=existing(t / "m.pt"), message="--overwrite")),
    ("train/parent-is-a-file",
     lambda s, t: train(t, s.chips, out=plain_file(t) / "m.pt", message="plain")),
    ("train/not-writable",
     lambda s, t: train(t, s.chips, out=read_only_folder(t) / "m.pt", message="locked"),
     needs_permissions),

    # translate SCENE -m MODEL -o OUT
    ("translate/missing", lambda s, t: translate(t, t / "nope.tif", s.model,
                                                 message="no such file")),
    ("translate/missing-model", lambda s, t: translate(t, s.a, t / "nope.pt",
                                                       message="does not exist")),
    ("translate/unreadable",
     lambda s, t: translate(t, unreadable(text_tif(t)), s.model, code=2,
                            message="is not readable"),
     needs_permissions),
    ("translate/is-a-folder",  # click: SCENES are file arguments
     lambda s, t: translate(t, (t / "dir.tif").mkdir() or t / "dir.tif", s.model, code=2,
                            message="is a directory")),
    ("translate/not-a-raster",
     lambda s, t: translate(t, text_tif(t), s.model, message="not a raster")),
    ("translate/zero-size",
     lambda s, t: translate(t, empty_tif(t), s.model, message="empty (0 bytes)")),
    ("translate/one-pixel",  # accepted: the window is padded to the tile
     lambda s, t: translate(t, one_pixel(t), s.model, code=0, check=one_pixel_output)),
    ("translate/no-crs",  # accepted, with a warning: the output has no CRS either
     lambda s, t: translate(t, no_crs(t), s.model, code=0, check=no_crs_output,
                            warning="no CRS")),
    ("translate/complex",
     lambda s, t: translate(t, complex_tif(t), s.model, message="complex64")),
    ("translate/band-mismatch",
     lambda s, t: translate(t, s.a, s.model_4, message="3 band(s) but the model reads 4")),
    ("translate/nan-inf",  # accepted: NaN and ±inf become the model's output nodata
     lambda s, t: translate(t, non_finite(t), s.model_f32, code=0, check=translated_nodata)),
    ("translate/far-resolution",  # accepted, with a warning: 10 m pixels, a 1 m model
     lambda s, t: translate(t, s.a, save_model(t / "m1.pt", pixel=1.0), code=0,
                            check=lambda row: None if (row / "out.tif").exists() else
                            pytest.fail("no output"), warning="10 × coarser")),
    ("translate/far-resolution-strict",
     lambda s, t: translate(t, s.a, save_model(t / "m1.pt", pixel=1.0), "--strict",
                            message="10 × coarser")),
    ("translate/mosaic-without-out-dir",  # click: --mosaic is for batches
     lambda s, t: translate(t, s.a, s.model, "--mosaic", code=2, message="--out-dir")),
    ("translate/damaged-model",
     lambda s, t: translate(t, s.a, damaged_model(t), message="not a readable model file")),
    ("translate/version-99",
     lambda s, t: translate(t, s.a, s.model_v99, message="upgrade geogan")),
    ("translate/output-exists",
     lambda s, t: translate(t, s.a, s.model, out=existing(t / "out.tif"),
                            message="--overwrite")),
    ("translate/parent-is-a-file",
     lambda s, t: translate(t, s.a, s.model, out=plain_file(t) / "out.tif", message="plain")),
    ("translate/not-writable",
     lambda s, t: translate(t, s.a, s.model, out=read_only_folder(t) / "out.tif",
                            message="locked"),
     needs_permissions),

    # evaluate PREDICTION REFERENCE
    ("evaluate/missing", lambda s, t: evaluate(s.a, t / "nope.tif", message="nope.tif")),
    ("evaluate/not-a-raster", lambda s, t: evaluate(text_tif(t), s.a, message="not a raster")),
    ("evaluate/band-mismatch", lambda s, t: evaluate(s.a, s.b, message="band")),
    ("evaluate/no-overlap", lambda s, t: evaluate(s.b, far_away(t), message="overlap")),
    ("evaluate/bad-palette-file",
     lambda s, t: evaluate(s.a, s.a, "--palette", palette_file(t, "{not json"),
                           message="palette")),
    ("evaluate/bad-mask",
     lambda s, t: evaluate(s.a, s.a, "--mask", palette_file(t, "[]"), message="not a GeoJSON")),
    ("evaluate/bad-resampling",  # click: not one of the choices
     lambda s, t: evaluate(s.a, s.a, "--resampling", "lanczos9", code=2)),

    # info MODEL
    ("info/missing", lambda s, t: info(t / "nope.pt", "does not exist")),
    ("info/unreadable", lambda s, t: info(unreadable(damaged_model(t)), "is not readable", code=2),
     needs_permissions),
    ("info/is-a-folder",  # click: MODEL is a file argument
     lambda s, t: info((t / "m.pt").mkdir() or t / "m.pt", "is a directory", code=2)),
    ("info/not-a-model", lambda s, t: info(text_tif(t), "not a readable model file")),
    ("info/zero-size", lambda s, t: info(empty_tif(t), "not a readable model file")),
    ("info/damaged-model", lambda s, t: info(damaged_model(t), "not a readable model file")),
    ("info/version-99", lambda s, t: info(s.model_v99, "upgrade geogan")),

    # demo --out FOLDER
    ("demo/output-exists", lambda s, t: demo(t, existing(t / "demo"), message="--overwrite")),
    ("demo/parent-is-a-file", lambda s, t: demo(t, plain_file(t) / "demo", message="plain")),
    ("demo/is-a-file",  # click: --out is a folder option
     lambda s, t: demo(t, plain_file(t), code=2, message="is a file")),
    ("demo/not-writable", lambda s, t: demo(t, read_only_folder(t) / "demo", message="locked"),
     needs_permissions),
    ("demo/bad-kind",
     lambda s, t: demo(t, t / "demo", "--kind", "radar-map", code=2, message="--kind")),

    # sample-data FOLDER
    ("sample-data/output-exists",
     lambda s, t: sample_data((t / "data").mkdir() or existing(t / "data" / "sat.tif").parent,
                              "--overwrite")),
    ("sample-data/parent-is-a-file",
     lambda s, t: sample_data(plain_file(t) / "data", "plain")),
    ("sample-data/not-writable",
     lambda s, t: sample_data(read_only_folder(t) / "data", "locked"), needs_permissions),
]


def _with_chip(root: Path, name: str, make: Callable[[Path], Path]) -> Path:
    """``root`` with its chip ``name`` replaced by what ``make`` writes."""
    chip = root / name
    made = make(chip.parent)
    made.replace(chip)
    return root


def _params() -> list[object]:
    params = []
    for row in ROWS:
        name, build, *marks = row
        params.append(pytest.param(build, id=name, marks=marks))
    return params


def snapshot(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every file and folder under ``folder``: kind, size and modification time."""
    found: dict[str, tuple[str, int, int]] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            info_ = path.lstat()
            kind = "dir" if stat.S_ISDIR(info_.st_mode) else "file"
            found[os.fspath(path.relative_to(folder))] = (
                kind, 0 if kind == "dir" else info_.st_size, info_.st_mtime_ns)
    return found


@pytest.fixture
def restore_permissions(tmp_path: Path) -> Iterator[None]:
    """Make the chmod rows' folders deletable again."""
    yield
    for root, dirs, files in os.walk(tmp_path):
        for name in dirs + files:
            path = Path(root) / name
            if not path.is_symlink():
                path.chmod(stat.S_IRWXU)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.usefixtures("restore_permissions")
@pytest.mark.parametrize("build", _params())
def test_error_contract(build: Build, assets: Assets, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    rows = tmp_path / "row"
    rows.mkdir()
    monkeypatch.chdir(rows)  # a command that writes into the working folder shows up here
    case = build(assets, rows)
    before = snapshot(rows)
    result = CliRunner().invoke(cli, case.args)
    stderr, stdout = result.stderr, result.stdout
    assert "Traceback" not in stderr + stdout
    assert result.exit_code == case.code, (stdout, stderr, result.exception)
    leftovers = [name for name in snapshot(rows) if ".partial" in name]
    assert not leftovers
    if case.code == 0:
        warnings_ = [line for line in stderr.splitlines() if line.startswith("Warning: ")]
        if case.warning is None:
            assert not stderr.strip(), stderr
        else:
            assert len(warnings_) == 1 and case.warning in warnings_[0], stderr
            assert stderr.strip().count("\n") == 0, stderr
        assert case.check is not None
        case.check(rows)
        return
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)
    lines = stderr.rstrip("\n").split("\n")
    if case.code == 1:
        assert len(lines) == 1, stderr
    assert lines[-1].startswith("Error: "), stderr
    assert case.message in lines[-1], stderr
    assert snapshot(rows) == before  # nothing written, nothing changed, nothing left


def test_debug_re_raises(tmp_path: Path) -> None:
    """``--debug``: the library's exception propagates, with its traceback."""
    missing = tmp_path / "none.pt"
    with pytest.raises(ModelFileError, match="does not exist"):
        CliRunner().invoke(cli, ["--debug", "info", str(missing)], catch_exceptions=False)
    result = CliRunner().invoke(cli, ["info", str(missing)])
    assert result.exit_code == 1 and result.stderr.startswith("Error: ")


@pytest.mark.parametrize("command", ["export-chips", "train", "translate", "info"])
def test_unreadable_input_even_as_root(command: str, assets: Assets, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``.../unreadable`` rows, root-proof: ``os.access`` says the input may not be
    read (as it does for another user's chmod 000 file). The command line refuses it as
    a usage error (click checks its path arguments: exit 2); the library functions
    behind it raise their own one-sentence error for callers that bypass the CLI."""
    from geogan.errors import ChipFolderError, UnreadableError
    from geogan.nn.model_file import read_model_file
    from geogan.raster.io import open_raster
    from geogan.training.chip_folder import open_chip_folder

    def open_(path: Path) -> None:
        with open_raster(path):
            pass

    target, args, library, error = {
        "export-chips": (assets.a, ["export-chips", str(assets.a), str(assets.b), "-o",
                                    str(tmp_path / "chips"), *EXPORT], open_, UnreadableError),
        "train": (assets.chips, ["train", str(assets.chips), "-o", str(tmp_path / "m.pt"),
                                 *TRAIN], open_chip_folder, ChipFolderError),
        "translate": (assets.a, ["translate", str(assets.a), "-m", str(assets.model), "-o",
                                 str(tmp_path / "out.tif"), *TRANSLATE], open_,
                      UnreadableError),
        "info": (assets.model, ["info", str(assets.model)], read_model_file, ModelFileError),
    }[command]
    real = os.access

    def access(path: object, mode: int, *args: object, **kwargs: object) -> bool:
        if Path(os.fspath(path)).absolute() == target.absolute():  # type: ignore[arg-type]
            return False
        return real(path, mode, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    result = CliRunner().invoke(cli, ["-q", *args])
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("Error: ")
    assert "is not readable" in result.stderr
    assert not any(tmp_path.iterdir())
    with pytest.raises(error, match="permission denied") as raised:
        library(target)
    assert "\n" not in str(raised.value)


def test_a_permission_error_the_library_did_not_catch_is_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A PermissionError from anywhere (a folder made unwritable mid-run) is the user's
    to fix: one line naming the file, exit 1; ``--debug`` re-raises it."""
    import geogan.nn.model_file

    def denied(path: object) -> None:
        raise PermissionError(13, "Permission denied", "/data/m.pt")

    monkeypatch.setattr(geogan.nn.model_file, "read_model_file", denied)
    result = CliRunner().invoke(cli, ["info", "m.pt"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: /data/m.pt: permission denied; check")
    with pytest.raises(PermissionError):
        CliRunner().invoke(cli, ["--debug", "info", "m.pt"], catch_exceptions=False)
