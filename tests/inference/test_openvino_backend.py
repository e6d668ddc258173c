"""Stable Diffusion on OpenVINO, on the tiny random-weight models of tests/conftest.py: every job
kind runs and gives torch's picture, the IR is converted once and reused without the torch
networks, LoRAs and models are keyed apart, and a killed conversion leaves nothing behind."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from inference.backends import openvino_backend as ov
from inference.engine import Engine
from inference.jobs import BadInput, Edit, Generate, Inpaint, LoraRef, ModelRef, Outpaint, Vary
from inference.models.store import locate

pytest.importorskip("openvino")


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _photo(size=(64, 64)) -> Image.Image:
    x = np.linspace(0, 255, size[0], dtype=np.uint8)
    rgb = np.stack([np.tile(x, (size[1], 1)), np.tile(x[::-1], (size[1], 1)), np.full((size[1], size[0]), 90, np.uint8)], -1)
    return Image.fromarray(rgb, "RGB")


def _mask(size=(64, 64)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, (16, 16, 48, 48))
    return mask


JOBS = {
    "tiny_sd": [lambda m: Generate(prompt="a cat", model=m, seed=3, steps=2),
                lambda m: Vary(prompt="a cat", model=m, seed=3, steps=2, image=_photo(), strength=0.5),
                lambda m: Inpaint(prompt="a cat", model=m, seed=3, steps=2, image=_photo(), mask=_mask()),
                lambda m: Outpaint(prompt="a cat", model=m, seed=3, steps=2, image=_photo(), right=16)],
    "tiny_sd_inpaint": [lambda m: Inpaint(prompt="a dog", model=m, seed=4, steps=2, image=_photo(), mask=_mask())],
    "tiny_sd_pix2pix": [lambda m: Edit(prompt="make it blue", model=m, seed=5, steps=2, image=_photo())],
    "tiny_sdxl": [lambda m: Generate(prompt="a cat", model=m, seed=6, steps=2)],
}


@pytest.mark.parametrize("fixture", list(JOBS))
def test_every_job_kind_gives_torchs_picture_on_openvino(request, fixture):
    """Same pipeline, same scheduler, same seed: only the networks' runtime differs, so the
    images agree to within float32 rounding (the tiny models are 64 px of noise-like colour)."""
    model = ModelRef(str(request.getfixturevalue(fixture)))
    engine = Engine()
    for make in JOBS[fixture]:
        job = make(model)
        torch_image, torch_job, _t, torch_info = engine.run(1, job.replace(runtime="torch"), lambda p: None,
                                                            lambda: False)
        ov_image, ov_job, timings, info = engine.run(2, job.replace(runtime="openvino", dtype="float32"),
                                                     lambda p: None, lambda: False)
        assert info["runtime"] == "openvino" and torch_info["runtime"] == "torch"
        assert info["path"] == "OpenVINO fp32"
        assert ov_job.runtime == "openvino" and ov_job.dtype == "float32"
        assert ov_image.size == torch_image.size
        difference = np.abs(_pixels(ov_image) - _pixels(torch_image))
        assert difference.max() <= 3, (job.kind, difference.max())
        assert {"encode", "denoise", "decode", "total"} <= set(timings)


def test_the_ir_is_converted_once_and_read_back_without_the_torch_networks(tiny_sd, monkeypatch):
    ref = ModelRef(str(tiny_sd))
    located = locate(ref.source)
    folder = ov.ir_folder(ov.fingerprint_of(located), ref)
    Engine().model(ref, runtime="openvino")  # converts, or finds the IR of an earlier test
    assert ov.cached(folder)
    meta = json.loads((folder / "meta.json").read_text())
    assert set(meta["networks"]) == {"text_encoder", "unet", "vae_encoder", "vae_decoder"}

    def no_conversion(*_a, **_k):
        raise AssertionError("the IR should have been reused")

    monkeypatch.setattr(ov, "convert", no_conversion)
    loaded, fresh = Engine().model(ref, runtime="openvino", dtype="float32")
    assert fresh and loaded.backend.name == "openvino"
    # Every heavy network is an OpenVINO module; the UNet's torch weights were never read.
    assert {m.kind for m in ov.ov_modules(loaded.pipe)} == {"unet", "text_encoder", "vae_encoder", "vae_decoder"}
    assert not any(True for _ in loaded.pipe.unet.parameters())


def test_models_and_loras_get_ir_folders_of_their_own(tiny_sd, tiny_lora):
    plain = ModelRef(str(tiny_sd))
    with_lora = ModelRef(str(tiny_sd), loras=(LoraRef(str(tiny_lora), 0.8),))
    stronger = ModelRef(str(tiny_sd), loras=(LoraRef(str(tiny_lora), 1.0),))
    sha = ov.fingerprint_of(locate(str(tiny_sd)))
    keys = {ov.ir_key(sha, ref) for ref in (plain, with_lora, stronger)}
    assert len(keys) == 3
    assert ov.ir_key("another model", plain) not in keys


def test_a_lora_is_fused_into_the_ir_and_gives_torchs_picture(tiny_sd, tiny_lora):
    ref = ModelRef(str(tiny_sd), loras=(LoraRef(str(tiny_lora), 0.8),))
    job = Generate(prompt="a cat", model=ref, seed=9, steps=2)
    engine = Engine()
    torch_image = engine.run(1, job.replace(runtime="torch"), lambda p: None, lambda: False)[0]
    ov_image = engine.run(2, job.replace(runtime="openvino", dtype="float32"), lambda p: None, lambda: False)[0]
    plain = engine.run(3, job.replace(runtime="openvino", dtype="float32", model=ModelRef(str(tiny_sd))),
                       lambda p: None, lambda: False)[0]
    assert np.abs(_pixels(ov_image) - _pixels(torch_image)).max() <= 3
    assert np.abs(_pixels(ov_image) - _pixels(plain)).max() > 3  # the LoRA is really in there


def test_a_conversion_that_fails_leaves_no_ir_behind(tiny_sd, monkeypatch, tmp_path):
    monkeypatch.setenv("QUICKBRUSH_CACHE_DIR", str(tmp_path / "cache"))
    import openvino

    real = openvino.save_model
    calls = []

    def full_disk(model, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # the text encoder is written, then the UNet hits a full disk
            raise OSError(28, "No space left on device")
        return real(model, path, *args, **kwargs)

    monkeypatch.setattr(openvino, "save_model", full_disk)
    ref = ModelRef(str(tiny_sd))
    with pytest.raises(OSError):
        Engine().model(ref, runtime="openvino")
    folder = ov.ir_folder(ov.fingerprint_of(locate(ref.source)), ref)
    assert not folder.exists() and not folder.with_name(folder.name + ".partial").exists()
    monkeypatch.setattr(openvino, "save_model", real)
    loaded, _ = Engine().model(ref, runtime="openvino")  # and the next try converts cleanly
    assert ov.cached(folder)


def test_a_damaged_ir_folder_is_converted_again(tiny_sd, monkeypatch, tmp_path):
    monkeypatch.setenv("QUICKBRUSH_CACHE_DIR", str(tmp_path / "cache"))
    ref = ModelRef(str(tiny_sd))
    Engine().model(ref, runtime="openvino")
    folder = ov.ir_folder(ov.fingerprint_of(locate(ref.source)), ref)
    (folder / "meta.json").write_text("{not json")
    assert not ov.cached(folder)
    Engine().model(ref, runtime="openvino")
    assert ov.cached(folder)


def test_openvino_refuses_a_gpu_and_an_unknown_precision():
    backend = ov.BACKEND
    with pytest.raises(BadInput, match="CPU"):
        backend.placement("cuda", None)
    with pytest.raises(BadInput, match="float32, bfloat16 or int8"):
        backend.placement("cpu", "float16")
    assert backend.placement(None, "fp32") == ("cpu", "float32")
    assert backend.placement("cpu", "int8") == ("cpu", "int8")


def test_asking_for_openvino_where_it_is_missing_says_so(tiny_sd, monkeypatch):
    monkeypatch.setattr(ov, "available", lambda: False)
    with pytest.raises(BadInput, match="OpenVINO is not installed"):
        Engine().run(1, Generate(prompt="x", model=ModelRef(str(tiny_sd)), runtime="openvino"), lambda p: None,
                     lambda: False)
    # Automatic then means torch, without a probe.
    image, job, _t, info = Engine().run(1, Generate(prompt="x", model=ModelRef(str(tiny_sd)), steps=1),
                                        lambda p: None, lambda: False)
    assert info["runtime"] == "torch" and image.size == (64, 64)


def test_a_copied_model_folder_reuses_the_conversion(tiny_sd, tmp_path):
    """The IR is keyed by what the model is (its fingerprint), not where it lies."""
    copy = shutil.copytree(tiny_sd, tmp_path / "renamed copy")
    a = ov.ir_folder(ov.fingerprint_of(locate(str(tiny_sd))), ModelRef("x"))
    b = ov.ir_folder(ov.fingerprint_of(locate(str(copy))), ModelRef("x"))
    assert a == b


def test_image_sides_divide_by_what_the_traced_unet_can_take(tiny_sd):
    """SD's UNet downsamples three times: on OpenVINO its latents must divide by 8 (64 px); the
    engine rounds crops and sizes to the backend's multiple, so an odd crop never reaches it."""
    assert ov.size_multiple({"block_out_channels": (320, 640, 1280, 1280)}, 8) == 64
    assert ov.size_multiple({"block_out_channels": (320, 640, 1280)}, 8) == 32
    loaded, _ = Engine().model(ModelRef(str(tiny_sd)), runtime="openvino", dtype="float32")
    assert loaded.backend.capabilities(loaded).multiple == 8  # the tiny model: 2 x 2, at least 8
    inpaint = Inpaint(prompt="a cat", model=ModelRef(str(tiny_sd)), seed=3, steps=1, image=_photo((72, 56)),
                      mask=_mask((72, 56)), runtime="openvino", dtype="float32")
    image = Engine().run(1, inpaint, lambda p: None, lambda: False)[0]
    assert image.size == (72, 56)
