"""Every job kind end to end through the engine, on tiny random-weight diffusers models."""

import numpy as np
import pytest
from PIL import Image

from inference import compositing
from inference.engine import Engine
from inference.jobs import (
    BadInput,
    Edit,
    Generate,
    Inpaint,
    LoraRef,
    MaskOptions,
    ModelMissing,
    ModelRef,
    NetworkUnavailable,
    Outpaint,
    Vary,
)


@pytest.fixture(scope="module")
def engine():
    e = Engine(max_models=4)
    yield e
    e.unload()


def run(engine, job):
    """(image, resolved job, the denoising steps' Progress); a "load" stage comes first when
    the model had to be loaded, which depends on the tests run before."""
    progress = []
    image, resolved, timings, info = engine.run(1, job, progress.append, lambda: False)
    return image, resolved, [p for p in progress if p.stage == "denoise"]


def noise(width, height, seed=0):
    return Image.fromarray((np.random.RandomState(seed).rand(height, width, 3) * 255).astype("uint8"))


def box_mask(size, box):
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def common(model, **kw):
    return dict(prompt="a red apple", model=ModelRef(str(model)), steps=2, seed=3, scheduler="euler", **kw)


@pytest.mark.parametrize("size", [(64, 64), (100, 70), (37, 91), (300, 40)])
def test_generate_gives_the_asked_size(engine, tiny_sd, size):
    image, resolved, _ = run(engine, Generate(width=size[0], height=size[1], **common(tiny_sd)))
    assert image.size == size and image.mode == "RGB"
    assert (resolved.width, resolved.height) == size


def test_generate_defaults_to_the_native_resolution(engine, tiny_sd):
    image, resolved, _ = run(engine, Generate(**common(tiny_sd)))
    assert image.size == (64, 64)


@pytest.mark.parametrize("model_fixture", ["tiny_sd", "tiny_sd_inpaint"])
def test_inpaint_leaves_pixels_outside_the_mask_bit_identical(engine, request, model_fixture):
    source = noise(101, 75)
    mask = box_mask(source.size, (30, 20, 60, 50))
    options = MaskOptions(grow=4, feather=8)
    job = Inpaint(image=source, mask=mask, mask_options=options, **common(request.getfixturevalue(model_fixture)))
    image, _, _ = run(engine, job)
    assert image.size == source.size
    alpha = np.asarray(compositing.prepare_mask(mask, options.grow, options.feather))
    out, src = np.asarray(image), np.asarray(source)
    assert np.array_equal(out[alpha == 0], src[alpha == 0])
    assert not np.array_equal(out[alpha == 255], src[alpha == 255]), "the masked area must change"


def test_small_mask_on_large_image_runs_on_a_crop_and_pastes_back(engine, tiny_sd_inpaint, monkeypatch):
    from inference.backends import diffusers_backend

    seen = {}
    real_run = diffusers_backend.run

    def spy(loaded, task, call, *args):
        seen["size"] = call["image"].size
        return real_run(loaded, task, call, *args)

    monkeypatch.setattr(diffusers_backend, "run", spy)
    source = noise(1203, 797)
    mask = box_mask(source.size, (900, 600, 930, 640))
    job = Inpaint(image=source, mask=mask, mask_options=MaskOptions(crop_padding=16), **common(tiny_sd_inpaint))
    image, _, progress = run(engine, job)
    assert image.size == source.size
    left, top, right, bottom = progress[-1].box
    assert left <= 900 and top <= 600 and right >= 930 and bottom >= 640, "the preview covers the crop"
    w, h = seen["size"]
    assert w * h <= 2 * 64 * 64, "the model must run near its native resolution, not on the whole photo"
    alpha = np.asarray(compositing.prepare_mask(mask, 4, 8))
    assert np.array_equal(np.asarray(image)[alpha == 0], np.asarray(source)[alpha == 0])


def test_inpaint_keeps_transparency_of_rgba_images(engine, tiny_sd_inpaint):
    source = noise(64, 48).convert("RGBA")
    source.putalpha(box_mask(source.size, (0, 0, 32, 48)))
    image, _, _ = run(engine, Inpaint(image=source, mask=box_mask(source.size, (40, 10, 60, 30)), **common(tiny_sd_inpaint)))
    assert image.mode == "RGBA"
    assert np.array_equal(np.asarray(image)[..., 3], np.asarray(source)[..., 3])


def test_empty_mask_is_a_clear_error(engine, tiny_sd_inpaint):
    source = noise(64, 64)
    with pytest.raises(BadInput, match="mask is empty"):
        run(engine, Inpaint(image=source, mask=Image.new("L", source.size, 0), **common(tiny_sd_inpaint)))


