"""Automatic device and precision, with clear errors for impossible overrides."""

import pytest
import torch

from inference.device import pick_device, pick_dtype
from inference.jobs import BadInput


def test_auto_picks_what_is_available():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert pick_device(None) == pick_device("auto") == expected


def test_float32_on_cpu_half_on_gpus():
    assert pick_dtype("cpu") is torch.float32
    assert pick_dtype("cuda") is torch.float16
    assert pick_dtype("mps") is torch.float16
    assert pick_dtype("cpu", "bfloat16") is torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(BadInput, match="no CUDA GPU"):
        pick_device("cuda")


def test_unknown_device_and_dtype():
    with pytest.raises(BadInput, match="Unknown device"):
        pick_device("tpu")
    with pytest.raises(BadInput, match="Unknown precision"):
        pick_dtype("cpu", "int3")
