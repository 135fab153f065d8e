"""The train and info commands: output, exit codes and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from geogan.cli.main import cli
from tests.helpers import MAP_PALETTE, pair_chips, save_model, write_raster

FAST = ("--preset", "tiny", "--ngf", "4", "--ndf", "4", "--workers", "0", "--precision", "fp32",
        "--device", "cpu")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli-train")
    return pair_chips(tmp, 192, 0.3)


@pytest.fixture(scope="module")
def model(chips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "m.pt"
    code, stdout, stderr = run("-q", "train", str(chips), "-o", str(out), "--steps", "3", *FAST)
    assert code == 0, stderr
    assert "Trained pix2pix" in stdout and f"Wrote {out}" in stdout
    return out


def test_train_writes_model_and_checkpoint_folder(model):
    run_dir = model.with_name("m-train")
    assert (run_dir / "checkpoint.pt").exists() and (run_dir / "log.jsonl").exists()
    assert torch.load(model, weights_only=True)["training"]["steps"] == 3


def test_info_prints_what_the_model_file_holds(model):
    code, stdout, _ = run("info", str(model))
    assert code == 0
    assert "pix2pix: unet generator(s) a2b, ngf 4, batch norm" in stdout
    assert "bands        3 → 3" in stdout and "tile size    64 × 64" in stdout
    assert "trained      3 steps" in stdout
    assert "pixel size   1 × 1 metre (EPSG:32633)" in stdout  # pair_scene's 1 m UTM grid
    assert "sharpness    spectral slope -" in stdout
    code, stdout, _ = run("info", str(model), "--json")
    assert code == 0
    description = json.loads(stdout)
    assert description["architecture"]["kind"] == "pix2pix"
    assert description["parameters"] > 0 and description["training"]["steps"] == 3
    assert description["trained_on"]["pixel_size"]["unit"] == "metre"
    assert set(description["trained_on"]["sharpness"]) == {"a", "b"}


def test_info_of_a_model_file_from_before_pixel_sizes_says_unknown(model, tmp_path):
    payload = torch.load(model, weights_only=True)
    del payload["trained_on"]
    torch.save(payload, tmp_path / "old.pt")
    code, stdout, _ = run("info", str(tmp_path / "old.pt"))
    assert code == 0 and "pixel size   unknown" in stdout
    assert "sharpness    unknown" in stdout


def test_train_does_not_import_torch_until_it_trains():
    code = ("import sys; from geogan.cli.main import cli; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def assert_one_line_error(code: int, stderr: str, message: str) -> None:
    assert code == 1, stderr
    assert stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr
    assert "Traceback" not in stderr


def test_empty_or_wrong_chip_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "wrong" / "photos").mkdir(parents=True)
    write_raster(tmp_path / "wrong" / "photos" / "0.tif", np.zeros((3, 64, 64), np.uint8))
    assert_one_line_error(*run("train", str(tmp_path / "empty"), "-o", str(tmp_path / "m.pt"))[::2],
                          "is empty")
    assert_one_line_error(*run("train", str(tmp_path / "wrong"), "-o", str(tmp_path / "m.pt"))[::2],
                          "images/")
    assert_one_line_error(*run("train", str(tmp_path / "nope"), "-o", str(tmp_path / "m.pt"))[::2],
                          "does not exist")
    assert not (tmp_path / "m.pt").exists()


def test_band_counts_that_differ_between_chips(tmp_path):
    rng = np.random.default_rng(0)
    for folder in ("images", "images2"):
        (tmp_path / "chips" / folder).mkdir(parents=True)
        for i, bands in enumerate((3, 3, 4)):
            write_raster(tmp_path / "chips" / folder / f"{i}.tif",
                         rng.integers(0, 255, (bands, 64, 64), dtype=np.uint8))
    code, _, stderr = run("train", str(tmp_path / "chips"), "-o", str(tmp_path / "m.pt"))
    assert_one_line_error(code, stderr, "bands")


def test_existing_output_and_resume_without_checkpoint(chips, model, tmp_path):
    code, _, stderr = run("train", str(chips), "-o", str(model), *FAST)
    assert_one_line_error(code, stderr, "--overwrite")
    code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "x.pt"), "--resume", *FAST)
    assert_one_line_error(code, stderr, "no checkpoint to resume")


def test_device_and_option_errors(chips, tmp_path):
    if not torch.cuda.is_available():
        code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "m.pt"), "--device",
                              "cuda")
        assert_one_line_error(code, stderr, "no CUDA GPU")
    code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "m.pt"), "--model", "gan")
    assert code == 2 and "Invalid value" in stderr
    code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "m.pt"), "--steps", "0")
    assert code == 2
    code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "m.pt"), "--shadow", "1.5")
    assert code == 2 and "--shadow" in stderr
    code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "m.pt"), "--blur", "2")
    assert code == 2 and "--blur" in stderr
    code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "m.pt"), "--unsharp", "2")
    assert code == 2 and "--unsharp" in stderr
    code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "m.pt"), "--rare-repeat",
                          "2")
    assert code == 2 and "--rare-repeat" in stderr
    # Photo targets have no classes to count.
    code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "m.pt"), "--rare-repeat",
                          "0.5", "--steps", "1", *FAST)
    assert_one_line_error(code, stderr, "needs a class head")
    code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "m.pt"), "--augment-until",
                          "0")
    assert code == 2 and "--augment-until" in stderr
    code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "m.pt"), "--beta2", "1")
    assert code == 2 and "--beta2" in stderr
    code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "m.pt"), "--weight-decay",
                          "-1")
    assert code == 2 and "--weight-decay" in stderr


def test_recipe_options_reach_the_model_files_training_record(chips, tmp_path):
    out = tmp_path / "m.pt"
    code, _, stderr = run("-q", "train", str(chips), "-o", str(out), "--steps", "1",
                          "--shadow", "0.5", "--photometric", "0.1", "--colour", "0.3",
                          "--judge-classes", "--deep-supervision", "0.5",
                          "--hard-pixels", "0.25", "--augment-until", "0.75",
                          "--decay-start", "0.6", "--beta1", "0.6", "--beta2", "0.95",
                          "--weight-decay", "0.5", "--blur", "0.25", "--unsharp", "0.3", *FAST)
    assert code == 0, stderr
    config = torch.load(out, weights_only=True)["training"]["config"]
    assert (config["beta1"], config["beta2"]) == (0.6, 0.95) and config["weight_decay"] == 0.5
    assert config["shadow"] == 0.5 and config["photometric"] == 0.1 and config["colour"] == 0.3
    assert config["blur"] == 0.25 and config["unsharp"] == 0.3
    assert config["judge_classes"] is True and config["hard_pixels"] == 0.25
    assert config["deep_supervision"] == 0.5 and config["augment_until"] == 0.75
    assert config["decay_start"] == 0.6


@pytest.mark.parametrize(("option", "key", "value", "described"), [
    ("--input-skip", "input_skip", 8, "a full-resolution input path of 8 channels"),
    ("--decoder-blocks", "decoder_blocks", 2, "a residual block in 2 decoder level(s)"),
    ("--dropout", "dropout", 0, "transpose upsampling, no dropout"),
])
def test_network_options_reach_the_architecture_and_info_names_them(chips, tmp_path, option,
                                                                     key, value, described):
    out = tmp_path / "m.pt"
    code, _, stderr = run("-q", "train", str(chips), "-o", str(out), "--steps", "1",
                          option, str(value), *FAST)
    assert code == 0, stderr
    assert torch.load(out, weights_only=True)["architecture"][key] == value
    code, stdout, stderr = run("info", str(out))
    assert code == 0, stderr
    assert described in stdout


def test_info_names_the_papers_dropout_and_train_refuses_dropout_1(chips, model, tmp_path):
    code, stdout, stderr = run("info", str(model))  # tiny: the paper's dropout
    assert code == 0, stderr
    assert "transpose upsampling, dropout 0.5" in stdout
    assert "translate    each window once (--tta" in stdout
    payload = torch.load(model, weights_only=True)
    payload["architecture"]["tta"] = True
    torch.save(payload, tmp_path / "averaged.pt")
    code, stdout, stderr = run("info", str(tmp_path / "averaged.pt"))
    assert code == 0 and "each window in its 8 flips and rotations, averaged" in stdout, stderr
    assert "shading" not in stdout  # no class head: no map to shade
    code, _, stderr = run("train", str(chips), "-o", str(tmp_path / "m.pt"), "--dropout", "1")
    assert code == 2 and "--dropout" in stderr


def test_info_says_which_pixels_of_a_map_translate_blurs(tmp_path):
    model = save_model(tmp_path / "map.pt", palette=MAP_PALETTE)
    code, stdout, stderr = run("info", str(model))
    assert code == 0 and "shading      pixels whose class has odds under 0.5," in stdout, stderr
    payload = torch.load(model, weights_only=True)
    payload["architecture"]["unsure_below"] = 0.45
    torch.save(payload, tmp_path / "faithful.pt")
    code, stdout, stderr = run("info", str(tmp_path / "faithful.pt"))
    assert code == 0 and "odds under 0.45," in stdout, stderr


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"PK\x03\x04broken zip"])
def test_info_on_a_damaged_or_foreign_file(tmp_path, content):
    path = tmp_path / "m.pt"
    path.write_bytes(content)
    code, _, stderr = run("info", str(path))
    assert_one_line_error(code, stderr, "not a readable model file")


def test_info_on_a_missing_file(tmp_path):
    code, _, stderr = run("info", str(tmp_path / "none.pt"))
    assert_one_line_error(code, stderr, "does not exist")


def test_train_on_several_folders_records_them(tmp_path, chips):
    second = tmp_path / "second"
    pair_chips(tmp_path, 128, 0, out=second)
    out = tmp_path / "m.pt"
    code, stdout, stderr = run("-q", "train", str(chips), str(second), "-o", str(out),
                               "--steps", "2", *FAST)
    assert code == 0, stderr
    record = torch.load(out, weights_only=True)["training"]
    folders = record["chip_folders"]
    assert [Path(f["path"]).name for f in folders] == ["chips", "second"]
    assert folders[1] == {"path": str(second.absolute()), "source": "geogan",
                          "train_chips": 4, "val_chips": 0}
    assert record["train_chips"] == folders[0]["train_chips"] + 4
    code, stdout, _ = run("info", str(out))
    assert code == 0 and "chips        2 folders" in stdout and str(second.absolute()) in stdout
