"""Device and dtype, chosen automatically: CUDA, then Apple MPS, then CPU; half precision on GPUs."""

from __future__ import annotations

import torch

from inference.jobs import BadInput

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def pick_device(requested: str | None = None) -> str:
    if requested and requested != "auto":
        kind = requested.split(":")[0]
        if kind == "cuda" and not torch.cuda.is_available():
            raise BadInput("This computer has no CUDA GPU that PyTorch can use; choose CPU.")
        if kind == "mps" and not torch.backends.mps.is_available():
            raise BadInput("Apple Metal (MPS) is not available here; choose CPU.")
        if kind not in ("cpu", "cuda", "mps"):
            raise BadInput(f"Unknown device {requested!r}: use auto, cpu, cuda or mps.")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, requested: str | None = None) -> torch.dtype:
    if requested and requested != "auto":
        try:
            return DTYPES[requested]
        except KeyError:
            raise BadInput(f"Unknown precision {requested!r}: use auto, float32, float16 or bfloat16.") from None
    # Half precision on CPU is slower than float32 and poorly supported by CPU kernels.
    return torch.float32 if device.startswith("cpu") else torch.float16


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
