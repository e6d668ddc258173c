"""inference/jobs.py, the job language: every number a job holds is checked when the job is built,
by hand or from a recipe, and a bad one is a BadInput naming the field, never a traceback or a
silent NaN. (Not test_jobs.py: tests/editor/test_jobs.py has that name, and pytest's default
import mode needs distinct basenames.)"""

from __future__ import annotations

import math

import pytest
from PIL import Image

from inference.jobs import (
    MAX_SEED,
    BadField,
    BadInput,
    Edit,
    Generate,
    Inpaint,
    Job,
    LoraRef,
    MaskOptions,
    ModelRef,
    Outpaint,
    Vary,
)

IMAGE = Image.new("RGB", (48, 32), (10, 20, 30))
MASK = Image.new("L", (48, 32), 255)
INF, NAN = float("inf"), float("nan")


def build(kind, **fields):
    images = {"image": IMAGE} if kind.needs_image else {}
    if kind.needs_mask:
        images["mask"] = MASK
    if kind is Outpaint:
        fields.setdefault("right", 16)
    return kind(**images, **fields)


def refused(make, *needles):
    with pytest.raises(BadInput) as caught:
        make()
    message = caught.value.message
    assert "\n" not in message and "Error" not in message, message
    for needle in needles:
        assert needle.lower() in message.lower(), message
    return caught.value


# --------------------------------------------------------------------------- built by hand


@pytest.mark.parametrize("value", [INF, -INF, NAN, -1.0, 1e6])
@pytest.mark.parametrize("kind", [Generate, Vary, Inpaint, Outpaint, Edit])
def test_guidance_must_be_finite_and_in_range(kind, value):
    refused(lambda: build(kind, guidance=value), "guidance", "from 0 to 100")


@pytest.mark.parametrize("value", [INF, NAN, -0.5, 1e9, "1.5", True])
def test_image_guidance_must_be_a_finite_number_in_range(value):
    refused(lambda: build(Edit, image_guidance=value), "image guidance")


@pytest.mark.parametrize("field, value, needles", [
    ("seed", MAX_SEED + 1, ("seed", str(MAX_SEED + 1))),
    ("seed", True, ("seed", "not true")),
    ("seed", "12", ("seed", "the text '12'")),
    ("seed", 1.5, ("seed",)),
    ("seed", NAN, ("seed", "NaN")),
    ("steps", 0, ("steps", "1 to 200")),
    ("steps", 201, ("steps",)),
    ("steps", "4", ("steps", "the text '4'")),
    ("steps", 2.5, ("steps", "whole number")),
    ("steps", INF, ("steps", "infinity")),
    ("steps", False, ("steps", "not false")),
    ("width", 8, ("width", "16 to 8192")),
    ("height", 10**40, ("height", "far too large")),
    ("width", "512", ("width",)),
    ("guidance", "abc", ("guidance", "the text 'abc'")),
    ("guidance", [7], ("guidance", "a list")),
    ("prompt", 3, ("prompt", "text")),
    ("negative_prompt", None, ("negative prompt",)),
    ("scheduler", 5, ("scheduler",)),
    ("model", "builtin", ("model",)),
])
def test_common_fields_are_checked(field, value, needles):
    error = refused(lambda: Generate(**{field: value}), *needles)
    assert isinstance(error, BadField) and error.field == field


@pytest.mark.parametrize("kind", [Vary, Inpaint])
@pytest.mark.parametrize("value", [0.0, 1.01, INF, NAN, "0.5", None])
def test_strength_must_be_above_zero_and_at_most_one(kind, value):
    refused(lambda: build(kind, strength=value), "strength", "above 0 and at most 1")


@pytest.mark.parametrize("options, needles", [
    (dict(grow=10**6), ("mask grow",)),
    (dict(grow=-257), ("mask grow", "-256 to 256")),
    (dict(grow=2.5), ("mask grow",)),
    (dict(feather=-1), ("mask feather",)),
    (dict(feather=INF), ("mask feather", "infinity")),
    (dict(feather="8"), ("mask feather",)),
    (dict(crop_padding=-4), ("crop padding",)),
    (dict(crop_padding=NAN), ("crop padding",)),
    (dict(match_colors="no"), ("colour matching", "true or false")),
])
def test_mask_options_are_checked(options, needles):
    refused(lambda: MaskOptions(**options), *needles)


@pytest.mark.parametrize("side", ["left", "top", "right", "bottom"])
@pytest.mark.parametrize("value", [-1, 8193, 10**12, 2.5, "16", True])
def test_outpaint_margins_are_whole_pixels_with_an_upper_bound(side, value):
    refused(lambda: Outpaint(image=IMAGE, **{"right": 16, side: value}), f"the {side} margin")


def test_outpaint_canvas_past_the_pixel_limit_is_refused():
    huge = Image.new("L", (8192, 8192))
    refused(lambda: Outpaint(image=huge, left=8192, right=8192, top=8192, bottom=8192), "extended canvas",
            "too large")


@pytest.mark.parametrize("scale", [INF, NAN, 11.0, -11.0, "0.8", None])
def test_lora_scales_are_checked(scale):
    refused(lambda: LoraRef("style.safetensors", scale), "LoRA scale")


