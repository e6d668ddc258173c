"""The int8 UNet for OpenVINO (inference.backends.openvino_int8), on the tiny random-weight SD
model: calibration records the pipeline's own UNet inputs and leaves the torch pipeline as it
was, the int8 IR appears whole or not at all, it agrees loosely with float32, and an engine job
runs on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from inference.jobs import Generate, ModelRef
from inference.models.presets import DEFAULT_PRESET, PRESETS
from inference.models.store import locate

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from inference.backends import diffusers_backend as sd
from inference.backends import openvino_backend as ov
from inference.backends import openvino_int8 as q

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def converted(tiny_sd, tmp_path_factory):
    """The tiny model in torch float32 and its float IR, in a folder of this module's own."""
    loaded = sd.load(ModelRef(str(tiny_sd)), "cpu", "float32")
    folder = tmp_path_factory.mktemp("int8") / "ir"
    ov.convert(loaded.pipe, folder)
    return loaded, folder


@pytest.fixture
def ir(converted, tmp_path):
    """A fresh copy of the tiny model's float IR (no int8 yet) for tests that write into it."""
    import shutil

    loaded, folder = converted
    copy = tmp_path / "ir"
    shutil.copytree(folder, copy)
    (copy / q.XML).unlink(missing_ok=True)
    (copy / q.XML).with_suffix(".bin").unlink(missing_ok=True)
    return loaded, copy


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A one-op float IR as folder/unet.xml, with calibration and NNCF skipped (the 'quantised'
    model is the float one): the saving, on its own and fast."""
    import openvino
    import openvino.opset13 as ops

    x = ops.parameter([1, 4], np.float32, name="sample")
    openvino.save_model(openvino.Model([ops.relu(x)], [x], "unet"), str(tmp_path / "unet.xml"))
    monkeypatch.setattr(q, "calibration_inputs", lambda loaded, folder, samples, on_stage: [[np.ones((1, 4), np.float32)]])
    monkeypatch.setattr(q, "quantized", lambda model, inputs, scheme=q.SCHEME: model)
    return tmp_path


def test_a_one_step_preset_is_calibrated_at_more_noise_levels_too():
    turbo = next(p for p in PRESETS if p.name == "sd-turbo")
    assert q._runs(turbo) == [1, 4] * 4
    assert q._runs(DEFAULT_PRESET) == [q.MOST_STEPS] * len(q.PROMPTS)



def test_calibration_spreads_over_noise_levels_and_prompts():
    # three prompts of four steps each, recorded in call order
    calls = [(t, [prompt, t]) for prompt in range(3) for t in (999.0, 749.0, 499.0, 249.0)]
    chosen = q.spread(calls, 6)
    assert len(chosen) == 6
    assert {c[1] for c in chosen} == {999.0, 749.0, 499.0, 249.0}
    assert {c[0] for c in chosen} == {0, 1, 2}
    assert len({id(c) for c in chosen}) == 6
    assert len(q.spread(calls[:2], 6)) == 2


@pytest.mark.slow
def test_calibration_records_the_pipelines_own_unet_inputs_and_restores_it(ir):
    import openvino

    loaded, folder = ir
    pipe = loaded.pipe
    unet, scheduler = pipe.unet, pipe.scheduler
    stages = []
    inputs = q.calibration_inputs(loaded, folder, 6, stages.append)
    assert pipe.unet is unet and pipe.scheduler is scheduler
    assert stages and all("calibration" in s for s in stages)
    assert len(inputs) == 6
    guided = loaded.preset.guidance_for(min(loaded.preset.steps, q.MOST_STEPS)) > 1
    batch = 2 if guided else 1
    latent = loaded.native // loaded.vae_scale
    graph = ov.core().read_model(str(folder / "unet.xml"))
    for arrays in inputs:  # what the IR takes: sample, time projection, text embeddings
        assert len(arrays) == len(graph.inputs) == 3
        for array, port in zip(arrays, graph.inputs):
            assert port.get_partial_shape().compatible(openvino.PartialShape(list(array.shape)))
            assert array.dtype == np.float32
        assert arrays[0].shape == (batch, 4, latent, latent) and arrays[2].shape == (batch, 77, 32)
    assert len({arrays[1].tobytes() for arrays in inputs}) > 3  # noise levels across the schedule
    assert len({arrays[2][-1].tobytes() for arrays in inputs}) >= q.MIN_PROMPTS  # prompts (the guided half)


def test_quantize_writes_the_int8_ir_beside_the_float_one(stand_in):
    folder = stand_in
    q.quantize(None, folder)
    assert (folder / "unet.int8.xml").is_file() and (folder / "unet.int8.bin").is_file()
    assert not (folder / q.PARTIAL).exists()
    report = json.loads((folder / q.REPORT).read_text())
    assert report["scheme"] == q.SCHEME and report["samples"] == 1
    assert ov.core().read_model(str(folder / "unet.int8.xml")).inputs


def test_an_int8_unet_of_another_scheme_is_not_reused(stand_in):
    folder = stand_in
    assert not q.ready(folder)
    q.quantize(None, folder)
    assert q.ready(folder)
    report = json.loads((folder / q.REPORT).read_text())
    (folder / q.REPORT).write_text(json.dumps({**report, "scheme": "an older one"}))
    assert not q.ready(folder), "made by another scheme: quantised again"
    (folder / q.REPORT).write_text("{not json")
    assert not q.ready(folder)
    (folder / q.REPORT).unlink()
    assert not q.ready(folder)


def test_a_save_that_fails_midway_leaves_no_int8_ir(stand_in, monkeypatch):
    import openvino

    folder = stand_in

    def half_save(model, path, *args, **kwargs):
        Path(path).write_text("<?xml version='1.0'?><net")  # cut off, as by a kill
        raise OSError("disk full")

    monkeypatch.setattr(openvino, "save_model", half_save)
    with pytest.raises(OSError, match="disk full"):
        q.quantize(None, folder)
    assert not (folder / "unet.int8.xml").exists() and not (folder / "unet.int8.bin").exists()
    assert not (folder / q.PARTIAL).exists()


def test_a_kill_between_the_renames_leaves_the_weights_but_no_xml(stand_in, monkeypatch):
    """The .xml is what readers look for; it is renamed in last, after its .bin."""
    folder = stand_in
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == "unet.int8.xml":
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(q.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        q.quantize(None, folder)
    assert (folder / "unet.int8.bin").is_file() and not (folder / "unet.int8.xml").exists()
    assert not (folder / q.PARTIAL).exists()


def test_a_failed_quantisation_writes_nothing_and_a_stale_partial_is_cleared(stand_in, monkeypatch):
    folder = stand_in
    quantized = q.quantized
    stale = folder / q.PARTIAL
    stale.mkdir()
    (stale / "unet.int8.xml").write_text("half")

    def fails(*_a, **_k):
        raise RuntimeError("nncf failed")

    monkeypatch.setattr(q, "quantized", fails)
    with pytest.raises(RuntimeError, match="nncf failed"):
        q.quantize(None, folder)
    assert not (folder / "unet.int8.xml").exists()
    monkeypatch.setattr(q, "quantized", quantized)
    q.quantize(None, folder)
    assert (folder / "unet.int8.xml").is_file() and not stale.exists()


@pytest.mark.slow
def test_the_int8_unet_agrees_with_float32_on_the_tiny_model(ir):
    """Loosely: the tiny UNet's 32 channels quantise far worse than a real one's (about 0.15
    relative error here, against bf16's 0.026), so this checks the calibration worked at all; an
    uncalibrated or broken int8 UNet lands near 1."""
    import torch

    from inference import runtimes

    loaded, folder = ir
    q.quantize(loaded, folder)
    inputs = runtimes.probe_inputs(loaded.pipe, 64, 64, 2)
    with torch.inference_mode():
        reference = loaded.pipe.unet(*inputs[:3], return_dict=False)[0]
    graph = ov.core().read_model(str(folder / "unet.int8.xml"))
    assert any(op.get_type_name() == "FakeQuantize" for op in graph.get_ops())
    edges = q._edge_convolutions(graph)
    assert len(edges) == 2
    for op in graph.get_ops():  # the first and last convolutions stay in float
        if op.get_friendly_name() in edges:
            assert op.input_value(0).get_node().get_type_name() != "FakeQuantize"
    int8 = ov.make_module("unet", folder / "unet.int8.xml", "int8", loaded.pipe.unet.config)
    error = runtimes.relative_error(int8(*inputs[:3])[0], reference)
    int8.release()
    assert error < 0.4, error


@pytest.mark.slow
def test_an_engine_job_runs_on_openvino_int8(tiny_sd):
    from inference.engine import Engine

    job = Generate(prompt="a cat", model=ModelRef(str(tiny_sd)), seed=3, steps=2, runtime="openvino", dtype="int8")
    image, resolved, _timings, info = Engine().run(1, job, lambda p: None, lambda: False)
    assert info["path"] == "OpenVINO int8" and resolved.dtype == "int8"
    assert image.size == (64, 64)
    pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 1  # a picture, not a flat or black frame
    folder = ov.ir_folder(ov.fingerprint_of(locate(str(tiny_sd))), job.model)
    assert (folder / "unet.int8.xml").is_file()


def test_nncf_sends_nothing_under_quickbrush():
    """nncf's telemetry rides on openvino_telemetry, which inference.privacy blocks; nncf then
    falls back to its stub (checked outside pytest, whose presence alone also silences nncf)."""
    script = textwrap.dedent("""
        import json, sys
        import inference
        import nncf
        from unittest.mock import MagicMock
        from nncf.telemetry.wrapper import telemetry
        print(json.dumps([sys.modules.get("openvino_telemetry") is None, isinstance(telemetry, MagicMock)]))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [True, True]
