"""Shared fixtures: tiny seeded rasters written with rasterio in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

UTM33 = "EPSG:32633"


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: Any = UTM33,
    transform: Affine | None = None,
    nodata: float | None = None,
    **profile: Any,
) -> Path:
    """Write ``data`` (C, H, W) as a GeoTIFF; default grid: 1 m pixels in UTM 33N."""
    count, height, width = data.shape
    if transform is None:
        transform = Affine(1.0, 0.0, 500_000.0, 0.0, -1.0, 5_000_000.0)
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=count,
        dtype=data.dtype, crs=crs, transform=transform, nodata=nodata, **profile,
    ) as dst:
        dst.write(data)
    return path


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: int = 16) -> np.ndarray:
    """A smooth random field in [0, 1]: textured enough for registration, smooth enough
    for interpolation tests."""
    coarse = rng.random((shape[0] // scale + 3, shape[1] // scale + 3))
    rows = np.linspace(0, coarse.shape[0] - 2.001, shape[0])
    cols = np.linspace(0, coarse.shape[1] - 2.001, shape[1])
    r0, c0 = rows.astype(int), cols.astype(int)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = coarse[r0][:, c0] * (1 - fc) + coarse[r0][:, c0 + 1] * fc
    bottom = coarse[r0 + 1][:, c0] * (1 - fc) + coarse[r0 + 1][:, c0 + 1] * fc
    field: np.ndarray = top * (1 - fr) + bottom * fr
    return field


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


def pair_scene(tmp: Path, size: int = 256) -> tuple[Path, Path]:
    """A learnable pair: RGB uint8 input, target = a fixed colour mapping of it."""
    rng = np.random.default_rng(11)
    a = (np.stack([smooth_field(rng, (size, size), 16) for _ in range(3)]) * 250).astype(np.uint8)
    b = np.stack([a[1], 255 - a[0], a[2] // 2]).astype(np.uint8)
    return write_raster(tmp / "a.tif", a), write_raster(tmp / "b.tif", b)


@pytest.fixture(scope="module")
def chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 paired geogan chips of 64 px from :func:`pair_scene`, 4 of them val (12 train)."""
    from geogan.chips.export import ExportOptions, export_chips

    tmp = tmp_path_factory.mktemp("chips")
    a, b = pair_scene(tmp)
    export_chips(a, b, tmp / "chips", ExportOptions(tile_size=64, val_fraction=0.25, workers=1))
    return tmp / "chips"
