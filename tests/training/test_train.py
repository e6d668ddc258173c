"""Training on the CPU at a reduced setting: autoencoder, cached latents, flow UNet on all three
tasks, EMA, resume, export to the shipped layout, and the app's runtime loading the result."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from inference.builtin import BuiltinConfig, TextEncoder, rgba_to_tensor
from inference.builtin_onnx import OnnxBuiltin
from training import train

CFG = BuiltinConfig(size=32, text_dim=32, block_out_channels=(32, 32, 32), attention_heads=2, ae_channels=16)
COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (40, 90, 230)}


def shapes(count: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Circles and squares in three colours on transparency, captioned: a learnable toy set."""
    rng = np.random.default_rng(seed)
    images, captions = [], []
    y, x = np.mgrid[0:32, 0:32]
    for _ in range(count):
        colour = rng.choice(list(COLOURS))
        shape = rng.choice(["circle", "square"])
        inside = ((x - 16) ** 2 + (y - 16) ** 2 < 100) if shape == "circle" else ((abs(x - 16) < 9) & (abs(y - 16) < 9))
        image = np.zeros((32, 32, 4), np.uint8)
        image[inside] = (*COLOURS[colour], 255)
        images.append(image)
        captions.append(f"{colour} {shape}")
    return np.stack(images), captions


@pytest.fixture(scope="module")
def text():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tiny_models

    return TextEncoder(tiny_models.tiny_static_text_encoder(32))


def test_autoencoder_learns_and_resumes(tmp_path):
    images, _ = shapes(64)
    torch.manual_seed(0)
    first = train.train_autoencoder(images, CFG, tmp_path, steps=5, batch=16, crop=None)
    x = rgba_to_tensor(images[:16])
    with torch.no_grad():
        early = torch.nn.functional.l1_loss(first.decode(first.encode(x).latents).sample, x).item()
    later = train.train_autoencoder(images, CFG, tmp_path, steps=150, batch=16, crop=None)
    with torch.no_grad():
        late = torch.nn.functional.l1_loss(later.decode(later.encode(x).latents).sample, x).item()
    assert torch.load(tmp_path / "autoencoder.pt", weights_only=True)["step"] == 150, "resumed from step 5"
    assert late < 0.6 * early
    crops = train.train_autoencoder(images, CFG, tmp_path / "crops", steps=2, batch=4, crop=16)
    assert crops.encode(x[:1]).latents.shape == (1, CFG.latent_channels, 4, 4), "trained on crops, runs whole"


def test_synthetic_edits_have_exact_targets():
    image, _ = shapes(1)
    rng = random.Random(0)
    seen = {}
    for _ in range(60):
        target, text = train.synthetic_edit(image[0], rng)
        seen[text] = target
    mirrored = seen.get("mirror it")
    if mirrored is not None:
        assert np.array_equal(mirrored, image[0][:, ::-1])
    blue = train._hue_to(image[0], train.HUES["blue"])
    opaque = image[0][..., 3] == 255
    assert blue[opaque][:, 2].mean() > blue[opaque][:, 0].mean(), "recoloured towards blue"
    assert np.array_equal(blue[..., 3], image[0][..., 3]), "the shape (alpha) is untouched"


def test_edit_set_balances_instructions():
    images, _ = shapes(40)
    pairs = [(i, i + 1, "make the skin darker") for i in range(30)] + [(0, 1, "make it a woman")]
    src, dst, texts = train.build_edit_set(images, pairs, synthetic=10, per_instruction=5)
    assert texts.count("make the skin darker") == 5 and texts.count("make it a woman") == 1
    assert len(texts) == 16 and src.shape == dst.shape == (16, 32, 32, 4)


