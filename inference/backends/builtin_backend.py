"""Quickbrush's built-in model behind the Backend protocol (inference.backends): `load`, `run`,
`preview`, `capabilities`, and a `Loaded` the engine caches, so jobs, previews, cancelling and
timings work the same whichever model the designer picked.

On the CPU it runs the ONNX graphs (inference/builtin_onnx.py) and imports no torch; torch and the
torch modules (inference/builtin.py) are imported only for a GPU, or a folder without the graphs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from inference.backends import Capabilities, StepCallback
from inference.builtin_onnx import CONFIG_NAME, BuiltinConfig
from inference.device import check_device, check_dtype, dtype_name, pick_device
from inference.jobs import BadInput, Cancelled, ModelMissing, ModelRef
from inference.models.presets import Preset
from inference.models.store import Located, folder_fingerprint

MULTIPLE = 32  # autoencoder /8, then the UNet's two downsamplings
# (folder, file pattern) each runtime cannot start without; the text encoder serves both.
_TEXT = ("text_encoder", "tokenizer.json")
ONNX_PARTS = (("onnx", "unet.onnx"), ("onnx", "encoder.onnx"), ("onnx", "decoder.onnx"), _TEXT)
TORCH_PARTS = (("unet", "*.safetensors"), ("autoencoder", "*.safetensors"), ("scheduler", "scheduler_config.json"),
               _TEXT)


@dataclass
class Loaded:
    ref: ModelRef
    pipe: Any  # OnnxBuiltin, or inference.builtin.BuiltinModel; None once unloaded
    native: int
    preset: Preset
    device: str
    dtype: str  # the torch modules run in float32, and so do the ONNX graphs
    nbytes: int
    sha256: str | None
    load_seconds: float
    family: str = "quickbrush"
    multiple: int = MULTIPLE
    scheduler_class: str = "FlowMatchEulerDiscreteScheduler"
    scheduler_config: dict[str, Any] = field(default_factory=dict)
    derived: dict[str, Any] = field(default_factory=dict)
    runtime: str = "torch"  # or "onnxruntime"
    # The model reads and draws transparency, so the engine hands it sources with their alpha.
    keeps_alpha: bool = True
    # It draws whole emoji and icons at `native` px: an inpaint window shows the object at 1:1,
    # and edit and vary work on the object cut out of its canvas (compositing.cut_out).
    whole_objects: bool = True

    backend: "BuiltinBackend" = field(default_factory=lambda: BACKEND)

    @property
    def task(self) -> str:
        return "all"  # generate, inpaint and edit, one network

    def info(self) -> dict[str, Any]:
        return {"family": self.family, "task": self.task, "native": self.native, "preset": self.preset.name,
                "device": self.device, "dtype": dtype_name(self.dtype), "pipeline": "QuickbrushBuiltin",
                "runtime": self.runtime}


def load(ref: ModelRef, folder: str, device: str | None = None) -> Loaded:
    """The ONNX graphs when the folder has them (what ships: fast to load, no diffusers import),
    else the torch modules (a training checkpoint, or a GPU device asked for)."""
    from inference.builtin_onnx import OnnxBuiltin, has_onnx

    started = time.perf_counter()
    device = _device(device)
    onnx = has_onnx(folder) and device == "cpu"
    name = Path(folder).name
    missing = [part for part in (ONNX_PARTS if onnx else TORCH_PARTS) if not any((Path(folder) / part[0]).glob(part[1]))]
    if missing:
        parts = list(dict.fromkeys(where.replace("_", " ") for where, _ in missing))
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        raise ModelMissing(
            f"The built-in model in {name} is incomplete: its {listed} files are missing.",
            f"Looked in {folder} for {', '.join(f'{where}/{what}' for where, what in missing)}. "
            "Reinstall Quickbrush, or copy the whole model folder again.")
    try:
        cfg = BuiltinConfig.from_json(json.loads((Path(folder) / CONFIG_NAME).read_text()))
        if onnx:
            model = OnnxBuiltin(folder)
            runtime = "onnxruntime"
        else:
            from inference.builtin import BuiltinModel

            model = BuiltinModel.load(folder, device=device)
            runtime = "torch"
    except Exception as exc:
        # What the libraries say (a Hub URL, a JSON position) is for the details, not the banner.
        raise ModelMissing(f"The built-in model in {name} is damaged and could not be loaded.",
                           f"{exc!r}\nReinstall Quickbrush, or copy the whole model folder again.") from exc
    nbytes = sum(f.stat().st_size for f in Path(folder).rglob("*.onnx")) * 4 if runtime == "onnxruntime" else sum(
        p.numel() * p.element_size() for m in (model.unet, model.autoencoder) for p in m.parameters())
    preset = Preset("quickbrush-builtin", (), None, steps=cfg.steps, guidance=cfg.guidance,
                    max_steps=8, image_guidance=1.0, guidance_by_steps=cfg.guidance_by_steps)
    return Loaded(ref=ref, pipe=model, native=cfg.size, preset=preset, device=device, dtype="float32",
                  nbytes=nbytes, sha256=folder_fingerprint(folder), load_seconds=time.perf_counter() - started,
                  runtime=runtime)


def _rgba(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGBA"), dtype=np.uint8)


def run(loaded: Loaded, task: str, call: dict[str, Any], steps: int, on_step: StepCallback,
        cancelled: Callable[[], bool], scheduler: str | None) -> tuple[Image.Image, dict[str, float]]:
    """The engine's task names and pipeline-style arguments, mapped onto BuiltinModel.sample."""
    if scheduler not in (None, "", loaded.scheduler_class):
        raise BadInput("The built-in model samples with its own flow-matching Euler scheduler only.")
    model = loaded.pipe
    kwargs: dict[str, Any] = dict(steps=steps, seed=call["seed"], guidance=call.get("guidance_scale"),
                                  negative_prompt=call.get("negative_prompt") or "", cancelled=cancelled,
                                  callback=lambda i, n, latents: on_step(i, n, latents))
    image = call.get("image")
    if task == "text2img":
        kwargs["image"] = np.zeros((call.get("height") or loaded.native, call.get("width") or loaded.native, 4),
                                   np.uint8)
        out, timings = model.sample(call["prompt"], "generate", **kwargs)
    elif task == "img2img":
        out, timings = model.sample(call["prompt"], "generate", image=_rgba(image),
                                    strength=call.get("strength", 0.6), **kwargs)
    elif task == "inpaint":
        mask = np.asarray(call["mask_image"].convert("L"), dtype=np.uint8)
        out, timings = model.sample(call["prompt"], "inpaint", image=_rgba(image), mask=mask,
                                    strength=call.get("strength", 1.0), **kwargs)
    elif task == "edit":
        out, timings = model.sample(call["prompt"], "edit", image=_rgba(image), **kwargs)
    else:
        raise BadInput(f"The built-in model cannot run {task!r} jobs.")
    if out is None or cancelled():
        raise Cancelled()
    result = Image.fromarray(out[0], "RGBA")
    if task in ("inpaint", "img2img", "edit") and image is not None and image.mode != "RGBA":
        # An opaque source stays opaque: where the model drew transparency the source shows through.
        result = Image.alpha_composite(image.convert("RGBA"), result).convert("RGB")
    return result, {"encode": timings.get("encode_s", 0.0), "denoise": timings.get("denoise_s", 0.0),
                    "decode": timings.get("decode_s", 0.0)}


