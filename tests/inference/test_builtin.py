"""The built-in model: save/load (int8 as shipped), the three tasks, image to image, cancelling,
and every job kind through the engine, on a tiny random-weight model the tests build."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from inference import builtin, compositing
from inference.builtin import BuiltinModel, load_int8, rgba_to_tensor, tensor_to_rgba
from inference.builtin_sampler import latent_mask
from inference.engine import Engine
from inference.jobs import BadInput, Edit, Generate, Inpaint, LoraRef, MaskOptions, ModelRef, Outpaint, Vary
from inference.models import store


@pytest.fixture(scope="module")
def model(tiny_builtin):
    return BuiltinModel.load(tiny_builtin)


def emoji(size=32, colour=(230, 40, 40)):
    """A filled circle on transparency, like an emoji."""
    y, x = np.mgrid[0:size, 0:size]
    inside = (x - size / 2 + 0.5) ** 2 + (y - size / 2 + 0.5) ** 2 < (size * 0.4) ** 2
    image = np.zeros((size, size, 4), np.uint8)
    image[inside] = (*colour, 255)
    return image


def test_rgba_conversion_round_trips_and_premultiplies():
    image = emoji()
    image[0, 0] = (10, 200, 30, 0)  # a transparent pixel with a nominal colour
    x = rgba_to_tensor(image[None])
    assert x.shape == (1, 4, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert torch.all(x[0, :3, 0, 0] == -1), "transparent pixels have no colour once premultiplied"
    back = tensor_to_rgba(x)[0]
    assert np.array_equal(back[image[..., 3] == 255], image[image[..., 3] == 255])


def test_int8_export_is_smaller_and_loads_back_close_to_float(tmp_path):
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    import tiny_models

    fp32 = tiny_models.build_builtin(tmp_path / "fp32", int8=False)
    int8 = tiny_models.build_builtin(tmp_path / "int8", int8=True)
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*.safetensors"))  # noqa: E731
    assert size(int8) < 0.4 * size(fp32)
    a, b = BuiltinModel.load(fp32), BuiltinModel.load(int8)
    for name, weight in a.unet.state_dict().items():
        other = b.unet.state_dict()[name]
        assert torch.allclose(weight, other, atol=float(weight.abs().max()) / 100 + 1e-3), name
    out_a, _ = a.sample("red apple", seed=1)
    out_b, _ = b.sample("red apple", seed=1)
    assert np.abs(out_a.astype(int) - out_b.astype(int)).mean() < 6
    configs = "".join(p.read_text() for p in int8.rglob("*.json"))
    assert str(tmp_path) not in configs and "/root" not in configs and "site-packages" not in configs
    assert json.loads((int8 / builtin.CONFIG_NAME).read_text())["int8"] is True


def test_load_int8_dequantises_per_channel(tmp_path):
    from safetensors.torch import save_file

    from training.export import quantize_state_dict

    weight = torch.randn(8, 4, 3, 3) * torch.arange(1, 9).view(8, 1, 1, 1)
    save_file(quantize_state_dict({"w": weight, "b": torch.randn(8)}), tmp_path / "q.safetensors")
    back = load_int8(tmp_path / "q.safetensors")
    per_channel = (back["w"] - weight).abs().amax((1, 2, 3)) / weight.abs().amax((1, 2, 3))
    assert back["w"].dtype == torch.float32 and torch.all(per_channel <= 0.5 / 127 + 1e-6)


def test_each_task_gives_rgba_at_the_native_size_and_seeds_repeat(model):
    image, mask = emoji(), np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    for task in ("generate", "inpaint", "edit"):
        out, timings = model.sample("red apple", task, image=image, mask=mask, seed=5)
        again, _ = model.sample("red apple", task, image=image, mask=mask, seed=5)
        assert out.shape == (1, 32, 32, 4) and out.dtype == np.uint8, task
        assert np.array_equal(out, again), f"{task}: the same seed gives the same pixels"
        assert set(timings) == {"encode_s", "denoise_s", "decode_s"}
    # A random decoder draws mostly transparency: compare seeds on the final latents.
    finals = []
    for seed in (5, 6):
        model.sample("red apple", seed=seed, steps=1, callback=lambda i, n, x: finals.append(x.copy()))
    assert not np.array_equal(finals[0], finals[1])


def test_inpaint_keeps_the_latent_outside_the_mask(model):
    image, mask = emoji(), np.zeros((32, 32), np.uint8)
    mask[:16, :16] = 255
    cond = model.conditioning("inpaint", 1, image, mask)
    c = model.cfg.latent_channels
    small = latent_mask(mask, (4, 4))[0, 0]
    assert np.array_equal(cond[0, c], small) and small.sum() == 4
    seen = []
    model.sample("red apple", "inpaint", image=image, mask=mask, steps=2,
                 callback=lambda i, n, x: seen.append(x.copy()))
    source = model.encode(image[None])
    final = seen[-1] * small + source * (1 - small)  # what sample() decodes
    assert np.allclose((final - source)[..., small == 0], 0)


def test_strength_zero_gives_back_the_image_and_cancel_stops(model):
    image = emoji()
    out, _ = model.sample("", "generate", image=image, strength=0.0, steps=1)
    decoded = model.decode(model.encode(image[None]))
    assert np.abs(out.astype(int) - decoded.astype(int)).max() <= 2
    calls = []
    result, _ = model.sample("red apple", steps=4, cancelled=lambda: len(calls) >= 2,
                             callback=lambda i, n, x: calls.append(i))
    assert result is None and calls == [1, 2]


def test_text_encoder_puts_similar_words_close(model):
    tokens, pooled = model.text(["cat", "kitty", "car", ""])
    cos = torch.nn.functional.cosine_similarity
    assert cos(pooled[0], pooled[1], 0) > cos(pooled[0], pooled[2], 0)
    assert torch.all(pooled[3] == 0) and torch.all(tokens[3] == 0), "the empty prompt is the null condition"


# --------------------------------------------------------------------------- through the engine


@pytest.fixture(scope="module")
def engine():
    e = Engine(max_models=2)
    yield e
    e.unload()


def run(engine, job):
    progress = []
    image, resolved, timings, info = engine.run(1, job, progress.append, lambda: False)
    return image, resolved, timings, info, [p for p in progress if p.stage == "denoise"]


def common(model, **kw):
    return dict(prompt="red apple", model=ModelRef(str(model)), steps=2, seed=3, **kw)


def test_engine_generates_transparent_images_at_native_and_asked_sizes(engine, tiny_builtin):
    image, resolved, timings, info, progress = run(engine, Generate(**common(tiny_builtin)))
    assert image.size == (32, 32) and image.mode == "RGBA"
    assert info["pipeline"] == "QuickbrushBuiltin" and resolved.steps == 2
    assert resolved.scheduler == "FlowMatchEulerDiscreteScheduler"
    assert [p.step for p in progress] == [1, 2]
    image, *_ = run(engine, Generate(width=50, height=70, **common(tiny_builtin)))
    assert image.size == (50, 70)


def test_engine_inpaint_changes_only_the_masked_area(engine, tiny_builtin):
    y, x = np.mgrid[0:48, 0:64]
    photo = Image.fromarray(np.stack([x * 3, y * 4, 100 + 0 * x], -1).astype("uint8"))
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (20, 10, 40, 30))
    image, *_ = run(engine, Inpaint(image=photo, mask=mask, mask_options=MaskOptions(grow=0, feather=0),
                                    **common(tiny_builtin)))
    assert image.size == photo.size and image.mode == "RGB"
    before, after = np.asarray(photo), np.asarray(image)
    far = np.ones(photo.size[::-1], bool)
    far[10:30, 20:40] = False
    assert np.array_equal(before[far], after[far])


def test_engine_edit_and_vary(engine, tiny_builtin):
    source = Image.fromarray(emoji(40), "RGBA")
    edited, resolved, *_ = run(engine, Edit(image=source, **common(tiny_builtin)))
    assert edited.size == (40, 40)
    varied, *_ = run(engine, Vary(image=source.convert("RGB"), strength=0.5, **common(tiny_builtin)))
    assert varied.size == (40, 40) and varied.mode == "RGB"


def test_engine_hands_the_builtin_model_transparency_and_gives_it_back(engine, tiny_builtin):
    """A transparent emoji is edited, varied and inpainted as RGBA: flattened over grey, the model
    would see (and return) a grey square."""
    source = Image.fromarray(emoji(40), "RGBA")
    edited, *_ = run(engine, Edit(image=source, **common(tiny_builtin)))
    assert edited.mode == "RGBA" and edited.size == (40, 40)
    varied, *_ = run(engine, Vary(image=source, strength=0.5, **common(tiny_builtin)))
    assert varied.mode == "RGBA"
    mask = Image.new("L", source.size, 0)
    mask.paste(255, (8, 8, 24, 24))
    filled, *_ = run(engine, Inpaint(image=source, mask=mask, mask_options=MaskOptions(grow=0, feather=0),
                                     **common(tiny_builtin)))
    before, after = np.asarray(source), np.asarray(filled)
    assert filled.mode == "RGBA"
    outside = np.asarray(mask) == 0
    assert np.array_equal(before[outside], after[outside]), "outside the mask, colour and alpha unchanged"
    assert not np.array_equal(before[~outside], after[~outside])


def test_engine_inpaints_the_builtin_model_on_the_whole_object_at_its_size(engine, tiny_builtin, monkeypatch):
    """On a document larger than the model, a mask on part of a sticker is filled in a native
    window at 1:1 around the sticker, not a zoomed crop of the mask."""
    from inference.backends import builtin_backend

    seen = []
    real_run = builtin_backend.run

    def spy(loaded, task, call, *args, **kwargs):
        seen.append((task, call["image"].size, call["mask_image"].getbbox()))
        return real_run(loaded, task, call, *args, **kwargs)

    monkeypatch.setattr(builtin_backend, "run", spy)
    doc = Image.new("RGB", (128, 96), "white")
    doc.paste(Image.fromarray(emoji(32)[..., :3]), (40, 30), Image.fromarray(emoji(32)[..., 3]))
    mask = Image.new("L", doc.size, 0)
    mask.paste(255, (48, 50, 64, 60))  # the lower part of the sticker
    image, *_ = run(engine, Inpaint(image=doc, mask=mask, mask_options=MaskOptions(grow=0, feather=0),
                                    **common(tiny_builtin)))
    assert seen == [("inpaint", (32, 32), (8, 20, 24, 30))], "the sticker's own 32 px frame, mask inside"
    assert image.size == doc.size


def sticker_on_canvas(size=(160, 120), at=(60, 40), colour=(255, 255, 255)):
    """A red 32 px emoji applied to an opaque canvas (a new document is opaque white)."""
    doc = Image.new("RGB", size, colour)
    doc.paste(Image.fromarray(emoji(32)[..., :3]), at, Image.fromarray(emoji(32)[..., 3]))
    return doc


def far_from(shape, box, margin):
    """Pixels more than `margin` px outside `box`."""
    far = np.ones(shape, bool)
    left, top, right, bottom = box
    far[max(0, top - margin):bottom + margin, max(0, left - margin):right + margin] = False
    return far


@pytest.mark.parametrize("kind", [Edit, Vary])
def test_engine_edits_the_object_of_an_opaque_canvas_not_the_canvas(engine, tiny_builtin, monkeypatch, kind):
    """"make it green" on an apple applied to a white canvas: the model is shown the apple cut
    out on transparency at its own size, and its result replaces the apple, at the apple's
    place, over the untouched canvas (it used to be shown the whole white canvas, and spread a
    blob over all of it while the apple stayed red)."""
    from inference.backends import builtin_backend

    seen = []

    def recolour(loaded, task, call, *args, **kwargs):
        frame = call["image"]
        seen.append((task, frame.mode, frame.size, frame.getpixel((0, 0))))
        pixels = np.asarray(frame).copy()
        pixels[..., :3] = np.where(pixels[..., 3:] > 0, (40, 200, 60), 0)
        return Image.fromarray(pixels, "RGBA"), {}

    monkeypatch.setattr(builtin_backend, "run", recolour)
    doc = sticker_on_canvas()
    image, resolved, *_ = run(engine, kind(image=doc, **common(tiny_builtin)))
    assert [s[:3] for s in seen] == [("edit" if kind is Edit else "img2img", "RGBA", (32, 32))]
    assert seen[0][3][3] == 0, "the canvas around the object is transparent for the model"
    assert image.mode == "RGB" and image.size == doc.size
    before, after = np.asarray(doc).astype(int), np.asarray(image).astype(int)
    red = (before[..., 0] > 150) & (before[..., 1] < 100)
    assert not ((after[..., 0] > 150) & (after[..., 1] < 100)).any(), "nothing of the red object is left"
    assert (after[red][:, 1] > 150).mean() > 0.95, "the edited object lies where the old one was"
    far = far_from(red.shape, (60, 40, 92, 72), 4)
    assert np.array_equal(after[far], before[far]), "the canvas around the object is byte-identical"


def test_engine_edit_with_the_builtin_model_leaves_the_canvas_untouched(engine, tiny_builtin):
    doc = sticker_on_canvas(colour=(200, 220, 240))
    for job in (Edit(image=doc, **common(tiny_builtin)), Vary(image=doc, strength=0.6, **common(tiny_builtin))):
        image, *_ = run(engine, job)
        far = far_from((120, 160), (60, 40, 92, 72), 4)
        assert np.array_equal(np.asarray(image)[far], np.asarray(doc)[far]), job.kind


@pytest.mark.parametrize("kind, verb", [(Edit, "edit"), (Vary, "vary")])
@pytest.mark.parametrize("doc, words", [
    (Image.new("RGB", (96, 64), "white"), "Nothing to {verb}: the image is one plain colour"),
    (Image.new("RGBA", (96, 64), (0, 0, 0, 0)), "Nothing to {verb}: the image is fully transparent"),
    (Image.fromarray((np.random.default_rng(0).random((64, 96, 3)) * 255).astype("uint8")),
     "found no object to {verb}"),
])
def test_engine_says_plainly_when_there_is_no_object_for_the_builtin_model(engine, tiny_builtin, monkeypatch,
                                                                           kind, verb, doc, words):
    from inference.backends import builtin_backend

    monkeypatch.setattr(builtin_backend, "run", lambda *a, **k: pytest.fail("the model ran on no object"))
    with pytest.raises(BadInput, match=words.format(verb=verb)):
        run(engine, kind(image=doc, **common(tiny_builtin)))


def test_engine_outpaint_with_the_builtin_model_keeps_transparency(engine, tiny_builtin):
    """A transparent sticker outpainted stays a transparent sticker (it came back flattened
    over grey)."""
    source = Image.fromarray(emoji(32), "RGBA")
    job = Outpaint(image=source, right=16, top=8, **common(tiny_builtin))
    image, *_ = run(engine, job)
    assert image.mode == "RGBA" and image.size == (48, 40)
    _, mask = compositing.extend_canvas(source, 0, 8, 16, 0)
    alpha = np.asarray(compositing.prepare_mask(mask, job.mask_options.grow, job.mask_options.feather))
    canvas = np.zeros((40, 48, 4), np.uint8)
    canvas[8:40, 0:32] = emoji(32)
    assert (alpha == 0).sum() > 100
    assert np.array_equal(np.asarray(image)[alpha == 0], canvas[alpha == 0]), "colour and alpha kept"


def test_engine_refuses_loras_and_other_schedulers_clearly(engine, tiny_builtin, tiny_lora):
    with pytest.raises(BadInput, match="LoRA"):
        run(engine, Generate(prompt="x", model=ModelRef(str(tiny_builtin), loras=(LoraRef(str(tiny_lora)),))))
    with pytest.raises(BadInput, match="scheduler"):
        run(engine, Generate(scheduler="euler", **common(tiny_builtin)))


def test_builtin_is_found_listed_and_the_default(monkeypatch, tiny_builtin, tmp_path):
    monkeypatch.setenv("QUICKBRUSH_BUILTIN", str(tiny_builtin))
    monkeypatch.setenv("QUICKBRUSH_MODELS", str(tmp_path / "empty"))
    located = store.locate(store.BUILTIN)
    assert located.kind == "builtin" and located.path == str(tiny_builtin)
    listed = store.list_models(include_hub_cache=False)
    assert [(m.source, m.task) for m in listed] == [(store.BUILTIN, "all")]
    assert store.default_model() == store.BUILTIN


# --------------------------------------------------------------------------- the ONNX runtime (what ships)


def test_onnx_graphs_match_the_torch_model(tiny_builtin, model):
    from inference.builtin_onnx import OnnxBuiltin, has_onnx

    assert has_onnx(tiny_builtin)
    onnx_model = OnnxBuiltin(tiny_builtin, threads=1)
    tokens, pooled = onnx_model.text(["red apple", "kitty", ""])
    t_tokens, t_pooled = model.text(["red apple", "kitty", ""])
    assert np.allclose(tokens, t_tokens.numpy(), atol=1e-6) and np.allclose(pooled, t_pooled.numpy(), atol=1e-6)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, model.cfg.in_channels, 4, 4)).astype(np.float32)
    t = np.array([900.0, 100.0], np.float32)
    v = onnx_model.unet.run(None, {"x": x, "t": t, "tokens": tokens[:2], "pooled": pooled[:2]})[0]
    with torch.no_grad():
        v_torch = model.unet(torch.from_numpy(x), torch.from_numpy(t), t_tokens[:2], class_labels=t_pooled[:2]).sample
    assert np.allclose(v, v_torch.numpy(), atol=2e-3)  # int8 re-quantised, float32 kernels differ
    image = emoji()
    assert np.allclose(onnx_model.encode(image[None]), model.encode(image[None]), atol=1e-4)


def test_latent_mask_pools_as_torch_does():
    """Any painted pixel marks its cell, with the cell edges of torch's adaptive max pooling
    (what training draws its masks with), also at sizes that do not divide evenly."""
    mask = np.zeros((40, 56), np.uint8)
    mask[3:9, 20:31] = 255
    mask[37, 2] = 200
    for size in ((4, 4), (5, 7), (3, 6)):
        pooled = torch.nn.functional.adaptive_max_pool2d(torch.from_numpy(mask / 255.0)[None, None], size)
        assert np.array_equal(latent_mask(mask, size), (pooled > 0.5).float().numpy()), size


def test_onnx_sampler_tasks_seeds_and_cancel(tiny_builtin):
    from inference.builtin_onnx import OnnxBuiltin

    onnx_model = OnnxBuiltin(tiny_builtin, threads=1)
    image, mask = emoji(), np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    for task in ("generate", "inpaint", "edit"):
        finals = []
        for _ in range(2):
            out, _ = onnx_model.sample("red apple", task, image=image, mask=mask, seed=4,
                                       callback=lambda i, n, x: finals.append(x.copy()))
            assert out.shape == (1, 32, 32, 4) and out.dtype == np.uint8
        assert np.array_equal(finals[3], finals[7]), f"{task}: a seed repeats exactly"
    result, _ = onnx_model.sample("red apple", cancelled=lambda: True)
    assert result is None


# --------------------------------------------------------------------------- one sampler, one generator


@pytest.fixture(scope="module")
def onnx_model(tiny_builtin):
    from inference.builtin_onnx import OnnxBuiltin

    return OnnxBuiltin(tiny_builtin, threads=1)


def task_kwargs(kind):
    image, mask = emoji(), np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    return {"generate": {"task": "generate"},
            "inpaint": {"task": "inpaint", "image": image, "mask": mask},
            "edit": {"task": "edit", "image": image},
            "img2img": {"task": "generate", "image": image, "strength": 0.6}}[kind]


@pytest.mark.parametrize("kind", ["generate", "inpaint", "edit", "img2img"])
def test_both_runtimes_draw_the_same_picture_for_a_seed(model, onnx_model, kind):
    """A recipe's seed gives one picture whichever runtime runs it: the shipped ONNX graphs and
    the torch modules agree to float rounding (the int8 weights are re-quantised for ONNX, the
    kernels differ), and another seed gives another picture on both."""
    results = {}
    for name, runtime in (("onnx", onnx_model), ("torch", model)):
        for seed in (5, 6):
            latents = []
            out, _ = runtime.sample("red apple", **task_kwargs(kind), seed=seed,
                                    callback=lambda i, n, x, latents=latents: latents.append(x))
            results[name, seed] = out, latents[-1]
    for seed in (5, 6):
        (onnx_out, onnx_latents), (torch_out, torch_latents) = results["onnx", seed], results["torch", seed]
        assert np.abs(onnx_out.astype(int) - torch_out.astype(int)).max() <= 2, f"seed {seed}: pixels differ"
        assert np.allclose(onnx_latents, torch_latents, atol=2e-3)
    for name in ("onnx", "torch"):
        assert not np.array_equal(results[name, 5][0], results[name, 6][0]), f"{name}: seeds 5 and 6 look alike"
        assert np.abs(results[name, 5][1] - results[name, 6][1]).max() > 0.1


@pytest.mark.parametrize("runtime", ["onnx_model", "model"])
def test_a_seed_is_numpys_default_generator_and_repeats(request, runtime):
    """The starting noise of seed s is np.random.default_rng(s).standard_normal, as float32, in
    both runtimes; pinned to literal values, so a numpy release that redraws it (and so every
    saved recipe's picture) fails here first."""
    from inference.builtin_sampler import noise

    assert np.allclose(noise(0, (3,)), [0.12573022, -0.13210486, 0.64042265], atol=1e-7)
    m = request.getfixturevalue(runtime)
    seen = []
    velocity = m.velocity
    m.velocity = lambda x, *rest: seen.append(x.copy()) or velocity(x, *rest)
    try:
        first, _ = m.sample("red apple", seed=1234, steps=2)
        again, _ = m.sample("red apple", seed=1234, steps=2)
    finally:
        del m.velocity
    c = m.latent_channels
    expected = np.random.default_rng(1234).standard_normal((1, c, 4, 4)).astype(np.float32)
    assert np.array_equal(seen[0][:1, :c], expected) and np.array_equal(seen[0][1:, :c], expected)
    assert len(seen) == 4 and all(np.array_equal(a, b) for a, b in zip(seen[:2], seen[2:]))
    assert np.array_equal(first, again)


def test_the_shared_steps_are_flow_match_euler():
    """The sampler's loop is FlowMatchEulerDiscreteScheduler's (the scheduler the recipes name)
    at the times of sigma_schedule, with strength and shift: the same times, the same latents."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from inference.builtin import build_scheduler
    from inference.builtin_sampler import Sampler, noise, sigma_schedule

    start = np.random.default_rng(9).standard_normal((1, 2, 4, 4)).astype(np.float32)

    def field(x, t):  # any smooth velocity that depends on the latent and the time
        return np.tanh(x[:, :2]) * 0.7 - (t[:, None, None, None] / 1000) * x[:, 2:4]

    class Fake(Sampler):
        latent_channels, size, steps, shift = 2, 32, 4, 1.0

        def __init__(self, shift):
            self.shift, self.times = shift, []

        def guidance_for(self, steps):
            return 1.0

        def encode(self, rgba):
            return start

        def decode(self, latents):
            return latents

        def embed(self, prompts):
            return np.zeros((len(prompts), 16, 8), np.float32), np.zeros((len(prompts), 8), np.float32)

        def velocity(self, x, t, tokens, pooled):
            self.times.append(t[0])
            return field(x, t).astype(np.float32)

    image = np.zeros((32, 32, 4), np.uint8)
    for steps, strength, shift in ((4, 1.0, 1.0), (3, 0.6, 3.0), (1, 1.0, 2.0)):
        fake = Fake(shift)
        ours, _ = fake.sample("", image=image, steps=steps, strength=strength, seed=2)

        scheduler = build_scheduler()
        assert isinstance(scheduler, FlowMatchEulerDiscreteScheduler)
        scheduler.set_timesteps(sigmas=sigma_schedule(steps, strength, shift).tolist())
        x = torch.from_numpy(noise(2, (1, 2, 4, 4)))
        if strength < 1:
            x = (1 - strength) * torch.from_numpy(start) + strength * x
        cond = torch.zeros(1, 4, 4, 4)
        cond[:, 2] = 1
        for t in scheduler.timesteps:
            v = torch.from_numpy(field(torch.cat([x, cond], 1).numpy(), t.expand(1).numpy()).astype(np.float32))
            x = scheduler.step(v, t, x).prev_sample
        assert np.allclose(fake.times, scheduler.timesteps.numpy(), rtol=1e-6), (steps, strength, shift)
        assert np.allclose(ours, x.numpy(), atol=1e-5), (steps, strength, shift)


def test_the_shipped_runtime_does_not_import_diffusers(tiny_builtin):
    import subprocess
    import sys

    code = ("import sys; from inference.builtin_onnx import OnnxBuiltin; "
            f"OnnxBuiltin({str(tiny_builtin)!r}).sample('red apple'); "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.stdout.strip() == "[]"


def test_engine_uses_onnxruntime_for_the_shipped_layout_and_torch_otherwise(engine, tiny_builtin, tmp_path):
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    import tiny_models

    *_, info, _ = run(engine, Generate(**common(tiny_builtin)))
    assert info["runtime"] == "onnxruntime"
    torch_only = tiny_models.build_builtin(tmp_path / "torch-only", int8=False)
    *_, info, _ = run(engine, Generate(**common(torch_only)))
    assert info["runtime"] == "torch"


def test_sigma_schedule_shift_moves_steps_toward_noise_and_keeps_strength():
    from inference.builtin_onnx import sigma_schedule

    assert np.allclose(sigma_schedule(4), [1.0, 0.75, 0.5, 0.25])
    shifted = sigma_schedule(4, shift=3.0)
    assert shifted[0] == pytest.approx(1.0) and np.all(np.diff(shifted) < 0)
    assert np.all(shifted[1:] > sigma_schedule(4)[1:])  # more of the steps spent where it is noisy
    assert np.allclose(sigma_schedule(1, shift=3.0), [1.0])  # one step: nothing to move
    assert sigma_schedule(4, strength=0.6, shift=3.0)[0] == pytest.approx(0.6)  # image to image starts there


def test_both_runtimes_sample_at_the_configured_shift(tiny_builtin):
    """The shift in quickbrush_builtin.json reaches the UNet's times in ONNX and in torch alike."""
    from dataclasses import replace

    from inference.builtin_onnx import OnnxBuiltin, sigma_schedule

    onnx_model = OnnxBuiltin(tiny_builtin, threads=1)
    onnx_model.shift = 3.0
    run, seen = onnx_model.unet.run, []
    onnx_model.unet = type("Recorder", (), {"run": lambda self, names, feeds: seen.append(feeds["t"][0]) or run(names, feeds)})()
    onnx_model.sample("red apple", steps=4, guidance=1.0)
    expected = sigma_schedule(4, shift=3.0) * 1000
    assert np.allclose(seen, expected, rtol=1e-5)

    torch_model = BuiltinModel.load(tiny_builtin)
    torch_model.cfg = replace(torch_model.cfg, shift=3.0)
    times = []
    forward = torch_model.unet.forward
    torch_model.unet.forward = lambda x, t, *a, **k: times.append(float(t[0])) or forward(x, t, *a, **k)
    torch_model.sample("red apple", steps=4)  # with guidance: the tiny UNet cannot norm a batch of one at 1x1
    assert np.allclose(times, expected, rtol=1e-4)


def test_guidance_follows_the_step_count_in_both_runtimes_and_the_engine(engine, tiny_builtin, tmp_path):
    """guidance_by_steps in quickbrush_builtin.json: one step unguided, four guided at 3. An
    unguided step runs the UNet on a batch of one, a guided one on two (prompt and null)."""
    import shutil

    from inference.builtin_onnx import OnnxBuiltin

    folder = shutil.copytree(tiny_builtin, tmp_path / "by-steps")
    config = json.loads((folder / builtin.CONFIG_NAME).read_text())
    config["guidance_by_steps"] = {"1": 1.0, "4": 3.0}
    (folder / builtin.CONFIG_NAME).write_text(json.dumps(config))

    onnx_model = OnnxBuiltin(folder, threads=1)
    run_unet, batches = onnx_model.unet.run, []
    onnx_model.unet = type("Recorder", (), {
        "run": lambda self, names, feeds: batches.append(len(feeds["x"])) or run_unet(names, feeds)})()
    for steps in (1, 2, 3, 4, 8):
        onnx_model.sample("red apple", steps=steps)
    # 2 and 3 steps take the entry below them (1 step's); 8 takes 4's.
    assert batches == [1] + [1] * 2 + [1] * 3 + [2] * 4 + [2] * 8
    batches.clear()
    onnx_model.sample("red apple", steps=1, guidance=2.0)  # an explicit scale still wins
    assert batches == [2]

    torch_model = BuiltinModel.load(folder)
    assert torch_model.cfg.guidance_for(1) == 1.0 and torch_model.cfg.guidance_for(4) == 3.0
    assert json.loads(json.dumps(torch_model.cfg.to_json()))["guidance_by_steps"] == {"1": 1.0, "4": 3.0}

    _, resolved, *_ = run(engine, Generate(**{**common(folder), "steps": 1}))
    assert resolved.guidance == 1.0
    _, resolved, *_ = run(engine, Generate(**{**common(folder), "steps": 4}))
    assert resolved.guidance == 3.0
    _, resolved, *_ = run(engine, Generate(**{**common(folder), "steps": 4, "guidance": 1.5}))
    assert resolved.guidance == 1.5


@pytest.mark.parametrize("remove, words", [
    ("onnx/encoder.onnx", "its onnx files are missing"),
    ("text_encoder", "its text encoder files are missing"),
])
def test_an_incomplete_builtin_folder_says_what_it_lacks_in_one_line(engine, tiny_builtin, tmp_path, remove, words):
    import shutil

    folder = shutil.copytree(tiny_builtin, tmp_path / "builtin")
    target = folder / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(store.ModelMissing, match=words) as caught:
        run(engine, Generate(**common(folder)))
    assert "\n" not in caught.value.message and len(caught.value.message) < 200


def test_a_damaged_builtin_folder_says_so_in_one_line(engine, tiny_builtin, tmp_path):
    import shutil

    folder = shutil.copytree(tiny_builtin, tmp_path / "builtin")
    (folder / builtin.CONFIG_NAME).write_text('{"size": 32')
    with pytest.raises(store.ModelMissing, match="is damaged and could not be loaded") as caught:
        run(engine, Generate(**common(folder)))
    assert "Expecting" not in caught.value.message and "Expecting" in caught.value.details
