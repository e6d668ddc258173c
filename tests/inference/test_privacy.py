"""inference/privacy.py: no byte leaves the machine unasked, proven by tracing the real thing
(tests/tracing.py says how the traced processes get a designer's environment, not CI's)."""

from __future__ import annotations

import importlib
import os
import re

import pytest

from tracing import ROOT, TRACE_SECONDS, files_under, outside_connections, traced

def test_importing_inference_switches_every_channel_off():
    import inference  # noqa: F401 - the import is what is tested
    from inference import privacy

    for name, value in privacy.TELEMETRY_OFF.items():
        assert os.environ[name] == value, name
    # OpenVINO's conversion API falls back to its own silent stub when this import fails.
    with pytest.raises(ImportError):
        importlib.import_module("openvino_telemetry")


def test_a_telemetry_variable_left_on_does_not_turn_it_back_on(monkeypatch):
    from inference import privacy

    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "0")
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    privacy.switch_off()
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1" and os.environ["DO_NOT_TRACK"] == "1"


@pytest.mark.slow
def test_the_built_in_model_running_for_a_while_connects_to_nothing(tmp_path):
    """Jobs through the Worker (the path the GUI and the CLI take) for TRACE_SECONDS, traced.

    A control process beside it loads the same onnxruntime without Quickbrush: its lookups
    prove the uploader is there and awake in this environment, so silence from Quickbrush is
    Quickbrush's doing."""
    run = traced(f"""
        import time
        from inference.jobs import Generate, ModelRef
        from inference.worker import Worker
        worker = Worker()
        end, n = time.monotonic() + {TRACE_SECONDS}, 0
        while time.monotonic() < end:
            worker.submit(Generate(prompt="red apple", model=ModelRef("builtin"), seed=n))
            worker.wait_idle()
            n += 1
        worker.shutdown()
        print("jobs", n)
        """, tmp_path / "home", tmp_path / "quickbrush.trace", TRACE_SECONDS + 120)
    control = traced(f"""
        import time
        import onnxruntime
        onnxruntime.InferenceSession({str(ROOT / "assets/models/builtin/onnx/decoder.onnx")!r},
                                     providers=["CPUExecutionProvider"])
        time.sleep({TRACE_SECONDS})
        """, tmp_path / "control-home", tmp_path / "control.trace", TRACE_SECONDS + 120)
    out, _ = run.communicate(timeout=TRACE_SECONDS + 180)
    control.communicate(timeout=TRACE_SECONDS + 180)
    assert run.returncode == 0, out
    assert int(re.search(r"jobs (\d+)", out).group(1)) > 10, out

    control_calls = outside_connections((tmp_path / "control.trace").read_text())
    assert control_calls, "without Quickbrush, onnxruntime's uploader should have tried to reach out here"
    assert any(".onnxruntime" in name for name in files_under(tmp_path / "control-home")), \
        "without Quickbrush, onnxruntime writes a device id into the home folder"

    assert outside_connections((tmp_path / "quickbrush.trace").read_text()) == []
    assert files_under(tmp_path / "home") == [], "nothing written to the designer's folders on a library's behalf"


def test_converting_and_running_a_model_on_openvino_connects_to_nothing(tmp_path, tiny_sd):
    """First use of a Stable Diffusion model on OpenVINO, traced: conversion (OpenVINO's model
    converter has a telemetry hook of its own), the runtime probe, compiling and a job."""
    pytest.importorskip("openvino")
    cache = tmp_path / "cache"
    run = traced(f"""
        import os, sys
        os.environ["QUICKBRUSH_CACHE_DIR"] = {str(cache)!r}
        from inference.jobs import Generate, ModelRef
        from inference.worker import Worker
        worker = Worker()
        worker.submit(Generate(prompt="red apple", model=ModelRef({str(tiny_sd)!r}), seed=1, steps=1))
        worker.submit(Generate(prompt="red apple", model=ModelRef({str(tiny_sd)!r}), seed=2, steps=1,
                               runtime="openvino"))
        worker.wait_idle()
        worker.shutdown()
        # openvino_telemetry is blocked (inference/privacy.py); OpenVINO's converter and NNCF (the
        # int8 quantisation) then fall back to their stubs, which send nothing.
        print("openvino_telemetry:", sys.modules.get("openvino_telemetry", "never asked for"))
        wrapper = sys.modules.get("nncf.telemetry.wrapper")
        print("nncf telemetry:", "not loaded" if wrapper is None else type(wrapper.telemetry).__name__)
        """, tmp_path / "home", tmp_path / "openvino.trace", 600)
    out, _ = run.communicate(timeout=600)
    assert run.returncode == 0, out
    assert "openvino_telemetry: None" in out, out
    assert "nncf telemetry: not loaded" in out or "nncf telemetry: MagicMock" in out, out
    assert (cache / "openvino" / "ir").is_dir(), out  # the conversion really ran, traced
    assert outside_connections((tmp_path / "openvino.trace").read_text()) == []
    assert files_under(tmp_path / "home") == [], "nothing written to the designer's folders on a library's behalf"