def test_flow_training_lowers_the_loss_resumes_and_exports_a_working_model(tmp_path, text):
    images, captions = shapes(96)
    torch.manual_seed(0)
    ae = train.train_autoencoder(images, CFG, tmp_path, steps=120, batch=16, crop=None)
    raw = train.encode_all(ae, images)
    std = float(raw.std())
    (tmp_path / "latents.json").write_text(json.dumps({"latent_std": std}))
    src, dst, instructions = train.build_edit_set(images, [], synthetic=32)
    edits = (train.encode_all(ae, src) / std, train.encode_all(ae, dst) / std, instructions)
    trainer = train.FlowTrainer(CFG, text, raw / std, captions, edits, tmp_path, lr=1e-3)

    def loss_now() -> float:
        torch.manual_seed(1)
        trainer.rng = np.random.default_rng(1)
        clean, cond, tokens, pooled = trainer.draw(32)
        noise = torch.randn_like(clean)
        t = torch.full((len(clean),), 0.5)
        with torch.no_grad():
            v = trainer.unet(torch.cat([(clean + noise) / 2, cond], 1), t * 1000, tokens, class_labels=pooled).sample
        return torch.nn.functional.mse_loss(v, noise - clean).item()

    before = loss_now()
    trainer.train(steps=60, batch=16, every=30)
    after = loss_now()
    assert after < 0.8 * before
    resumed = train.FlowTrainer(CFG, text, raw / std, captions, edits, tmp_path)
    assert resumed.step == 60
    for name, value in resumed.unet.state_dict().items():
        assert torch.equal(value, trainer.unet.state_dict()[name]), name

    from training.export import export

    model = train.assemble(tmp_path, CFG, text, unet=trainer.ema_unet())
    assert model.cfg.latent_std == pytest.approx(std)
    out = export(model, tmp_path / "export")
    shipped = OnnxBuiltin(out, threads=1)
    image, timings = shipped.sample("red circle", steps=2)
    assert image.shape == (1, 32, 32, 4)
    mask = np.zeros((32, 32), np.uint8)
    mask[:16] = 255
    assert shipped.sample("blue square", "inpaint", image=images[0], mask=mask)[0].shape == (1, 32, 32, 4)
    assert shipped.sample("make it blue", "edit", image=images[0])[0].shape == (1, 32, 32, 4)

    from training import data

    carded = export(model, tmp_path / "carded", onnx=False, data_sources=data.ALL_SOURCES)
    assert json.loads((carded / "quickbrush_builtin.json").read_text())["data_sources"] == list(data.ALL_SOURCES)
    assert (carded / "DATA.md").read_text(encoding="utf-8") == data.data_card(data.ALL_SOURCES)
    assert not (out / "DATA.md").exists(), "no sources given: no card written"


def test_flow_learning_rate_warms_up_holds_and_decays_to_zero(tmp_path, text):
    images, captions = shapes(8)
    latents = torch.zeros(8, CFG.latent_channels, CFG.latent_size, CFG.latent_size)
    trainer = train.FlowTrainer(CFG, text, latents, captions, None, tmp_path, lr=1e-3)
    trainer.warmup = 10
    assert trainer.lr_at(0, 100, decay=20) == pytest.approx(1e-4)
    assert trainer.lr_at(50, 100, decay=20) == pytest.approx(1e-3)  # stable phase
    assert trainer.lr_at(90, 100, decay=20) == pytest.approx(5e-4)  # halfway down
    assert trainer.lr_at(99, 100, decay=20) == pytest.approx(5e-5)
    assert trainer.lr_at(90, 100, decay=0) == pytest.approx(1e-3)  # no decay: constant
    # A resumed run that already passed its decay start continues down from where it is.
    trainer.step = 95
    trainer.train(steps=97, batch=4, decay=20)
    assert trainer.step == 97
    assert trainer.opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 1 / 20)  # the last step, 96


def test_flow_batches_call_an_image_by_its_keywords_as_often_as_asked(tmp_path, text):
    latents = torch.randn(8, CFG.latent_channels, CFG.latent_size, CFG.latent_size)
    captions = ["cat face"] * 4 + ["grinning face"] * 4
    keywords = {"cat face": ("kitten", "kitty")}

    def drawn(trainer, batches=20):
        ids = torch.cat([trainer.batch(16)[2] for _ in range(batches)])
        return [trainer.texts[i] for i in ids]

    always = drawn(train.FlowTrainer(CFG, text, latents, captions, None, tmp_path / "a",
                                     keywords=keywords, keyword_share=1.0))
    assert "cat face" not in always and {"kitten", "kitty", "grinning face", ""} == set(always)
    sometimes = drawn(train.FlowTrainer(CFG, text, latents, captions, None, tmp_path / "b",
                                        keywords=keywords, keyword_share=0.3), batches=60)
    share = sum(t in ("kitten", "kitty") for t in sometimes) / sum(t in ("kitten", "kitty", "cat face") for t in sometimes)
    assert 0.2 < share < 0.4
    # Without a share the keywords change nothing, not even the random draws of a run.
    plain = train.FlowTrainer(CFG, text, latents, captions, None, tmp_path / "c")
    unused = train.FlowTrainer(CFG, text, latents, captions, None, tmp_path / "d", keywords=keywords)
    for _ in range(3):
        for a, b in zip(plain.batch(16), unused.batch(16)):
            assert torch.equal(a, b)


