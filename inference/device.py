"""Device and dtype, chosen automatically: CUDA, then Apple MPS, then CPU; half precision on GPUs.

torch is imported inside the functions that must ask it: the built-in model runs on onnxruntime
on the CPU, and a job on it must not pay for importing torch (about a second and 300 MB)."""

from __future__ import annotations

from typing import Any

from inference.jobs import BadInput

# Every spelling a job may use -> the torch dtype's own name.
DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
               "bfloat16": "bfloat16", "bf16": "bfloat16"}
DEVICE_KINDS = ("cpu", "cuda", "mps")


def check_device(requested: str | None) -> None:
    """BadInput for a device name Quickbrush does not know, asked without importing torch."""
    if requested and requested != "auto" and requested.split(":")[0] not in DEVICE_KINDS:
        raise BadInput(f"Unknown device {requested!r}: use auto, cpu, cuda or mps.")


def pick_device(requested: str | None = None) -> str:
    check_device(requested)
    if requested == "cpu":
        return requested
    import torch

    if requested and requested != "auto":
        kind = requested.split(":")[0]
        if kind == "cuda" and not torch.cuda.is_available():
            raise BadInput("This computer has no CUDA GPU that PyTorch can use; choose CPU.")
        if kind == "mps" and not torch.backends.mps.is_available():
            raise BadInput("Apple Metal (MPS) is not available here; choose CPU.")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def check_dtype(requested: str | None, allow_int8: bool = False) -> None:
    """BadInput for a precision Quickbrush does not know (int8: OpenVINO's, where allowed)."""
    if allow_int8 and requested == "int8":
        return
    if requested and requested != "auto" and requested not in DTYPE_NAMES:
        raise BadInput(f"Unknown precision {requested!r}: use auto, float32, float16, bfloat16"
                       f"{' or int8 (OpenVINO)' if allow_int8 else ''}.")


def pick_dtype_name(device: str, requested: str | None = None) -> str:
    """The precision for `device` by name ("float32", ...), without importing torch."""
    check_dtype(requested)
    if requested and requested != "auto":
        return DTYPE_NAMES[requested]
    # Half precision on CPU is slower than float32 and poorly supported by CPU kernels.
    return "float32" if device.startswith("cpu") else "float16"


def pick_dtype(device: str, requested: str | None = None) -> Any:
    """The torch dtype for `device` (see pick_dtype_name)."""
    import torch

    return getattr(torch, pick_dtype_name(device, requested))


def dtype_name(dtype: Any) -> str:
    """"float32" for torch.float32 and for "float32" alike."""
    return str(dtype).removeprefix("torch.")