def test_outpaint_extends_the_canvas_and_keeps_the_original(engine, tiny_sd_inpaint):
    source = noise(50, 40)
    job = Outpaint(image=source, left=10, right=22, top=0, bottom=6, **common(tiny_sd_inpaint))
    image, _, _ = run(engine, job)
    assert image.size == (82, 46)
    _, mask = compositing.extend_canvas(source, 10, 0, 22, 6)
    alpha = np.asarray(compositing.prepare_mask(mask, job.mask_options.grow, job.mask_options.feather))
    canvas = np.zeros((46, 82, 3), np.uint8)
    canvas[0:40, 10:60] = np.asarray(source)
    assert np.array_equal(np.asarray(image)[alpha == 0], canvas[alpha == 0])


@pytest.mark.parametrize("model_fixture", ["tiny_sd", "tiny_sd_inpaint"])
def test_vary_returns_the_input_size(engine, request, model_fixture):
    source = noise(90, 50)
    image, _, progress = run(engine, Vary(image=source, strength=0.5, **common(request.getfixturevalue(model_fixture))))
    assert image.size == (90, 50)
    # Strength scales the schedule so the asked number of steps still runs.
    assert [p.step for p in progress] == [1, 2]


def test_edit_with_an_instruct_pix2pix_model(engine, tiny_sd_pix2pix):
    source = noise(70, 70)
    image, resolved, progress = run(engine, Edit(image=source, image_guidance=1.5, **common(tiny_sd_pix2pix)))
    assert image.size == (70, 70)
    assert len(progress) == 2


def test_edit_on_a_plain_model_explains_what_is_needed(engine, tiny_sd):
    with pytest.raises(BadInput, match="InstructPix2Pix"):
        run(engine, Edit(image=noise(64, 64), **common(tiny_sd)))


def test_pix2pix_model_refuses_generate_clearly(engine, tiny_sd_pix2pix):
    with pytest.raises(BadInput, match="only does instruction edits"):
        run(engine, Generate(**common(tiny_sd_pix2pix)))


def test_single_file_checkpoint_loads_and_matches_the_folder(engine, tiny_sd, tiny_sd_single_file):
    folder_image, _, _ = run(engine, Generate(**common(tiny_sd)))
    ref = ModelRef(str(tiny_sd_single_file), config=str(tiny_sd))
    file_image, resolved, _ = run(engine, Generate(**{**common(tiny_sd), "model": ref}))
    assert np.array_equal(np.asarray(folder_image), np.asarray(file_image))
    assert resolved.model.sha256 and resolved.model.config == str(tiny_sd)


def test_a_single_file_the_shipped_configs_do_not_fit_says_so(engine, tiny_sd_single_file):
    """Offline, a single file loads from the configs Quickbrush ships (inference/models/configs);
    the tiny model's tensors fit none of them, and the message says which it tried."""
    with pytest.raises(ModelMissing, match="does not fit the sd1 config files"):
        run(engine, Generate(prompt="x", model=ModelRef(str(tiny_sd_single_file))))


def test_lora_changes_the_result_and_scale_zero_does_not(engine, tiny_sd, tiny_lora):
    base, _, _ = run(engine, Generate(**common(tiny_sd)))
    with_lora = ModelRef(str(tiny_sd), loras=(LoraRef(str(tiny_lora), 1.0),))
    lora_image, resolved, _ = run(engine, Generate(**{**common(tiny_sd), "model": with_lora}))
    assert not np.array_equal(np.asarray(base), np.asarray(lora_image))
    assert resolved.model.loras == (LoraRef(str(tiny_lora), 1.0),)


def test_sdxl_generates_at_its_native_size(engine, tiny_sdxl):
    image, resolved, _ = run(engine, Generate(**common(tiny_sdxl)))
    loaded, _ = engine.model(ModelRef(str(tiny_sdxl)))
    assert loaded.family == "sdxl"
    assert image.size == (loaded.native, loaded.native)


def test_sd2_is_recognised_and_keeps_v_prediction_when_the_scheduler_is_swapped(engine, tiny_sd2, tmp_path):
    """SD 2.x (and SD-Turbo, which is 2.1) predict velocity: a scheduler swapped in by a preset or
    by the user must keep `prediction_type`, or every image comes out as noise."""
    from inference.backends.diffusers_backend import _checkpoint_layout, make_scheduler
    from tests.tiny_models import write_single_file

    image, resolved, _ = run(engine, Generate(**common(tiny_sd2)))
    loaded, _ = engine.model(ModelRef(str(tiny_sd2)))
    assert loaded.family == "sd2"
    assert image.size == (loaded.native, loaded.native)
    assert np.asarray(image).std() > 0
    assert loaded.scheduler_config["prediction_type"] == "v_prediction"
    for name in (None, "euler", "euler_trailing", "euler_a"):
        assert make_scheduler(loaded, name).config.prediction_type == "v_prediction", name
    turbo, resolved, progress = run(engine, Generate(prompt="x", model=ModelRef(str(tiny_sd2), preset="sd-turbo"),
                                                     seed=1))
    assert (resolved.steps, resolved.scheduler, len(progress)) == (1, "euler_trailing", 1)
    # An original-format file of it is told apart by its cross-attention width.
    single = write_single_file(tiny_sd2, tmp_path / "sd21.safetensors")
    assert _checkpoint_layout(str(single)) == ("sd2", 4)
    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "sd21.ckpt"
    torch.save({"state_dict": load_file(single)}, pickled)
    assert _checkpoint_layout(str(pickled)) == ("sd2", 4)


