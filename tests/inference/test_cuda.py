"""translate on a CUDA GPU against the CPU: the same pixels within one grey level.

Marked ``cuda``: skipped where PyTorch sees no GPU (see ``tests/conftest.py``), run by
``benchmarks/gpu.sh`` on a machine that has one (``pytest -m cuda``).
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from geogan.inference.batching import CPU_BATCH, MAX_AUTO_BATCH
from geogan.inference.scene import translate_raster
from geogan.inference.translator import load_model
from tests.helpers import CPU, save_model, textured, write_raster

pytestmark = pytest.mark.cuda


def test_translate_on_cuda_matches_cpu_fp32_within_one_grey_level(tmp_path):
    model = save_model(tmp_path / "m.pt")  # tiny random U-Net, uint8 → uint8
    scene = write_raster(tmp_path / "scene.tif", textured(np.random.default_rng(7), 3, 300, 260))
    translate_raster(scene, tmp_path / "cpu.tif", model, **CPU)
    translator = load_model(model, device="cuda", precision="fp32")
    report = translate_raster(scene, tmp_path / "cuda.tif", translator)
    assert report.windows_run > 1
    with rasterio.open(tmp_path / "cpu.tif") as cpu, rasterio.open(tmp_path / "cuda.tif") as gpu:
        expected, actual = cpu.read().astype(int), gpu.read().astype(int)
        assert gpu.profile["dtype"] == cpu.profile["dtype"] == "uint8"
    assert np.abs(actual - expected).max() <= 1


def test_a_scene_sharpened_on_cuda_matches_the_cpu_within_one_grey_level(tmp_path):
    """The windows are sharpened on the generator's device (--sharpen), nodata kept."""
    model = save_model(tmp_path / "m.pt")
    image = textured(np.random.default_rng(9), 3, 300, 260)
    image[:, :40, :70] = 0
    scene = write_raster(tmp_path / "scene.tif", image, nodata=0)
    translate_raster(scene, tmp_path / "cpu.tif", model, sharpen=1.0, **CPU)
    translator = load_model(model, device="cuda", precision="fp32")
    translate_raster(scene, tmp_path / "cuda.tif", translator, sharpen=1.0)
    with rasterio.open(tmp_path / "cpu.tif") as cpu, rasterio.open(tmp_path / "cuda.tif") as gpu:
        expected, actual = cpu.read().astype(int), gpu.read().astype(int)
        assert np.array_equal(cpu.read_masks(1), gpu.read_masks(1))
    assert np.abs(actual - expected).max() <= 1


def test_translate_array_on_cuda_in_every_precision(tmp_path):
    """fp32 within one grey level of the CPU; bf16 and fp16 (what ``auto`` picks on a
    GPU) close on average: their arithmetic is coarser, not wrong."""
    model = save_model(tmp_path / "m.pt")
    scene = textured(np.random.default_rng(8), 3, 64, 64)
    expected = load_model(model, device="cpu", precision="fp32").translate_array(scene)
    precisions = ["fp32", "fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
    for precision in precisions:
        actual = load_model(model, device="cuda", precision=precision).translate_array(scene)
        difference = np.abs(actual.astype(int) - expected.astype(int))
        if precision == "fp32":
            assert difference.max() <= 1
        else:
            assert difference.mean() < 1.0, (precision, difference.mean())


def test_the_default_batch_on_cuda_comes_from_free_memory(tmp_path):
    model = save_model(tmp_path / "m.pt")
    translator = load_model(model, device="cuda", precision="auto")
    chosen = translator.auto_batch_size()
    assert CPU_BATCH <= chosen <= MAX_AUTO_BATCH
    assert translator.auto_batch_size() == chosen  # measured once
    scene = write_raster(tmp_path / "scene.tif", textured(np.random.default_rng(9), 3, 200, 200))
    translate_raster(scene, tmp_path / "out.tif", translator)
    with rasterio.open(tmp_path / "out.tif") as out:
        assert f'"batch_size": {chosen}' in out.tags()["GEOGAN_OPTIONS"]
