"""Where a training run executes and in which precision.

On CUDA the recipe trains under bf16 autocast with TF32 matrix products; a GPU without bf16
falls back to fp16 autocast with a gradient scaler (with a warning). The CPU trains in float32,
and only when the settings allow it: a full-recipe run that lands on a machine without a GPU
stops instead of running for weeks.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


class DeviceError(RuntimeError):
    """The requested device is missing or not allowed by the settings."""


def resolve_device(requested: str, allow_cpu: bool, local_rank: int = 0) -> torch.device:
    """Turn --device ("auto", "cpu", "cuda", "cuda:N") into a device, enforcing `allow_cpu`.

    "auto" picks CUDA when available (GPU `local_rank`, the process's GPU under torchrun).
    """
    if requested == "auto":
        requested = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {requested}: torch sees no CUDA GPU on this machine "
                          f"(torch {torch.__version__}, CUDA build {torch.version.cuda})")
    if device.type == "cpu" and not allow_cpu:
        raise DeviceError(
            "no CUDA GPU is available and train.allow_cpu is false: the recipe would take weeks on "
            "the CPU. Run on a machine with a GPU, or set train.allow_cpu: true for a small run.")
    return device


@dataclass
class Precision:
    """Autocast settings of the forward pass and, for fp16, the gradient scaler.

    dtype: the autocast dtype, None for float32 (no autocast).
    scaler: a torch.amp.GradScaler for fp16, else None.
    """

    device: torch.device
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @property
    def name(self) -> str:
        return "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")


def choose_precision(device: torch.device) -> Precision:
    """bf16 autocast with TF32 on CUDA (fp16 plus a scaler without bf16); float32 elsewhere."""
    if device.type != "cuda":
        return Precision(device, None)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if torch.cuda.is_bf16_supported():
        return Precision(device, torch.bfloat16)
    log.warning("GPU %s has no bfloat16 support: training under float16 autocast with a gradient "
                "scaler instead of the recipe's bfloat16", torch.cuda.get_device_name(device))
    return Precision(device, torch.float16, torch.amp.GradScaler("cuda"))
