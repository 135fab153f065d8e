"""Batch translation on a Dask distributed cluster: a LocalCluster of 2 worker processes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

import geogan.inference.cluster
from geogan.cli.main import cli
from geogan.errors import ConfigError
from geogan.inference.batch import translate_batch
from geogan.inference.translator import load_model
from tests.helpers import CPU, MAP_PALETTE, leftovers, save_model, textured, write_raster

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("model") / "m.pt")


@pytest.fixture(scope="module")
def client() -> object:
    """Two worker processes of one thread, as ``--cluster local:2`` starts them."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as local, \
            distributed.Client(local) as connected:
        yield connected


def scenes(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(7)
    folder.mkdir()
    return [write_raster(folder / f"s{i}.tif", textured(rng, 3, 90 + 10 * i, 130))
            for i in range(count)]


def test_a_cluster_batch_writes_what_a_local_batch_writes(tmp_path, model, client):
    paths = scenes(tmp_path / "scenes", 5)
    broken = tmp_path / "scenes" / "broken.tif"
    broken.write_text("not a raster")
    batch = [*paths[:2], broken, *paths[2:]]
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "s4.tif").write_bytes(b"an earlier output")
    finished: list[tuple[int, int]] = []
    on_cluster = translate_batch(batch, tmp_path / "cluster", model, cluster=client,
                                 scene_progress=lambda d, t: finished.append((d, t)), **CPU)
    here = translate_batch(batch, tmp_path / "local", model, **CPU)

    statuses = ["done", "done", "failed", "done", "done", "skipped"]
    assert [o.status for o in on_cluster.outcomes] == statuses
    assert [o.status for o in here.outcomes][:5] == statuses[:5]
    assert [o.source for o in on_cluster.outcomes] == [str(p) for p in batch]  # given order
    assert "broken.tif" in on_cluster.outcomes[2].message
    assert finished == [(i, 6) for i in range(1, 7)]
    for path in paths[:4]:
        with rasterio.open(tmp_path / "cluster" / path.name) as a, \
                rasterio.open(tmp_path / "local" / path.name) as b:
            assert a.profile == b.profile
            assert np.array_equal(a.read(), b.read())
    assert (tmp_path / "cluster" / "s4.tif").read_bytes() == b"an earlier output"
    assert not leftovers(tmp_path / "cluster")
    # Both workers took scenes, and each loaded the model once for all of its scenes.
    workers = {o.worker for o in on_cluster.outcomes if o.status == "done"}
    assert len(workers) == 2
    assert client.run(geogan.inference.cluster.model_loads) == dict.fromkeys(workers, 1)

    rerun = translate_batch(batch, tmp_path / "cluster", model, cluster=client, **CPU)
    assert [o.status for o in rerun.outcomes] == [
        "skipped", "skipped", "failed", "skipped", "skipped", "skipped"]
    assert client.run(geogan.inference.cluster.model_loads) == dict.fromkeys(workers, 1)


def test_the_command_starts_a_local_cluster_and_reports_failures(tmp_path, model):
    paths = scenes(tmp_path / "scenes", 3)
    (tmp_path / "scenes" / "x.tif").write_text("not a raster")
    result = CliRunner().invoke(cli, [
        "translate", *map(str, paths), str(tmp_path / "scenes" / "x.tif"), "--model", str(model),
        "--out-dir", str(tmp_path / "maps"), "--cluster", "local:2", "--device", "cpu",
        "--precision", "fp32"])
    assert result.exit_code == 1, result.output
    assert "3 translated, 0 skipped (output exists), 1 failed" in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "x.tif" in errors[0]
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["s0.tif", "s1.tif",
                                                                     "s2.tif"]


