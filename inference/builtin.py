"""Quickbrush's own small model: one latent flow-matching UNet that generates, inpaints and edits.

The parts are diffusers and model2vec classes, so loading and saving are theirs:
- `autoencoder/`: a small patch autoencoder (see `_autoencoder_class`) trained on RGBA emoji and
  icons, 128x128x4 pixels <-> 8x16x16 latents. Alpha is a fourth channel, so results can be
  transparent.
- `unet/`: a UNet2DConditionModel, about 11 M parameters, predicting the flow velocity
  (noise - clean latent) on the straight path x_t = (1 - t) x_0 + t noise. Straight paths are what
  make 4 or fewer Euler steps enough.
- `text_encoder/`: a model2vec StaticModel distilled from all-MiniLM-L6-v2: token embeddings in,
  no transformer to run, so "kitty" lands near "cat" for a fraction of a millisecond.
- `scheduler/`: FlowMatchEulerDiscreteScheduler's config, the Euler sampler of that straight path;
  the steps themselves run in inference/builtin_sampler.py, shared with the ONNX runtime.

One network for the three tasks: besides the noisy latent it always sees a condition latent, a
mask and an edit flag (18 input channels):
- text to image: condition zero, mask one everywhere (inpainting the whole canvas),
- inpaint: condition = latent of the image with the masked area zeroed, mask = where to paint,
- edit: condition = latent of the source image, mask zero, flag one; the prompt is the instruction.
The text reaches the UNet twice: per-token embeddings through cross-attention and the pooled
sentence vector added to the time embedding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# The config is torch-free (the ONNX runtime and the backend read it too); it is re-exported here.
from inference.builtin_onnx import CONFIG_NAME, BuiltinConfig
from inference.builtin_sampler import Sampler, latent_mask, sigma_schedule  # noqa: F401

INT8_WEIGHTS = "weights.int8.safetensors"  # see training/export.py for the format
TOKENS = 16  # text tokens the UNet attends to; emoji names and short instructions fit


def build_autoencoder(cfg: BuiltinConfig):
    return _autoencoder_class()(latent_channels=cfg.latent_channels, channels=cfg.ae_channels)


_AE_CLASS = None


def _autoencoder_class():
    """PatchAutoencoder, defined on first use so importing this module does not import diffusers.

    Why not diffusers' AutoencoderTiny: its first blocks convolve at full resolution, which on
    two CPU cores costs 18 s per training step of 32 images at 128 px. Here pixel-unshuffle
    folds 4x4 pixel patches into channels first, so every convolution runs at 32x32 or 16x16:
    about 25 times cheaper, for emoji and icons that have few fine textures to lose. It is a
    diffusers ModelMixin, so save_pretrained/from_pretrained and the config file work as usual.
    """
    global _AE_CLASS
    if _AE_CLASS is not None:
        return _AE_CLASS
    from diffusers.configuration_utils import ConfigMixin, register_to_config
    from diffusers.models.modeling_utils import ModelMixin
    from torch import nn

    class Residual(nn.Module):
        def __init__(self, ch: int):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))

        def forward(self, x):
            return x + self.body(x)

    class Latents:
        def __init__(self, latents):
            self.latents = latents

    class Sample:
        def __init__(self, sample):
            self.sample = sample

    class PatchAutoencoder(ModelMixin, ConfigMixin):
        @register_to_config
        def __init__(self, latent_channels: int = 8, channels: int = 64, image_channels: int = 4):
            super().__init__()
            c1, c2 = channels, channels * 2
            patch = image_channels * 16
            self.encoder = nn.Sequential(
                nn.PixelUnshuffle(4), nn.Conv2d(patch, c1, 3, padding=1), Residual(c1), Residual(c1),
                nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.SiLU(), Residual(c2), Residual(c2),
                nn.Conv2d(c2, latent_channels, 1))
            self.decoder = nn.Sequential(
                nn.Conv2d(latent_channels, c2, 3, padding=1), Residual(c2), Residual(c2),
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c2, c1, 3, padding=1), nn.SiLU(),
                Residual(c1), Residual(c1), nn.SiLU(), nn.Conv2d(c1, patch, 3, padding=1), nn.PixelShuffle(4))

        def encode(self, x):
            return Latents(self.encoder(x))

        def decode(self, z):
            return Sample(self.decoder(z).clamp(-1, 1))

    _AE_CLASS = PatchAutoencoder
    return _AE_CLASS


def build_unet(cfg: BuiltinConfig):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=cfg.latent_size, in_channels=cfg.in_channels, out_channels=cfg.latent_channels,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=cfg.block_out_channels, layers_per_block=1, cross_attention_dim=cfg.text_dim,
        attention_head_dim=cfg.attention_heads, norm_num_groups=32,
        class_embed_type="projection", projection_class_embeddings_input_dim=cfg.text_dim)


def build_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    # Saved for the folder's layout and the recipes' scheduler name; builtin_sampler runs the
    # steps. shift stays 1: the model's time shift is cfg.shift, applied in sigma_schedule.
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)


class TextEncoder:
    """model2vec static embeddings as (tokens [B, TOKENS, D], pooled [B, D]); "" is the null prompt."""

    def __init__(self, static_model):
        self.model = static_model
        self.dim = int(static_model.dim)

    @classmethod
    def load(cls, path: str | Path) -> "TextEncoder":
        from model2vec import StaticModel

        path = Path(path)
        if (path / INT8_WEIGHTS).exists():
            from tokenizers import Tokenizer

            config = json.loads((path / "config.json").read_text())
            vectors = load_int8(path / INT8_WEIGHTS)["embeddings"].numpy()
            return cls(StaticModel(vectors, Tokenizer.from_file(str(path / "tokenizer.json")), config=config,
                                   normalize=bool(config.get("normalize", False))))
        return cls(StaticModel.from_pretrained(str(path)))

    def save(self, path: str | Path) -> None:
        self.model.save_pretrained(str(path))
        # model2vec records the teacher's local folder; name the public model instead.
        config_file = Path(path) / "config.json"
        config = json.loads(config_file.read_text())
        config["tokenizer_name"] = "sentence-transformers/all-MiniLM-L6-v2"
        config_file.write_text(json.dumps(config, indent=2) + "\n")

    def sequences(self, prompts: list[str]) -> list[np.ndarray]:
        """One float32 [length, D] array of token vectors per prompt (length 0 for the null prompt)."""
        texts = [p.strip().lower() for p in prompts]
        out = [np.zeros((0, self.dim), np.float32) for _ in texts]
        present = [i for i, t in enumerate(texts) if t]
        if present:
            for i, seq in zip(present, self.model.encode_as_sequence([texts[i] for i in present])):
                out[i] = np.asarray(seq, dtype=np.float32).reshape(-1, self.dim)
        return out

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return pool_sequences(self.sequences(prompts), self.dim)


def pool_sequences(sequences: list[np.ndarray], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token vectors -> what the UNet takes: the first TOKENS of each (zero-padded) to attend to,
    and their mean over the whole prompt as the pooled vector."""
    tokens = torch.zeros(len(sequences), TOKENS, dim)
    pooled = torch.zeros(len(sequences), dim)
    for i, seq in enumerate(sequences):
        if len(seq):
            seq = torch.from_numpy(np.asarray(seq, dtype=np.float32))
            tokens[i, : min(TOKENS, len(seq))] = seq[:TOKENS]
            pooled[i] = seq.mean(0)
    return tokens, pooled


