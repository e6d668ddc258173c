"""The shipped built-in model on onnxruntime: no torch, no diffusers, no transformers imported.

Why not the torch modules of inference/builtin.py at run time: importing diffusers pulls in peft
and transformers (about 3 s and 230 MB before any weight is read), which alone breaks the
"loads in under a second, under 500 MB" promise of the built-in model; onnxruntime's session
also runs this small UNet faster than eager torch on two cores (11 ms against 18 ms a step).

The folder holds `onnx/unet.onnx`, `onnx/encoder.onnx`, `onnx/decoder.onnx` whose weights are
int8 with per-channel scales (DequantizeLinear on each weight; onnxruntime folds them back to
float32 once, at session start), the model2vec `text_encoder/` and `quickbrush_builtin.json`.
The sampler is inference/builtin_sampler.py's, the torch model's too: one loop, one noise
generator, so a seed gives the same picture on either runtime.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# Re-exported: the config's docs and the torch model name them here.
from inference.builtin_sampler import Sampler, latent_mask, sigma_schedule  # noqa: F401
from inference.models.presets import guidance_for

CONFIG_NAME = "quickbrush_builtin.json"
ONNX_DIR = "onnx"
TOKENS = 16


@dataclass(frozen=True)
class BuiltinConfig:
    """quickbrush_builtin.json: the model's shape and sampling defaults. Here, not in
    inference/builtin.py, because both runtimes and the backend read it, and this module
    imports no torch."""

    size: int = 128  # native output, square
    latent_channels: int = 8
    text_dim: int = 256
    steps: int = 4
    guidance: float = 2.0
    shift: float = 1.0  # the sampler's time shift (inference.builtin_sampler.sigma_schedule)
    # Guidance per step count, ((steps, scale), ...); see inference.models.presets.guidance_for.
    guidance_by_steps: tuple[tuple[int, float], ...] = ()
    block_out_channels: tuple[int, ...] = (64, 128, 192)
    attention_heads: int = 4
    ae_channels: int = 64
    latent_std: float = 1.0  # measured on the training set: the flow model sees unit-variance latents

    @property
    def latent_size(self) -> int:
        return self.size // 8

    @property
    def in_channels(self) -> int:
        return 2 * self.latent_channels + 2  # noisy + condition latent, mask, edit flag

    def to_json(self) -> dict:
        data = asdict(self)
        data["guidance_by_steps"] = {str(k): v for k, v in self.guidance_by_steps}
        return data

    @classmethod
    def from_json(cls, data: dict) -> "BuiltinConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "block_out_channels" in known:
            known["block_out_channels"] = tuple(known["block_out_channels"])
        if "guidance_by_steps" in known:
            known["guidance_by_steps"] = tuple(sorted((int(k), float(v))
                                                      for k, v in dict(known["guidance_by_steps"]).items()))
        return cls(**known)

    def guidance_for(self, steps: int) -> float:
        return guidance_for(steps, self.guidance, dict(self.guidance_by_steps))


def has_onnx(folder: str | Path) -> bool:
    return (Path(folder) / ONNX_DIR / "unet.onnx").is_file()


class StaticText:
    """model2vec token embeddings read with tokenizers + numpy (the same numbers as TextEncoder)."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.vectors = _read_table(folder)
        self.dim = self.vectors.shape[1]
        config = json.loads((folder / "config.json").read_text())
        self._unk = self.tokenizer.token_to_id(config.get("unk_token") or "[UNK]")

    def __call__(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        tokens = np.zeros((len(prompts), TOKENS, self.dim), np.float32)
        pooled = np.zeros((len(prompts), self.dim), np.float32)
        for i, prompt in enumerate(prompts):
            text = prompt.strip().lower()
            if not text:
                continue
            ids = [t for t in self.tokenizer.encode(text, add_special_tokens=False).ids if t != self._unk]
            if not ids:
                continue
            seq = self.vectors[ids]
            tokens[i, : min(TOKENS, len(seq))] = seq[:TOKENS]
            pooled[i] = seq.mean(0)
        return tokens, pooled


def _read_table(folder: Path) -> np.ndarray:
    from safetensors.numpy import load_file

    int8 = folder / "weights.int8.safetensors"
    if int8.exists():
        raw = load_file(str(int8))
        return (raw["embeddings.int8"].astype(np.float32) * raw["embeddings.scale"][:, None]).astype(np.float32)
    return load_file(str(folder / "model.safetensors"))["embeddings"].astype(np.float32)


class OnnxBuiltin(Sampler):
    """The networks as onnxruntime sessions under builtin_sampler.Sampler's `sample`."""

    def __init__(self, folder: str | Path, threads: int | None = None):
        from inference.privacy import onnxruntime

        ort = onnxruntime()
        folder = Path(folder)
        self.folder = folder
        self.cfg = json.loads((folder / CONFIG_NAME).read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Fold each int8 weight's DequantizeLinear into a float32 constant at load, instead of
        # fusing it into int8 kernels: on CPUs without VNNI, ConvInteger is 2.5x slower here.
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        providers = ["CPUExecutionProvider"]
        onnx_dir = folder / ONNX_DIR
        self.unet = ort.InferenceSession(str(onnx_dir / "unet.onnx"), options, providers=providers)
        self.encoder = ort.InferenceSession(str(onnx_dir / "encoder.onnx"), options, providers=providers)
        self.decoder = ort.InferenceSession(str(onnx_dir / "decoder.onnx"), options, providers=providers)
        self.text = StaticText(folder / "text_encoder")
        self.latent_channels = int(self.cfg["latent_channels"])
        self.latent_std = float(self.cfg.get("latent_std", 1.0))
        self.size = int(self.cfg["size"])
        self.steps = int(self.cfg["steps"])
        self.guidance = float(self.cfg["guidance"])
        self.guidance_by_steps = {int(k): float(v) for k, v in self.cfg.get("guidance_by_steps", {}).items()}
        self.shift = float(self.cfg.get("shift", 1.0))

    # ---------------------------------------------------------------- the runtime's parts

    def guidance_for(self, steps: int) -> float:
        return guidance_for(steps, self.guidance, self.guidance_by_steps)

    def encode(self, rgba: np.ndarray) -> np.ndarray:
        x = _to_model(rgba)
        return self.encoder.run(None, {"image": x})[0] / self.latent_std

    def decode(self, latents: np.ndarray) -> np.ndarray:
        y = self.decoder.run(None, {"latents": (latents * self.latent_std).astype(np.float32)})[0]
        return _from_model(y)

    def embed(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.text(prompts)

    def velocity(self, x: np.ndarray, t: np.ndarray, tokens: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        return self.unet.run(None, {"x": x, "t": t, "tokens": tokens, "pooled": pooled})[0]


def _to_model(rgba: np.ndarray) -> np.ndarray:
    x = np.asarray(rgba, np.float32).transpose(0, 3, 1, 2) / 255
    x = np.concatenate([x[:, :3] * x[:, 3:], x[:, 3:]], 1)
    return (x * 2 - 1).astype(np.float32)


def _from_model(y: np.ndarray) -> np.ndarray:
    y = np.clip((y + 1) / 2, 0, 1)
    alpha = y[:, 3:]
    colour = np.where(alpha > 1 / 255, y[:, :3] / np.maximum(alpha, 1 / 255), 0)
    out = np.concatenate([np.clip(colour, 0, 1), alpha], 1).transpose(0, 2, 3, 1)
    return (out * 255 + 0.5).astype(np.uint8)