@pytest.mark.parametrize("source", ["", "   ", None, 3])
def test_model_and_lora_sources_are_named(source):
    refused(lambda: ModelRef(source), "model")
    refused(lambda: LoraRef(source), "LoRA")


def test_model_loras_must_be_loras():
    refused(lambda: ModelRef("m", loras="x"), "LoRA list")
    refused(lambda: ModelRef("m", loras=("x",)), "LoRA list")
    ref = ModelRef("m", loras=[LoraRef("a.safetensors")])  # a list is kept as a tuple: jobs stay hashable
    assert ref.loras == (LoraRef("a.safetensors"),) and hash(Generate(model=ref, seed=1))


def test_a_prompt_that_is_not_valid_utf8_is_refused():
    # What argv gives for the bytes b"caf\xe9" in a UTF-8 locale (surrogateescape).
    prompt = b"caf\xe9 apple".decode("utf-8", "surrogateescape")
    refused(lambda: Generate(prompt=prompt), "prompt", "UTF-8")
    refused(lambda: Generate(negative_prompt="\ud800"), "negative prompt", "UTF-8")


def test_a_model_path_with_bytes_that_are_not_utf8_is_a_path():
    # POSIX file names may hold any bytes; Python keeps them as surrogates and gives them back.
    source = b"/models/caf\xe9.safetensors".decode("utf-8", "surrogateescape")
    assert Generate(model=ModelRef(source), seed=1).model.source == source


def test_valid_values_are_kept_and_normalised():
    job = Generate(seed=7, steps=4.0, guidance=7, width=512, height=512)
    assert job.steps == 4 and isinstance(job.steps, int)
    assert job.guidance == 7.0 and isinstance(job.guidance, float)
    assert 0 <= Generate(seed=-1).seed <= MAX_SEED  # -1: a fresh seed, recorded
    assert Generate(guidance=0.0, seed=1).guidance == 0.0
    assert build(Vary, strength=1).strength == 1.0
    assert Outpaint(image=IMAGE, left=8192).left == 8192
    assert MaskOptions(grow=-256, feather=250, crop_padding=None).crop_padding is None
    assert LoraRef("x", -10).scale == -10.0


def test_replace_checks_too():
    refused(lambda: Generate(seed=1).replace(guidance=NAN), "guidance")


# --------------------------------------------------------------------------- rebuilt from a recipe


def recipe(**changes):
    data = Generate(prompt="apple", seed=5, steps=4, guidance=1.0, model=ModelRef("m", (LoraRef("l", 0.5),))).to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize("changes, needles", [
    (dict(guidance="abc"), ("guidance", "the text 'abc'")),
    (dict(guidance=None, steps="4"), ("steps", "the text '4'")),
    (dict(seed=[1]), ("seed", "a list")),
    (dict(width=True), ("width", "not true")),
    (dict(prompt={"a": 1}), ("its prompt must be text, not a group of settings",)),
    (dict(model=3), ("model",)),
    (dict(model="builtin"), ("model",)),
    (dict(model={"loras": []}), ("model has no source",)),
    (dict(model={"source": 3}), ("model", "not 3")),
    (dict(model={"source": "m", "loras": "x"}), ("LoRAs",)),
    (dict(model={"source": "m", "loras": [{"scale": 1}]}), ("LoRA",)),
    (dict(model={"source": "m", "loras": [{"source": "l", "scale": "big"}]}), ("LoRA scale",)),
    (dict(model={"source": "m", "loras": [3]}), ("LoRA",)),
    (dict(model={"source": "m", "config": 3}), ("model config",)),
    (dict(kind=["generate"]), ("Unknown job kind",)),
    (dict(kind=None), ("Unknown job kind",)),
])
def test_a_bad_recipe_names_the_field(changes, needles):
    refused(lambda: Job.from_dict(recipe(**changes)), "recipe", *needles)


def test_a_bad_inpaint_recipe_names_its_mask_options():
    data = build(Inpaint).to_dict()
    refused(lambda: Job.from_dict({**data, "mask_options": "x"}, image=IMAGE, mask=MASK), "mask options")
    bad = {**data, "mask_options": {**data["mask_options"], "feather": "soft"}}
    refused(lambda: Job.from_dict(bad, image=IMAGE, mask=MASK), "mask feather", "the text 'soft'")
    later = {**data, "mask_options": {**data["mask_options"], "from_a_newer_version": 1}}
    assert Job.from_dict(later, image=IMAGE, mask=MASK) == Job.from_dict(data, image=IMAGE, mask=MASK)


def test_model_ref_from_dict_refuses_what_is_not_a_model():
    for data in (3, None, [], {"source": None}, {"source": "m", "loras": {"a": 1}}):
        refused(lambda: ModelRef.from_dict(data), "recipe is damaged")


def test_recipe_job_is_not_a_mapping():
    refused(lambda: Job.from_dict(["generate"]), "recipe is damaged")


def test_a_good_recipe_round_trips():
    for kind in (Generate, Vary, Inpaint, Outpaint, Edit):
        job = build(kind, seed=3, steps=2, guidance=0.5)
        assert Job.from_dict(job.to_dict(), image=IMAGE, mask=MASK) == job
        assert all(not isinstance(v, float) or math.isfinite(v) for v in job.to_dict().values())