# --------------------------------------------------------------------------- conversions


def rgba_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [B, H, W, 4] straight alpha -> float [B, 4, H, W] in [-1, 1], colour premultiplied so
    a transparent pixel has one value whatever colour it nominally had."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).float().div(255).permute(0, 3, 1, 2)
    x = torch.cat([x[:, :3] * x[:, 3:], x[:, 3:]], 1)
    return x * 2 - 1


def tensor_to_rgba(x: torch.Tensor) -> np.ndarray:
    """The inverse of rgba_to_tensor: float [B, 4, H, W] in [-1, 1] -> uint8 [B, H, W, 4]."""
    x = ((x.float() + 1) / 2).clamp(0, 1)
    alpha = x[:, 3:]
    colour = torch.where(alpha > 1 / 255, x[:, :3] / alpha.clamp_min(1 / 255), torch.zeros_like(x[:, :3]))
    out = torch.cat([colour.clamp(0, 1), alpha], 1).permute(0, 2, 3, 1)
    return (out * 255 + 0.5).to(torch.uint8).numpy()


def image_to_rgba(image: Image.Image, size: int) -> np.ndarray:
    return np.asarray(image.convert("RGBA").resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


# --------------------------------------------------------------------------- the model


class BuiltinModel(Sampler):
    """The loaded model: its networks in torch, on the CPU unless told otherwise, under the
    sampler both runtimes share (builtin_sampler.Sampler: noise, steps, guidance, tasks)."""

    def __init__(self, cfg: BuiltinConfig, autoencoder, unet, text: TextEncoder, scheduler=None,
                 device: str = "cpu"):
        self.cfg = cfg
        self.autoencoder = autoencoder.to(device).eval()
        self.unet = unet.to(device).eval()
        self.text = text
        self.scheduler = scheduler or build_scheduler()
        self.device = device

    # ---------------------------------------------------------------- files

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.autoencoder.save_pretrained(folder / "autoencoder")
        self.unet.save_pretrained(folder / "unet")
        self.text.save(folder / "text_encoder")
        self.scheduler.save_pretrained(folder / "scheduler")
        (folder / CONFIG_NAME).write_text(json.dumps(self.cfg.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> "BuiltinModel":
        from diffusers import FlowMatchEulerDiscreteScheduler, UNet2DConditionModel

        folder = Path(folder)
        cfg = BuiltinConfig.from_json(json.loads((folder / CONFIG_NAME).read_text()))

        def module(kind, name):
            import inspect

            sub = folder / name
            if not (sub / INT8_WEIGHTS).exists():
                return kind.from_pretrained(sub)
            # Only the constructor's own keys: diffusers records derived ones (AutoencoderTiny's
            # block_out_channels) and would warn about them on every start.
            accepted = inspect.signature(kind.__init__).parameters
            config = {k: v for k, v in kind.load_config(sub).items() if k in accepted}
            model = kind.from_config(config)
            model.load_state_dict(load_int8(sub / INT8_WEIGHTS))
            return model

        return cls(cfg, module(_autoencoder_class(), "autoencoder"), module(UNet2DConditionModel, "unet"),
                   TextEncoder.load(folder / "text_encoder"),
                   FlowMatchEulerDiscreteScheduler.from_pretrained(folder / "scheduler"), device=device)

    @staticmethod
    def is_builtin_folder(folder: str | Path) -> bool:
        return (Path(folder) / CONFIG_NAME).is_file()

    # ---------------------------------------------------------------- the runtime's parts
    # The sampler (builtin_sampler.Sampler) runs on numpy; only the networks run in torch.

    @property
    def latent_channels(self) -> int:
        return self.cfg.latent_channels

    @property
    def size(self) -> int:
        return self.cfg.size

    @property
    def steps(self) -> int:
        return self.cfg.steps

    @property
    def shift(self) -> float:
        return self.cfg.shift

    def guidance_for(self, steps: int) -> float:
        return self.cfg.guidance_for(steps)

    @torch.no_grad()
    def encode(self, rgba: np.ndarray) -> np.ndarray:
        latents = self.autoencoder.encode(rgba_to_tensor(rgba).to(self.device)).latents / self.cfg.latent_std
        return latents.float().cpu().numpy()

    @torch.no_grad()
    def decode(self, latents: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(np.asarray(latents, np.float32)).to(self.device)
        return tensor_to_rgba(self.autoencoder.decode(z * self.cfg.latent_std).sample.cpu())

    def embed(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        tokens, pooled = self.text(prompts)
        return tokens.numpy(), pooled.numpy()

    @torch.no_grad()
    def velocity(self, x: np.ndarray, t: np.ndarray, tokens: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        def on(a):
            return torch.from_numpy(a).to(self.device)

        return self.unet(on(x), on(t), on(tokens), class_labels=on(pooled)).sample.float().cpu().numpy()


def load_int8(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights stored by training/export.py: `name.int8` + `name.scale` per output channel, the
    rest float16; returned as float32 tensors under their own names."""
    from safetensors.torch import load_file

    raw = load_file(str(path))
    out: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if key.endswith(".int8"):
            name = key[: -len(".int8")]
            scale = raw[name + ".scale"]
            out[name] = value.float() * scale.view(-1, *([1] * (value.ndim - 1)))
        elif not key.endswith(".scale"):
            out[key] = value.float()
    return out
