"""Tests of reading helpers: which raster rows a decimated read takes, and the test of
categorical (flat-colour) rasters."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling

from geogan.raster.io import _nearest_rows, is_categorical


def write(path, data, tiled=False):
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1],
                   count=data.shape[0], dtype=str(data.dtype), crs="EPSG:32633",
                   transform=Affine(1, 0, 500_000, 0, -1, 5_000_000))
    if tiled:
        profile.update(tiled=True, blockxsize=64, blockysize=64)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.mark.parametrize(("height", "rows"), [(1, 1), (7, 3), (1000, 500), (1001, 500),
                                              (2999, 187), (10980, 499), (513, 1)])
def test_nearest_rows_are_the_rows_gdal_reads(tmp_path, height, rows):
    """A raster whose pixels hold their row number, read decimated with nearest
    neighbour: GDAL takes exactly the rows :func:`_nearest_rows` names."""
    data = np.broadcast_to(np.arange(height, dtype=np.uint16)[None, :, None], (1, height, 3))
    path = write(tmp_path / "rows.tif", np.ascontiguousarray(data), tiled=height > 64)
    with rasterio.open(path) as dataset:
        sample = dataset.read(out_shape=(1, rows, 1), resampling=Resampling.nearest)
    assert sample[0, :, 0].tolist() == _nearest_rows(height, rows).tolist()


class CountingReads:
    """A dataset whose reads are recorded (window or none)."""

    def __init__(self, dataset):
        self._dataset = dataset
        self.windows = []

    def __getattr__(self, name):
        return getattr(self._dataset, name)

    def read(self, *args, **kwargs):
        self.windows.append(kwargs.get("window"))
        return self._dataset.read(*args, **kwargs)


def decide(path):
    with rasterio.open(path) as dataset:
        counting = CountingReads(dataset)
        return is_categorical(counting), counting.windows


def test_a_continuous_raster_is_told_from_its_first_sample_rows(tmp_path, rng):
    """A photo shows many values in the first rows of its sample: the whole raster is
    not read."""
    photo = rng.integers(0, 256, (3, 1200, 1100), dtype=np.uint8)
    categorical, windows = decide(write(tmp_path / "photo.tif", photo, tiled=True))
    assert not categorical
    assert windows and all(w is not None and w.height == 1 for w in windows)
    assert len(windows) == -(-4096 // (1100 // 3))  # the rows holding 4096 samples


def test_a_map_and_a_map_with_a_varied_tail_read_the_whole_sample(tmp_path, rng):
    """Few colours in the first rows are no proof: the whole sample decides, as before."""
    colours = rng.integers(0, 256, (6, 3), dtype=np.uint8)
    flat = np.moveaxis(colours[rng.integers(0, 6, (900, 800))], -1, 0)
    categorical, windows = decide(write(tmp_path / "map.tif", flat))
    assert categorical and windows[-1] is None  # the full decimated read
    varied = flat.copy()
    varied[:, 450:] = rng.integers(0, 256, (3, 450, 800), dtype=np.uint8)
    categorical, windows = decide(write(tmp_path / "varied.tif", varied))
    assert not categorical and windows[-1] is None


@pytest.mark.parametrize("levels", [None, [2, 4], [3]], ids=["no overviews", "2, 4", "3"])
def test_the_first_sample_rows_are_those_of_the_whole_sample(tmp_path, rng, levels):
    """Read one by one (as :func:`is_categorical` reads a photo's first rows), the sample
    rows are those of the whole decimated read, also where GDAL takes them from
    overviews."""
    data = rng.integers(0, 256, (1, 1100, 1000), dtype=np.uint8)
    path = write(tmp_path / "photo.tif", data, tiled=True)
    if levels:
        with rasterio.open(path, "r+") as dataset:
            dataset.build_overviews(levels, Resampling.average)
    with rasterio.open(path) as dataset:
        rows, columns = 1100 // 3, 1000 // 3
        whole = dataset.read(out_shape=(1, rows, columns), resampling=Resampling.nearest)
        for position, row in enumerate(_nearest_rows(1100, rows)[:12]):
            one = dataset.read(window=rasterio.windows.Window(0, int(row), 1000, 1),
                               out_shape=(1, 1, columns), resampling=Resampling.nearest)
            assert np.array_equal(one[0, 0], whole[0, position])
