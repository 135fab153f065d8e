"""The grid-anchored window lattice: a crop translates like the whole scene, and the
lattice is recorded where ``evaluate`` finds it.

Models are tiny (tile 64, so windows step by 48 px with the default overlap), on the CPU
in fp32.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from geogan.evaluation.rasters import evaluate_rasters
from geogan.evaluation.seams import output_seam_lines, seam_lines
from geogan.grids.windows import LatticeRecord, WindowGrid
from geogan.inference.scene import translate_raster
from geogan.inference.translator import load_model
from tests.helpers import CPU, TILE, save_model, textured, write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ORIGIN = (500_000.0, 5_000_000.0)  # write_raster's default: 1 m pixels


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def crop_of(tmp: Path, data: np.ndarray, top: int, left: int, height: int, width: int
            ) -> Path:
    """The crop as its own GeoTIFF, on the whole scene's pixel grid."""
    return write_raster(tmp / f"crop-{top}-{left}.tif",
                        np.ascontiguousarray(data[:, top:top + height, left:left + width]),
                        transform=Affine(1.0, 0.0, ORIGIN[0] + left, 0.0, -1.0,
                                         ORIGIN[1] - top))


def test_a_crop_translates_like_the_whole_scene_more_than_a_tile_in(tmp_path, rng,
                                                                   trained_model):
    """A crop at an offset no window step divides (37, 23 px; steps of 48), translated on
    its own, gives the whole scene's pixels more than a tile from its edges: exactly with
    the grid lattice; with the scene's own lattice (what translate did before) its
    windows lie elsewhere and a trained U-Net, which sees its whole window, draws other
    pixels."""
    translator = load_model(trained_model, **CPU)
    data = textured(rng, 3, 320, 320)
    whole = write_raster(tmp_path / "whole.tif", data)
    top, left, height, width = 37, 23, 230, 250
    crop = crop_of(tmp_path, data, top, left, height, width)
    mad = {}
    for lattice in ("grid", "scene"):
        w = translate_raster(whole, tmp_path / f"w-{lattice}.tif", translator,
                             lattice=lattice).output
        c = translate_raster(crop, tmp_path / f"c-{lattice}.tif", translator,
                             lattice=lattice).output
        inner = read(c)[:, TILE:height - TILE, TILE:width - TILE].astype(np.float64)
        same = read(w)[:, top + TILE:top + height - TILE,
                       left + TILE:left + width - TILE].astype(np.float64)
        mad[lattice] = float(np.abs(inner - same).mean())
    print(f"crop vs whole scene, more than a tile in, mean absolute difference (grey "
          f"levels): grid lattice {mad['grid']:.4f}, scene lattice {mad['scene']:.4f}")
    assert mad["grid"] <= 0.5, mad
    assert mad["grid"] < mad["scene"], mad


def test_the_lattice_is_in_the_tags_and_evaluate_finds_its_lines(tmp_path, rng):
    """Unblended windows of a model with border effects leave seams on the grid lattice's
    lines, which lie elsewhere than the scene lattice's: evaluate reads the lattice from
    the tags and scores the right lines."""
    model = save_model(tmp_path / "m.pt", out_bands=3, out_dtype="float32",
                       out_range=(0.0, 1000.0), local=True)
    data = textured(rng, 3, 256, 256)
    scene = write_raster(tmp_path / "scene.tif", data,
                         transform=Affine(1.0, 0.0, 500_021.0, 0.0, -1.0, 4_999_970.0))
    out = translate_raster(scene, tmp_path / "out.tif", model, overlap=0, blend="none",
                           **CPU).output
    with rasterio.open(out) as dst:
        tags = dst.tags()
    record = LatticeRecord.from_tag(tags["GEOGAN_LATTICE"])
    assert record == LatticeRecord("grid", "crs", (-4_999_970, 500_021), (0, 0), (256, 256))
    assert json.loads(tags["GEOGAN_OPTIONS"])["lattice"] == "grid"
    grid = WindowGrid(256, 256, TILE, 0, "none", (-4_999_970, 500_021))
    assert grid.col_starts[:2] == (0, 11)  # 500_021 + 11 = 64 × 7813
    lines = output_seam_lines(record, 256, 256, TILE, 0, "none")
    assert all((a == b).all() for a, b in zip(lines, seam_lines(grid), strict=True))
    report = evaluate_rasters(out, scene)
    assert report.seams is not None and report.seams.lattice == "grid"
    assert report.seams.prediction is not None
    assert abs(report.seams.prediction - 1) > 0.25, report.seams


def test_scenes_without_a_crs_keep_the_scene_lattice_and_say_so(tmp_path, rng):
    model = save_model(tmp_path / "m.pt")
    scene = write_raster(tmp_path / "plain.tif", textured(rng, 3, 100, 120), crs=None,
                         transform=Affine(1.0, 0.0, 17.0, 0.0, -1.0, 90.0))
    with pytest.warns(UserWarning, match="no CRS"):
        out = translate_raster(scene, tmp_path / "out.tif", model, **CPU).output
    with rasterio.open(out) as dst:
        record = LatticeRecord.from_tag(dst.tags()["GEOGAN_LATTICE"])
    assert record == LatticeRecord("scene", "no crs", None, (0, 0), (100, 120))
    with_crs = write_raster(tmp_path / "crs.tif", textured(rng, 3, 100, 120))
    out = translate_raster(with_crs, tmp_path / "asked.tif", model, lattice="scene",
                           **CPU).output
    with rasterio.open(out) as dst:
        assert json.loads(dst.tags()["GEOGAN_LATTICE"])["why"] == "asked"
