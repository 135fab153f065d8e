"""Shared fixtures: tiny seeded rasters written with rasterio in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TINY, pair_chips, smooth_field, write_raster


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``cuda`` where PyTorch sees no GPU (CPU CI lists them as
    skipped); ``benchmarks/gpu.sh`` runs them on a machine that has one."""
    cuda_tests = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda_tests:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (PyTorch sees none)")
        for item in cuda_tests:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def scene(rng: np.random.Generator) -> np.ndarray:
    """A 3-band uint8 512×512 scene with texture."""
    base = smooth_field(rng, (512, 512), 16)
    bands = [base, smooth_field(rng, (512, 512), 8), 1 - base]
    return (np.stack(bands) * 250).astype(np.uint8)


@pytest.fixture
def pair(tmp_path: Path, scene: np.ndarray) -> tuple[Path, Path]:
    """A co-registered pair on the same grid: RGB uint8 input, 1-band float32 target."""
    a = write_raster(tmp_path / "a.tif", scene)
    b = write_raster(tmp_path / "b.tif", scene.astype(np.float32).mean(axis=0, keepdims=True) * 2.0)
    return a, b


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for a module of tiny-model tests: the engine's reader and writer
    threads already keep a small machine busy, and on a loaded CPU torch's spinning worker
    threads can make a tiny model's batch ~100 times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 paired geogan chips of 64 px from :func:`pair_scene`, 4 of them val (12 train)."""
    return pair_chips(tmp_path_factory.mktemp("chips"))


@pytest.fixture(scope="module")
def trained_model(chips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Pix2Pix (tile 64, ngf 8) trained 10 steps on :func:`chips`: a generator whose
    BatchNorm statistics and weights came from real training, and a model file that
    records what it was trained on (pixel size, input statistics)."""
    from geogan.training.loop import TrainOptions, train

    tmp = tmp_path_factory.mktemp("trained")
    train(chips, tmp / "m.pt", TrainOptions(
        preset="tiny", overrides={**TINY, "steps": 10, "val_every": 10, "lr": 1e-3},
        checkpoint_dir=tmp / "run", device="cpu"))
    return tmp / "m.pt"
