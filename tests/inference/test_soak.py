"""Soak: hundreds of small scenes through one loaded model in one batch, and nothing
grows: open file handles, threads and resident memory are where they were after a
warm-up batch.

Each scene starts a reader and a writer thread and opens the scene, its output and a
temporary file; a handle, thread or buffer kept per scene would add up to hundreds here.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from geogan.inference.batch import translate_batch
from geogan.inference.translator import load_model
from tests.helpers import CPU, save_model, textured, write_raster

SCENES = 300
WARM_UP = 50
SIZES = [(48, 40), (40, 48), (64, 30), (23, 70), (48, 40)]  # (height, width)
LINUX = sys.platform.startswith("linux")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_hundreds_of_scenes_leak_no_handles_threads_or_memory(tmp_path):
    rng = np.random.default_rng(21)
    folder = tmp_path / "scenes"
    folder.mkdir()
    scenes: list[Path] = []
    for k in range(SCENES):
        height, width = SIZES[k % len(SIZES)]
        scenes.append(write_raster(folder / f"s{k:03d}.tif", textured(rng, 3, height, width)))
    translator = load_model(save_model(tmp_path / "m.pt"), **CPU)
    out = tmp_path / "out"
    threads = threading.active_count()

    # Warm-up: the first scenes open GDAL's drivers and caches, torch's allocator pools
    # and the model's buffers, once for the process.
    warm = translate_batch(scenes[:WARM_UP], out, translator, **CPU)
    assert warm.count("done") == WARM_UP, warm.failures[:3]
    fds, rss = (open_fds(), rss_bytes()) if LINUX else (0, 0)
    assert threading.active_count() == threads

    start = time.perf_counter()
    # The whole batch: the warm-up's outputs exist, so overwrite to translate them again.
    batch = translate_batch(scenes, out, translator, overwrite=True, **CPU)
    seconds = time.perf_counter() - start
    assert batch.count("done") == SCENES, batch.failures[:3]
    assert all(outcome.output.exists() for outcome in batch.outcomes)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s.stem}.tif" for s in scenes)
    assert threading.active_count() == threads, threading.enumerate()
    if not LINUX:
        return
    fds_after, rss_after = open_fds(), rss_bytes()
    figures = (f"{SCENES} scenes in {seconds:.1f} s; open fds {fds} -> {fds_after}, "
               f"RSS {rss / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB; "
               f"threads {threads} -> {threading.active_count()}")
    assert fds_after <= fds + 2, figures
    # Per scene the writer allocates a row buffer of (2 tiles + one 256-row block) x width
    # for the sums (3 bands), the weights and the validity: 384 x 40 x 17 bytes = 260 kB
    # here, and the reader's strips and batches about 100 kB more. One scene's buffers
    # leaked per scene would add 300 x 0.36 MB = ~100 MB, and a leaked GDAL dataset (its
    # block cache) more; the growth measured on the development machine is 2.4 MiB.
    assert rss_after - rss < 24 * 2**20, figures
