"""The tiny test models load through the real diffusers loading code and generate images."""

import pytest

SIZE = 64  # native size of every tiny model: UNet sample_size 32 x VAE scale factor 2
PROMPT = "a squirrel eating a burger"


def _run(pipe, seed=0, **kwargs):
    import torch

    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator("cpu").manual_seed(seed)
    return pipe(PROMPT, num_inference_steps=2, generator=generator, **kwargs).images[0]


def _init_image():
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))


def _mask():
    from PIL import Image, ImageDraw

    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    return mask


def _assert_image(image, size=(SIZE, SIZE)):
    from PIL import Image

    assert isinstance(image, Image.Image)
    assert image.size == size
    assert image.mode == "RGB"


def test_tokenizer_handles_any_prompt(tiny_sd):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_sd, subfolder="tokenizer")
    assert tokenizer.model_max_length == 77
    prompts = ["", "the cat", "Ünïcödé 🎨🔥 — «quotes», 日本語!!! (x:1.2) [y] {z}\n\ttab", "word " * 200]
    for prompt in prompts:
        ids = tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids
        assert len(ids) == 77
        assert ids[0] == tokenizer.bos_token_id and tokenizer.eos_token_id in ids
        assert all(0 <= i < 1000 for i in ids)  # fits the text encoders' vocab_size
    # Unknown characters fall back to bytes instead of <unk>, and decode back.
    assert tokenizer.decode(tokenizer("🎨 ok").input_ids, skip_special_tokens=True) == "🎨 ok"


@pytest.mark.parametrize(
    ("fixture", "class_name"),
    [
        ("tiny_sd", "StableDiffusionPipeline"),
        ("tiny_sd_inpaint", "StableDiffusionInpaintPipeline"),
        ("tiny_sd_pix2pix", "StableDiffusionInstructPix2PixPipeline"),
    ],
)
def test_sd_folder_loads_and_generates(request, fixture, class_name):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(request.getfixturevalue(fixture))
    assert type(pipe).__name__ == class_name
    assert pipe.vae_scale_factor == 2
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == SIZE
    kwargs = {}
    if fixture == "tiny_sd_inpaint":
        kwargs = {"image": _init_image(), "mask_image": _mask()}
    elif fixture == "tiny_sd_pix2pix":
        kwargs = {"image": _init_image()}
    _assert_image(_run(pipe, **kwargs))


def test_sdxl_folder_loads_and_generates(tiny_sdxl):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tiny_sdxl)
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    native = pipe.default_sample_size * pipe.vae_scale_factor
    assert native == SIZE
    _assert_image(_run(pipe), (native, native))


def test_single_file_matches_folder(tiny_sd, tiny_sd_single_file):
    import numpy as np
    import torch
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    folder_pipe = DiffusionPipeline.from_pretrained(tiny_sd)
    file_pipe = StableDiffusionPipeline.from_single_file(
        str(tiny_sd_single_file), config=str(tiny_sd), local_files_only=True
    )
    for name in ("unet", "vae", "text_encoder"):
        expected = dict(getattr(folder_pipe, name).named_parameters())
        got = dict(getattr(file_pipe, name).named_parameters())
        assert got.keys() == expected.keys(), name
        for key, value in expected.items():
            assert got[key].device.type == "cpu", f"{name}.{key} left on {got[key].device}"
            assert torch.equal(got[key], value), f"{name}.{key}"
    image = _run(file_pipe)
    _assert_image(image)
    assert np.array_equal(np.asarray(image), np.asarray(_run(folder_pipe)))


def test_lora_changes_the_output(tiny_sd, tiny_lora):
    import numpy as np
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tiny_sd)
    before = np.asarray(_run(pipe, output_type="np"))
    assert np.array_equal(before, np.asarray(_run(pipe, output_type="np")))  # deterministic

    pipe.load_lora_weights(str(tiny_lora))
    after = np.asarray(_run(pipe, output_type="np"))
    assert after.shape == before.shape
    assert np.abs(after - before).max() > 1e-3

    pipe.unload_lora_weights()
    assert np.allclose(np.asarray(_run(pipe, output_type="np")), before, atol=1e-5)
