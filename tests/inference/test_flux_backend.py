"""FLUX.2 klein through the engine, on the tiny random-weight Flux2KleinPipeline of conftest."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inference import backends
from inference.backends import Backend, backend_for, candidates, serving
from inference.engine import Engine
from inference.jobs import BadInput, Cancelled, Edit, Generate, Inpaint, ModelMissing, ModelRef, Vary
from inference.models.presets import match_preset
from inference.models.store import locate


@pytest.fixture(scope="module")
def engine():
    e = Engine(max_models=2)
    yield e
    e.unload()


def run(engine, job, cancelled=lambda: False):
    progress = []
    image, resolved, _timings, info = engine.run(1, job, progress.append, cancelled)
    return image, resolved, [p for p in progress if p.stage == "denoise"], info


def noise(width, height, seed=0):
    return Image.fromarray((np.random.RandomState(seed).rand(height, width, 3) * 255).astype("uint8"))


def common(model, **kw):
    return {"prompt": "a red apple", "model": ModelRef(str(model)), "steps": 2, "seed": 3, **kw}


def test_the_flux_backend_claims_a_klein_folder_and_stable_diffusion_does_not(tiny_flux2):
    located = locate(str(tiny_flux2))
    assert [b.name for b in candidates(located)] == ["flux"]
    assert backend_for(located).name == "flux" and serving(str(tiny_flux2)) == "flux"
    assert not backends.backend("diffusers").claims(located)
    assert not backends.backend("builtin").claims(located)
    assert isinstance(backends.backend("flux"), Backend)


def test_the_flux_backend_leaves_stable_diffusion_folders_alone(tiny_sd):
    assert not backends.backend("flux").claims(locate(str(tiny_sd)))


def test_generate_gives_the_asked_size_with_progress_per_step(engine, tiny_flux2):
    image, resolved, steps, info = run(engine, Generate(width=48, height=40, **common(tiny_flux2)))
    assert image.size == (48, 40) and image.mode == "RGB"
    assert [(p.step, p.total) for p in steps] == [(1, 2), (2, 2)]
    assert resolved.steps == 2 and resolved.guidance == 1.0
    assert resolved.scheduler == "FlowMatchEulerDiscreteScheduler"
    assert info["pipeline"] == "Flux2KleinPipeline" and info["preset"] == "flux2-klein"


def test_a_size_off_the_grid_is_cropped_to_what_was_asked(engine, tiny_flux2):
    image, *_ = run(engine, Generate(width=37, height=30, **common(tiny_flux2)))
    assert image.size == (37, 30)


def test_the_seed_decides_the_picture(engine, tiny_flux2):
    first, *_ = run(engine, Generate(width=32, height=32, **common(tiny_flux2)))
    again, *_ = run(engine, Generate(width=32, height=32, **common(tiny_flux2)))
    other, *_ = run(engine, Generate(width=32, height=32, **common(tiny_flux2, seed=4)))
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))


def test_the_resolved_recipe_reproduces_the_picture(engine, tiny_flux2):
    image, resolved, *_ = run(engine, Generate(width=32, height=32, **common(tiny_flux2)))
    again, *_ = run(engine, resolved)
    assert np.array_equal(np.asarray(image), np.asarray(again))


def test_edit_uses_the_source_as_reference_and_keeps_its_size(engine, tiny_flux2):
    source = noise(40, 56)
    image, resolved, steps, _ = run(engine, Edit(image=source, **common(tiny_flux2, prompt="make it blue")))
    assert image.size == (40, 56) and len(steps) == 2
    plain, *_ = run(engine, Edit(image=noise(40, 56, seed=1), **common(tiny_flux2, prompt="make it blue")))
    assert not np.array_equal(np.asarray(image), np.asarray(plain))  # the reference image matters


def test_inpaint_keeps_pixels_outside_the_mask(engine, tiny_flux2):
    source = noise(64, 64)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 40, 40))
    image, _, steps, _ = run(engine, Inpaint(image=source, mask=mask, **common(tiny_flux2)))
    assert image.size == (64, 64) and steps
    out, src = np.asarray(image), np.asarray(source)
    assert np.array_equal(out[:4], src[:4]) and np.array_equal(out[-8:], src[-8:]) and not np.array_equal(out[20:36, 20:36], src[20:36, 20:36])


def test_vary_runs_as_a_whole_picture_image_to_image(engine, tiny_flux2):
    image, *_ = run(engine, Vary(image=noise(48, 48), strength=1.0, **common(tiny_flux2)))
    assert image.size == (48, 48)


def test_cancel_stops_after_the_step_it_was_asked_at(engine, tiny_flux2):
    seen = []

    def cancelled():
        return len(seen) >= 1

    with pytest.raises(Cancelled):
        engine.run(1, Generate(width=32, height=32, **common(tiny_flux2, steps=4)),
                   lambda p: seen.append(p) if p.stage == "denoise" else None, cancelled)
    assert len(seen) == 1


def test_a_stable_diffusion_scheduler_is_refused_plainly(engine, tiny_flux2):
    with pytest.raises(BadInput, match="its own scheduler"):
        run(engine, Generate(width=32, height=32, scheduler="euler", **common(tiny_flux2)))


def test_float16_is_refused_plainly():
    with pytest.raises(BadInput, match="not float16"):
        backends.backend("flux").placement("cpu", "float16")


def test_on_the_cpu_it_runs_in_bfloat16_only_where_that_is_native(monkeypatch):
    from inference import runtimes

    monkeypatch.setattr(runtimes, "native_bf16", lambda: True)
    assert backends.backend("flux").placement("cpu", None) == ("cpu", "bfloat16")
    monkeypatch.setattr(runtimes, "native_bf16", lambda: False)
    assert backends.backend("flux").placement("cpu", "auto") == ("cpu", "float32")


def test_a_diffusers_without_klein_says_what_to_do(tiny_flux2, monkeypatch):
    import diffusers

    monkeypatch.setattr(diffusers, "Flux2KleinPipeline", None)
    with pytest.raises(ModelMissing, match="FLUX.2 klein model.*cannot run") as info:
        Engine().run(1, Generate(width=32, height=32, **common(tiny_flux2)), lambda p: None, lambda: False)
    assert "update diffusers" in info.value.details.lower()


def test_a_diffusers_without_klein_inpainting_offers_no_inpaint(engine, tiny_flux2, monkeypatch):
    import diffusers

    loaded, _ = engine.model(ModelRef(str(tiny_flux2)), "cpu")
    monkeypatch.setattr(diffusers, "Flux2KleinInpaintPipeline", None)
    caps = loaded.backend.capabilities(loaded)
    assert caps.inpaint is None and caps.tasks == {"text2img", "edit"} and caps.edits
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    with pytest.raises(BadInput, match="cannot inpaint with FLUX.2 klein"):
        run(engine, Inpaint(image=noise(32, 32), mask=mask, **common(tiny_flux2)))


def test_the_catalog_names_are_matched_to_the_klein_preset():
    preset = match_preset(["black-forest-labs/FLUX.2-klein-4B"])
    assert (preset.name, preset.steps, preset.guidance, preset.scheduler, preset.max_steps) == (
        "flux2-klein", 4, 1.0, None, 8)


def test_a_model_too_large_for_the_free_memory_is_refused_before_it_loads(tiny_flux2, monkeypatch):
    from inference.backends import flux_backend
    from inference.jobs import OutOfMemory

    monkeypatch.setattr(flux_backend, "HEADROOM", 1 << 60)  # as if the weights were far larger than the RAM
    with pytest.raises(OutOfMemory, match="needs about .* of free memory") as info:
        Engine().run(1, Generate(width=32, height=32, **common(tiny_flux2)), lambda p: None, lambda: False)
    assert "13 GB" in info.value.details
