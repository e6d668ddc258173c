"""The tiny decoder (TAESD's architecture, diffusers' AutoencoderTiny, random weights here): found
beside a model or in the models folder, used for step previews and for Fast decode, refused
when it does not fit the model; and Refine, which decodes a fast result's kept latents again
with the model's own decoder and lands it where the first one did."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from inference.backends import diffusers_backend as sd
from inference.engine import Engine
from inference.jobs import BadInput, Generate, Inpaint, ModelRef, Refine, Target


def _tiny_decoder(folder, upsamplings: int = 1, latent_channels: int = 4):
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    blocks = (8,) * (upsamplings + 1)
    AutoencoderTiny(encoder_block_out_channels=blocks, decoder_block_out_channels=blocks,
                    num_encoder_blocks=(1,) * len(blocks), num_decoder_blocks=(1,) * len(blocks),
                    latent_channels=latent_channels).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def with_tiny(tiny_sd, tmp_path_factory):
    """A copy of the tiny SD model with a tiny decoder of its own (its VAE scales by 2)."""
    folder = shutil.copytree(tiny_sd, tmp_path_factory.mktemp("fast") / "tiny-sd-with-taesd")
    _tiny_decoder(folder / sd.TINY_FOLDER)
    return folder


def _run(engine, job, progress=None):
    return engine.run(1, job, progress or (lambda p: None), lambda: False)


@pytest.mark.parametrize("runtime", ["torch", "openvino"])
def test_fast_decode_uses_the_tiny_decoder_and_keeps_the_latents(with_tiny, runtime):
    pytest.importorskip("openvino") if runtime == "openvino" else None
    engine = Engine()
    job = Generate(prompt="a cat", model=ModelRef(str(with_tiny)), seed=2, steps=2, runtime=runtime)
    full, full_job, _t, _i = _run(engine, job)
    assert engine.last_latents is None and full_job.decoder == "full"
    fast, fast_job, timings, _i = _run(engine, job.replace(decoder="tiny"))
    latents = engine.last_latents
    assert fast_job.decoder == "tiny" and fast.size == full.size == (64, 64)
    assert isinstance(latents, np.ndarray) and latents.shape == (1, 4, 32, 32)
    # Random weights: another decoder, another picture, from the same latents.
    assert np.abs(np.asarray(fast, float) - np.asarray(full, float)).mean() > 5
    refined, refined_job, timings, _i = _run(engine, Refine.of(fast_job, latents))
    assert isinstance(refined_job, Refine) and refined_job.to_dict()["decoder"] == "full"
    assert set(timings) >= {"decode", "total"} and "denoise" not in timings
    # Decoding the kept latents in full gives the image a full decode gave in the first place.
    assert np.abs(np.asarray(refined, np.int16) - np.asarray(full, np.int16)).max() <= 1


def test_refine_of_an_inpaint_composites_again_and_keeps_the_target(with_tiny):
    engine = Engine()
    source = Image.new("RGB", (64, 64), (30, 120, 200))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (8, 8, 40, 40))
    target = Target(box=(0, 0, 64, 64), layer=3)
    job = Inpaint(prompt="a cat", model=ModelRef(str(with_tiny)), seed=2, steps=2, image=source, mask=mask,
                  decoder="tiny", target=target, runtime="torch")
    fast, fast_job, _t, _i = _run(engine, job)
    refine = Refine.of(fast_job, engine.last_latents)
    assert refine.target is target
    refined, refined_job, _t, _i = _run(engine, refine)
    assert refined_job.target is target
    outside = np.asarray(mask) == 0
    far = np.zeros_like(outside)
    far[58:, 58:] = True  # away from the feathered edge: the source, byte for byte, in both
    assert (np.asarray(refined)[far] == np.asarray(source)[far]).all()
    assert (np.asarray(fast)[far] == np.asarray(source)[far]).all()


def test_without_a_tiny_decoder_fast_decode_falls_back_to_the_full_one(tiny_sd):
    engine = Engine()
    image, job, _t, _i = _run(engine, Generate(prompt="a cat", model=ModelRef(str(tiny_sd)), seed=2, steps=1,
                                               decoder="tiny", runtime="torch"))
    assert job.decoder in (None, "full") and engine.last_latents is None and image.size == (64, 64)


def test_a_tiny_decoder_that_does_not_fit_is_skipped(tiny_sd, tmp_path):
    folder = shutil.copytree(tiny_sd, tmp_path / "mismatched")
    _tiny_decoder(folder / sd.TINY_FOLDER, upsamplings=3)  # draws 8x, the model's VAE 2x
    loaded, _ = Engine().model(ModelRef(str(folder)), runtime="torch")
    assert loaded.tiny_decoder is None
    shutil.rmtree(folder / sd.TINY_FOLDER)
    (folder / sd.TINY_FOLDER).mkdir()
    (folder / sd.TINY_FOLDER / "config.json").write_text("{damaged")
    loaded, _ = Engine().model(ModelRef(str(folder)), runtime="torch")  # the model still loads
    assert loaded.tiny_decoder is None


def test_the_family_tiny_decoder_in_the_models_folder_is_found(tiny_sd, tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKBRUSH_MODELS", str(tmp_path / "models"))
    _tiny_decoder(tmp_path / "models" / "taesd")
    loaded, _ = Engine().model(ModelRef(str(tiny_sd)), runtime="torch")
    assert loaded.tiny_decoder is not None


def test_previews_come_from_the_tiny_decoder(with_tiny, tiny_sd):
    previews = []

    def on_progress(progress):
        if progress.preview is not None:
            previews.append(progress.preview)

    engine = Engine()
    _run(engine, Generate(prompt="a cat", model=ModelRef(str(with_tiny)), seed=2, steps=3, runtime="torch"),
         on_progress)
    assert previews and all(p.size == (64, 64) for p in previews)  # decoded pictures, not latent colours
    previews.clear()
    _run(engine, Generate(prompt="a cat", model=ModelRef(str(tiny_sd)), seed=2, steps=3, runtime="torch"),
         on_progress)
    assert previews and all(p.size != (64, 64) for p in previews)  # the latent colour approximation


def test_refine_refuses_what_it_cannot_decode(with_tiny, tiny_builtin):
    job = Generate(prompt="a cat", model=ModelRef(str(with_tiny)), seed=2, steps=1, runtime="torch")
    with pytest.raises(BadInput, match="kept no latents"):
        Refine.of(job, None)
    with pytest.raises(BadInput, match="do not belong to this model"):
        _run(Engine(), Refine.of(job, np.zeros((1, 9, 8, 8), np.float32)))
    with pytest.raises(BadInput, match="nothing to refine"):
        _run(Engine(), Refine.of(job.replace(model=ModelRef(str(tiny_builtin))), np.zeros((1, 4, 8, 8))))
