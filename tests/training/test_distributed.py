"""Training on several processes: DistributedDataParallel under torchrun, gloo on the CPU.

The torchrun runs start two real processes that talk over loopback, as on a cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from geogan.chips.export import export_chips
from geogan.chips.options import ExportOptions
from geogan.errors import CheckpointError, ConfigError
from geogan.nn.model_file import read_model_file
from geogan.nn.networks import build_generator
from geogan.training.batches import steps_per_epoch
from geogan.training.checkpoints import read_checkpoint
from geogan.training.distributed import ProcessGroup, parameter_digest, shard, shard_size
from geogan.training.loop import TrainOptions, train
from tests.helpers import TINY, pair_scene, smooth_field, write_map_chips, write_raster

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TWO = ProcessGroup(rank=0, world_size=2, backend="gloo")
SMALL = ["--preset", "tiny", "--ngf", "8", "--ndf", "8", "--precision", "fp32",
         "--device", "cpu", "--workers", "0"]


def torchrun(*args: str | Path, cwd: Path, **popen: Any) -> Any:
    """``torchrun --standalone --nproc-per-node 2`` with this interpreter."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", *map(str, args)]
    # PYTHONFAULTHANDLER: a rank that dies by a signal (one once aborted in CI with
    # "terminate called without an active exception") leaves its Python stack behind.
    # TMPDIR: torchrun makes a torchelastic_* folder of logs in the temporary folder and
    # leaves it there; this keeps it in the test's own folder.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONFAULTHANDLER": "1", "TMPDIR": str(cwd)}
    if popen:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, **popen)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def generator_of(model_path: Path) -> torch.nn.Module:
    model = read_model_file(model_path)
    generator = build_generator(model.architecture, "a2b")
    generator.load_state_dict(model.generators["a2b"])
    return generator


# -- sharding --------------------------------------------------------------------------


def test_each_rank_gets_every_second_key_and_as_many_as_the_others():
    keys = list(range(7))
    first, second = shard(keys, TWO), shard(keys, ProcessGroup(1, 2, 0, "gloo"))
    assert first == [0, 2, 4, 6]
    assert second == [1, 3, 5, 0]  # padded with the first key, as DistributedSampler does
    assert set(first) | set(second) == set(keys)
    assert shard_size(7, TWO) == 4
    assert shard(keys, ProcessGroup()) == keys


def test_an_epoch_has_half_the_steps_on_two_processes(chips):
    from geogan.nn.config import TrainConfig
    from geogan.training.chip_folder import open_chip_folder

    folder = open_chip_folder(chips)
    config = TrainConfig(augment=False)
    assert steps_per_epoch(folder, config) == 12
    assert steps_per_epoch(folder, config, TWO) == 6


# -- torchrun ----------------------------------------------------------------------------


