"""The pack a lent GPU trains from: what it carries must be what FlowTrainer would have drawn
here, and the weights that come back must become a run that exports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.builtin import BuiltinConfig, TextEncoder, build_autoencoder
from training import pack, train

CFG = BuiltinConfig(size=32, text_dim=32, block_out_channels=(32, 32, 32), attention_heads=2, ae_channels=16)


@pytest.fixture(scope="module")
def text():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tiny_models

    return TextEncoder(tiny_models.tiny_static_text_encoder(32))


def _run(tmp_path: Path, text: TextEncoder):
    """A base run folder as the CPU driver leaves it, with a few trained flow steps."""
    torch.manual_seed(0)
    c, s = CFG.latent_channels, CFG.latent_size
    latents = torch.randn(48, c, s, s)
    captions = [f"{colour} {shape}" for colour in ("red", "green", "blue", "light blue") for shape in
                ("circle", "square", "star")] * 4
    # Pair edits take data-set latents as sources: the pack must store those once.
    edits = (latents[:8].clone(), torch.randn(8, c, s, s), ["make it blue"] * 4 + ["make it a very long red thing"] * 4)
    mirror = np.arange(48) % 3 != 0
    weights = np.linspace(1, 2, 48) / np.linspace(1, 2, 48).sum()
    run = tmp_path / "base"
    run.mkdir()
    trainer = train.FlowTrainer(CFG, text, latents, captions, edits, run, lr=1e-3, mirror=mirror, weights=weights)
    trainer.train(steps=6, batch=8)
    torch.save({"model": build_autoencoder(CFG).state_dict(), "step": 0}, run / "autoencoder.pt")
    (run / "latents.json").write_text(json.dumps({"latent_std": 1.0, "fixed": True}))
    (run / "config.json").write_text(json.dumps(CFG.to_json()))
    return run, trainer, (latents, captions, edits), mirror, weights


def test_a_pack_carries_what_flow_training_draws(tmp_path, text):
    run, trainer, (latents, captions, edits), mirror, weights = _run(tmp_path, text)
    unet = trainer.ema_unet()
    folder = pack.write(tmp_path / "pack", CFG, text, unet, latents, captions, edits, mirror, weights)
    loaded = pack.load(folder)

    step = latents.abs().amax(dim=(0, 2, 3)) / 127
    assert ((loaded.latents - latents).abs() <= step[None, :, None, None] / 2 + 1e-6).all()
    assert torch.equal(loaded.edits[0], loaded.latents[:8]), "a pair's source is the data set's own latent"
    assert ((loaded.edits[1] - edits[1]).abs() <= step[None, :, None, None] / 2 + 1e-6).all()
    index = np.load(folder / pack.INDEX)
    assert len(np.unique(np.concatenate([index["image_rows"], index["edit_src"], index["edit_dst"]]))) == 56
    assert loaded.captions == captions and loaded.edits[2] == edits[2]
    assert np.array_equal(loaded.mirror, mirror) and np.allclose(loaded.weights, weights)
    prompts = sorted(set(captions) | set(edits[2]) | {""})
    for got, want in zip(loaded.text(prompts), text(prompts)):
        assert torch.equal(got, want)
    for name, value in unet.state_dict().items():
        tolerance = value.abs().reshape(len(value), -1).amax(1) / 254 + 1e-6 if value.ndim >= 2 else 1e-3 * value.abs() + 1e-4
        assert ((loaded.unet[name] - value).abs().reshape(len(value), -1) <= tolerance.reshape(-1, 1)).all(), name
    assert loaded.cfg == CFG


def test_a_pack_carries_the_keywords_for_keyword_training(tmp_path, text):
    run, trainer, (latents, captions, edits), mirror, weights = _run(tmp_path, text)
    keywords = {"red circle": ("ruby dot",), "blue star": ("sapphire", "azure")}
    folder = pack.write(tmp_path / "pack", CFG, text, trainer.ema_unet(), latents, captions, edits, mirror, weights,
                        keywords=keywords)
    loaded = pack.load(folder)
    assert loaded.keywords == keywords
    for got, want in zip(loaded.text(["ruby dot", "azure"]), text(["ruby dot", "azure"])):
        assert torch.equal(got, want)
    t = train.FlowTrainer(loaded.cfg, loaded.text, loaded.latents, loaded.captions, loaded.edits, tmp_path / "gpu",
                          keywords=loaded.keywords, keyword_share=1.0)
    assert {"ruby dot", "sapphire", "azure"} <= {t.texts[i] for i in torch.cat([t.batch(16)[2] for _ in range(20)])}


def test_pack_training_writes_weights_that_come_back_as_a_run(tmp_path, text):
    run, trainer, (latents, captions, edits), mirror, weights = _run(tmp_path, text)
    folder = pack.write(tmp_path / "pack", CFG, text, trainer.ema_unet(), latents, captions, edits, mirror, weights)
    out = tmp_path / "weights"
    gpu = pack.train(folder, tmp_path / "gpu-run", out, minutes=0.1, batch=8, lr=1e-3, probe=8, device="cpu")
    # The run is sized by time (6 s here), so how many steps fit depends on the machine's load:
    # 4 when other work shared the 2 cores. What matters is that it trained and wrote them.
    assert gpu.step >= 1
    info = json.loads((out / "weights.json").read_text())
    assert info["step"] == gpu.step and info["images_seen"] == gpu.step * 8
    assert all((out / f).stat().st_size <= pack.WEIGHTS_FILE_LIMIT for f in info["files"])

    imported = pack.import_weights(out, run, tmp_path / "imported")
    model = train.assemble(imported, CFG, text)
    ema = gpu.ema_unet().state_dict()
    for name, value in model.unet.state_dict().items():
        assert torch.allclose(value, ema[name].half().float()), name
    image = model.sample("red circle", steps=2, seed=0)[0]
    assert image.shape == (1, 32, 32, 4)
    with pytest.raises(SystemExit):
        pack.import_weights(out, run, tmp_path / "gpu-run")  # holds a flow checkpoint


def test_weights_are_split_into_files_a_lent_machine_can_hand_back(tmp_path, monkeypatch):
    monkeypatch.setattr(pack, "WEIGHTS_FILE_LIMIT", 40_000)
    net = torch.nn.Sequential(torch.nn.Linear(100, 100), torch.nn.Linear(100, 100), torch.nn.Linear(100, 100))
    files = pack.save_weights(net, tmp_path)
    assert len(files) == 3 and all(f.stat().st_size <= 40_000 + 1024 for f in files)
    pack.save_weights(torch.nn.Linear(2, 2), tmp_path)  # a smaller set replaces the old one
    assert len(list(tmp_path.glob("weights-*.safetensors"))) == 1
    back = pack.load_weights(tmp_path)
    assert set(back) == {"weight", "bias"}
