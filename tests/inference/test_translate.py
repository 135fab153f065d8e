"""translate_raster and translate_batch: grid, nodata, seams, memory, failures, batches.

Every model here is a tiny random-weight one (tile 64, ngf 4), run on the CPU in fp32, so
that a translation takes a fraction of a second and its output is exactly reproducible.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import RasterioError

import geogan
import geogan.inference.pipeline as engine
import geogan.inference.scene as translate_module
from geogan.errors import (
    ConfigError,
    GeoganWarning,
    InputError,
    ModelFileError,
    OutputError,
    OutputExistsError,
)
from geogan.grids.windows import WindowGrid
from geogan.inference.batch import translate_batch
from geogan.inference.scene import translate_raster
from geogan.inference.scene_read import SceneRead
from geogan.inference.translator import Translator, load_model

# -- models and scenes ----------------------------------------------------------------
from tests.helpers import (
    CPU,
    TILE,
    UTM33,
    leftovers,
    save_model,
    smooth_field,
    textured,
    torch_threads,
    write_raster,
)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("models")
    return {
        # 3 uint8 bands -> 1 float32 band with nodata -9999 (the input's nodata is 0).
        "p2p_f32_nodata": save_model(tmp / "p2p_f32_nodata.pt", out_bands=1, in_nodata=0.0,
                                     out_dtype="float32", out_nodata=-9999.0,
                                     descriptions=["height"]),
        # 3 uint8 -> 3 uint8, no nodata anywhere.
        "p2p_u8": save_model(tmp / "p2p_u8.pt"),
        # 3 uint8 -> 2 float32 without a nodata value.
        "p2p_f32": save_model(tmp / "p2p_f32.pt", out_bands=2, out_dtype="float32"),
    }


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 × 200 × 300 uint8, 10 m pixels in UTM 33N."""
    tmp = tmp_path_factory.mktemp("scene")
    data = textured(np.random.default_rng(5), 3, 200, 300)
    return write_raster(tmp / "scene.tif", data,
                        transform=Affine(10.0, 0.0, 400_010.0, 0.0, -10.0, 5_600_000.0))


# -- grid, provenance, values -----------------------------------------------------------


def test_grid_and_georeferencing_are_the_scene_and_bands_are_the_models(
        tmp_path, models, scene_path):
    calls: list[tuple[int, int]] = []
    out = tmp_path / "out" / "map.tif"  # a missing folder is created
    report = translate_raster(scene_path, out, models["p2p_f32_nodata"],
                              progress=lambda done, total: calls.append((done, total)), **CPU)
    # The scene's first pixel is row -560_000, column 40_001 of UTM's 10 m pixel grid:
    # windows start on multiples of 48 there (rows 32, 80, 128; columns 31, 79, ...) after
    # one at 0, and the last ends on the edge.
    grid = WindowGrid(200, 300, TILE, 16, "cosine", anchor=(-560_000, 40_001))
    assert grid.row_starts == (0, 32, 80, 128, 136)
    assert grid.col_starts == (0, 31, 79, 127, 175, 223, 236)
    assert report.output == out and out.exists()
    assert (report.width, report.height, report.bands, report.dtype) == (300, 200, 1, "float32")
    assert report.windows == report.windows_run == len(grid) == 5 * 7
    assert (report.device, report.precision) == ("cpu", "fp32")
    assert calls and calls[-1] == (len(grid), len(grid))
    assert all(b >= a for (a, _), (b, _) in itertools.pairwise(calls))
    with rasterio.open(scene_path) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs == rasterio.crs.CRS.from_string(UTM33)
        assert dst.transform == src.transform
        assert (dst.width, dst.height) == (src.width, src.height)
        assert dst.count == 1 and dst.dtypes == ("float32",)
        assert dst.nodata == -9999.0
        assert dst.profile["tiled"] and dst.block_shapes == [(256, 256)]
        assert dst.descriptions == ("height",)
        values = dst.read(1)
        tags = dst.tags()
    assert np.isfinite(values).all() and (values >= 100).all() and (values <= 300).all()
    assert tags["GEOGAN_GENERATED"].startswith("yes")
    assert tags["GEOGAN_MODEL_SHA256"] == hashlib.sha256(
        models["p2p_f32_nodata"].read_bytes()).hexdigest()
    assert tags["GEOGAN_MODEL_FORMAT"] == "geogan-model 1"
    assert tags["GEOGAN_MODEL"] == "p2p_f32_nodata.pt"
    assert tags["GEOGAN_MODEL_KIND"] == "pix2pix"
    assert tags["GEOGAN_VERSION"] == geogan.__version__
    assert tags["GEOGAN_SOURCE"] == "scene.tif"
    options = json.loads(tags["GEOGAN_OPTIONS"])
    assert options["overlap"] == 16 and options["blend"] == "cosine"
    assert options["direction"] == "a2b" and options["precision"] == "fp32"
    assert options["batch_size"] == 8  # the default on a CPU, recorded as it was applied
    assert not leftovers(out.parent)


def test_creation_options_and_rgb_photometric(tmp_path, models, scene_path):
    out = tmp_path / "rgb.tif"
    translate_raster(scene_path, out, models["p2p_u8"], overlap=0, blend="linear",
                     creation_options={"COMPRESS": "LZW", "BLOCKXSIZE": 128,
                                       "BLOCKYSIZE": 128}, **CPU)
    with rasterio.open(out) as dst:
        assert dst.compression.name.lower() == "lzw"
        assert dst.block_shapes == [(128, 128)] * 3
        assert dst.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        assert dst.nodata is None
        assert all(MaskFlags.all_valid in f for f in dst.mask_flag_enums)  # no mask needed
        options = json.loads(dst.tags()["GEOGAN_OPTIONS"])
    assert (options["overlap"], options["blend"]) == (0, "linear")
    assert options["creation_options"]["COMPRESS"] == "LZW"


