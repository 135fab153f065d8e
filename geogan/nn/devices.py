"""Where tensors run and in which precision.

``auto`` picks CUDA when PyTorch sees a GPU, else the CPU. Precision ``auto`` picks the
fastest arithmetic the device does well: bfloat16 autocast on GPUs and CPUs that have
native bf16 instructions (AVX-512 BF16 / AMX), float32 elsewhere. Weights and optimiser
state stay float32 in every case; autocast only changes the arithmetic of convolutions
and matrix products.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from geogan.errors import DeviceError
from geogan.nn.config import DEVICES, PRECISIONS

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """The device named ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        DeviceError: If CUDA is asked for and PyTorch sees no GPU.
    """
    base = name.split(":", 1)[0]
    if base not in DEVICES:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu or cuda")
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; "
                          "use --device cpu (or auto)")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
                and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(name: str, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for ``device``; ``auto`` chooses.

    Raises:
        DeviceError: For fp16 on a CPU, or bf16 on a device that lacks it.
    """
    if name not in PRECISIONS:
        raise DeviceError(f"unknown precision {name!r}; use auto, fp32, bf16 or fp16")
    cuda = device.type == "cuda"
    bf16_ok = torch.cuda.is_bf16_supported() if cuda else cpu_has_native_bf16()
    if name == "auto":
        return "bf16" if bf16_ok else ("fp16" if cuda else "fp32")
    if name == "fp16" and not cuda:
        raise DeviceError("fp16 runs on CUDA GPUs only; use --precision bf16 or fp32 on a CPU")
    if name == "bf16" and not bf16_ok:
        raise DeviceError(f"this {device.type.upper()} has no native bfloat16; "
                          "use --precision fp32")
    return name


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed-precision autocast for ``precision``; a no-op for ``fp32``."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision]):
        yield
