"""The translate command: outputs, batches, exit codes and one-line errors and warnings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from geogan.cli.main import cli
from geogan.inference.translator import Translator
from tests.helpers import MAP_PALETTE, save_model, textured, write_raster

FAST = ("--device", "cpu", "--precision", "fp32")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["translate", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, stderr: str, message: str) -> None:
    assert code == 1, stderr
    assert stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr, stderr
    assert "Traceback" not in stderr


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli-translate")
    rng = np.random.default_rng(2)
    (tmp / "scenes").mkdir()
    return {
        "model": save_model(tmp / "m.pt"),
        "a": write_raster(tmp / "scenes" / "a.tif", textured(rng, 3, 100, 130)),
        "b": write_raster(tmp / "scenes" / "b.tif", textured(rng, 3, 70, 90)),
        "two_bands": write_raster(tmp / "scenes" / "two.tif", textured(rng, 2, 70, 70)),
        "no_crs": write_raster(tmp / "scenes" / "local.tif", textured(rng, 3, 70, 70),
                               crs=None),
    }


def test_one_scene_with_output(files, tmp_path):
    out = tmp_path / "map.tif"
    code, stdout, stderr = run(files["a"], "--model", files["model"], "-o", out, *FAST)
    assert code == 0, stderr
    assert stdout.startswith(f"Wrote {out} (130 x 100, 3 uint8 bands;")
    assert "on cpu fp32" in stdout
    assert stderr == ""
    with rasterio.open(out) as dst, rasterio.open(files["a"]) as src:
        assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)


def test_default_output_name_is_scene_and_model_in_the_current_folder(files, tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run(files["a"], "-m", files["model"], "--overlap", "8", "--blend",
                               "linear", "--batch-size", "3", *FAST)
    assert code == 0, stderr
    assert (tmp_path / "a-m.tif").exists()
    assert "Wrote a-m.tif" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-m.tif"]


def test_options_reach_the_output(files, tmp_path):
    out = tmp_path / "map.tif"
    code, _, stderr = run(files["a"], "-m", files["model"], "-o", out, "--co", "compress=lzw",
                          "--overlap", "0", "--blend", "none", "--samples", "2", "--seed", "3",
                          *FAST)
    assert code == 0, stderr
    with rasterio.open(out) as dst:
        assert dst.count == 4 and "standard deviation" in dst.descriptions[3]
        assert dst.compression.name.lower() == "lzw"
        tags = dst.tags()
    for text in ('"overlap": 0', '"blend": "none"', '"samples": 2', '"seed": 3'):
        assert text in tags["GEOGAN_OPTIONS"]


def test_tta_and_output_kind_reach_the_output(files, tmp_path):
    out = tmp_path / "map.tif"
    code, _, stderr = run(files["a"], "-m", files["model"], "-o", out, "--tta",
                          "--output-kind", "image", *FAST)
    assert code == 0, stderr
    with rasterio.open(out) as dst:
        assert '"tta": true' in dst.tags()["GEOGAN_OPTIONS"]
        assert '"output": "image"' in dst.tags()["GEOGAN_OPTIONS"]
    code, _, stderr = run(files["a"], "-m", files["model"], "-o", out, "--no-tta",
                          "--overwrite", *FAST)
    assert code == 0, stderr
    with rasterio.open(out) as dst:
        assert '"tta": false' in dst.tags()["GEOGAN_OPTIONS"]


def test_adapt_norm_reaches_the_output_and_a_cyclegan_model_is_one_error(files, tmp_path):
    out = tmp_path / "map.tif"
    code, stdout, stderr = run(files["a"], "-m", files["model"], "-o", out, "--adapt-norm",
                               *FAST)
    assert code == 0, stderr
    assert "; BatchNorm's averages to those of " in stdout
    with rasterio.open(out) as dst:
        assert '"adapt_norm": true' in dst.tags()["GEOGAN_OPTIONS"]
        assert json.loads(dst.tags()["GEOGAN_ADAPT_NORM"])["prior"] == 0
    for flag, recorded in (("--no-adapt-norm", "false"), (None, '"auto"')):
        code, stdout, stderr = run(files["a"], "-m", files["model"], "-o", out, "--overwrite",
                                   *([flag] if flag else []), *FAST)
        assert code == 0 and "BatchNorm" not in stdout, stderr
        with rasterio.open(out) as dst:
            assert f'"adapt_norm": {recorded}' in dst.tags()["GEOGAN_OPTIONS"]
    cycle = save_model(tmp_path / "cycle.pt", kind="cyclegan")
    code, _, stderr = run(files["a"], "-m", cycle, "-o", tmp_path / "c.tif", "--adapt-norm",
                          *FAST)
    assert_one_line_error(code, stderr, "--adapt-norm needs a generator with BatchNorm")
    assert not (tmp_path / "c.tif").exists()


def test_sharpen_reaches_the_output_and_a_bad_value_is_a_usage_error(files, tmp_path):
    out = tmp_path / "map.tif"
    code, stdout, stderr = run(files["a"], "-m", files["model"], "-o", out, "--sharpen", "1.2",
                               *FAST)
    assert code == 0, stderr
    assert "; sharpened by 1.20 px) in " in stdout
    with rasterio.open(out) as dst:
        assert '"sharpen": 1.2' in dst.tags()["GEOGAN_OPTIONS"]
        assert json.loads(dst.tags()["GEOGAN_SHARPEN"]) == {"sigma": 1.2}
    # This model file records no training sharpness: auto measures nothing.
    for value, recorded in (("off", "0.0"), ("auto", '"auto"')):
        code, stdout, stderr = run(files["a"], "-m", files["model"], "-o", out, "--overwrite",
                                   "--sharpen", value, *FAST)
        assert code == 0 and "sharpened" not in stdout, stderr
        with rasterio.open(out) as dst:
            assert f'"sharpen": {recorded}' in dst.tags()["GEOGAN_OPTIONS"]
            assert "GEOGAN_SHARPEN" not in dst.tags()
    for bad in ("crisp", "4", "-1"):
        code, _, stderr = run(files["a"], "-m", files["model"], "-o", tmp_path / "bad.tif",
                              "--sharpen", bad, *FAST)
        assert code == 2 and "--sharpen" in stderr and "Traceback" not in stderr, stderr
    assert not (tmp_path / "bad.tif").exists()


def test_the_blur_of_unsure_pixels_reaches_a_map_models_output(tmp_path):
    """A map model's shaded output is blurred where unsure unless --unsure-blur 0, at the
    model file's odds unless --unsure-below says otherwise; the options and their values
    are in the provenance tag."""
    model = save_model(tmp_path / "map.pt", palette=MAP_PALETTE, class_scale=3000.0)
    scene = write_raster(tmp_path / "photo.tif", textured(np.random.default_rng(3), 3, 90, 100))
    drawn = {}
    for blur, below in (("1", None), ("0", None), ("1", "0.35")):
        out = tmp_path / f"blur-{blur}-{below}.tif"
        extra = () if below is None else ("--unsure-below", below)
        code, _, stderr = run(scene, "-m", model, "-o", out, "--unsure-blur", blur, *extra,
                              *FAST)
        assert code == 0, stderr
        with rasterio.open(out) as dst:
            tags = dst.tags()["GEOGAN_OPTIONS"]
            assert f'"unsure_blur": {blur}.0' in tags
            odds = "null" if blur == "0" else below or "0.5"
            assert f'"unsure_below": {odds}' in tags
            drawn[blur, below] = dst.read()
    assert not np.array_equal(drawn["1", None], drawn["0", None])
    assert not np.array_equal(drawn["1", None], drawn["1", "0.35"])


def test_class_outputs_of_a_model_without_a_class_head_are_one_error(files, tmp_path):
    out = tmp_path / "classes.tif"
    code, _, stderr = run(files["a"], "-m", files["model"], "-o", out, "--output-kind",
                          "classes", *FAST)
    assert_one_line_error(code, stderr, "needs a model with a class head")
    assert not out.exists()


@pytest.mark.parametrize("args", [
    ("{a}", "-m", "{model}", "--output-kind", "colours"),
    ("{a}", "{b}", "-m", "{model}"),  # several scenes need --out-dir
    ("{a}", "-m", "{model}", "-o", "x.tif", "--out-dir", "maps"),  # both
    ("{a}", "-m", "{model}", "--blend", "gaussian"),
    ("{a}", "-m", "{model}", "--overlap", "-1"),
    ("{a}", "-m", "{model}", "--batch-size", "0"),
    ("{a}", "-m", "{model}", "--unsure-blur", "-1"),
    ("{a}", "-m", "{model}", "--unsure-below", "1.5"),
    ("{a}", "-m", "{model}", "--direction", "sideways"),
    ("{a}",),  # no model
    ("-m", "{model}"),  # no scene
])
def test_usage_errors_exit_with_2(files, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run(*(arg.format(**files) for arg in args))
    assert code == 2, stdout + stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_batch_reports_failures_and_a_rerun_skips_what_is_done(files, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    out_dir = tmp_path / "maps"
    code, stdout, stderr = run(files["a"], bad, files["b"], "-m", files["model"], "--out-dir",
                               out_dir, *FAST)
    assert code == 1, stderr
    assert stderr.startswith(f"Error: {bad} ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    assert "2 translated, 0 skipped (output exists), 1 failed" in stdout
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.tif", "b.tif"]
    before = (out_dir / "a.tif").read_bytes()

    code, stdout, _ = run(files["a"], files["b"], "-m", files["model"], "--out-dir", out_dir,
                          *FAST)
    assert code == 0
    assert "0 translated, 2 skipped (output exists), 0 failed" in stdout
    assert (out_dir / "a.tif").read_bytes() == before

    code, stdout, _ = run(files["a"], "-m", files["model"], "--out-dir", out_dir, "--overwrite",
                          *FAST)
    assert code == 0 and "1 translated, 0 skipped" in stdout


def test_band_count_mismatch(files, tmp_path):
    code, _, stderr = run(files["two_bands"], "-m", files["model"], "-o", tmp_path / "x.tif",
                          *FAST)
    assert_one_line_error(code, stderr, "has 2 band(s) but the model reads 3")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, "foreign"])
def test_damaged_or_foreign_model(files, tmp_path, content):
    model = tmp_path / "m.pt"
    if content == "foreign":
        torch.save({"a": 1}, model)
    else:
        model.write_bytes(content)
    code, _, stderr = run(files["a"], "-m", model, "-o", tmp_path / "x.tif", *FAST)
    assert_one_line_error(code, stderr, str(model))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_missing_model_or_scene(files, tmp_path):
    code, _, stderr = run(files["a"], "-m", tmp_path / "none.pt", "-o", tmp_path / "x.tif",
                          *FAST)
    assert_one_line_error(code, stderr, "does not exist")
    code, _, stderr = run(tmp_path / "none.tif", "-m", files["model"], "-o", tmp_path / "x.tif",
                          *FAST)
    assert_one_line_error(code, stderr, "no such file")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(files, tmp_path):
    out = tmp_path / "map.tif"
    out.write_bytes(b"earlier")
    code, _, stderr = run(files["a"], "-m", files["model"], "-o", out, *FAST)
    assert_one_line_error(code, stderr, "--overwrite")
    assert out.read_bytes() == b"earlier"
    code, _, stderr = run(files["a"], "-m", files["model"], "-o", out, "--overwrite", *FAST)
    assert code == 0, stderr
    with rasterio.open(out) as dst:
        assert dst.count == 3


def test_bad_overlap_or_samples_for_the_model(files, tmp_path):
    code, _, stderr = run(files["a"], "-m", files["model"], "-o", tmp_path / "x.tif",
                          "--overlap", "40", *FAST)
    assert_one_line_error(code, stderr, "overlap must be between 0 and half")
    cyclegan = save_model(tmp_path / "c.pt", "cyclegan")
    code, _, stderr = run(files["a"], "-m", cyclegan, "-o", tmp_path / "x.tif", "--samples", "3",
                          *FAST)
    assert_one_line_error(code, stderr, "dropout")
    code, _, stderr = run(files["a"], "-m", files["model"], "-o", tmp_path / "x.tif",
                          "--direction", "b2a", *FAST)
    assert_one_line_error(code, stderr, "a2b only")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_output_folder_that_is_a_file(files, tmp_path):
    (tmp_path / "maps").write_text("a file")
    code, _, stderr = run(files["a"], "-m", files["model"], "-o", tmp_path / "maps" / "x.tif",
                          *FAST)
    assert_one_line_error(code, stderr, "not a folder")
    code, _, stderr = run(files["a"], files["b"], "-m", files["model"], "--out-dir",
                          tmp_path / "maps", *FAST)
    assert code == 2 and "is a file" in stderr  # click checks --out-dir itself


def test_scene_without_crs_gives_a_warning_line(files, tmp_path):
    out = tmp_path / "x.tif"
    code, stdout, stderr = run(files["no_crs"], "-m", files["model"], "-o", out, *FAST)
    assert code == 0, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Warning: ") and "no CRS" in lines[0], stderr
    assert "Wrote" in stdout
    with rasterio.open(out) as dst:
        assert dst.crs is None


def test_a_finer_scene_is_resampled_unless_no_resample_says_not(files, tmp_path):
    """The 1 m scene through a model of 2 m chips: translated at 2 m by default (the last
    line says so), at 1 m with --no-resample (and a warning line says what that means)."""
    model = save_model(tmp_path / "m2.pt", pixel=2.0)
    code, stdout, stderr = run(files["a"], "-m", model, "-o", tmp_path / "auto.tif", *FAST)
    assert code == 0 and stderr == "", stderr
    assert ("; translated at the model's 2 × 2 metre pixels: the scene's are 2 × finer, "
            "read by average) in ") in stdout
    code, stdout, stderr = run(files["a"], "-m", model, "-o", tmp_path / "own.tif",
                               "--no-resample", *FAST)
    assert code == 0 and "translated at" not in stdout
    assert stderr.startswith("Warning: ") and "2 × finer" in stderr and stderr.count("\n") == 1
    for name, resampled in (("auto.tif", True), ("own.tif", False)):
        with rasterio.open(tmp_path / name) as dst, rasterio.open(files["a"]) as src:
            assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)
            assert f'"resampled": {str(resampled).lower()}' in dst.tags()["GEOGAN_RESOLUTION"]
    # A batch counts them in its last line.
    code, stdout, stderr = run(files["a"], files["b"], "-m", model, "--out-dir",
                               tmp_path / "maps", *FAST)
    assert code == 0 and stderr == "", stderr
    assert stdout.startswith("2 translated (2 at the model's pixel size), 0 skipped"), stdout


def test_ctrl_c_leaves_nothing_and_exits_130(files, tmp_path, monkeypatch):
    calls = []

    def interrupted(self, tiles):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(Translator, "translate_tiles", interrupted)
    code, _, stderr = run(files["a"], "-m", files["model"], "-o", tmp_path / "x.tif", *FAST)
    assert calls == [1]
    assert code == 130 and stderr == "Interrupted.\n"
    assert list(tmp_path.iterdir()) == []


def test_out_dir_that_is_the_scenes_folder_is_an_error(files, tmp_path):
    scene = write_raster(tmp_path / "s.tif", textured(np.random.default_rng(0), 3, 70, 70))
    code, stdout, stderr = run(scene, "-m", files["model"], "--out-dir", tmp_path, *FAST)
    assert code == 1, stdout
    assert "itself" in stderr