@pytest.mark.parametrize("out_dtype", ["float32", "uint8"])
def test_one_tile_scene_equals_translate_array(tmp_path, rng, out_dtype):
    """The pipeline maps values in and out exactly as the model does."""
    model = save_model(tmp_path / "m.pt", out_bands=2, out_dtype=out_dtype,
                       out_range=(0.0, 255.0) if out_dtype == "uint8" else (-5.0, 40.0))
    data = textured(rng, 3, TILE, TILE)
    scene = write_raster(tmp_path / "tile.tif", data)
    report = translate_raster(scene, tmp_path / "out.tif", model, **CPU)
    assert report.windows == report.windows_run == 1
    out = read(tmp_path / "out.tif")
    expected = load_model(model, **CPU).translate_array(data)
    assert out.dtype == expected.dtype == np.dtype(out_dtype)
    assert out.shape == expected.shape == (2, TILE, TILE)
    if out_dtype == "uint8":
        assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    else:
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)
    assert out.std() > 0  # the model does vary with the input


# -- nodata -------------------------------------------------------------------------------


def nodata_scene(rng: np.random.Generator, path: Path, **profile: Any) -> np.ndarray:
    """3 × 256 × 256 uint8 with nodata 0: rows 0..99 all nodata (so window row 0, rows
    0..63, holds no valid pixel), a block [150:180, 40:90] all nodata, and a strip
    [200:210, 100:200] where band 1 only is 0."""
    data = textured(rng, 3, 256, 256)  # values >= 2: no accidental nodata
    data[:, :100] = 0
    data[:, 150:180, 40:90] = 0
    data[0, 200:210, 100:200] = 0
    write_raster(path, data, nodata=0, **profile)
    return data


def nodata_masks() -> tuple[np.ndarray, np.ndarray]:
    invalid = np.zeros((256, 256), bool)
    invalid[:100] = True
    invalid[150:180, 40:90] = True
    partial = np.zeros((256, 256), bool)
    partial[200:210, 100:200] = True
    return invalid, partial


def test_nodata_is_kept_with_the_models_nodata_value(tmp_path, rng, models):
    scene = tmp_path / "nd.tif"
    nodata_scene(rng, scene)
    report = translate_raster(scene, tmp_path / "out.tif", models["p2p_f32_nodata"],
                              lattice="scene", **CPU)
    grid = WindowGrid(256, 256, TILE, 16, "cosine")
    # Window row 0 (rows 0..63) has no valid pixel: its 5 windows are never run.
    assert report.windows == len(grid) == 25
    assert report.windows_run == report.windows - grid.cols
    invalid, partial = nodata_masks()
    with rasterio.open(tmp_path / "out.tif") as dst:
        assert dst.nodata == -9999
        out = dst.read(1)
    assert (out[invalid] == -9999).all()
    assert (out[~invalid] != -9999).all()
    assert (out[partial] >= 100).all()  # one band at the nodata value is not nodata
    assert (out[~invalid] >= 100).all() and (out[~invalid] <= 300).all()


def test_nodata_becomes_a_mask_for_a_uint8_model_without_nodata(tmp_path, rng, models):
    scene = tmp_path / "nd.tif"
    nodata_scene(rng, scene)
    report = translate_raster(scene, tmp_path / "out.tif", models["p2p_u8"],
                              lattice="scene", **CPU)
    assert report.windows_run == report.windows - 5
    invalid, partial = nodata_masks()
    with rasterio.open(tmp_path / "out.tif") as dst:
        assert dst.nodata is None
        assert all(MaskFlags.per_dataset in f for f in dst.mask_flag_enums)
        mask = dst.dataset_mask()
    assert (mask[invalid] == 0).all()
    assert (mask[~invalid] == 255).all()
    assert (mask[partial] == 255).all()


def test_nodata_becomes_nan_for_a_float_model_without_nodata(tmp_path, rng, models):
    scene = tmp_path / "nd.tif"
    nodata_scene(rng, scene)
    translate_raster(scene, tmp_path / "out.tif", models["p2p_f32"], **CPU)
    invalid, partial = nodata_masks()
    with rasterio.open(tmp_path / "out.tif") as dst:
        assert dst.count == 2 and np.isnan(dst.nodata)
        out = dst.read()
    assert np.isnan(out[:, invalid]).all()
    assert np.isfinite(out[:, ~invalid]).all()
    assert np.isfinite(out[:, partial]).all()


def test_an_internal_mask_of_the_scene_decides_validity(tmp_path, rng, models):
    data = textured(rng, 3, 128, 128)
    data[:, 10:20, 10:20] = 0  # zeros, but no nodata value: valid
    scene = write_raster(tmp_path / "masked.tif", data)
    mask = np.full((128, 128), 255, np.uint8)
    mask[60:90, 30:100] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(scene, "r+") as dst:
        dst.write_mask(mask)
    translate_raster(scene, tmp_path / "out.tif", models["p2p_u8"], **CPU)
    with rasterio.open(tmp_path / "out.tif") as dst:
        out_mask = dst.dataset_mask()
    np.testing.assert_array_equal(out_mask, mask)


@pytest.mark.parametrize(("out_dtype", "nodata"), [("uint8", 0.0), ("uint8", 255.0),
                                                   ("float32", 100.0), ("float32", 300.0)])
def test_valid_output_pixels_never_equal_the_output_nodata(tmp_path, rng, out_dtype, nodata):
    """A generator saturated at one end of the target range would write the nodata value
    (the range's low end, or high end) at valid pixels; it is moved one step away."""
    value_range = (0.0, 255.0) if out_dtype == "uint8" else (100.0, 300.0)
    bias = -20.0 if nodata == value_range[0] else 20.0
    model = save_model(tmp_path / "m.pt", out_bands=1, out_dtype=out_dtype,
                       out_range=value_range, out_nodata=nodata, out_bias=bias)
    scene = tmp_path / "nd.tif"
    nodata_scene(rng, scene)
    translate_raster(scene, tmp_path / "out.tif", model, **CPU)
    invalid, _ = nodata_masks()
    out = read(tmp_path / "out.tif")[0]
    assert (out[invalid] == nodata).all()
    valid = out[~invalid]
    assert (valid != np.asarray(nodata, out.dtype)).all()
    # ... and only just: the saturated value moved to its neighbour.
    assert np.abs(valid.astype(np.float64) - nodata).max() <= (1 if out_dtype == "uint8"
                                                               else 1e-3)


