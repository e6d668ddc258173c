"""The CUDA path (channels-last, torch.compile with the warm-up inside the load). The tuning itself
is checked on the CPU with a tiny model; a real GPU job runs only where CUDA is (mark `gpu`)."""

from __future__ import annotations

import pytest
import torch

from inference.backends import diffusers_backend as sd
from inference.engine import Engine
from inference.jobs import Generate, ModelRef


def test_cuda_tuning_makes_convolutions_channels_last_and_compiles_with_a_warm_up(tiny_sd, monkeypatch, tmp_path):
    monkeypatch.setenv("QUICKBRUSH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    loaded = sd.load(ModelRef(str(tiny_sd)), "cpu", "float32")
    compiled, warmed = [], []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: compiled.append((module, kw)) or module)
    monkeypatch.setattr(sd, "_warm_up_compiled", lambda pipe, native, batch: warmed.append((native, batch)))
    sd._tune_for_cuda(loaded.pipe, 64, 2)
    weight = loaded.pipe.unet.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert [type(m).__name__ for m, _kw in compiled] == ["UNet2DConditionModel", "Decoder"]
    assert all(kw == {"mode": "max-autotune-no-cudagraphs", "dynamic": False} for _m, kw in compiled)
    assert warmed == [(64, 2)]
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "inductor")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")


def test_the_warm_up_runs_the_unet_and_decoder_at_the_native_shape(tiny_sd):
    loaded = sd.load(ModelRef(str(tiny_sd)), "cpu", "float32")
    shapes = []
    loaded.pipe.unet.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    loaded.pipe.vae.decoder.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    sd._warm_up_compiled(loaded.pipe, 64, 2)
    assert shapes == [(2, 4, 32, 32), (1, 4, 32, 32)]


def test_a_compiler_that_fails_leaves_the_model_running_eagerly(tiny_sd, monkeypatch, tmp_path):
    monkeypatch.setenv("QUICKBRUSH_CACHE_DIR", str(tmp_path / "cache"))
    loaded = sd.load(ModelRef(str(tiny_sd)), "cpu", "float32")
    unet = loaded.pipe.unet

    def broken(*_a, **_k):
        raise RuntimeError("no C compiler")

    monkeypatch.setattr(torch, "compile", broken)
    sd._tune_for_cuda(loaded.pipe, 64, 1)
    assert loaded.pipe.unet is unet


@pytest.mark.gpu
def test_a_job_on_cuda_runs_compiled_in_half_precision(tiny_sd):
    image, job, timings, info = Engine().run(1, Generate(prompt="a cat", model=ModelRef(str(tiny_sd)), steps=2,
                                                         device="cuda"), lambda p: None, lambda: False)
    assert info["device"].startswith("cuda") and info["dtype"] == "float16" and info["runtime"] == "torch"
    assert image.size == (64, 64)