def test_torchrun_trains_on_two_processes_and_only_rank_0_writes(chips, tmp_path):
    result = torchrun("-m", "geogan", "train", chips, "-o", "m.pt", *SMALL,
                      "--steps", "6", "--val-every", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Trained pix2pix") == 1  # one report, from rank 0
    assert "2 processes" in result.stdout
    training = read_model_file(tmp_path / "m.pt").training
    distributed = training["distributed"]
    assert distributed["world_size"] == 2 and distributed["backend"] == "gloo"
    # The weights were identical on both ranks, and they are the ones in the file.
    first, second = distributed["generator_sha256"]
    assert first == second == parameter_digest([generator_of(tmp_path / "m.pt")])
    log = [json.loads(line) for line in (tmp_path / "m-train" / "log.jsonl").read_text()
           .splitlines()]
    assert [entry["step"] for entry in log] == [3, 6]  # written once, not once per rank
    assert sorted(p.name for p in (tmp_path / "m-train").iterdir()) == [
        "checkpoint.pt", "log.jsonl", "previews"]
    checkpoint = torch.load(tmp_path / "m-train" / "checkpoint.pt", weights_only=True)
    assert (checkpoint["world_size"], checkpoint["steps_per_epoch"]) == (2, 6)


def test_torchrun_trains_cyclegan_with_both_generators_in_step(tmp_path):
    rng = np.random.default_rng(3)
    write_raster(tmp_path / "sar.tif",
                 (smooth_field(rng, (192, 192))[None] * -20).astype(np.float32))
    _, b = pair_scene(tmp_path, 192)
    export_chips(tmp_path / "sar.tif", b, tmp_path / "chips",
                 ExportOptions(tile_size=64, unpaired=True, val_fraction=0.2, workers=1))
    result = torchrun("-m", "geogan", "train", "chips", "-o", "c.pt", *SMALL,
                      "--steps", "4", "--val-every", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    model = read_model_file(tmp_path / "c.pt")
    assert set(model.generators) == {"a2b", "b2a"}
    first, second = model.training["distributed"]["generator_sha256"]
    assert first == second


SCRIPT = """
import sys
from geogan.training.loop import TrainOptions, train
overrides = {overrides!r}
options = TrainOptions(preset="tiny", overrides=overrides, device="cpu",
                       checkpoint_dir=sys.argv[3])
train(sys.argv[1], sys.argv[2], options)
"""


PER_SAMPLE = {**TINY, "norm": "instance", "dropout": 0.0, "augment": False, "steps": 4,
              "seed": 3}
"""Settings under which a step's loss is a mean of per-chip losses, so that two ranks of
batch 1 and one process of batch 2 compute the same averaged gradients."""


def train_three_ways(chips: Path, tmp_path: Path, overrides: dict[str, Any]) -> None:
    """``ddp`` (torchrun, two ranks of batch 1), ``two`` (batch 2) and ``one`` (batch 1)
    models and run folders in ``tmp_path``."""
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT.format(overrides=overrides))
    result = torchrun(script, chips, tmp_path / "ddp.pt", tmp_path / "ddp-run", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, batch_size in (("two", 2), ("one", 1)):
        train(chips, tmp_path / f"{name}.pt", TrainOptions(
            preset="tiny", overrides={**overrides, "batch_size": batch_size}, device="cpu",
            checkpoint_dir=tmp_path / f"{name}-run"))


def test_two_processes_of_batch_1_train_as_one_of_batch_2(chips, tmp_path):
    """DDP averages the two ranks' gradients: with per-sample normalisation and no
    dropout, that is exactly a single process training on both chips at once."""
    train_three_ways(chips, tmp_path, PER_SAMPLE)
    ddp, two, one = (generator_of(tmp_path / f"{n}.pt") for n in ("ddp", "two", "one"))
    # Adam turns float noise in near-zero gradients into whole steps, so the weights
    # are compared as a whole: DDP is far closer to batch 2 than batch 1 is.
    assert mean_difference(ddp, two) < 0.01 * mean_difference(one, two)  # 8e-8 vs 2e-4


def test_deep_supervision_heads_are_averaged_across_processes_too(tmp_path):
    """The decoder heads of ``--deep-supervision`` are a DDP network of their own, fed by
    hooks on the wrapped generator: their gradients are averaged like the others', and
    rank 0's checkpoint holds the result."""
    chips = write_map_chips(tmp_path)
    train_three_ways(chips, tmp_path, {**PER_SAMPLE, "classes": "auto",
                                       "deep_supervision": 0.5})
    heads = {name: heads_of(tmp_path / f"{name}-run" / "checkpoint.pt")
             for name in ("ddp", "two", "one")}
    assert mean_difference(heads["ddp"], heads["two"]) < 0.01 * mean_difference(
        heads["one"], heads["two"])  # 8e-11 vs 1e-4
    ddp, two, one = (generator_of(tmp_path / f"{n}.pt") for n in ("ddp", "two", "one"))
    assert mean_difference(ddp, two) < 0.01 * mean_difference(one, two)


def heads_of(checkpoint: Path) -> torch.nn.Module:
    """The decoder heads' weights in a checkpoint, as a module to compare."""
    state = read_checkpoint(checkpoint, torch.device("cpu"), "")["trainer"]["networks"]["h_a2b"]
    return torch.nn.ParameterList([torch.nn.Parameter(v) for _, v in sorted(state.items())])


def mean_difference(first: torch.nn.Module, second: torch.nn.Module) -> float:
    with torch.no_grad():
        differences = [(p - q).abs().flatten()
                       for p, q in zip(first.parameters(), second.parameters(), strict=True)]
        return float(torch.cat(differences).mean())


def largest_difference(first: torch.nn.Module, second: torch.nn.Module) -> float:
    with torch.no_grad():
        return max(float((p - q).abs().max())
                   for p, q in zip(first.parameters(), second.parameters(), strict=True))


def test_ctrl_c_under_torchrun_checkpoints_and_one_process_resumes(chips, tmp_path):
    """Ctrl-C reaches every process (and torchrun passes it on once more): all ranks
    stop at the same step and rank 0 writes the checkpoint. A single process then
    resumes it, the step counted in its own, twice longer, epochs."""
    epochs = ["--epochs", "400", "--val-every", "2", "--no-augment"]
    run = torchrun("-m", "geogan", "train", chips, "-o", "m.pt", *SMALL, *epochs,
                   cwd=tmp_path, start_new_session=True)
    log = tmp_path / "m-train" / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.exists() and log.read_text().strip()) and time.monotonic() < deadline:
        assert run.poll() is None, run.stdout.read()
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    output, _ = run.communicate(timeout=120)
    assert run.returncode != 0
    assert output.count("Error: stopped at step") == 2  # each rank stopped by itself
    stopped = torch.load(tmp_path / "m-train" / "checkpoint.pt", weights_only=True)
    assert stopped["world_size"] == 2 and 0 < stopped["step"] < 2400
    assert not (tmp_path / "m.pt").exists()

    # One process resumes it (and is stopped again after a few steps: the run is long).
    started: list[int] = []
    with pytest.raises(_Enough):
        train(chips, tmp_path / "m.pt", TrainOptions(
            preset="tiny", overrides={**TINY, "epochs": 400, "val_every": 2, "augment": False},
            device="cpu", checkpoint_dir=tmp_path / "m-train", resume=True),
            progress=_stop_soon(0, started))
    assert started == [stopped["step"] * 2]  # 12 steps per epoch here, 6 on two ranks


def _stop_soon(step: int, started: list[int] | None = None) -> Any:
    """A progress callback that raises :class:`_Enough` at the first report from ``step``
    on (reports come every 10 steps), noting where the run started."""
    def progress(state: Any) -> None:
        if started is not None and not started:
            started.append(state.start)
        if state.step >= step:
            raise _Enough
    return progress


class _Enough(Exception):
    pass


# -- warm start and elastic restarts --------------------------------------------------------


def test_init_from_a_checkpoint_starts_a_new_run_from_its_weights(chips, tmp_path):
    first = train(chips, tmp_path / "a.pt", TrainOptions(
        preset="tiny", overrides={**TINY, "steps": 3}, device="cpu",
        checkpoint_dir=tmp_path / "a-run"))
    second = train(chips, tmp_path / "b.pt", TrainOptions(
        preset="tiny", overrides={**TINY, "steps": 1, "lr": 1e-12}, device="cpu",
        checkpoint_dir=tmp_path / "b-run", init_from=first.checkpoint_dir / "checkpoint.pt"))
    assert second.steps == 1 and second.resumed_from == 0
    assert largest_difference(generator_of(tmp_path / "a.pt"),
                              generator_of(tmp_path / "b.pt")) < 1e-6
    record = read_model_file(tmp_path / "b.pt").training
    assert record["init_from"] == str((tmp_path / "a-run" / "checkpoint.pt").absolute())
    # From a model file: the generators only.
    third = train(chips, tmp_path / "c.pt", TrainOptions(
        preset="tiny", overrides={**TINY, "steps": 1, "lr": 1e-12}, device="cpu",
        checkpoint_dir=tmp_path / "c-run", init_from=tmp_path / "a.pt"))
    assert third.steps == 1
    assert largest_difference(generator_of(tmp_path / "a.pt"),
                              generator_of(tmp_path / "c.pt")) < 1e-6


def test_init_from_refuses_other_networks_and_resume(chips, tmp_path):
    train(chips, tmp_path / "a.pt", TrainOptions(
        preset="tiny", overrides={**TINY, "steps": 1}, device="cpu",
        checkpoint_dir=tmp_path / "a-run"))
    with pytest.raises(CheckpointError, match=r"other networks.*\(ngf 8 there, 4 now\)"):
        train(chips, tmp_path / "b.pt", TrainOptions(
            preset="tiny", overrides={**TINY, "steps": 1, "ngf": 4}, device="cpu",
            checkpoint_dir=tmp_path / "b-run", init_from=tmp_path / "a.pt"))
    # Dropout holds no weights: a new run may drop it (faithful models before stop 65 had it).
    report = train(chips, tmp_path / "d.pt", TrainOptions(
        preset="tiny", overrides={**TINY, "steps": 1, "dropout": 0.0}, device="cpu",
        checkpoint_dir=tmp_path / "d-run", init_from=tmp_path / "a.pt"))
    assert report.architecture.dropout == 0.0
    with pytest.raises(CheckpointError, match="no such file"):
        train(chips, tmp_path / "b.pt", TrainOptions(
            preset="tiny", overrides=TINY, device="cpu", checkpoint_dir=tmp_path / "b-run",
            init_from=tmp_path / "missing.pt"))
    with pytest.raises(ConfigError, match="one of them"):
        train(chips, tmp_path / "b.pt", TrainOptions(
            preset="tiny", overrides=TINY, device="cpu", resume=True,
            init_from=tmp_path / "a.pt"))


def test_a_run_restarted_by_torchrun_resumes_its_checkpoint(chips, tmp_path, monkeypatch):
    options = TrainOptions(preset="tiny", overrides={**TINY, "steps": 24, "val_every": 10},
                           device="cpu", checkpoint_dir=tmp_path / "run")
    with pytest.raises(_Enough):  # fails at step 10, before its first checkpoint
        train(chips, tmp_path / "m.pt", options, progress=_stop_soon(10))
    # No checkpoint: the restart starts over, as a first run would.
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    report = train(chips, tmp_path / "m.pt", options)
    assert report.resumed_from == 0 and report.steps == 24
    # With a checkpoint from the failed attempt (step 10), the restart continues it.
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    options = replace(options, checkpoint_dir=tmp_path / "run2")
    with pytest.raises(_Enough):
        train(chips, tmp_path / "m2.pt", options, progress=_stop_soon(20))
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    report = train(chips, tmp_path / "m2.pt", options)
    assert report.resumed_from == 10 and report.steps == 24


def test_torchrun_and_init_from_are_in_the_command_help():
    from click.testing import CliRunner

    from geogan.cli.main import cli

    result = CliRunner().invoke(cli, ["train", "--help"])
    assert "torchrun" in result.output and "--init-from" in result.output