# -- seams and memory ---------------------------------------------------------------------


def test_a_crop_translated_alone_matches_the_whole_scene_without_seams(tmp_path, rng):
    """The interior of a crop translated on its own equals the same pixels of the whole
    scene translated at once, up to the generator's border effects; blending hides them
    where overlap 0 shows them as seams.

    A random U-Net sees its whole tile (1 × 1 bottleneck), so its output at a pixel
    depends on where the window lies; a trained generator is mostly local. The model
    here is made local (see make_model), keeping only the zero-padding border effects.
    Its first layer has stride 2, so the crop is offset by an even number of pixels
    (38, 22: not multiples of the 48 px step, so on the scene's own lattice its windows
    lie elsewhere; the grid lattice would make them the whole scene's, see
    test_lattice.py)."""
    model = save_model(tmp_path / "m.pt", out_bands=3, out_dtype="float32",
                       out_range=(0.0, 1000.0), local=True)
    translator = load_model(model, **CPU)
    data = textured(rng, 3, 256, 256)
    whole = write_raster(tmp_path / "whole.tif", data)
    top, left, height, width = 38, 22, 150, 170
    crop = write_raster(tmp_path / "crop.tif",
                        np.ascontiguousarray(data[:, top:top + height, left:left + width]),
                        transform=Affine(1.0, 0.0, 500_000.0 + left, 0.0, -1.0,
                                         5_000_000.0 - top))
    margin = 32
    mad = {}
    for name, options in {"cosine": {}, "linear": {"blend": "linear"},
                          "none, overlap 0": {"overlap": 0, "blend": "none"}}.items():
        options["lattice"] = "scene"
        w = translate_raster(whole, tmp_path / f"w-{name}.tif", translator, **options).output
        c = translate_raster(crop, tmp_path / f"c-{name}.tif", translator, **options).output
        with rasterio.open(c) as dst:
            assert dst.transform == Affine(1.0, 0.0, 500_022.0, 0.0, -1.0, 4_999_962.0)
        inner = read(c)[:, margin:height - margin, margin:width - margin].astype(np.float64)
        same = read(w)[:, top + margin:top + height - margin,
                       left + margin:left + width - margin].astype(np.float64)
        mad[name] = float(np.abs(inner - same).mean())
    figures = ", ".join(f"{name}: {value:.4f}" for name, value in mad.items())
    print(f"mean absolute difference, crop interior vs whole scene: {figures}")
    seams = mad["none, overlap 0"]
    assert seams > 0.05, f"the model shows no border effect, the test proves nothing ({figures})"
    assert mad["cosine"] * 5 <= seams, figures
    assert mad["linear"] * 3 <= seams, figures


