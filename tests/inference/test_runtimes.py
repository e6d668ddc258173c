"""Choosing the fastest path per machine (inference.runtimes and the engine's `_choose`): the probe
times the paths this CPU runs well, keeps the fastest that agrees with torch float32, remembers
it per model, device and CPU, and an explicit runtime or precision always wins."""

from __future__ import annotations

import json

import pytest

from inference import runtimes
from inference.backends import openvino_backend as ov
from inference.engine import Engine
from inference.jobs import BadInput, Generate, ModelRef
from inference.models.store import locate

pytest.importorskip("openvino")


@pytest.fixture
def choices(tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKBRUSH_CACHE_DIR", str(tmp_path / "cache"))
    return runtimes.Choices()


def test_labels_read_as_the_model_dock_shows_them():
    assert runtimes.label("openvino", "bfloat16", 1.31) == "OpenVINO bf16 · 1.3 s an image"
    assert runtimes.label("torch", "float32") == "PyTorch fp32"
    assert runtimes.label("openvino", "int8", 0.012) == "OpenVINO int8 · 12 ms an image"


def test_the_paths_worth_timing_follow_the_cpu(monkeypatch):
    def cpu(*flags):
        monkeypatch.setattr(runtimes, "cpu_flags", lambda: frozenset(flags))

    cpu("avx2", "fma")  # an AVX2-only machine: emulated bf16 and int8 without VNNI would only lose
    assert runtimes.cpu_paths(openvino=True) == [("torch", "float32"), ("openvino", "float32")]
    cpu("avx2", "avx512f", "avx512_vnni", "avx512_bf16")
    assert runtimes.cpu_paths(openvino=True) == [
        ("torch", "float32"), ("torch", "bfloat16"), ("openvino", "float32"), ("openvino", "bfloat16"),
        ("openvino", "int8")]
    assert runtimes.native_precision() == "bfloat16"
    assert runtimes.cpu_paths(openvino=False) == [("torch", "float32"), ("torch", "bfloat16")]
    cpu("avx2", "avx_vnni")  # VNNI without native bf16
    assert ("openvino", "int8") in runtimes.cpu_paths(openvino=True)
    assert runtimes.native_precision() == "float32"


def test_the_fastest_agreeing_path_wins():
    measured = {"torch/float32": {"seconds": 3.4, "error": 0.0},
                "openvino/bfloat16": {"seconds": 1.0, "error": 0.02},
                "openvino/int8": {"seconds": 0.6, "error": 0.4}}  # fast, but another picture
    assert runtimes.pick(measured) == ("openvino", "bfloat16")
    measured["openvino/int8"]["error"] = 0.05
    assert runtimes.pick(measured) == ("openvino", "int8")
    assert runtimes.pick({}) is None


def test_choices_survive_a_restart_and_a_damaged_file_means_probe_again(choices):
    key = runtimes.choice_key("sha", "folder", (), "cpu")
    assert choices.get(key) is None
    choices.put(key, runtimes.Choice("openvino", "bfloat16", 1.0, {"openvino/bfloat16": {"seconds": 1.0, "error": 0.01}}))
    assert runtimes.Choices().get(key).label == "OpenVINO bf16"
    choices.path.write_text("{damaged")
    assert choices.get(key) is None
    choices.path.write_text(json.dumps({"format": 1, "models": {key: {"runtime": "quantum", "dtype": "int8"}}}))
    assert choices.get(key) is None  # a value this version does not know is no choice
    choices.put(key, runtimes.Choice("torch", "float32"))
    assert choices.get(key).runtime == "torch"
    choices.forget()
    assert choices.get(key) is None


def test_the_key_tells_models_loras_devices_and_cpus_apart(monkeypatch):
    from inference.jobs import LoraRef

    base = runtimes.choice_key("sha", "m", (), "cpu")
    assert base != runtimes.choice_key("sha2", "m", (), "cpu")
    assert base != runtimes.choice_key("sha", "m", (LoraRef("l.safetensors", 1.0),), "cpu")
    assert base != runtimes.choice_key("sha", "m", (), "cuda")
    monkeypatch.setattr(runtimes, "cpu_summary", lambda: {"name": "another CPU", "flags": ["avx2"]})
    assert base != runtimes.choice_key("sha", "m", (), "cpu")


def test_first_use_probes_remembers_and_later_runs_start_on_the_choice(tiny_sd, choices, monkeypatch):
    stages = []
    engine = Engine()
    job = Generate(prompt="a cat", model=ModelRef(str(tiny_sd)), seed=1, steps=1)
    _image, resolved, _t, info = engine.run(1, job, lambda p: stages.append(p.text) if p.stage == "prepare" else None,
                                            lambda: False)
    assert any("converting" in text for text in stages) and any(text.startswith("timing") for text in stages)
    key = runtimes.choice_key(ov.fingerprint_of(locate(str(tiny_sd))), str(tiny_sd), (), "cpu")
    choice = runtimes.Choices().get(key)
    assert choice is not None and "torch/float32" in choice.measured
    assert info["runtime"] == choice.runtime and resolved.dtype == choice.dtype
    assert resolved.runtime is None  # the recipe keeps "automatic": it reproduces on any machine
    assert choice.cpu["name"] == runtimes.cpu_name() and choice.shape[1:] == [64, 64]

    def no_probe(*_a, **_k):
        raise AssertionError("the choice should have been remembered")

    monkeypatch.setattr(ov, "probe", no_probe)
    _image, _job, _t, again = Engine().run(2, job, lambda p: None, lambda: False)
    assert again["runtime"] == choice.runtime


def test_an_explicit_runtime_or_precision_wins_over_the_choice(tiny_sd, choices):
    ref = ModelRef(str(tiny_sd))
    key = runtimes.choice_key(ov.fingerprint_of(locate(str(tiny_sd))), str(tiny_sd), (), "cpu")
    choices.put(key, runtimes.Choice("openvino", "bfloat16"))
    engine = Engine()
    job = Generate(prompt="a cat", model=ref, seed=1, steps=1)
    assert engine.run(1, job, lambda p: None, lambda: False)[3]["path"] == "OpenVINO bf16"
    assert engine.run(2, job.replace(runtime="torch"), lambda p: None, lambda: False)[3]["path"] == "PyTorch fp32"
    # Automatic again after a job asked for torch by name: back on the choice, not the torch copy.
    assert engine.run(3, job, lambda p: None, lambda: False)[3]["path"] == "OpenVINO bf16"
    assert engine.run(4, job.replace(dtype="float32"), lambda p: None, lambda: False)[3]["path"] == "OpenVINO fp32"
    with pytest.raises(BadInput, match="runtime must be one of auto, torch, openvino"):
        Generate(prompt="x", runtime="tpu")
    with pytest.raises(BadInput, match="int8"):
        engine.run(5, job.replace(runtime="torch", dtype="int8"), lambda p: None, lambda: False)


def test_the_probe_measures_every_path_against_torch(tiny_sd, monkeypatch, choices):
    monkeypatch.setattr(runtimes, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))  # no int8 to quantise
    choice, loaded = ov.probe(ModelRef(str(tiny_sd)), locate(str(tiny_sd)), (64, 32))
    assert set(choice.measured) == {"torch/float32", "torch/bfloat16", "openvino/float32", "openvino/bfloat16"}
    assert choice.measured["torch/float32"]["error"] == 0.0
    assert choice.measured["openvino/float32"]["error"] < 0.01  # the same network, the same precision
    assert 0 < choice.measured["openvino/bfloat16"]["error"] < runtimes.AGREEMENT
    assert choice.shape == [2, 32, 64]  # the tiny model's default guidance needs the batch of two
    assert (choice.runtime, choice.dtype) == runtimes.pick(choice.measured)
    assert loaded.runtime == "torch"  # the reference, which the engine keeps if torch won
