"""--mosaic batches: scenes on one pixel grid translated as the mosaic they form.

A scene's windows read context from its neighbours, so the outputs (each on its own
scene's grid) equal the whole mosaic translated at once and cut into the scenes; without
--mosaic every tile is translated on its own and the joins show.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from geogan.evaluation.seams import output_seam_lines, seam_lines, seam_sums
from geogan.grids.windows import LatticeRecord
from geogan.inference.batch import translate_batch
from geogan.inference.scene import translate_raster
from geogan.inference.translator import load_model
from geogan.inference.unsure_blur import blur_radius
from tests.helpers import (
    CPU,
    MAP_PALETTE,
    TILE,
    leftovers,
    save_model,
    textured,
    write_raster,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROWS, COLS = 72, 80  # a tile's size: no multiple of the 48 px window step
LEFT, TOP = 500_003.0, 5_000_011.0  # the whole scene's corner, on a 1 m grid


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def cut(data: np.ndarray, folder: Path, n: int = 4) -> list[Path]:
    """The scene cut into n × n GeoTIFF tiles on its pixel grid."""
    folder.mkdir()
    tiles = []
    for i in range(n):
        for j in range(n):
            part = np.ascontiguousarray(data[:, i * ROWS:(i + 1) * ROWS, j * COLS:(j + 1) * COLS])
            tiles.append(write_raster(
                folder / f"t{i}{j}.tif", part,
                transform=Affine(1.0, 0.0, LEFT + j * COLS, 0.0, -1.0, TOP - i * ROWS)))
    return tiles


def assemble(folder: Path, n: int = 4) -> np.ndarray:
    """The outputs of the tiles side by side again."""
    return np.concatenate([np.concatenate([read(folder / f"t{i}{j}.tif") for j in range(n)],
                                          axis=2) for i in range(n)], axis=1)


def joins(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The lines between tiles, as seam_lines gives lines."""
    rows = np.zeros(n * ROWS, bool)
    cols = np.zeros(n * COLS, bool)
    rows[ROWS::ROWS], cols[COLS::COLS] = True, True
    return rows, cols


def near_joins(n: int = 4, width: int = 2) -> np.ndarray:
    """Pixels within ``width`` of a join."""
    rows, cols = joins(n)
    near_rows = np.convolve(rows, np.ones(2 * width), mode="same") > 0
    near_cols = np.convolve(cols, np.ones(2 * width), mode="same") > 0
    return near_rows[:, None] | near_cols[None, :]


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("delivery")
    data = textured(np.random.default_rng(17), 3, 4 * ROWS, 4 * COLS)
    whole = write_raster(tmp / "whole.tif", data,
                         transform=Affine(1.0, 0.0, LEFT, 0.0, -1.0, TOP))
    return {"data": data, "whole": whole, "tiles": cut(data, tmp / "tiles"), "tmp": tmp}


def test_a_mosaic_batch_equals_the_whole_mosaic_cut_into_its_tiles(tmp_path, delivery,
                                                                   trained_model):
    translator = load_model(trained_model, **CPU)
    whole = read(translate_raster(delivery["whole"], tmp_path / "whole.tif", translator
                                  ).output).astype(np.float64)
    report = translate_batch(delivery["tiles"], tmp_path / "mosaic", translator, mosaic=True)
    assert [o.status for o in report.outcomes] == ["done"] * 16
    alone = translate_batch(delivery["tiles"], tmp_path / "alone", translator)
    assert [o.status for o in alone.outcomes] == ["done"] * 16
    for path in delivery["tiles"]:  # each output on its own tile's grid
        with rasterio.open(path) as src, rasterio.open(tmp_path / "mosaic" / path.name) as dst:
            assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)
    mosaic = assemble(tmp_path / "mosaic").astype(np.float64)
    separate = assemble(tmp_path / "alone").astype(np.float64)
    near = near_joins()
    figures = {}
    for name, values in (("mosaic", mosaic), ("separate", separate)):
        diff = np.abs(values - whole).mean(axis=0)
        figures[name] = (float(diff.mean()), float(diff[near].mean()))
    scores = {name: seam_sums(values, None, *joins()).score
              for name, values in (("whole", whole), ("mosaic", mosaic), ("separate", separate))}
    print(f"vs the whole mosaic, mean |difference| (all, within 2 px of the joins): "
          f"--mosaic {figures['mosaic'][0]:.4f}, {figures['mosaic'][1]:.4f}; tile by tile "
          f"{figures['separate'][0]:.4f}, {figures['separate'][1]:.4f}; seam score along "
          f"the joins: whole {scores['whole']:.3f}, --mosaic {scores['mosaic']:.3f}, tile by "
          f"tile {scores['separate']:.3f}")
    assert figures["mosaic"][0] <= 0.5 and figures["mosaic"][1] <= max(0.5, figures["mosaic"][0])
    assert figures["separate"][1] > figures["mosaic"][1]
    assert scores["mosaic"] == pytest.approx(scores["whole"], abs=0.01)
    assert not leftovers(tmp_path / "mosaic")


