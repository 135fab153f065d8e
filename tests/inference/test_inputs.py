"""Scenes as users hold them: URLs (a loopback HTTP server answering range requests, and
the same server as an S3 endpoint), @lists, quoted globs and VRTs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from geogan.errors import RasterNotFoundError
from geogan.inference.batch import translate_batch
from geogan.inference.scene import translate_raster
from geogan.raster.io import gdal_name, scene_stem
from geogan.raster.mosaic import mosaic_vrt, scene_list
from tests.helpers import CPU, save_model, serve_folder, textured, write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two neighbouring tiles of a scene, and the scene, in a served folder ``data/``."""
    root = tmp_path_factory.mktemp("served")
    (root / "data").mkdir()
    data = textured(np.random.default_rng(8), 3, 96, 160)
    files = {"whole": write_raster(root / "data" / "whole.tif", data, tiled=True,
                                   blockxsize=64, blockysize=64)}
    for k in range(2):
        files[f"t{k}"] = write_raster(
            root / "data" / f"t{k}.tif", np.ascontiguousarray(data[:, :, 80 * k:80 * (k + 1)]),
            transform=Affine(1.0, 0.0, 500_000.0 + 80 * k, 0.0, -1.0, 5_000_000.0))
    files["root"] = root
    files["model"] = save_model(root / "m.pt")
    return files


def test_urls_are_read_with_range_requests(tmp_path, served, monkeypatch):
    local = read(translate_raster(served["whole"], tmp_path / "local.tif", served["model"],
                                  **CPU).output)
    with serve_folder(served["root"]) as (url, log):
        for name, scene in (("https", f"{url}/data/whole.tif"),
                            ("vsicurl", f"/vsicurl/{url}/data/whole.tif")):
            out = translate_raster(scene, tmp_path / f"{name}.tif", served["model"], **CPU)
            assert np.array_equal(read(out.output), local), name
        # The same server as an S3 endpoint: s3://data/whole.tif is GET /data/whole.tif.
        for key, value in {"AWS_NO_SIGN_REQUEST": "YES", "AWS_HTTPS": "NO",
                           "AWS_VIRTUAL_HOSTING": "FALSE",
                           "AWS_S3_ENDPOINT": url.removeprefix("http://")}.items():
            monkeypatch.setenv(key, value)
        out = translate_raster("s3://data/whole.tif", tmp_path / "s3.tif", served["model"],
                               **CPU)
        assert np.array_equal(read(out.output), local)
        requests = [json.loads(line) for line in log.read_text().splitlines()]
    ranges = [r for r in requests if r[1].startswith("/data/whole.tif") and r[2]]
    assert ranges and all(r[2].startswith("bytes=") for r in ranges)
    with rasterio.open(tmp_path / "https.tif") as dst:
        assert dst.tags()["GEOGAN_SOURCE"] == "whole.tif"


def test_a_batch_of_urls_named_in_a_list_as_a_mosaic(tmp_path, served):
    """@list of URLs (one with a query) and a local path, translated with --mosaic: the
    VRT reads the tiles through GDAL's /vsicurl/, the outputs are named after the files."""
    here = translate_batch([served["t0"], served["t1"]], tmp_path / "here", served["model"],
                           mosaic=True, **CPU)
    assert [o.status for o in here.outcomes] == ["done", "done"]
    with serve_folder(served["root"]) as (url, _):
        listing = tmp_path / "scenes.txt"
        listing.write_text(f"# the delivery\n{url}/data/t0.tif?token=abc\n\n{url}/data/t1.tif\n")
        report = translate_batch([f"@{listing}"], tmp_path / "out", served["model"],
                                 mosaic=True, **CPU)
    assert [o.status for o in report.outcomes] == ["done", "done"], report.failures
    for name in ("t0.tif", "t1.tif"):
        assert np.array_equal(read(tmp_path / "out" / name), read(tmp_path / "here" / name))


def test_lists_globs_and_vrts(tmp_path, served):
    (tmp_path / "more").mkdir()
    listing = tmp_path / "more" / "scenes.txt"
    listing.write_text(f"../t.tif\n# comment\n{served['t1']}\nhttps://example.org/x.tif\n")
    assert scene_list([f"@{listing}", served["t0"]]) == [
        str(tmp_path / "more" / ".." / "t.tif"), str(served["t1"]),
        "https://example.org/x.tif", str(served["t0"])]
    assert scene_list([str(served["root"] / "data" / "t*.tif")]) == [str(served["t0"]),
                                                                     str(served["t1"])]
    with pytest.raises(RasterNotFoundError, match="cannot read the list"):
        scene_list(["@" + str(tmp_path / "none.txt")])
    with pytest.raises(RasterNotFoundError, match="no file matches"):
        scene_list([str(tmp_path / "nothing*.tif")])
    # A VRT is a scene like any other: the two tiles as one raster.
    vrt = tmp_path / "both.vrt"
    vrt.write_text(mosaic_vrt([str(served["t0"]), str(served["t1"])]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no raw warning on the way
        via_vrt = translate_batch([vrt], tmp_path / "out", served["model"], **CPU)
    assert via_vrt.outcomes[0].output == tmp_path / "out" / "both.tif"
    whole = translate_raster(served["whole"], tmp_path / "whole.tif", served["model"], **CPU)
    assert np.array_equal(read(tmp_path / "out" / "both.tif"), read(whole.output))


def test_url_names():
    assert gdal_name("https://host/a/b.tif") == "/vsicurl/https://host/a/b.tif"
    assert gdal_name("s3://bucket/key/b.tif") == "/vsis3/bucket/key/b.tif"
    assert gdal_name("/vsicurl/https://host/b.tif") == "/vsicurl/https://host/b.tif"
    assert gdal_name("local/b.tif") == "local/b.tif"
    assert scene_stem("https://host/a/b.tif?sig=x/y") == "b"
    assert scene_stem("s3://bucket/key/scene.vrt") == "scene"
    assert scene_stem("tiles/t0.tif") == "t0"
