"""Training on several processes: PyTorch DistributedDataParallel as ``torchrun`` starts it.

``torchrun --nproc-per-node N -m geogan train ...`` starts N copies of the command and
tells each its place through the environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT``). :func:`process_group` reads that, joins the group
(NCCL between GPUs, gloo between CPU processes) and leaves it again. Without those
variables (a plain ``geogan train``) it is a group of one, and training is the
single-process run it always was.

What is split and what is shared:

- Data: every rank builds the same epoch order (:func:`geogan.training.dataset.epoch_keys`) and
  PyTorch's :class:`~torch.utils.data.DistributedSampler` gives rank *r* every N-th key
  of it, padded so that every rank has as many batches. A step therefore consumes
  ``N × batch_size`` chips, and an epoch has ``N`` times fewer steps.
- Gradients: DistributedDataParallel averages them across ranks before every update,
  so the weights stay identical on every rank; :func:`parameter_digest` proves it at
  the end of a run and the model file records the digests.
- BatchNorm statistics are per process: each rank normalises with its own batch, as in
  the single-process run at the same batch size (DDP copies rank 0's running averages
  to the others at every forward pass, and the final recalibration recomputes them
  exactly). SyncBatchNorm is not used: it runs on GPUs only and would make results
  depend on the number of processes.
- Writing: only rank 0 validates, logs, writes previews, checkpoints and the model file.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from geogan.errors import DeviceError, DistributedError

_ENVIRONMENT = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the training processes.

    Attributes:
        rank: 0 … world_size - 1; rank 0 writes every file.
        world_size: Processes training together (1: not distributed).
        local_rank: Rank among the processes of this machine; picks its GPU.
        backend: ``gloo`` or ``nccl``; ``None`` for a group of one.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, logs and the model file."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in a group of one)."""
        if self.distributed:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (every rank must call it)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=_collective_device(self))
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """The mean of each value over the ranks (every rank must call it with the
        same names)."""
        if not self.distributed or not values:
            return dict(values)
        stacked = torch.tensor(list(values.values()), dtype=torch.float64,
                               device=_collective_device(self))
        dist.all_reduce(stacked)
        return dict(zip(values, (stacked / self.world_size).tolist(), strict=True))

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (a picklable object), in rank order."""
        if not self.distributed:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered


SINGLE = ProcessGroup()
"""The group of a plain, single-process run."""


def launched_by_torchrun() -> bool:
    """Whether the environment places this process in a group (torchrun sets it)."""
    return all(name in os.environ for name in _ENVIRONMENT) and int(os.environ["WORLD_SIZE"]) > 1


def restarted_by_torchrun() -> bool:
    """Whether torchrun started this process again after a failure (``--max-restarts``):
    the run then resumes from its checkpoint by itself."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


@contextlib.contextmanager
def process_group(device: torch.device, timeout_minutes: float = 30.0) -> Iterator[ProcessGroup]:
    """Join the training processes that torchrun started, or a group of one.

    Args:
        device: Where this process trains: ``cuda`` means NCCL and the GPU of this
            process's local rank, ``cpu`` means gloo.
        timeout_minutes: How long a collective may wait for the other ranks.

    Raises:
        DistributedError: If the group cannot be joined (an unreachable or mistyped
            rendezvous address, a rank that never arrives).
        DeviceError: If this machine has fewer GPUs than processes.
    """
    if not launched_by_torchrun():
        yield SINGLE
        return
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DeviceError(
                f"process {local_rank} of this machine has no GPU of its own "
                f"({torch.cuda.device_count()} visible); start at most that many processes "
                "per machine (--nproc-per-node)")
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    except (RuntimeError, ValueError, OSError) as error:
        raise DistributedError(
            f"cannot join the {world} training processes as rank {rank} ({backend}: "
            f"{_first_line(error)}); check torchrun's --rdzv-endpoint / --master-addr "
            "and that every machine can reach it") from None
    group = ProcessGroup(rank, world, local_rank, backend)
    try:
        yield group
    finally:
        dist.destroy_process_group()


def rank_device(group: ProcessGroup, device: torch.device) -> torch.device:
    """The device of this rank: its own GPU under NCCL, else ``device`` unchanged."""
    if group.distributed and device.type == "cuda":
        return torch.device("cuda", group.local_rank)
    return device


def wrap(module: nn.Module, group: ProcessGroup, device: torch.device) -> nn.Module:
    """``module`` inside DistributedDataParallel when there are several ranks, else
    itself. The wrapper copies rank 0's weights to every rank once, averages gradients
    during ``backward`` and rank 0's BatchNorm buffers at every forward pass."""
    if not group.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def shard(keys: Sequence[Any], group: ProcessGroup) -> list[Any]:
    """This rank's share of an epoch's ``keys``, by PyTorch's DistributedSampler: every
    ``world_size``-th key from ``rank`` on, padded by repeating the first keys so that
    every rank gets as many. In a group of one: ``keys`` unchanged."""
    if not group.distributed:
        return list(keys)
    from torch.utils.data import DistributedSampler

    sampler: DistributedSampler[Any] = DistributedSampler(
        keys, num_replicas=group.world_size, rank=group.rank,  # type: ignore[arg-type]
        shuffle=False, drop_last=False)
    return [keys[i] for i in sampler]


def shard_size(keys: int, group: ProcessGroup) -> int:
    """How many keys :func:`shard` gives each rank."""
    return -(-keys // group.world_size)


def parameter_digest(modules: Iterable[nn.Module]) -> str:
    """SHA-256 of the parameters' bytes, in order: equal digests, equal weights."""
    digest = hashlib.sha256()
    for module in modules:
        for tensor in module.parameters():
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _collective_device(group: ProcessGroup) -> torch.device:
    if group.backend == "nccl":
        return torch.device("cuda", group.local_rank)
    return torch.device("cpu")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


__all__ = ["SINGLE", "ProcessGroup", "launched_by_torchrun", "parameter_digest",
           "process_group", "rank_device", "restarted_by_torchrun", "shard", "shard_size", "wrap"]