def test_cluster_errors_are_one_line(tmp_path, model, monkeypatch):
    paths = scenes(tmp_path / "scenes", 1)
    with pytest.raises(ConfigError, match="local:N with N a number"):
        translate_batch(paths, tmp_path / "maps", model, cluster="local:zero", **CPU)
    with pytest.raises(ConfigError, match="model file, not a loaded Translator"):
        translate_batch(paths, tmp_path / "maps", load_model(model), cluster="local:1", **CPU)
    monkeypatch.setattr(geogan.inference.cluster, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at tcp://"):
        translate_batch(paths, tmp_path / "maps", model, cluster="tcp://127.0.0.1:9", **CPU)
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'geogan\[distributed\]'"):
        translate_batch(paths, tmp_path / "maps", model, cluster="local:2", **CPU)
    result = CliRunner().invoke(cli, ["translate", str(paths[0]), "--model", str(model),
                                      "--cluster", "local:2"])
    assert result.exit_code == 2 and "--out-dir" in result.output


def test_local_workers_keep_glibc_adaptive_malloc_print_nothing_and_our_environment_is_restored(
        tmp_path, model):
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers (translation then runs at
    half speed) and writes it into this process's environment too. The workers' own log
    lines (a heartbeat that meets the scheduler closing after Ctrl-C) are not shown."""
    before = dict(os.environ)
    paths = scenes(tmp_path / "scenes", 1)
    probes: list[dict[str, str | int | None]] = []

    def probe() -> dict[str, str | int | None]:
        return {**{name: os.environ.get(name) for name in ("MALLOC_TRIM_THRESHOLD_",
                                                             "OMP_NUM_THREADS")},
                "log level": logging.getLogger("distributed").level}

    original = distributed.Client.__enter__

    def entered(self: object) -> object:
        client = original(self)
        probes.extend(self.run(probe).values())  # type: ignore[attr-defined]
        return client

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(distributed.Client, "__enter__", entered)
        batch = translate_batch(paths, tmp_path / "maps", model, cluster="local:1", **CPU)
    assert [o.status for o in batch.outcomes] == ["done"]
    assert probes and all(p["MALLOC_TRIM_THRESHOLD_"] is None for p in probes)
    assert all(p["OMP_NUM_THREADS"] == str(max(1, os.cpu_count() or 1))
               for p in probes)
    assert all(p["log level"] == logging.CRITICAL for p in probes), probes
    assert dict(os.environ) == before


def test_local_workers_log_what_verbose_asks_for(monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "level", logging.INFO)
    assert geogan.inference.cluster._worker_log_level() == logging.INFO


def test_ctrl_c_stops_a_local_cluster_batch_and_leaves_nothing_half_written(tmp_path, model):
    """Ctrl-C reaches the workers too, which die mid-scene without cleaning up after
    themselves: the batch removes their temporary files once the cluster is down."""
    rng = np.random.default_rng(3)
    (tmp_path / "scenes").mkdir()
    batch = [write_raster(tmp_path / "scenes" / f"big{i}.tif", textured(rng, 3, 1600, 1600))
             for i in range(4)]
    out = tmp_path / "maps"
    run = subprocess.Popen(
        [sys.executable, "-m", "geogan", "translate", *map(str, batch), "--model", str(model),
         "--out-dir", str(out), "--cluster", "local:2", "--device", "cpu", "--precision",
         "fp32"], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob(".*.partial*")) and time.monotonic() < deadline:
        assert run.poll() is None, run.stdout.read() if run.stdout else ""
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 130, output
    assert output.strip() == "Interrupted."
    assert not [p.name for p in out.iterdir() if ".partial" in p.name]
    finished = list(out.glob("*.tif"))
    assert len(finished) < len(batch)  # stopped mid-batch; what is there is whole:
    for path in finished:
        with rasterio.open(path) as done:
            assert done.read().shape == (3, 1600, 1600)


def two_by_two(folder: Path, data: np.ndarray) -> list[Path]:
    """(3, 120, 140) ``data`` as 2 × 2 GeoTIFF tiles of 60 × 70 on one UTM pixel grid."""
    from affine import Affine

    folder.mkdir()
    return [write_raster(folder / f"t{i}{j}.tif",
                         np.ascontiguousarray(data[:, 60 * i:60 * (i + 1), 70 * j:70 * (j + 1)]),
                         transform=Affine(1.0, 0.0, 500_000.0 + 70 * j, 0.0, -1.0,
                                          5_000_000.0 - 60 * i))
            for i in range(2) for j in range(2)]


def test_a_mosaic_batch_on_a_cluster_writes_what_it_writes_here(tmp_path, model, client):
    """--mosaic with --cluster: each task gets its scene's neighbourhood (a VRT of plain
    text) and reads its context from the neighbours' files."""
    rng = np.random.default_rng(3)
    tiles = two_by_two(tmp_path / "tiles", textured(rng, 3, 120, 140))
    plain = write_raster(tmp_path / "tiles" / "plain.tif", textured(rng, 3, 50, 50), crs=None)
    # The workers' warnings come back with their scenes and are warned here.
    with pytest.warns(UserWarning, match="plain.tif has no CRS"):
        on_cluster = translate_batch([*tiles, plain], tmp_path / "cluster", model,
                                     cluster=client, mosaic=True, **CPU)
    assert on_cluster.outcomes[-1].warnings == (f"{plain} has no CRS; its output will have "
                                                "none either",)
    here = translate_batch(tiles, tmp_path / "local", model, mosaic=True, **CPU)
    assert [o.status for o in on_cluster.outcomes] == ["done"] * 5
    assert [o.status for o in here.outcomes] == ["done"] * 4
    for path in tiles:
        with rasterio.open(tmp_path / "cluster" / path.name) as a, \
                rasterio.open(tmp_path / "local" / path.name) as b:
            assert np.array_equal(a.read(), b.read())
            assert a.tags()["GEOGAN_LATTICE"] == b.tags()["GEOGAN_LATTICE"]


def test_a_map_models_mosaic_on_a_cluster_reads_the_margin_its_blur_needs(tmp_path, client):
    """A shaded map blurs its unsure pixels a few pixels across each join: the tasks get
    that much more margin, as a local batch's scenes do, so both write the same pixels
    and record the same lattice (the region it read)."""
    model = save_model(tmp_path / "map.pt", palette=MAP_PALETTE, class_scale=3000.0)
    tiles = two_by_two(tmp_path / "tiles", textured(np.random.default_rng(8), 3, 120, 140))
    translate_batch(tiles, tmp_path / "cluster", model, cluster=client, mosaic=True, **CPU)
    translate_batch(tiles, tmp_path / "local", model, mosaic=True, **CPU)
    for path in tiles:
        with rasterio.open(tmp_path / "cluster" / path.name) as a, \
                rasterio.open(tmp_path / "local" / path.name) as b:
            assert np.array_equal(a.read(), b.read())
            assert a.tags()["GEOGAN_LATTICE"] == b.tags()["GEOGAN_LATTICE"]
            assert '"unsure_blur": 1.5' in a.tags()["GEOGAN_OPTIONS"]
