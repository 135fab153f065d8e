"""Training on a CUDA GPU: mixed precision, resume, pinned loading, NCCL under torchrun.

Marked ``cuda``: skipped where PyTorch sees no GPU (see ``tests/conftest.py``), run by
``benchmarks/gpu.sh`` on a machine that has one (``pytest -m cuda``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from geogan.errors import TrainingInterrupted
from geogan.nn.config import build_configs
from geogan.nn.model_file import read_model_file
from geogan.training import loop
from geogan.training.loop import TrainOptions, train
from geogan.training.steps import TRAINERS, GANTrainer
from tests.helpers import TINY, batch, interrupt_at

pytestmark = pytest.mark.cuda

PRECISIONS = ["bf16", "fp16"]


def cuda_trainer(kind: str, precision: str) -> GANTrainer:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    arch, config = build_configs(kind, 3, 3, 64, preset="tiny",
                                 overrides={**TINY, "precision": precision})
    torch.manual_seed(0)
    return TRAINERS[kind](arch, config, torch.device("cuda"), precision)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("kind", ["pix2pix", "cyclegan"])
def test_a_mixed_precision_step_updates_float32_weights_with_finite_losses(kind, precision):
    trainer = cuda_trainer(kind, precision)
    data = trainer.to_device(batch(n=2))
    generator = next(iter(trainer.generators.values()))
    before = [p.detach().clone() for p in generator.parameters()]
    for _ in range(3):
        losses = trainer.train_step(data)
    assert all(bool(torch.isfinite(value)) for value in losses.values()), losses
    after = list(generator.parameters())
    assert all(p.dtype == torch.float32 and p.is_cuda for p in after)  # autocast, not casts
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    scaler = trainer.scaler
    assert scaler.is_enabled() == (precision == "fp16")
    if precision == "fp16":  # the loss scale survived three steps: no inf/NaN every time
        assert 0 < scaler.get_scale() < float("inf")


@pytest.fixture
def deterministic(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """cuDNN and cuBLAS in their deterministic modes, restored afterwards."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled())
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True)
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
    torch.use_deterministic_algorithms(saved[2])


def cuda_options(tmp_path: Path, name: str, **overrides: Any) -> TrainOptions:
    return TrainOptions(preset="tiny", overrides={**TINY, **overrides},
                        checkpoint_dir=tmp_path / name, device="cuda")


@pytest.mark.usefixtures("deterministic")
def test_resume_on_cuda_ends_with_the_weights_of_an_uninterrupted_run(chips, tmp_path,
                                                                    monkeypatch):
    """Pix2Pix (dropout draws from the CUDA generator, which checkpoints keep)."""
    monkeypatch.setattr(loop, "LOSS_SYNC_STEPS", 1)  # report (and interrupt) at any step
    settings = {"steps": 8, "val_every": 3, "batch_size": 2}
    train(chips, tmp_path / "whole.pt", cuda_options(tmp_path, "whole", **settings))
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(chips, tmp_path / "split.pt", cuda_options(tmp_path, "split", **settings),
              interrupt_at(5))
    resumed = TrainOptions(preset="tiny", overrides={**TINY, **settings},
                           checkpoint_dir=tmp_path / "split", device="cuda", resume=True)
    report = train(chips, tmp_path / "split.pt", resumed)
    assert report.resumed_from == 5 and report.device.startswith("cuda")
    whole = read_model_file(tmp_path / "whole.pt").generators["a2b"]
    split = read_model_file(tmp_path / "split.pt").generators["a2b"]
    assert all(torch.equal(whole[key], split[key]) for key in whole)


def test_training_batches_arrive_in_pinned_memory_from_worker_processes(
        chips, tmp_path, monkeypatch):
    pinned: list[bool] = []
    to_device = GANTrainer.to_device

    def recording(self: GANTrainer, sample: Any) -> dict[str, torch.Tensor]:
        pinned.append(all(value.is_pinned() for value in sample.values()))
        return to_device(self, sample)

    monkeypatch.setattr(GANTrainer, "to_device", recording)
    report = train(chips, tmp_path / "m.pt", cuda_options(
        tmp_path, "run", steps=4, val_every=4, workers=2))
    assert report.steps == 4 and report.device.startswith("cuda")
    assert len(pinned) >= 4 and all(pinned[:4]), pinned


NCCL_SCRIPT = """
import json, sys
import torch
import torch.distributed as dist
import geogan.training.distributed as distributed
from geogan.training import loop
from geogan.training.loop import TrainOptions, train

# torchrun with one process sets WORLD_SIZE=1, which geogan trains as a plain run; join
# the group anyway, so that the NCCL path (DDP wrappers, collectives) runs on one GPU.
distributed.launched_by_torchrun = lambda: True
seen = []
def progress(state):
    # Inside the run's group: a collective and geogan's DDP wrapper, both over NCCL.
    total = torch.ones(1, device="cuda")
    dist.all_reduce(total)
    net = distributed.wrap(torch.nn.Conv2d(1, 1, 3).cuda(),
                           distributed.ProcessGroup(0, 2, 0, "nccl"), torch.device("cuda", 0))
    net(torch.ones(1, 1, 8, 8, device="cuda")).sum().backward()
    seen.append(dist.get_backend() if float(total) == 1.0 else "all_reduce failed")
overrides = json.loads(sys.argv[3])
report = train(sys.argv[1], sys.argv[2], TrainOptions(preset="tiny", overrides=overrides,
               device="cuda", checkpoint_dir=sys.argv[2] + "-run"), progress)
print(json.dumps({"backends": seen, "device": report.device, "steps": report.steps}))
"""


def test_one_gpu_nccl_process_group_under_torchrun(chips, tmp_path):
    script = tmp_path / "nccl_train.py"
    script.write_text(NCCL_SCRIPT)
    overrides = {**TINY, "steps": 4, "val_every": 4}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "1", str(script), str(chips), str(tmp_path / "m.pt"),
               json.dumps(overrides)]
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path),  # torchrun's logs
           "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), root]))}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["backends"] and set(outcome["backends"]) == {"nccl"}, outcome
    # A group of one trains as a plain run, on the current device ("cuda", which
    # torchrun's LOCAL_RANK 0 made GPU 0); the collectives above ran over NCCL all the same.
    assert outcome["device"] in ("cuda", "cuda:0") and outcome["steps"] == 4
    assert (tmp_path / "m.pt").exists()