def test_blending_leaves_no_seam_on_the_window_boundaries(tmp_path, rng):
    """The seam score (geogan.evaluation.seams) on the engine's own window lines: close to 1
    with the default cosine blend, far from 1 with --overlap 0 --blend none.

    The random model's border effect is zero padding, which damps its output towards the
    tile's edges: unblended, both sides of a boundary are damped, so the differences
    across the lines come out *smaller* than elsewhere (a score well below 1) rather than
    larger as a trained model's steps would. Either way a seam moves the score away from
    1, so the test compares distances from 1; the scene itself shows what its own texture
    gives on the same lines, which the output's lattice tag places."""
    from geogan.evaluation.seams import output_seam_lines, seam_sums
    from geogan.grids.windows import LatticeRecord

    translator = load_model(save_model(tmp_path / "m.pt", out_bands=3, out_dtype="float32",
                                       out_range=(0.0, 1000.0), local=True), **CPU)
    data = textured(rng, 3, 256, 256)
    scene = write_raster(tmp_path / "scene.tif", data)
    scores = {}
    for name, overlap, blend in (("cosine", TILE // 4, "cosine"), ("none, overlap 0", 0, "none")):
        out = translate_raster(scene, tmp_path / f"{blend}.tif", translator, overlap=overlap,
                               blend=blend).output
        with rasterio.open(out) as dst:
            record = LatticeRecord.from_tag(dst.tags()["GEOGAN_LATTICE"])
        lines = output_seam_lines(record, 256, 256, TILE, overlap, blend)
        scores[name] = seam_sums(read(out), None, *lines).score
        scores[f"scene on the {name} lines"] = seam_sums(data, None, *lines).score
    figures = ", ".join(f"{name}: {value:.3f}" for name, value in scores.items())
    print(f"seam scores: {figures}")
    assert abs(scores["cosine"] - 1) < 0.1, figures
    assert abs(scores["none, overlap 0"] - 1) > 4 * abs(scores["cosine"] - 1), figures
    assert abs(scores["none, overlap 0"] - 1) > 0.2, figures


MEMORY_SCRIPT = """
import json, resource, sys, tracemalloc
import torch
torch.set_num_threads(1)
from geogan.inference.scene import translate_raster
from geogan.inference.scene_read import SceneRead
from geogan.inference.translator import load_model
translator = load_model(sys.argv[1], device="cpu", precision="fp32")
def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
try:  # Linux: start the peak RSS (ru_maxrss) afresh, so it is the translation's own
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    reset = True
except OSError:
    reset = False
before = rss_kb()
tracemalloc.start()
translate_raster(sys.argv[2], sys.argv[3], translator)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rss_before_kb": before, "rss_kb": rss, "traced_peak": peak, "reset": reset}))
"""


def test_peak_memory_does_not_grow_with_the_height(tmp_path):
    """A scene 8 × taller raises neither the process's peak RSS nor the peak of Python
    and numpy allocations during translate_raster by more than 30 %. The short scene has
    two block rows of the output, so that it too writes while the pipeline is busy."""
    model = save_model(tmp_path / "m.pt")
    script = tmp_path / "memory.py"
    script.write_text(textwrap.dedent(MEMORY_SCRIPT))
    rng = np.random.default_rng(0)
    figures = {}
    for name, height in (("short", 512), ("tall", 8 * 512)):
        write_raster(tmp_path / f"{name}.tif",
                     rng.integers(1, 255, (3, height, 1024), dtype=np.uint8),
                     tiled=True, blockxsize=256, blockysize=256)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    for name in ("short", "tall"):
        result = subprocess.run(
            [sys.executable, str(script), str(model), str(tmp_path / f"{name}.tif"),
             str(tmp_path / f"{name}-out.tif")],
            capture_output=True, text=True, env=env, timeout=300, check=False)
        assert result.returncode == 0, result.stderr
        figures[name] = json.loads(result.stdout.strip().splitlines()[-1])
    short, tall = figures["short"], figures["tall"]
    text = (f"peak RSS while translating {short['rss_kb'] / 1024:.0f} -> "
            f"{tall['rss_kb'] / 1024:.0f} MiB (RSS before {short['rss_before_kb'] / 1024:.0f} / "
            f"{tall['rss_before_kb'] / 1024:.0f} MiB, peak reset: {short['reset']}); traced peak "
            f"{short['traced_peak'] / 2**20:.1f} -> {tall['traced_peak'] / 2**20:.1f} MiB")
    print(text)
    assert tall["rss_kb"] <= 1.3 * short["rss_kb"], text
    assert tall["traced_peak"] <= 1.3 * short["traced_peak"], text
    with rasterio.open(tmp_path / "tall-out.tif") as dst:
        assert (dst.width, dst.height) == (1024, 4096)


# -- failures leave nothing behind -----------------------------------------------------


@pytest.mark.parametrize("model", ["p2p_u8", "p2p_f32_nodata"])
def test_two_generator_streams_write_the_bytes_of_one(tmp_path, models, scene_path, model):
    """With two torch threads or more on a CPU the halves of each batch run on two threads,
    and batches overlap: the file is byte for byte that of one stream (an odd batch size:
    uneven halves)."""
    one = translate_raster(scene_path, tmp_path / "one.tif", models[model], batch_size=5,
                           **CPU)
    calls: list[int] = []
    original = Translator.translate_tiles

    def counted(self, tiles):
        calls.append(len(tiles))
        return original(self, tiles)

    with torch_threads(2), pytest.MonkeyPatch.context() as patch:
        patch.setattr(Translator, "translate_tiles", counted)
        two = translate_raster(scene_path, tmp_path / "two.tif", models[model],
                               batch_size=5, **CPU)
        assert torch.get_num_threads() == 2  # the streams' own counts stay theirs
    assert max(calls) == 3 and 2 in calls and sum(calls) == two.windows_run  # halves
    assert two.windows_run == one.windows_run == 35
    assert (tmp_path / "two.tif").read_bytes() == (tmp_path / "one.tif").read_bytes()


@pytest.fixture
def previous(tmp_path, rng, models) -> tuple[Path, Path, bytes]:
    """A 3 × 600 × 200 scene and a good output of it from an earlier run."""
    scene = write_raster(tmp_path / "scene.tif", textured(rng, 3, 600, 200))
    out = tmp_path / "out" / "map.tif"
    translate_raster(scene, out, models["p2p_u8"], **CPU)
    return scene, out, out.read_bytes()


@pytest.mark.parametrize("threads", [1, 2])  # 2: two generator streams
@pytest.mark.parametrize("error", [RuntimeError("generator failed"), KeyboardInterrupt()])
def test_a_generator_failure_leaves_the_previous_output_untouched(monkeypatch, models,
                                                                  previous, error, threads):
    scene, out, before = previous
    listing = sorted(os.listdir(out.parent))
    original = Translator.translate_tiles
    calls = []

    def failing(self, tiles):
        calls.append(len(tiles))
        if len(calls) == 3:
            raise error
        return original(self, tiles)

    monkeypatch.setattr(Translator, "translate_tiles", failing)
    with torch_threads(threads), pytest.raises(type(error)):
        translate_raster(scene, out, models["p2p_u8"], batch_size=4, overwrite=True, **CPU)
    if threads == 1:
        assert len(calls) == 3  # it stopped there
    assert sorted(os.listdir(out.parent)) == listing
    assert out.read_bytes() == before
    assert not leftovers(out.parent)


def test_a_write_failure_leaves_the_previous_output_untouched(monkeypatch, models, previous):
    scene, out, before = previous
    listing = sorted(os.listdir(out.parent))
    original = engine.Pipeline._write_rows
    calls = []

    def failing(self, pending, written, end):
        calls.append(written)
        if len(calls) == 2:
            raise OutputError("cannot write: disk full")
        return original(self, pending, written, end)

    monkeypatch.setattr(engine.Pipeline, "_write_rows", failing)
    with pytest.raises(OutputError, match="disk full"):
        translate_raster(scene, out, models["p2p_u8"], overwrite=True, **CPU)
    assert calls == [0, 256]  # whole blocks of 256 rows; the second one failed
    assert sorted(os.listdir(out.parent)) == listing
    assert out.read_bytes() == before
    assert not leftovers(out.parent)


def test_the_scene_is_opened_once_on_the_calling_thread(monkeypatch, models, previous):
    """The reader's handle is opened before its thread starts (a fresh thread pays GDAL's
    set-up on its first dataset), and a scene that cannot be opened then is an
    InputError naming it, with the previous output untouched."""
    scene, out, before = previous
    opened = []
    original = SceneRead.open

    def recording(self):
        opened.append(threading.current_thread().name)
        return original(self)

    monkeypatch.setattr(SceneRead, "open", recording)
    translate_raster(scene, out, models["p2p_u8"], overwrite=True, **CPU)
    assert opened == [threading.current_thread().name]
    assert out.read_bytes() == before  # the same bytes as the run before

    def failing(self):
        raise RasterioError("the share went away")

    monkeypatch.setattr(SceneRead, "open", failing)
    with pytest.raises(InputError, match=r"cannot read .*: the share went away"):
        translate_raster(scene, out, models["p2p_u8"], overwrite=True, **CPU)
    assert out.read_bytes() == before
    assert not leftovers(out.parent)


def test_a_read_failure_midway_leaves_the_previous_output_untouched(tmp_path, rng, models):
    """A scene whose header is fine but one tile, far down, is damaged: the reader fails
    after the writer has written the first block rows (the queues between the stages hold
    a few window rows at most)."""
    scene = write_raster(tmp_path / "scene.tif", textured(rng, 3, 1200, 200), tiled=True,
                         blockxsize=64, blockysize=64, compress="deflate")
    out = tmp_path / "out" / "map.tif"
    translate_raster(scene, out, models["p2p_u8"], **CPU)
    before = out.read_bytes()
    with rasterio.open(scene) as src:  # the tile of rows 1024..1087, columns 64..127
        offset = int(src.get_tag_item("BLOCK_OFFSET_1_16", "TIFF", bidx=1))
        size = int(src.get_tag_item("BLOCK_SIZE_1_16", "TIFF", bidx=1))
    raw = bytearray(scene.read_bytes())
    raw[offset:offset + size] = b"\xff" * size
    scene.write_bytes(bytes(raw))
    written = []
    original = engine.Pipeline._write_rows

    def recording(self, pending, row, end):
        written.append(row)
        return original(self, pending, row, end)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.Pipeline, "_write_rows", recording)
        with pytest.raises(InputError, match=r"cannot read .*scene\.tif") as raised:
            translate_raster(scene, out, models["p2p_u8"], overwrite=True, **CPU)
    assert "previous exception" not in str(raised.value)  # GDAL's own reason, not rasterio's
    assert written[:2] == [0, 256] and max(written) < 1024, written
    assert out.read_bytes() == before
    assert sorted(os.listdir(out.parent)) == ["map.tif"]


def test_a_cog_failure_leaves_nothing_half_written(monkeypatch, models, previous):
    scene, out, before = previous
    listing = sorted(os.listdir(out.parent))

    def failing(source, target, settings):
        assert source.exists()  # the intermediate GeoTIFF was complete
        raise RasterioError("COG driver failed")

    monkeypatch.setattr(translate_module, "write_cog", failing)
    with pytest.raises(OutputError, match="COG driver failed"):
        translate_raster(scene, out, models["p2p_u8"], overwrite=True, cog=True, **CPU)
    assert sorted(os.listdir(out.parent)) == listing
    assert out.read_bytes() == before


def test_an_existing_output_is_refused_before_any_work(monkeypatch, models, previous):
    scene, out, before = previous
    mtime = out.stat().st_mtime_ns

    def never(self, tiles):
        raise AssertionError("the generator ran")

    monkeypatch.setattr(Translator, "translate_tiles", never)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        translate_raster(scene, out, models["p2p_u8"], **CPU)
    assert out.read_bytes() == before and out.stat().st_mtime_ns == mtime
    assert sorted(os.listdir(out.parent)) == ["map.tif"]


def test_overwrite_replaces_an_existing_output(tmp_path, rng, models, previous):
    scene, out, _ = previous
    translate_raster(scene, out, models["p2p_f32"], overwrite=True, **CPU)
    with rasterio.open(out) as dst:
        assert (dst.count, dst.dtypes[0]) == (2, "float32")
    assert sorted(os.listdir(out.parent)) == ["map.tif"]


# -- batches ------------------------------------------------------------------------------


def test_batch_goes_on_past_failures_and_skips_existing_outputs(tmp_path, rng, models):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    good = write_raster(scenes / "a.tif", textured(rng, 3, 100, 120))
    corrupt = scenes / "b.tif"
    corrupt.write_text("this is not a raster\n")
    done_before = write_raster(scenes / "c.tif", textured(rng, 3, 80, 90))
    out_dir = tmp_path / "maps"
    out_dir.mkdir()
    (out_dir / "c.tif").write_bytes(b"an earlier output")
    finished: list[tuple[int, int]] = []
    batch = translate_batch([good, corrupt, done_before], out_dir, models["p2p_u8"],
                            scene_progress=lambda done, total: finished.append((done, total)),
                            **CPU)
    assert [o.status for o in batch.outcomes] == ["done", "failed", "skipped"]
    assert [o.output for o in batch.outcomes] == [out_dir / "a.tif", out_dir / "b.tif",
                                                  out_dir / "c.tif"]
    assert (batch.count("done"), batch.count("failed"), batch.count("skipped")) == (1, 1, 1)
    assert batch.failures == [batch.outcomes[1]]
    assert "b.tif" in batch.outcomes[1].message
    assert batch.outcomes[0].report is not None and batch.outcomes[0].report.width == 120
    assert finished == [(1, 3), (2, 3), (3, 3)]
    with rasterio.open(out_dir / "a.tif") as dst:
        assert (dst.width, dst.height, dst.count) == (120, 100, 3)
    assert not (out_dir / "b.tif").exists()
    assert (out_dir / "c.tif").read_bytes() == b"an earlier output"
    assert not leftovers(out_dir)
    first = (out_dir / "a.tif").read_bytes()

    rerun = translate_batch([good, corrupt, done_before], out_dir, models["p2p_u8"], **CPU)
    assert [o.status for o in rerun.outcomes] == ["skipped", "failed", "skipped"]
    assert (out_dir / "a.tif").read_bytes() == first

    again = translate_batch([good, done_before], out_dir, models["p2p_u8"], overwrite=True,
                            **CPU)
    assert [o.status for o in again.outcomes] == ["done", "done"]
    with rasterio.open(out_dir / "c.tif") as dst:
        assert (dst.width, dst.height) == (90, 80)


def test_batch_refuses_scenes_whose_outputs_would_collide(tmp_path, rng, models):
    for folder in ("east", "west"):
        (tmp_path / folder).mkdir()
        write_raster(tmp_path / folder / "scene.tif", textured(rng, 3, 70, 70))
    with pytest.raises(InputError, match=r"scene\.tif"):
        translate_batch([tmp_path / "east" / "scene.tif", tmp_path / "west" / "scene.tif"],
                        tmp_path / "maps", models["p2p_u8"], **CPU)
    assert not (tmp_path / "maps").exists()


def test_batch_into_the_scenes_own_folder_is_refused(tmp_path, rng, models):
    scene = write_raster(tmp_path / "a.tif", textured(rng, 3, 70, 70))
    before = scene.read_bytes()
    try:
        batch = translate_batch([scene], tmp_path, models["p2p_u8"], **CPU)
    except InputError as error:  # refusing the whole batch up front would do too
        assert "itself" in str(error)
    else:
        assert [o.status for o in batch.outcomes] == ["failed"]
        assert "scene itself" in batch.outcomes[0].message
    assert scene.read_bytes() == before


def test_batch_with_an_output_folder_that_is_a_file(tmp_path, rng, models):
    scene = write_raster(tmp_path / "a.tif", textured(rng, 3, 70, 70))
    (tmp_path / "maps").write_text("a file")
    with pytest.raises(OutputError, match="not a folder"):
        translate_batch([scene], tmp_path / "maps", models["p2p_u8"], **CPU)


# -- small, multiband, float and CycleGAN scenes ----------------------------------------


@pytest.mark.parametrize("shape", [(40, 50), (1, 50), (50, 1), (20, 64), (64, 9)])
def test_a_scene_smaller_than_a_tile_is_padded_by_reflection(tmp_path, rng, models, shape):
    data = rng.integers(2, 255, (3, *shape), dtype=np.uint8)
    scene = write_raster(tmp_path / "small.tif", data)
    report = translate_raster(scene, tmp_path / "out.tif", models["p2p_f32_nodata"], **CPU)
    assert report.windows == report.windows_run == 1
    out = read(tmp_path / "out.tif")
    assert out.shape == (1, *shape)
    assert np.isfinite(out).all() and (out >= 100).all() and (out <= 300).all()
    expected = load_model(models["p2p_f32_nodata"], **CPU).translate_array(data)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("shape", [(1, 70), (70, 1), (2, 130)])
def test_a_thin_scene_longer_than_a_tile(tmp_path, rng, models, shape):
    data = rng.integers(2, 255, (3, *shape), dtype=np.uint8)
    scene = write_raster(tmp_path / "thin.tif", data)
    translate_raster(scene, tmp_path / "out.tif", models["p2p_f32_nodata"], **CPU)
    out = read(tmp_path / "out.tif")
    assert out.shape == (1, *shape)
    assert np.isfinite(out).all() and (out >= 100).all() and (out <= 300).all()


def test_four_band_float32_input_with_nan_pixels(tmp_path, rng):
    model = save_model(tmp_path / "m.pt", in_bands=4, out_bands=1, in_dtype="float32",
                       in_range=(0.0, 1.0), out_dtype="float32", out_nodata=-9999.0)
    data = (textured(rng, 4, 150, 140) / 255.0).astype(np.float32)
    data[:, 10:30, 20:60] = np.nan  # all bands missing
    data[2, 100:110, 50:90] = np.nan  # one band missing: still a valid pixel
    scene = write_raster(tmp_path / "f.tif", data)
    report = translate_raster(scene, tmp_path / "out.tif", model, **CPU)
    assert (report.bands, report.dtype) == (1, "float32")
    out = read(tmp_path / "out.tif")[0]
    invalid = np.zeros(out.shape, bool)
    invalid[10:30, 20:60] = True
    assert (out[invalid] == -9999).all()
    assert np.isfinite(out[~invalid]).all() and (out[~invalid] >= 100).all()
    assert (out[100:110, 50:90] >= 100).all()


def test_one_band_float32_input_with_a_nodata_value(tmp_path, rng):
    model = save_model(tmp_path / "m.pt", in_bands=1, out_bands=3, in_dtype="float32",
                       in_range=(-30.0, 5.0), in_nodata=-9999.0)
    data = (smooth_field(rng, (130, 100)) * -25.0).astype(np.float32)[None]
    data[0, 50:80, 30:70] = -9999.0
    scene = write_raster(tmp_path / "sar.tif", data, nodata=-9999.0)
    translate_raster(scene, tmp_path / "out.tif", model, **CPU)
    with rasterio.open(tmp_path / "out.tif") as dst:
        assert (dst.count, dst.dtypes[0], dst.nodata) == (3, "uint8", None)
        mask = dst.dataset_mask()
    expected = np.full(mask.shape, 255, np.uint8)
    expected[50:80, 30:70] = 0
    np.testing.assert_array_equal(mask, expected)


def test_an_alpha_band_is_left_out_when_that_fits_the_model(tmp_path, rng, models):
    rgb = textured(rng, 3, 90, 90)
    alpha = np.full((1, 90, 90), 255, np.uint8)
    alpha[0, :, :30] = 0
    scene = write_raster(tmp_path / "rgba.tif", np.concatenate([rgb, alpha]), photometric="RGB",
                         alpha="YES")
    with rasterio.open(scene) as src:
        assert src.colorinterp[3] == ColorInterp.alpha
    translate_raster(scene, tmp_path / "out.tif", models["p2p_u8"], **CPU)
    with rasterio.open(tmp_path / "out.tif") as dst:
        assert dst.count == 3
        mask = dst.dataset_mask()
    assert (mask[:, :30] == 0).all() and (mask[:, 30:] == 255).all()


@pytest.fixture(scope="module")
def cyclegan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CycleGAN between 1-band float32 (domain a, nodata -9999) and 3-band uint8 (b)."""
    return save_model(tmp_path_factory.mktemp("cyclegan") / "c.pt", "cyclegan", 1, 3,
                      in_dtype="float32", in_range=(-30.0, 5.0), in_nodata=-9999.0,
                      out_dtype="uint8")


def test_cyclegan_translates_both_ways(tmp_path, rng, cyclegan):
    sar = write_raster(tmp_path / "sar.tif",
                       (smooth_field(rng, (100, 110)) * -25).astype(np.float32)[None],
                       nodata=-9999.0)
    optical = write_raster(tmp_path / "optical.tif", textured(rng, 3, 100, 110))
    forward = translate_raster(sar, tmp_path / "a2b.tif", cyclegan, **CPU)
    assert (forward.bands, forward.dtype) == (3, "uint8")
    back = translate_raster(optical, tmp_path / "b2a.tif", cyclegan, direction="b2a", **CPU)
    assert (back.bands, back.dtype) == (1, "float32")
    with rasterio.open(tmp_path / "b2a.tif") as dst:
        assert dst.nodata == -9999.0  # domain a's own
        values = dst.read(1)
        tags = dst.tags()
    assert np.isfinite(values).all() and (values >= -30).all() and (values <= 5).all()
    assert tags["GEOGAN_MODEL_KIND"] == "cyclegan"
    assert json.loads(tags["GEOGAN_OPTIONS"])["direction"] == "b2a"
    # Each direction reads its own domain's bands.
    with pytest.raises(InputError, match="has 3 band"):
        translate_raster(optical, tmp_path / "x.tif", cyclegan, **CPU)
    with pytest.raises(InputError, match="has 1 band"):
        translate_raster(sar, tmp_path / "y.tif", cyclegan, direction="b2a", **CPU)
    # A translator loaded for one direction is not used for the other.
    translator = load_model(cyclegan, direction="b2a", **CPU)
    with pytest.raises(ConfigError, match="b2a"):
        translate_raster(optical, tmp_path / "z.tif", translator, direction="a2b")
    assert not {"x.tif", "y.tif", "z.tif"} & set(os.listdir(tmp_path))


def test_pix2pix_has_no_b2a_direction(tmp_path, models, scene_path):
    with pytest.raises(InputError, match="a2b only"):
        translate_raster(scene_path, tmp_path / "out.tif", models["p2p_u8"], direction="b2a",
                         **CPU)
    assert not (tmp_path / "out.tif").exists()


# -- samples, COG -------------------------------------------------------------------------


def test_samples_add_a_standard_deviation_band(tmp_path, rng, models):
    scene = tmp_path / "nd.tif"
    nodata_scene(rng, scene)
    model = models["p2p_f32_nodata"]
    translate_raster(scene, tmp_path / "s.tif", model, samples=4, **CPU)
    translate_raster(scene, tmp_path / "again.tif", model, samples=4, **CPU)
    translate_raster(scene, tmp_path / "seed.tif", model, samples=4, seed=7, **CPU)
    invalid, _ = nodata_masks()
    with rasterio.open(tmp_path / "s.tif") as dst:
        assert dst.count == 2
        assert dst.descriptions[0] == "height"
        assert "standard deviation" in dst.descriptions[1] and "4 samples" in dst.descriptions[1]
        mean, spread = dst.read()
        assert json.loads(dst.tags()["GEOGAN_OPTIONS"])["samples"] == 4
    assert (mean[~invalid] >= 100).all() and (mean[~invalid] <= 300).all()
    assert (spread[~invalid] >= 0).all() and spread[~invalid].max() > 0
    assert (mean[invalid] == -9999).all() and (spread[invalid] == -9999).all()
    # The draws are seeded.
    np.testing.assert_array_equal(read(tmp_path / "again.tif"), read(tmp_path / "s.tif"))
    assert not np.array_equal(read(tmp_path / "seed.tif"), read(tmp_path / "s.tif"))


def test_samples_need_a_generator_with_dropout(tmp_path, rng, cyclegan):
    optical = write_raster(tmp_path / "optical.tif", textured(rng, 3, 70, 70))
    with pytest.raises(ConfigError, match="dropout"):
        translate_raster(optical, tmp_path / "out.tif", cyclegan, direction="b2a", samples=4,
                         **CPU)
    assert not (tmp_path / "out.tif").exists()


def test_cog_has_the_same_pixels_and_overviews(tmp_path, rng):
    model = save_model(tmp_path / "m.pt", in_bands=1, out_bands=1)
    scene = write_raster(tmp_path / "big.tif", textured(rng, 1, 1100, 1100))
    plain = translate_raster(scene, tmp_path / "plain.tif", model, **CPU).output
    cog = translate_raster(scene, tmp_path / "cog.tif", model, cog=True, **CPU).output
    with rasterio.open(cog) as dst, rasterio.open(plain) as ref:
        assert dst.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert dst.driver == "GTiff" and dst.profile["tiled"]
        assert dst.overviews(1), "a 1100 px COG has overviews"
        assert (dst.crs, dst.transform) == (ref.crs, ref.transform)
        np.testing.assert_array_equal(dst.read(), ref.read())
        assert dst.tags()["GEOGAN_GENERATED"] == ref.tags()["GEOGAN_GENERATED"]
        assert json.loads(dst.tags()["GEOGAN_OPTIONS"])["cog"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.tif", "cog.tif", "m.pt",
                                                          "plain.tif"]


# -- bad input ----------------------------------------------------------------------------


def test_band_count_mismatch_names_both_counts(tmp_path, rng, models):
    scene = write_raster(tmp_path / "two.tif", textured(rng, 2, 70, 70))
    with pytest.raises(InputError, match=r"has 2 band\(s\) but the model reads 3"):
        translate_raster(scene, tmp_path / "out.tif", models["p2p_u8"], **CPU)
    assert sorted(os.listdir(tmp_path)) == ["two.tif"]


def test_band_count_mismatch_hint_is_a_command_that_works(tmp_path, rng, models, monkeypatch):
    """The error suggests a rasterio command; run as written, it gives a scene the model reads."""
    from click.testing import CliRunner
    from rasterio.rio.main import main_group

    scene = write_raster(tmp_path / "five.tif", textured(rng, 5, 70, 70))
    with pytest.raises(InputError, match=r"has 5 band\(s\) but the model reads 3") as caught:
        translate_raster(scene, tmp_path / "out.tif", models["p2p_u8"], **CPU)
    hint = re.search(r"`rio (.+)`", str(caught.value))
    assert hint is not None, caught.value
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main_group, shlex.split(hint.group(1)))
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "selected.tif") as selected, rasterio.open(scene) as original:
        np.testing.assert_array_equal(selected.read(), original.read([1, 2, 3]))
    translate_raster(tmp_path / "selected.tif", tmp_path / "out.tif", models["p2p_u8"], **CPU)
    with rasterio.open(tmp_path / "out.tif") as out:
        assert out.count == 3


@pytest.mark.parametrize("content", ["random", "foreign"])
def test_damaged_or_foreign_model_file(tmp_path, scene_path, content):
    model = tmp_path / "m.pt"
    if content == "random":
        model.write_bytes(np.random.default_rng(0).bytes(5000))
    else:
        torch.save({"a": 1}, model)
    with pytest.raises(ModelFileError, match=r"m\.pt"):
        translate_raster(scene_path, tmp_path / "out.tif", model, **CPU)
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_a_scene_without_crs_is_translated_with_a_warning(tmp_path, rng, models):
    transform = Affine(2.0, 0.0, 100.0, 0.0, -2.0, 900.0)
    scene = write_raster(tmp_path / "local.tif", textured(rng, 3, 80, 100), crs=None,
                         transform=transform)
    with pytest.warns(GeoganWarning, match="no CRS"):
        translate_raster(scene, tmp_path / "out.tif", models["p2p_u8"], **CPU)
    with rasterio.open(tmp_path / "out.tif") as dst:
        assert dst.crs is None
        assert dst.transform == transform


def test_a_scene_of_another_dtype_is_translated_with_a_warning(tmp_path, rng, models):
    scene = write_raster(tmp_path / "u16.tif", textured(rng, 3, 70, 70).astype(np.uint16))
    with pytest.warns(GeoganWarning, match="uint16"):
        translate_raster(scene, tmp_path / "out.tif", models["p2p_u8"], **CPU)
    assert read(tmp_path / "out.tif").shape == (3, 70, 70)


def test_an_output_whose_folder_is_a_file(tmp_path, models, scene_path):
    (tmp_path / "maps").write_text("a file, not a folder")
    with pytest.raises(OutputError, match="not a folder"):
        translate_raster(scene_path, tmp_path / "maps" / "out.tif", models["p2p_u8"], **CPU)
    with pytest.raises(OutputError, match="folder"):
        translate_raster(scene_path, tmp_path, models["p2p_u8"], **CPU)
    assert sorted(os.listdir(tmp_path)) == ["maps"]


def test_an_output_folder_that_is_not_writable(tmp_path, models, scene_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into any folder")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            translate_raster(scene_path, folder / "out.tif", models["p2p_u8"], **CPU)
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_the_output_may_not_be_the_scene(tmp_path, rng, models):
    data = textured(rng, 3, 70, 70)
    scene = write_raster(tmp_path / "scene.tif", data)
    before = scene.read_bytes()
    with pytest.raises(OutputExistsError):
        translate_raster(scene, scene, models["p2p_u8"], **CPU)
    with pytest.raises(InputError, match="scene itself"):
        translate_raster(scene, scene, models["p2p_u8"], overwrite=True, **CPU)
    with pytest.raises(InputError, match="scene itself"):  # under another spelling
        translate_raster(scene, tmp_path / "." / "scene.tif", models["p2p_u8"],
                         overwrite=True, **CPU)
    assert scene.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["scene.tif"]


@pytest.mark.parametrize(("options", "message"), [
    ({"overlap": 33}, "overlap"), ({"overlap": -1}, "overlap"), ({"blend": "gauss"}, "blend"),
    ({"batch_size": 0}, "batch size"), ({"samples": 0}, "samples"),
])
def test_bad_options_are_refused_before_any_work(tmp_path, models, scene_path, options,
                                                 message):
    with pytest.raises(ConfigError, match=message):
        translate_raster(scene_path, tmp_path / "out.tif", models["p2p_u8"], **options, **CPU)
    assert not (tmp_path / "out.tif").exists()


def test_a_missing_or_unreadable_scene(tmp_path, models):
    with pytest.raises(InputError, match="no such file"):
        translate_raster(tmp_path / "nope.tif", tmp_path / "out.tif", models["p2p_u8"], **CPU)
    (tmp_path / "text.tif").write_text("not a raster")
    with pytest.raises(InputError, match=r"text\.tif"):
        translate_raster(tmp_path / "text.tif", tmp_path / "out.tif", models["p2p_u8"], **CPU)
    assert sorted(os.listdir(tmp_path)) == ["text.tif"]


def test_outputs_get_the_permissions_of_new_files(tmp_path, rng, models):
    """Like any file GDAL creates: the umask decides, not a private temporary file."""
    scene = write_raster(tmp_path / "a.tif", textured(rng, 3, 70, 70))
    previous = os.umask(0o022)
    try:
        out = translate_raster(scene, tmp_path / "out.tif", models["p2p_u8"], **CPU).output
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == 0o644