def test_bf16_training_learns_and_keeps_fp32_weights(tmp_path, text, monkeypatch):
    """`--precision bf16`: only the forward pass is bfloat16, so checkpoints stay fp32 and a run can
    change precision between resumes."""
    images, captions = shapes(16)
    torch.manual_seed(0)
    latents = torch.randn(16, CFG.latent_channels, CFG.latent_size, CFG.latent_size)
    trainer = train.FlowTrainer(CFG, text, latents, captions, None, tmp_path, lr=2e-3, precision="bf16")
    assert trainer.autocast is torch.bfloat16
    trainer.warmup = 1
    losses = []
    original = torch.nn.functional.mse_loss

    def recording(a, b, *args, **kwargs):
        assert a.dtype == b.dtype == torch.float32, "the loss is taken in fp32"
        losses.append(original(a, b, *args, **kwargs).item())
        return original(a, b, *args, **kwargs)

    monkeypatch.setattr(train.F, "mse_loss", recording)
    trainer.train(steps=80, batch=16, every=1000)
    monkeypatch.undo()
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    saved = torch.load(tmp_path / "flow.pt", weights_only=False)
    assert all(v.dtype == torch.float32 for v in saved["model"].values() if v.is_floating_point())
    assert train.FlowTrainer(CFG, text, latents, captions, None, tmp_path, precision="fp32").step == 80


def test_precision_choice():
    assert train.autocast_dtype("cpu", "fp32") is None
    assert train.autocast_dtype("cpu", "bf16") is torch.bfloat16
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert train.autocast_dtype("cpu", "auto") is (torch.bfloat16 if native else None)


