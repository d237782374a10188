"""Where and how a network runs: the device and the mixed-precision type.

Shared by training and prediction; imports torch.
"""

from __future__ import annotations

from pathlib import Path

import torch

from napari_cellseg.errors import CellsegError


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then MPS, then CPU for ``"auto"``; otherwise the named device (checked)."""
    if name in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if (
        name in ("auto", "mps")
        and getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available()
    ):
        return torch.device("mps")
    if name not in ("auto", "cpu"):
        raise CellsegError(f"--device {name} is not available on this machine; use auto or cpu")
    return torch.device("cpu")


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """bf16 where it is fast and safe (CUDA with bf16, CPUs with AVX-512 bf16/AMX), or None."""
    if amp == "off":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and (amp == "on" or _cpu_has_bf16()):
        return torch.bfloat16
    return None