def test_preset_gives_few_step_defaults_to_a_renamed_turbo_model(engine, tiny_sd):
    job = Generate(prompt="x", model=ModelRef(str(tiny_sd), preset="sd-turbo"), seed=1)
    _, resolved, progress = run(engine, job)
    assert (resolved.steps, resolved.guidance, resolved.scheduler) == (1, 0.0, "euler_trailing")
    assert len(progress) == 1


def test_folder_without_model_index_is_a_clear_error(engine, tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(ModelMissing, match="not a diffusers model folder"):
        run(engine, Generate(prompt="x", model=ModelRef(str(tmp_path))))


def test_uncached_hub_model_while_offline_says_so(engine):
    with pytest.raises(NetworkUnavailable, match="no network|offline"):
        run(engine, Generate(prompt="x", model=ModelRef("quickbrush-tests/does-not-exist")))


def test_damaged_checkpoint_file_is_a_clear_error(engine, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(BadInput, match="damaged|incomplete|could not be read"):
        run(engine, Generate(prompt="x", model=ModelRef(str(bad))))


def test_lora_file_given_as_model_is_explained(engine, tiny_lora):
    with pytest.raises(BadInput, match="LoRA"):
        run(engine, Generate(prompt="x", model=ModelRef(str(tiny_lora))))


# --------------------------------------------------------------------------- sizes: checked first, limited only where the model needs it


def test_inpaint_on_a_document_wider_than_8192_px_runs_on_the_crop(engine, tiny_sd_inpaint):
    """Only the model's input has a size limit: the crop around the mask is pasted back into a
    document of any width (it used to run every step, then fail on "Width must be between 16
    and 8192 pixels", a width the designer never set)."""
    source = noise(8200, 24)
    mask = box_mask(source.size, (6000, 4, 6020, 20))
    options = MaskOptions(crop_padding=16)
    image, resolved, _ = run(engine, Inpaint(image=source, mask=mask, mask_options=options, **common(tiny_sd_inpaint)))
    assert image.size == source.size
    alpha = np.asarray(compositing.prepare_mask(mask, options.grow, options.feather))
    assert np.array_equal(np.asarray(image)[alpha == 0], np.asarray(source)[alpha == 0])
    assert (resolved.width, resolved.height) == (None, None), "the recipe holds no size the designer did not set"


@pytest.mark.parametrize("size", [(12, 10), (9000, 20)])
def test_vary_and_edit_work_on_images_of_any_size(engine, tiny_sd, tiny_sd_pix2pix, size):
    """The engine resizes whole-image kinds to the model's size and back: a 12 px icon or a
    9000 px banner is no reason to refuse."""
    source = noise(*size)
    varied, _, _ = run(engine, Vary(image=source, strength=0.5, **common(tiny_sd)))
    edited, _, _ = run(engine, Edit(image=source, **common(tiny_sd_pix2pix)))
    assert varied.size == size and edited.size == size


@pytest.fixture
def no_loading(monkeypatch):
    """A fresh engine whose model loading fails the test: what it refuses, it refuses first."""
    from inference import backends

    def load(*args, **kwargs):
        raise AssertionError("the model was loaded for a job that cannot run")

    for name in backends.REGISTRY:
        monkeypatch.setattr(type(backends.backend(name)), "load", load)
    return Engine()


@pytest.mark.parametrize("kind", [Vary, Edit, Inpaint])
def test_an_image_over_the_pixel_limit_is_refused_before_the_model_loads(no_loading, monkeypatch, tiny_sd, kind):
    from inference import images

    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    source = noise(20, 10)
    extra = {"mask": box_mask(source.size, (2, 2, 5, 5))} if kind is Inpaint else {}
    with pytest.raises(BadInput, match=r"The image is too large: 20 × 10 pixels"):
        run(no_loading, kind(image=source, **extra, **common(tiny_sd)))


def test_an_empty_image_is_refused_before_the_model_loads(no_loading, tiny_sd):
    with pytest.raises(BadInput, match=r"The image is empty"):
        run(no_loading, Vary(image=Image.new("RGB", (0, 10)), **common(tiny_sd)))


def test_outpaint_of_a_document_wider_than_8192_px_works(engine, tiny_sd_inpaint):
    source = noise(8200, 24)
    image, resolved, _ = run(engine, Outpaint(image=source, right=8, **common(tiny_sd_inpaint)))
    assert image.size == (8208, 24)
    assert np.array_equal(np.asarray(image)[:, :8000], np.asarray(source)[:, :8000])
