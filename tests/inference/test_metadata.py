"""The recipe in every saved PNG: exact JSON round trips, A1111 `parameters`, atomic saves."""

from __future__ import annotations

import errno
import json
import os
import signal

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from watchdog import watchdog

from inference import metadata
from inference.jobs import BadInput, Edit, Generate, Inpaint, JobError, LoraRef, MaskOptions, ModelRef, Outpaint, Vary
from inference.metadata import (
    SaveError,
    format_parameters,
    job_from_recipe,
    parse_parameters,
    read_recipe,
    recipe_pnginfo,
    save_png,
)

SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"


def noise(size=(48, 32), mode="RGB", seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = len(mode)
    data = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(data[..., 0] if channels == 1 else data, mode)


IMAGE = noise()
MASK = noise(mode="L", seed=1)


def all_jobs():
    lora_model = ModelRef(
        "/models/dreamshaper_8.safetensors",
        loras=(LoraRef("latent-consistency/lcm-lora-sdv1-5", 0.8), LoraRef("/loras/ink, style.safetensors", 1.0)),
        config="runwayml/stable-diffusion-v1-5",
        preset="lcm-lora",
        sha256=SHA,
    )
    return {
        "generate": Generate(
            prompt="a red fox in snow",
            negative_prompt="blurry",
            model=ModelRef("stabilityai/sd-turbo", sha256=SHA),
            seed=123,
            steps=4,
            guidance=0.0,
            width=512,
            height=512,
            scheduler="euler_a",
            device="cpu",
            dtype="float32",
        ),
        "generate-defaults": Generate(prompt="just a prompt", seed=7),
        "vary": Vary(
            image=IMAGE, prompt="oil painting", seed=9, steps=6, guidance=1.5, strength=0.35, scheduler="lcm",
            model=lora_model,
        ),
        "inpaint": Inpaint(
            image=IMAGE,
            mask=MASK,
            prompt="a window, open: at night",
            seed=MAX_SEED_MINUS,
            steps=8,
            strength=0.9,
            scheduler="dpmpp_2m_karras",
            mask_options=MaskOptions(grow=-3, feather=12, crop_padding=None, match_colors=False),
        ),
        "outpaint": Outpaint(
            image=IMAGE,
            prompt="more beach",
            seed=5,
            left=16,
            top=0,
            right=32,
            bottom=8,
            mask_options=MaskOptions(grow=2, feather=24, crop_padding=64, match_colors=True),
            scheduler="tcd",
        ),
        "edit": Edit(
            image=IMAGE,
            prompt="make it snowy",
            negative_prompt="people",
            model=ModelRef("timbrooks/instruct-pix2pix"),
            seed=42,
            steps=10,
            guidance=7.0,
            image_guidance=1.8,
            scheduler="EulerAncestralDiscreteScheduler",
        ),
    }


MAX_SEED_MINUS = 2**32 - 2


@pytest.mark.parametrize("name", list(all_jobs()))
def test_round_trip_recreates_the_exact_job(tmp_path, name):
    job = all_jobs()[name]
    out = noise(seed=3)
    timings = {"load": 0.5, "denoise": 1.25}
    model_info = {"backend": "diffusers", "device": "cpu"}
    path = save_png(tmp_path / "out.png", out, job, timings=timings, model_info=model_info, inputs={"image": "abc"})
    assert path == tmp_path / "out.png"
    assert os.listdir(tmp_path) == ["out.png"]

    recipe = read_recipe(path)
    assert recipe["format"] == 1
    assert recipe["job"] == json.loads(json.dumps(job.to_dict()))
    assert recipe["timings"] == timings
    assert recipe["model_info"] == model_info
    assert recipe["inputs"] == {"image": "abc"}
    rebuilt = job_from_recipe(recipe, image=IMAGE, mask=MASK)
    assert rebuilt == job
    assert type(rebuilt) is type(job)
    assert rebuilt.to_dict() == job.to_dict()

    # The pixels are what was given, and reading the recipe from an open image works too.
    with Image.open(path) as reopened:
        assert np.array_equal(np.asarray(reopened), np.asarray(out))
        assert read_recipe(reopened) == recipe


@pytest.mark.parametrize("name", list(all_jobs()))
def test_parameters_chunk_reads_back(tmp_path, name):
    job = all_jobs()[name]
    out = noise(size=(40, 24), seed=4)
    path = save_png(tmp_path / "out.png", out, job)
    with Image.open(path) as im:
        text = im.text["parameters"]
    parsed = parse_parameters(text)
    assert parsed["prompt"] == job.prompt
    assert parsed["negative_prompt"] == job.negative_prompt
    assert ("Negative prompt:" in text) == bool(job.negative_prompt)
    assert parsed["Seed"] == job.seed
    assert parsed["Size"] == "40x24"  # the saved image's size
    assert parsed.get("Steps") == job.steps
    assert parsed.get("CFG scale") == job.guidance
    assert parsed["Version"].startswith("quickbrush ")
    assert text.splitlines()[-1].startswith("Steps: " if job.steps else "")


def test_parameters_line_in_a1111_order_and_names():
    job = all_jobs()["generate"]
    text = format_parameters(job, size=(512, 512))
    lines = text.split("\n")
    assert lines[0] == "a red fox in snow"
    assert lines[1] == "Negative prompt: blurry"
    version = metadata.quickbrush_version()
    assert lines[2] == (
        "Steps: 4, Sampler: Euler a, CFG scale: 0.0, Seed: 123, Size: 512x512, "
        f"Model hash: {SHA[:10]}, Model: sd-turbo, Version: quickbrush {version}"
    )


def test_kind_specific_parameters():
    jobs = all_jobs()
    edit = parse_parameters(format_parameters(jobs["edit"]))
    assert edit["Image CFG scale"] == 1.8
    assert edit["Sampler"] == "Euler a"
    assert edit["Size"] == f"{IMAGE.width}x{IMAGE.height}"  # from the input when no size is known
    assert "Denoising strength" not in edit

    vary = parse_parameters(format_parameters(jobs["vary"], model_info={"lora_hashes": {"latent-consistency/lcm-lora-sdv1-5": "0123456789abcdef"}}))
    assert vary["Denoising strength"] == 0.35
    assert vary["Sampler"] == "LCM"
    assert vary["Model"] == "dreamshaper_8"
    assert vary["Lora hashes"] == "lcm-lora-sdv1-5: 0123456789ab"
    assert vary["LoRAs"] == "lcm-lora-sdv1-5: 0.8, ink, style: 1.0"

    inpaint = parse_parameters(format_parameters(jobs["inpaint"]))
    assert inpaint["Denoising strength"] == 0.9
    assert inpaint["Mask blur"] == 12
    assert inpaint["Sampler"] == "DPM++ 2M"
    assert inpaint["Schedule type"] == "Karras"

    outpaint = parse_parameters(format_parameters(jobs["outpaint"]))
    assert outpaint["Sampler"] == "TCD"
    assert "Denoising strength" not in outpaint

    defaults = format_parameters(jobs["generate-defaults"])
    assert "Steps" not in defaults and "Sampler" not in defaults and "CFG scale" not in defaults
    assert parse_parameters(defaults)["Seed"] == 7


@pytest.mark.parametrize(
    "ours, sampler",
    [
        ("euler", "Euler"),
        ("EulerDiscreteScheduler", "Euler"),
        ("euler_a", "Euler a"),
        ("EulerAncestralDiscreteScheduler", "Euler a"),
        ("lcm", "LCM"),
        ("LCMScheduler", "LCM"),
        ("tcd", "TCD"),
        ("dpmpp_2m", "DPM++ 2M"),
        ("ddim", "DDIM"),
        ("my_custom_thing", "my_custom_thing"),
    ],
)
def test_sampler_names(ours, sampler):
    assert metadata.sampler_name(ours)[0] == sampler


def test_trailing_schedulers_map_both_ways():
    assert metadata.sampler_name("euler_trailing") == ("Euler", "SGM Uniform")
    assert metadata.scheduler_from_sampler("Euler", "SGM Uniform") == "euler_trailing"
    assert metadata.scheduler_from_sampler("Euler", "Automatic") == "euler"
    assert metadata.scheduler_from_sampler("DPM++ 2M Karras") == "dpmpp_2m_karras"
    assert metadata.scheduler_from_sampler("DPM++ 2M", "Karras") == "dpmpp_2m_karras"
    assert metadata.scheduler_from_sampler("Restart") is None


@pytest.mark.parametrize(
    "prompt, negative",
    [
        ("line one\nline two, with commas: and colons", "bad, ugly: hands\nsecond negative line"),
        ("Ünïcödé 猫 🦊, «quotes» \"double\"", "négatif"),
        ("Steps: 1, Seed: 2, Size: 3x3", ""),  # a prompt that looks like a parameters line
        ("", "only a negative"),
        ("", ""),
    ],
)
def test_awkward_prompts_survive(tmp_path, prompt, negative):
    job = Generate(prompt=prompt, negative_prompt=negative, seed=1, steps=2, guidance=1.0, scheduler="euler")
    path = save_png(tmp_path / "p.png", IMAGE, job)
    assert job_from_recipe(read_recipe(path)) == job
    with Image.open(path) as im:
        parsed = parse_parameters(im.text["parameters"])
    assert parsed["prompt"] == prompt
    assert parsed["negative_prompt"] == negative
    assert parsed["Seed"] == 1 and parsed["Steps"] == 2 and parsed["CFG scale"] == 1.0


def test_quoted_values_round_trip():
    job = Generate(prompt="x", model=ModelRef("/models/odd, name: v2.safetensors"), seed=3)
    text = format_parameters(job)
    assert 'Model: "odd, name: v2"' in text
    assert parse_parameters(text)["Model"] == "odd, name: v2"


def test_parse_real_a1111_text():
    text = (
        "masterpiece, best quality, (a cat:1.2) sitting on a windowsill,\n"
        "golden hour <lora:add_detail:0.6>\n"
        "Negative prompt: lowres, bad anatomy, (worst quality:1.4)\n"
        "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3863522452, "
        "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, VAE hash: 735e4c3a44, "
        "VAE: vae-ft-mse-840000-ema-pruned.safetensors, Denoising strength: 0.45, Clip skip: 2, "
        'Hires upscale: 2, Hires upscaler: Latent, Lora hashes: "add_detail: 7c6bad76eb54", '
        'TI hashes: "EasyNegative: c74b4e810b03, bad_prompt: f9dbc9a5ab4c", Version: v1.10.1'
    )
    parsed = parse_parameters(text)
    assert parsed["prompt"] == (
        "masterpiece, best quality, (a cat:1.2) sitting on a windowsill,\ngolden hour <lora:add_detail:0.6>"
    )
    assert parsed["negative_prompt"] == "lowres, bad anatomy, (worst quality:1.4)"
    assert parsed["Steps"] == 25
    assert parsed["Sampler"] == "DPM++ 2M"
    assert parsed["Schedule type"] == "Karras"
    assert parsed["CFG scale"] == 7
    assert parsed["Seed"] == 3863522452
    assert parsed["Size"] == "512x768"
    assert parsed["Model hash"] == "6ce0161689"
    assert parsed["Model"] == "v1-5-pruned-emaonly"
    assert parsed["Denoising strength"] == 0.45
    assert parsed["Clip skip"] == 2
    assert parsed["Hires upscale"] == 2
    assert parsed["Lora hashes"] == "add_detail: 7c6bad76eb54"
    assert parsed["TI hashes"] == "EasyNegative: c74b4e810b03, bad_prompt: f9dbc9a5ab4c"
    assert parsed["Version"] == "v1.10.1"


def test_parse_without_negative_or_parameters():
    parsed = parse_parameters("a lighthouse\r\nSteps: 20, Sampler: Euler, CFG scale: 7.5, Seed: 1, Size: 64x64")
    assert parsed["prompt"] == "a lighthouse"
    assert parsed["negative_prompt"] == ""
    assert parsed["CFG scale"] == 7.5
    only_prompt = parse_parameters("just a prompt, with: one colon")
    assert only_prompt == {"prompt": "just a prompt, with: one colon", "negative_prompt": ""}
    # A hash made only of digits stays a string.
    assert parse_parameters("p\nSteps: 1, Seed: 2, Model hash: 1234567890")["Model hash"] == "1234567890"


def write_foreign_png(path, text: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    IMAGE.save(path, pnginfo=info)


def test_a1111_only_image_gives_a_best_effort_recipe(tmp_path):
    path = tmp_path / "a1111.png"
    write_foreign_png(
        path,
        "a castle\nNegative prompt: fog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 99, Size: 512x768, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1",
    )
    recipe = read_recipe(path)
    assert recipe["source"] == "parameters"
    assert recipe["parameters"]["Model hash"] == "6ce0161689"
    job = job_from_recipe(recipe)
    assert job == Generate(
        prompt="a castle",
        negative_prompt="fog",
        steps=20,
        guidance=7.0,
        seed=99,
        width=512,
        height=768,
        scheduler="euler_a",
        model=ModelRef("v1-5-pruned-emaonly"),
    )


def test_a1111_img2img_becomes_vary(tmp_path):
    path = tmp_path / "img2img.png"
    write_foreign_png(
        path, "a castle\nSteps: 30, Sampler: Restart, CFG scale: 5.5, Seed: 4, Size: 64x64, Denoising strength: 0.4"
    )
    recipe = read_recipe(path)
    assert recipe["job"]["kind"] == "vary"
    job = job_from_recipe(recipe, image=IMAGE)
    assert isinstance(job, Vary)
    assert job.strength == 0.4 and job.steps == 30 and job.guidance == 5.5 and job.seed == 4
    assert job.scheduler is None  # a sampler we cannot run falls back to the model's own


def test_image_from_our_own_format_via_parameters_when_json_damaged(tmp_path):
    job = all_jobs()["generate"]
    info = recipe_pnginfo(job, size=IMAGE.size)
    damaged = PngImagePlugin.PngInfo()
    for chunk_type, data, *_ in info.chunks:
        if data.startswith(b"quickbrush"):
            data = data[:-5]  # cut the JSON short
        damaged.add(chunk_type, data)
    path = tmp_path / "damaged.png"
    IMAGE.save(path, pnginfo=damaged)
    recipe = read_recipe(path)
    assert "damaged" in recipe["warning"]
    assert recipe["job"]["prompt"] == job.prompt and recipe["job"]["seed"] == job.seed


def test_png_without_recipe_is_none(tmp_path):
    path = tmp_path / "plain.png"
    IMAGE.save(path)
    assert read_recipe(path) is None
    assert read_recipe(IMAGE) is None


# --------------------------------------------------------------------------- atomic saving


@pytest.fixture
def previous_file(tmp_path):
    path = tmp_path / "keep.png"
    save_png(path, noise(seed=10), all_jobs()["generate"])
    return path, path.read_bytes()


def test_failed_image_write_leaves_previous_file(tmp_path, previous_file, monkeypatch):
    path, before = previous_file
    image = noise(seed=11)

    def full_disk(*args, **kwargs):
        fp = args[0]
        fp.write(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(image, "save", full_disk)
    with pytest.raises(SaveError) as caught:
        save_png(path, image, all_jobs()["vary"])
    assert "disk is full" in caught.value.message
    assert caught.value.message == "Could not save keep.png: the disk is full."
    assert isinstance(caught.value, JobError)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.png"]


def test_failed_replace_leaves_previous_file(tmp_path, previous_file, monkeypatch):
    path, before = previous_file

    def failing_replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(SaveError, match="disk is full"):
        save_png(path, noise(seed=12), all_jobs()["generate"])
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.png"]


def test_permission_denied_message(tmp_path, previous_file, monkeypatch):
    path, before = previous_file

    def denied(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(SaveError, match="Could not save keep.png: permission denied"):
        save_png(path, noise(seed=12), all_jobs()["generate"])
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.png"]


def test_missing_folder_message(tmp_path):
    with pytest.raises(SaveError, match="folder does not exist"):
        save_png(tmp_path / "nope" / "x.png", IMAGE, all_jobs()["generate"])


def test_save_replaces_an_existing_file_and_keeps_its_permissions(tmp_path, previous_file):
    path, before = previous_file
    os.chmod(path, 0o640)
    save_png(path, noise(seed=13), all_jobs()["edit"])
    assert path.read_bytes() != before
    assert (os.stat(path).st_mode & 0o777) == 0o640
    assert job_from_recipe(read_recipe(path), image=IMAGE) == all_jobs()["edit"]
    assert os.listdir(tmp_path) == ["keep.png"]


def test_save_converts_modes_png_cannot_hold(tmp_path):
    cmyk = noise(seed=14).convert("CMYK")
    path = save_png(tmp_path / "c.png", cmyk, all_jobs()["generate"])
    with Image.open(path) as im:
        assert im.mode == "RGB"


# --------------------------------------------------------------------------- damaged files


def test_truncated_png_is_bad_input(tmp_path):
    good = save_png(tmp_path / "good.png", noise(size=(64, 64), seed=15), all_jobs()["generate"])
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 13, 60):
        bad = tmp_path / f"cut{cut}.png"
        bad.write_bytes(data[:cut])
        with pytest.raises(BadInput) as caught:
            read_recipe(bad)
        assert bad.name in caught.value.message
        assert "damaged" in caught.value.message


def test_random_bytes_are_bad_input(tmp_path):
    bad = tmp_path / "noise.png"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(BadInput, match="noise.png is not an image Quickbrush can read"):
        read_recipe(bad)


def test_empty_and_missing_files_are_bad_input(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(BadInput, match="empty.png is empty"):
        read_recipe(empty)
    with pytest.raises(BadInput, match="does not exist"):
        read_recipe(tmp_path / "missing.png")


# --------------------------------------------------------------------------- job_from_recipe


def test_job_from_recipe_rejects_other_formats():
    job = all_jobs()["generate"]
    with pytest.raises(BadInput, match="newer Quickbrush"):
        job_from_recipe({"format": 2, "job": job.to_dict()})
    with pytest.raises(BadInput, match="not a Quickbrush recipe"):
        job_from_recipe({"job": job.to_dict()})
    with pytest.raises(BadInput, match="not a Quickbrush recipe"):
        job_from_recipe({"format": "1", "job": job.to_dict()})
    with pytest.raises(BadInput, match="unsupported format"):
        job_from_recipe({"format": 0, "job": job.to_dict()})
    with pytest.raises(BadInput, match="damaged"):
        job_from_recipe({"format": 1, "job": {"kind": "generate", "model": {"nope": 1}}})
    with pytest.raises(BadInput, match="Unknown job kind"):
        job_from_recipe({"format": 1, "job": {"kind": "teleport"}})
    with pytest.raises(BadInput, match="needs an image"):
        job_from_recipe({"format": 1, "job": all_jobs()["vary"].to_dict()})


def test_non_finite_timings_are_written_as_null(tmp_path):
    path = save_png(tmp_path / "t.png", IMAGE, all_jobs()["generate"], timings={"total": float("nan"), "load": 1.0})
    with Image.open(path) as im:
        raw = im.text["quickbrush"]
    assert json.loads(raw)["timings"] == {"total": None, "load": 1.0}
    assert "NaN" not in raw


# --------------------------------------------------------------------------- bad input


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM")
def test_a_long_one_line_parameters_text_parses_in_one_pass():
    # A1111's pattern in findall took 5 s on 40,000 characters of one line, quadratically more.
    pairs = "Steps: 4, Sampler: Euler a, Seed: 7"
    texts = {
        "letters": "x" * 200_000,
        "words": "a b-c/d " * 25_000,
        "unclosed quotes": 'Key: "x, ' * 25_000,
        "backslashes": 'Key: "' + "\\" * 200_000,
    }
    with watchdog("parsing a long one-line parameters text", 30):
        for name, line in texts.items():
            parsed = parse_parameters(f"a prompt\n{line}")
            assert parsed["prompt"].startswith("a prompt"), name
            tail = parse_parameters(f"a prompt\n{line[:100_000]}, {pairs}")
            assert (tail["Steps"], tail["Sampler"], tail["Seed"]) == (4, "Euler a", 7), name


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM")
def test_a_huge_parameters_chunk_is_refused_not_parsed(tmp_path):
    path = tmp_path / "huge.png"
    write_foreign_png(path, "a prompt\n" + "Steps: 4 " * 3_500_000)  # 31 MB on one line
    with watchdog("refusing a 31 MB parameters chunk", 60):
        with pytest.raises(BadInput, match="too long to read"):
            read_recipe(path)
    with pytest.raises(BadInput, match="too long"):
        parse_parameters("x" * (metadata.MAX_PARAMETERS_CHARS + 1))


@pytest.mark.parametrize("cfg", ["inf", "-inf", "nan", "1e999", "-3", "150"])
def test_a1111_guidance_that_no_job_takes_falls_back_to_the_default(tmp_path, cfg):
    path = tmp_path / "a1111.png"
    write_foreign_png(path, f"a castle\nSteps: 20, CFG scale: {cfg}, Seed: 99, Size: 512x768")
    job = job_from_recipe(read_recipe(path))
    assert job.guidance is None and job.steps == 20 and job.seed == 99


def test_a1111_values_too_long_for_numbers_stay_text():
    digits = "9" * 5000  # past Python's limit for int(str)
    parsed = parse_parameters(f"p\nSteps: {digits}, Seed: {digits}, Size: {digits}x{digits}")
    assert parsed["Steps"] == digits
    assert job_from_recipe(metadata._recipe_from_parameters(parsed)).steps is None


@pytest.mark.parametrize("job_changes, needle", [
    ({"guidance": "abc"}, "guidance"),
    ({"steps": "4"}, "steps"),
    ({"model": 3}, "model"),
    ({"model": {"source": "m", "loras": "x"}}, "LoRAs"),
    ({"model": {}}, "model has no source"),
    ({"mask_options": {"grow": 10**9}}, "mask grow"),
])
def test_a_recipe_with_wrong_types_is_bad_input_naming_the_field(tmp_path, job_changes, needle):
    data = {**all_jobs()["inpaint"].to_dict(), **job_changes}
    info = PngImagePlugin.PngInfo()
    info.add_itxt("quickbrush", json.dumps({"format": 1, "job": data}))
    path = tmp_path / "r.png"
    IMAGE.save(path, pnginfo=info)
    with pytest.raises(BadInput, match="This recipe is damaged") as caught:
        job_from_recipe(read_recipe(path), image=IMAGE, mask=MASK)
    assert needle in caught.value.message


def test_a_nan_in_a_recipe_never_becomes_null():
    job = all_jobs()["edit"].to_dict()
    for field in ("guidance", "image_guidance"):
        with pytest.raises(BadInput, match=field.replace("_", " ")):
            job_from_recipe({"format": 1, "job": {**job, field: float("nan")}}, image=IMAGE)


def test_recipe_job_kind_says_what_a_recipe_rebuilds():
    assert metadata.recipe_job_kind({"format": 1, "job": all_jobs()["inpaint"].to_dict()}) is Inpaint
    for bad in (None, [], {"format": 1}, {"format": 1, "job": {"kind": ["x"]}}, {"format": 1, "job": 3}):
        with pytest.raises(BadInput):
            metadata.recipe_job_kind(bad)


def test_paths_with_bytes_that_are_not_utf8_survive_the_recipe(tmp_path):
    # A POSIX file name can hold any bytes; the recipe must still name that exact file.
    source = b"/models/caf\xe9.safetensors".decode("utf-8", "surrogateescape")
    job = Generate(prompt="x", seed=1, model=ModelRef(source, loras=(LoraRef(source, 0.5),)))
    path = save_png(tmp_path / "p.png", IMAGE, job, inputs={"image": source})
    recipe = read_recipe(path)
    assert job_from_recipe(recipe) == job and recipe["inputs"] == {"image": source}
    assert parse_parameters(Image.open(path).text["parameters"])["Model"] == "caf?"
