"""The backend registry and Capabilities, on the tiny models of tests/conftest.py; and the
promise that a job on the built-in model imports neither torch nor diffusers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from inference import backends
from inference.backends import Backend, Capabilities, Loaded, backend_for, serving
from inference.engine import Engine
from inference.jobs import BadInput, Generate, ModelMissing, ModelRef
from inference.models.store import Located, locate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["tiny_sd", "tiny_sd_inpaint", "tiny_sd_pix2pix", "tiny_sdxl"])
def sd_folder(request):
    return request.getfixturevalue(request.param)


def test_the_builtin_backend_claims_the_builtin_folder(tiny_builtin):
    located = locate(str(tiny_builtin))
    assert backend_for(located).name == "builtin"
    assert not backends.backend("diffusers").claims(located)
    assert serving(str(tiny_builtin)) == "builtin"


def test_the_diffusers_backend_claims_stable_diffusion_folders(sd_folder):
    located = locate(str(sd_folder))
    assert backend_for(located).name == "diffusers"
    assert not backends.backend("builtin").claims(located)
    assert serving(str(sd_folder)) == "diffusers"


def test_stable_diffusion_models_run_on_openvino_or_torch(sd_folder):
    """Both claim a Stable Diffusion folder; the engine chooses (inference.runtimes)."""
    assert [b.name for b in backends.candidates(locate(str(sd_folder)))] == ["openvino", "diffusers"]


def test_the_diffusers_backend_claims_checkpoint_files_and_repo_ids(tiny_sd_single_file):
    assert backend_for(locate(str(tiny_sd_single_file))).name == "diffusers"
    assert backend_for(Located("repo", "owner/some-model")).name == "diffusers"


def test_every_registered_backend_implements_the_protocol():
    for name in backends.REGISTRY:
        backend = backends.backend(name)
        assert isinstance(backend, Backend) and backend.name == name


def test_a_folder_no_backend_claims_says_so_plainly(tmp_path):
    folder = tmp_path / "holiday photos"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a model")
    with pytest.raises(ModelMissing) as raised:
        backend_for(Located("folder", str(folder)))
    assert raised.value.message == "holiday photos is not a diffusers model folder."
    assert "model_index.json" in raised.value.details
    # The engine says the same, and the worker's GUI gets nothing to warm up for it.
    with pytest.raises(ModelMissing, match="holiday photos is not a diffusers model folder"):
        Engine().run(1, Generate(prompt="x", model=ModelRef(str(folder))), lambda p: None, lambda: False)
    assert serving(str(folder)) is None


def capabilities(folder, runtime=None) -> tuple[Loaded, Capabilities]:
    loaded, _fresh = Engine().model(ModelRef(str(folder)), runtime=runtime)
    assert isinstance(loaded, Loaded)
    return loaded, loaded.backend.capabilities(loaded)


def test_builtin_capabilities(tiny_builtin):
    loaded, caps = capabilities(tiny_builtin)
    assert loaded.backend is backends.backend("builtin")
    assert caps == Capabilities(tasks=frozenset({"text2img", "img2img", "inpaint", "edit"}), inpaint="native",
                                keeps_alpha=True, whole_objects=True, native=32, multiple=32)
    assert caps.edits and not caps.through_inpaint("text2img") and not caps.through_inpaint("img2img")


@pytest.mark.parametrize("fixture, tasks, inpaint", [
    ("tiny_sd", {"text2img", "img2img", "inpaint"}, "masked"),
    ("tiny_sdxl", {"text2img", "img2img", "inpaint"}, "masked"),
    ("tiny_sd_inpaint", {"inpaint"}, "native"),
    ("tiny_sd_pix2pix", {"edit"}, None),
])
@pytest.mark.parametrize("runtime", ["torch", "openvino"])
def test_diffusers_capabilities(request, fixture, tasks, inpaint, runtime):
    loaded, caps = capabilities(request.getfixturevalue(fixture), runtime)
    assert loaded.backend is backends.backend({"torch": "diffusers"}.get(runtime, runtime))
    assert caps == Capabilities(tasks=frozenset(tasks), inpaint=inpaint, keeps_alpha=False, whole_objects=False,
                                native=64, multiple=8)
    assert caps.edits == (fixture == "tiny_sd_pix2pix")
    # Only an inpainting UNet generates and varies as an inpaint of the whole canvas.
    assert caps.through_inpaint("text2img") == caps.through_inpaint("img2img") == (fixture == "tiny_sd_inpaint")


def test_the_builtin_model_runs_on_the_cpu_unless_a_gpu_is_named():
    builtin = backends.backend("builtin")
    assert builtin.placement(None, None) == builtin.placement("auto", "auto") == ("cpu", "float32")
    with pytest.raises(BadInput, match="Unknown device"):
        builtin.placement("tpu", None)
    with pytest.raises(BadInput, match="Unknown precision"):
        builtin.placement(None, "int3")


def _fresh_python(script: str) -> dict:
    """Run `script` in a new interpreter (nothing imported yet) and return the JSON it prints last."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


HEAVY = ("torch", "diffusers", "transformers")


def test_a_builtin_job_imports_neither_torch_nor_diffusers(tiny_builtin, tiny_sd):
    """The built-in model runs on onnxruntime: a Generate through the Worker, then asking the
    registry about a Stable Diffusion folder too, leaves torch, diffusers and transformers
    unimported (each costs seconds and hundreds of MB at start-up)."""
    found = _fresh_python(f"""
        import json, sys
        from inference.backends import serving
        from inference.jobs import Generate, ModelRef
        from inference.worker import Worker

        results = []
        worker = Worker(on_result=results.append)
        worker.submit(Generate(prompt="red apple", model=ModelRef({str(tiny_builtin)!r}), steps=2))
        worker.wait_idle(timeout=240)
        worker.shutdown()
        result = results[0]
        print(json.dumps({{"ok": result.ok, "error": str(result.error), "runtime": result.model_info.get("runtime"),
                          "serving": serving({str(tiny_sd)!r}),
                          "imported": [name for name in {HEAVY!r} if name in sys.modules]}}))
        """)
    assert found["ok"], found["error"]
    assert found["runtime"] == "onnxruntime" and found["serving"] == "diffusers"
    assert found["imported"] == []