def test_shaded_maps_blur_their_unsure_pixels_across_the_joins(tmp_path, delivery):
    """The blur of a map's unsure pixels reaches a few pixels into the neighbouring scenes
    (the part of the region next to the crop): their pixels by the joins come out as in
    the whole mosaic, not as at the edge of a map."""
    translator = load_model(save_model(tmp_path / "map.pt", palette=MAP_PALETTE,
                                       class_scale=3000.0), **CPU)
    whole = read(translate_raster(delivery["whole"], tmp_path / "whole.tif", translator
                                  ).output)
    translate_batch(delivery["tiles"], tmp_path / "mosaic", translator, mosaic=True)
    differ = (assemble(tmp_path / "mosaic") != whole).any(axis=0)
    near = near_joins(width=blur_radius(translator.unsure_blur))
    print(f"pixels unlike the whole mosaic's: {differ.mean():.4f} of all, "
          f"{differ[near].mean():.4f} within the blur's reach of a join")
    assert differ.mean() <= 0.001 and differ[near].mean() <= 0.001  # none, here


def test_each_scene_reads_at_most_a_tile_around_it_and_records_its_windows(tmp_path,
                                                                           delivery):
    """Memory is bounded: a scene's windows cover it and at most a tile of margin on each
    side; its lattice tag places them, so evaluate finds the mosaic's window lines."""
    model = save_model(tmp_path / "m.pt")
    translate_batch(delivery["tiles"], tmp_path / "out", model, mosaic=True, **CPU)
    whole = translate_raster(delivery["whole"], tmp_path / "whole.tif", model, **CPU).output
    with rasterio.open(whole) as src:
        whole_record = LatticeRecord.from_tag(src.tags()["GEOGAN_LATTICE"])
    assert whole_record is not None
    rows, cols = seam_lines(whole_record.window_grid(TILE, TILE // 4, "cosine"))
    for k, path in enumerate(delivery["tiles"]):
        i, j = divmod(k, 4)
        with rasterio.open(tmp_path / "out" / path.name) as dst:
            record = LatticeRecord.from_tag(dst.tags()["GEOGAN_LATTICE"])
        assert record is not None and record.lattice == "grid"
        height, width = record.size
        assert height <= ROWS + 2 * TILE and width <= COLS + 2 * TILE
        assert record.offset == (min(TILE, i * ROWS), min(TILE, j * COLS))
        lines = output_seam_lines(record, ROWS, COLS, TILE, TILE // 4, "cosine")
        # The whole mosaic's window lines, cut to the tile (index 0 is the tile's edge).
        assert np.array_equal(lines[0][1:], rows[i * ROWS + 1:(i + 1) * ROWS]), (i, j)
        assert np.array_equal(lines[1][1:], cols[j * COLS + 1:(j + 1) * COLS]), (i, j)


def test_grids_form_their_own_groups_and_existing_outputs_are_kept(tmp_path, delivery):
    model = save_model(tmp_path / "m.pt")
    rng = np.random.default_rng(4)
    other = tmp_path / "other"
    other.mkdir()
    # Two tiles on a grid half a pixel off the delivery's, one in another CRS, one
    # without a CRS, one broken file.
    shifted = [write_raster(other / f"h{k}.tif", textured(rng, 3, 50, 60),
                            transform=Affine(1.0, 0.0, LEFT + 0.5 + 60 * k, 0.0, -1.0, TOP))
               for k in range(2)]
    elsewhere = write_raster(other / "utm32.tif", textured(rng, 3, 50, 60), crs="EPSG:32632")
    no_crs = write_raster(other / "local.tif", textured(rng, 3, 50, 60), crs=None)
    broken = other / "broken.tif"
    broken.write_text("not a raster")
    out = tmp_path / "out"
    out.mkdir()
    (out / "t00.tif").write_bytes(b"an earlier output")
    scenes = [*delivery["tiles"][:4], *shifted, elsewhere, no_crs, broken]
    with pytest.warns(UserWarning, match="no CRS"):
        report = translate_batch(scenes, out, model, mosaic=True, **CPU)
    statuses = [o.status for o in report.outcomes]
    assert statuses == ["skipped", "done", "done", "done", "done", "done", "done", "done",
                        "failed"]
    assert "broken.tif" in report.outcomes[-1].message
    assert (out / "t00.tif").read_bytes() == b"an earlier output"

    def region(name: str) -> tuple[int, int]:
        with rasterio.open(out / name) as dst:
            record = json.loads(dst.tags()["GEOGAN_LATTICE"])
        return tuple(record["size"])

    # The delivery's first row of tiles is one mosaic (the skipped tile still lends its
    # pixels); the shifted pair is another; the others are alone on their grids.
    assert region("t01.tif") == (ROWS, COLS + 2 * TILE)
    assert region("h0.tif") == (50, 120) and region("h1.tif") == (50, 120)
    assert region("utm32.tif") == (50, 60) and region("local.tif") == (50, 60)
    assert not leftovers(out)


def test_mosaic_needs_a_batch_and_does_not_resample_yet(tmp_path, delivery):
    from click.testing import CliRunner

    from geogan.cli.main import cli
    from geogan.errors import ConfigError

    model = save_model(tmp_path / "m.pt")
    result = CliRunner().invoke(cli, ["translate", str(delivery["tiles"][0]), "-m", str(model),
                                      "-o", str(tmp_path / "x.tif"), "--mosaic"])
    assert result.exit_code == 2 and "--mosaic" in result.stderr
    with pytest.raises(ConfigError, match="--resample"):
        translate_batch(delivery["tiles"][:2], tmp_path / "out", model, mosaic=True,
                        resample=True, **CPU)
    result = CliRunner().invoke(cli, ["-q", "translate", *map(str, delivery["tiles"][:2]),
                                      "-m", str(model), "--out-dir", str(tmp_path / "cli"),
                                      "--mosaic", "--device", "cpu", "--precision", "fp32"])
    assert result.exit_code == 0, result.stderr
    assert "2 translated" in result.stdout


def test_a_mosaic_of_tiles_finer_than_the_model_stays_on_their_grid(tmp_path, delivery):
    """Finer scenes are translated at the model's pixel size by default, one by one; a
    mosaic is read on its tiles' grid, so there they get the warning instead."""
    model = save_model(tmp_path / "m.pt", pixel=2.0)  # the tiles have 1 m pixels
    tiles = delivery["tiles"][:2]
    for mosaic in (False, True):
        out = tmp_path / f"mosaic-{mosaic}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            batch = translate_batch(tiles, out, model, mosaic=mosaic, **CPU)
        assert batch.count("done") == 2
        finer = [w for w in caught if "2 × finer" in str(w.message)]
        assert len(finer) == (2 if mosaic else 0)
        for tile in tiles:
            with rasterio.open(out / tile.name) as dst:
                record = json.loads(dst.tags()["GEOGAN_RESOLUTION"])
            assert record["resampled"] is not mosaic