def preview(loaded: Loaded, latents: Any) -> Image.Image | None:
    """None: a whole built-in job takes about as long as decoding a preview after every step
    would add (about 20 ms each), so the designer sees the result sooner without previews."""
    return None


def _device(requested: str | None) -> str:
    """The CPU unless a GPU is asked for by name: "auto" runs the ONNX graphs, which need no
    torch and take about a tenth of a second a job on the CPU anyway."""
    check_device(requested)
    return "cpu" if requested in (None, "", "auto") else pick_device(requested)


class BuiltinBackend:
    """The Backend protocol over this module's functions (looked up at call time, so a test can
    replace `run` here and the engine calls the replacement)."""

    name = "builtin"

    def claims(self, located: Located) -> bool:
        return located.kind in ("builtin", "folder") and (Path(located.path) / CONFIG_NAME).is_file()

    def placement(self, device: str | None, dtype: str | None) -> tuple[str, str]:
        check_dtype(dtype)  # an unknown precision is refused as for any model
        return _device(device), "float32"

    def load(self, ref: ModelRef, located: Located, device: str, dtype: str, on_stage=None) -> Loaded:
        if ref.loras:
            raise BadInput("LoRAs work with Stable Diffusion models, not with the built-in model.")
        return load(ref, located.path, device)

    def run(self, loaded, task, call, steps, on_step, cancelled, scheduler):
        return run(loaded, task, call, steps, on_step, cancelled, scheduler)

    def preview(self, loaded, latents):
        return preview(loaded, latents)

    def last_latents(self, loaded: Loaded) -> None:
        return None  # its decoder is already tiny: nothing to refine

    def decode_latents(self, loaded: Loaded, latents: Any) -> Image.Image:
        raise BadInput("The built-in model's results are decoded in full already: there is nothing to refine.")

    def capabilities(self, loaded: Loaded) -> Capabilities:
        return Capabilities(tasks=frozenset(("text2img", "img2img", "inpaint", "edit")), inpaint="native",
                            keeps_alpha=loaded.keeps_alpha, whole_objects=loaded.whole_objects,
                            native=loaded.native, multiple=loaded.multiple)

    def release(self, loaded: Loaded) -> None:
        import gc

        loaded.derived.clear()
        loaded.pipe = None
        gc.collect()  # the model's reference cycles hold its weights until collected
        if loaded.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


BACKEND = BuiltinBackend()