def test_a_run_seeded_from_an_exported_model_starts_from_its_weights_and_then_resumes(tmp_path):
    """`train.py flow --init FOLDER`: fine-tuning the shipped model when the checkpoints are gone."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tiny_models

    from inference.builtin import BuiltinModel

    folder = tiny_models.build_builtin(tmp_path / "shipped", int8=True)
    shipped = BuiltinModel.load(folder)
    run = tmp_path / "run"
    cfg = train.seed_run(run, folder)
    assert cfg.block_out_channels == shipped.cfg.block_out_channels and cfg.shift == shipped.cfg.shift
    assert json.loads((run / "latents.json").read_text()) == {"latent_std": shipped.cfg.latent_std, "fixed": True}
    tokens, _ = TextEncoder.load(run / "text_encoder")(["red circle"])
    assert torch.allclose(tokens, shipped.text(["red circle"])[0])
    ae = train.train_autoencoder(shapes(4)[0], cfg, run, steps=0)  # resumes the seeded autoencoder as it is
    for name, value in ae.state_dict().items():
        assert torch.equal(value, shipped.autoencoder.state_dict()[name]), name

    latents = torch.randn(8, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    trainer = train.FlowTrainer(cfg, shipped.text, latents, ["red circle"] * 8, None, run)
    for name, value in trainer.unet.state_dict().items():
        assert torch.equal(value, shipped.unet.state_dict()[name]), name
    trainer.train(steps=2, batch=4)
    resumed = train.FlowTrainer(cfg, shipped.text, latents, ["red circle"] * 8, None, run)
    assert resumed.step == 2  # from its own checkpoint now, not the seed
    for name, value in resumed.unet.state_dict().items():
        assert torch.equal(value, trainer.unet.state_dict()[name]), name
    with pytest.raises(SystemExit, match="already holds"):
        train.seed_run(run, folder)


def test_black_line_art_is_recoloured_and_never_put_on_black():
    icon = np.zeros((32, 32, 4), np.uint8)
    icon[8:24, 8:10] = (0, 0, 0, 255)  # a black stroke
    icon[8:10, 8:24] = (10, 10, 10, 255)
    assert train.is_ink(icon) and not train.is_ink(shapes(1)[0][0])
    blue = train._hue_to(icon, train.HUES["blue"])
    stroke = icon[..., 3] > 0
    assert blue[stroke][:, 2].mean() > 150 > blue[stroke][:, 0].mean(), "the ink takes the colour"
    assert np.array_equal(blue[..., 3], icon[..., 3])
    rng = random.Random(0)
    texts = {train.synthetic_edit(icon, rng)[1] for _ in range(300)}
    assert "add a white background" in texts and "add a black background" not in texts


def test_icons_and_sided_captions_are_not_mirrored_and_icons_get_their_share():
    keep = train.mirrorable(["cat face", "left arrow", "keycap: 1", "cat icon", "flag: japan", "pear clip art"],
                            ["cat-face", "arrow", "keycap", "icon-animals", "country-flag", "clipart-food"],
                            ["noto", "noto", "twemoji", "tabler", "noto", "openclipart"])
    assert keep.tolist() == [True, False, False, False, False, True]
    sources = np.array(["noto"] * 80 + ["tabler"] * 10 + ["lucide"] * 5 + ["openclipart"] * 5)
    weights = train.sampling_weights(sources, {"icons": 0.25, "clipart": 0.1})
    assert weights[np.isin(sources, ["tabler", "lucide"])].sum() == pytest.approx(0.25)
    assert weights[sources == "openclipart"].sum() == pytest.approx(0.1)
    assert weights[sources == "noto"].sum() == pytest.approx(0.65)
    assert train.sampling_weights(np.array(["noto"] * 5), {"icons": 0.25}) is None, "emoji only: uniform"


def test_cached_latents_follow_the_data_set():
    class Fake:
        def __init__(self, sources):
            self.meta = {"settings": {"size": 32, "sources": sources}}

    assert train.dataset_key(Fake(["twemoji"])) == train.dataset_key(Fake(["twemoji"]))
    assert train.dataset_key(Fake(["twemoji"])) != train.dataset_key(Fake(["twemoji", "tabler"]))


def test_a_run_remembers_its_data_sources(tmp_path):
    from training import data

    assert train.run_sources(tmp_path, None) == data.SOURCES, "a new run: the emoji sets"
    train.prepare_run(tmp_path, CFG, data.ALL_SOURCES)
    assert json.loads((tmp_path / "config.json").read_text())["data_sources"] == list(data.ALL_SOURCES)
    assert train.run_sources(tmp_path, None) == data.ALL_SOURCES, "resumed without --sources"
    assert train.run_sources(tmp_path, "twemoji,tabler") == ("twemoji", "tabler")
    assert BuiltinConfig.from_json(json.loads((tmp_path / "config.json").read_text())) == CFG


def test_decoder_finetune_keeps_the_encoder_and_learns_to_draw_from_noisy_latents(tmp_path):
    images, _ = shapes(64)
    torch.manual_seed(0)
    np.random.seed(0)
    ae = train.train_autoencoder(images, CFG, tmp_path, steps=80, batch=16, crop=None)
    encoder = {k: v.clone() for k, v in ae.encoder.state_dict().items()}
    x = rgba_to_tensor(images[:32])

    def noisy_error() -> float:
        torch.manual_seed(2)
        with torch.no_grad():
            z = ae.encode(x).latents
            return torch.nn.functional.l1_loss(ae.decode(z + 0.4 * z.std() * torch.randn_like(z)).sample, x).item()

    before = noisy_error()
    ae = train.finetune_decoder(ae, images, tmp_path, steps=80, latent_std=1.0, noise=0.8, batch=16, lr=1e-3, crop=None)
    assert noisy_error() < before
    for name, value in ae.encoder.state_dict().items():
        assert torch.equal(value, encoder[name]), name
    saved = torch.load(tmp_path / "autoencoder.pt", weights_only=True)
    assert saved["decoder"] == {"steps": 80, "noise": 0.8}
    assert all(p.requires_grad for p in ae.parameters())
