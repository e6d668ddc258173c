"""FLUX.2 klein on diffusers and torch: text to image, instruction edits and inpainting.

klein has no UNet, so the Stable Diffusion backend cannot run it: a flow-matching transformer
over packed 2x2 latent patches, a Qwen3 text encoder, its own VAE (AutoencoderKLFlux2). Edits
are the same pipeline given the source as its reference image; inpainting (and vary, as a
masked image-to-image of the whole picture) is diffusers' Flux2KleinInpaintPipeline sharing the
loaded weights, where the installed diffusers has it.

The real model is large (a 4B transformer and a 4B text encoder: about 16 GB of bf16 files), so
loading checks the free memory first and says what it needs instead of letting the system swap.

torch and diffusers are imported inside the functions that use them: the registry imports this
module to ask whether it serves a model, which must cost nothing for the built-in one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from inference.backends import Capabilities, StepCallback
from inference.device import dtype_name, pick_device
from inference.jobs import BadInput, Cancelled, JobError, ModelMissing, ModelRef, NetworkUnavailable, OutOfMemory
from inference.models.presets import Preset, match_preset
from inference.models.store import Located, check_pipeline_folder, folder_fingerprint

PIPELINE = "Flux2KleinPipeline"
INPAINT_PIPELINE = "Flux2KleinInpaintPipeline"
LARGE_BYTES = 4 << 30  # weights above this make a load worth announcing (the real model: ~16 GB)
HEADROOM = 2 << 30  # activations, the VAE's decode at 1024 px, the text encoder's 512 tokens


def pipeline_class(located: Located) -> str | None:
    """The `_class_name` in the model_index.json of a folder (or of a Hub repo's cached
    snapshot), None where there is none to read. Reads one small file, imports nothing heavy."""
    index: Path | None = None
    if located.kind in ("builtin", "folder"):
        index = Path(located.path) / "model_index.json"
    elif located.kind == "repo":
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(located.path, "model_index.json")
        except Exception:  # a malformed id: not ours to judge here
            return None
        index = Path(cached) if isinstance(cached, str) else None
    if index is None or not index.is_file():
        return None
    try:
        name = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def is_flux2_klein(located: Located) -> bool:
    return pipeline_class(located) == PIPELINE


@dataclass
class Loaded:
    ref: ModelRef
    pipe: Any
    native: int
    multiple: int
    preset: Preset
    device: str
    dtype: Any
    nbytes: int
    sha256: str | None
    load_seconds: float
    scheduler_class: str = ""
    scheduler_config: dict[str, Any] = field(default_factory=dict)
    inpaint_pipe: Any = None  # Flux2KleinInpaintPipeline on the same weights, made on first use
    backend: "FluxBackend" = field(default_factory=lambda: BACKEND)

    def info(self) -> dict[str, Any]:
        return {
            "family": "flux2-klein",
            "task": "text2img",
            "native": self.native,
            "preset": self.preset.name,
            "device": self.device,
            "dtype": dtype_name(self.dtype),
            "pipeline": type(self.pipe).__name__,
            "runtime": "torch",
            "large": self.nbytes > LARGE_BYTES,
        }


# --------------------------------------------------------------------------- loading


def _diffusers_class(name: str) -> Any:
    import diffusers

    return getattr(diffusers, name, None)


def _weight_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*.safetensors") if f.is_file())


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.0f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.0f} MB"


def _check_memory(label: str, on_disk: int, dtype: Any, device: str) -> None:
    """Refuse, before reading gigabytes, a load that cannot fit: the weights are stored in bf16,
    so float32 doubles them. Swapping a 16 GB model would stall the whole computer for minutes."""
    import torch

    need = on_disk * (2 if dtype == torch.float32 else 1) + HEADROOM
    try:
        if device.startswith("cuda"):
            free = torch.cuda.mem_get_info()[0]
            where = "free graphics memory"
        else:
            import psutil

            free = psutil.virtual_memory().available
            where = "free memory (RAM)"
    except Exception:  # no way to ask: let the load try
        return
    if free < need:
        raise OutOfMemory(
            f"{label} needs about {_gb(need)} of {where} in {dtype_name(dtype)}; this computer has {_gb(free)} free.",
            "FLUX.2 klein is large (a 4B transformer and a 4B text encoder). Close other programs, use a GPU "
            "with 13 GB or more, or choose a smaller model.")


def load(ref: ModelRef, located: Located, device: str, dtype: str,
         on_stage: Callable[[str], None] | None = None) -> Loaded:
    import torch

    from inference.backends.diffusers_backend import _first_line, _is_network_error, _quiet_loading, _snapshot

    started = time.perf_counter()
    if ref.loras:
        raise BadInput("LoRAs work with Stable Diffusion models here, not with FLUX.2 klein yet.")
    label = located.path if located.kind == "repo" else Path(located.path).name
    cls = _diffusers_class(PIPELINE)
    if cls is None:
        import diffusers

        raise ModelMissing(
            f"{label} is a FLUX.2 klein model, which this installation's diffusers ({diffusers.__version__}) "
            "cannot run: it has no Flux2KleinPipeline.",
            "Update diffusers to a release with FLUX.2 klein (pip install --upgrade diffusers), then load it again.")
    torch_dtype = getattr(torch, dtype)
    _quiet_loading()
    try:
        path = _snapshot(located.path) if located.kind == "repo" else located.path
        check_pipeline_folder(path, label)
        on_disk = _weight_bytes(Path(path))
        _check_memory(label, on_disk, torch_dtype, device)
        if on_stage is not None and on_disk > LARGE_BYTES:
            on_stage(f"Loading FLUX.2 klein ({_gb(on_disk)}): this takes a few minutes")
        pipe = cls.from_pretrained(path, local_files_only=True, dtype=torch_dtype)
        sha = folder_fingerprint(path)
    except JobError:
        raise
    except Exception as exc:
        if _is_network_error(exc):
            raise NetworkUnavailable(f"{ref.source} is not downloaded yet, and there is no network connection.",
                                     str(exc)) from exc
        raise ModelMissing(f"Could not load the model {label}: {_first_line(exc)}", repr(exc)) from exc
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    names = [Path(ref.source).name, ref.source]
    vae_scale = pipe.vae_scale_factor
    native = int(getattr(pipe.vae.config, "sample_size", 0) or pipe.default_sample_size * vae_scale)
    nbytes = sum(p.numel() * p.element_size() for module in pipe.components.values()
                 if isinstance(module, torch.nn.Module) for p in module.parameters())
    return Loaded(
        ref=ref, pipe=pipe, native=native, multiple=vae_scale * 2, preset=match_preset(names, ref.preset or "flux2-klein"),
        device=device, dtype=torch_dtype, nbytes=nbytes, sha256=sha, load_seconds=time.perf_counter() - started,
        scheduler_class=type(pipe.scheduler).__name__, scheduler_config=dict(pipe.scheduler.config),
    )


# --------------------------------------------------------------------------- running


def _scheduler(loaded: Loaded, name: str | None) -> Any:
    """A fresh copy of the model's own flow-matching scheduler: schedulers keep per-run state, and
    klein is distilled for its own sigmas, so the SD schedulers' names do not apply."""
    import diffusers

    if name and name != loaded.scheduler_class:
        raise BadInput(f"FLUX.2 klein runs with its own scheduler ({loaded.scheduler_class}), not {name!r}.",
                       "Leave the scheduler on the model's default.")
    return getattr(diffusers, loaded.scheduler_class).from_config(loaded.scheduler_config)


def _inpaint_pipe(loaded: Loaded) -> Any:
    cls = _diffusers_class(INPAINT_PIPELINE)  # asked each time, as capabilities() asks
    if cls is None:
        raise BadInput("This installation's diffusers cannot inpaint with FLUX.2 klein (it has no "
                       "Flux2KleinInpaintPipeline): use Generate or Edit, or update diffusers.")
    if loaded.inpaint_pipe is None:
        loaded.inpaint_pipe = cls.from_pipe(loaded.pipe)  # shares the weights, copies no tensors
        loaded.inpaint_pipe.set_progress_bar_config(disable=True)
    return loaded.inpaint_pipe


REFERENCE_MIN_SIDE = 64  # what diffusers' Flux2ImageProcessor.check_image_input accepts
REFERENCE_MAX_ASPECT = 8


def _reference(image: Image.Image) -> Image.Image:
    """The edit's source as a reference image the pipeline accepts: a small one scaled up to
    its minimum side (the result keeps the asked size); a strip past 8:1 refused plainly."""
    short, long = min(image.size), max(image.size)
    if long / short > REFERENCE_MAX_ASPECT:
        raise BadInput(f"FLUX.2 klein edits pictures up to {REFERENCE_MAX_ASPECT}:1; this one is "
                       f"{image.width} x {image.height} px.", "Select a less elongated part of the image.")
    if short >= REFERENCE_MIN_SIDE:
        return image
    scale = REFERENCE_MIN_SIDE / short
    size = (max(REFERENCE_MIN_SIDE, round(image.width * scale)), max(REFERENCE_MIN_SIDE, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def run(loaded: Loaded, task: str, call: dict[str, Any], steps: int, on_step: StepCallback,
        cancelled: Callable[[], bool], scheduler: str | None) -> tuple[Image.Image, dict[str, float]]:
    """One pipeline call to latents, then the VAE decode (skipped when cancelled)."""
    import torch

    from inference.backends.diffusers_backend import _StageTimer, remember_prompts

    call = dict(call)
    generator = torch.Generator(device="cpu").manual_seed(call.pop("seed"))
    # klein takes no negative prompt (distilled: no classifier-free guidance) and no image guidance.
    for unused in ("negative_prompt", "image_guidance_scale", "decoder"):
        call.pop(unused, None)
    if task == "text2img":
        pipe = loaded.pipe
    elif task == "edit":
        pipe = loaded.pipe
        image = call["image"]
        call.setdefault("width", image.width)
        call.setdefault("height", image.height)
        call["image"] = _reference(image)
    elif task in ("inpaint", "img2img"):
        pipe = _inpaint_pipe(loaded)
        if task == "img2img":  # vary: masked image-to-image over the whole picture
            image = call["image"]
            call["mask_image"] = Image.new("L", image.size, 255)
            call.setdefault("width", image.width)
            call.setdefault("height", image.height)
    else:
        raise BadInput(f"FLUX.2 klein cannot run {task}.")
    pipe.scheduler = _scheduler(loaded, scheduler)
    remember_prompts(pipe)

    def on_step_end(p: Any, index: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if cancelled():
            p._interrupt = True
        else:
            on_step(index + 1, getattr(p, "_num_timesteps", None) or steps, tensors.get("latents"))
        return tensors

    timer = _StageTimer([pipe.text_encoder, pipe.vae.encoder])
    started = time.perf_counter()
    try:
        with torch.inference_mode():
            output = pipe(num_inference_steps=steps, generator=generator, output_type="latent",
                          callback_on_step_end=on_step_end, **call)
    finally:
        timer.close()
    total = time.perf_counter() - started
    if cancelled():
        raise Cancelled()
    decode_start = time.perf_counter()
    with torch.inference_mode():
        image = decode(loaded.pipe, output.images)
    return image, {"encode": timer.seconds, "denoise": total - timer.seconds,
                   "decode": time.perf_counter() - decode_start}


def decode(pipe: Any, latents: Any) -> Image.Image:
    """The pipeline's latent output (batch-norm undone, unpatchified) through the VAE."""
    pixels = pipe.vae.decode(latents.to(pipe.vae.device, pipe.vae.dtype), return_dict=False)[0]
    return pipe.image_processor.postprocess(pixels, output_type="pil")[0]


def decode_latents(loaded: Loaded, latents: Any) -> Image.Image:
    import torch

    from inference.backends.diffusers_backend import checked_latents

    with torch.inference_mode():
        return decode(loaded.pipe, torch.from_numpy(checked_latents(loaded, latents)))


class FluxBackend:
    name = "flux"

    def claims(self, located: Located) -> bool:
        return is_flux2_klein(located)

    def placement(self, device: str | None, dtype: str | None) -> tuple[str, str]:
        from inference.device import pick_dtype_name

        device = pick_device(device)
        if dtype not in (None, "auto"):
            name = pick_dtype_name(device, dtype)
            if name == "float16":
                # FLUX's activations overflow float16 (black pictures); bf16 is what it is trained in.
                raise BadInput("FLUX.2 klein runs in bfloat16 or float32, not float16.")
            return device, name
        if device.startswith("cpu"):
            from inference.runtimes import native_bf16

            return device, "bfloat16" if native_bf16() else "float32"
        return device, "bfloat16"

    def load(self, ref: ModelRef, located: Located, device: str, dtype: str, on_stage=None) -> Loaded:
        return load(ref, located, device, dtype, on_stage)

    def run(self, loaded, task, call, steps, on_step, cancelled, scheduler):
        return run(loaded, task, call, steps, on_step, cancelled, scheduler)

    def preview(self, loaded: Loaded, latents: Any) -> Image.Image | None:
        # Step latents are packed 2x2 patches of a 32-channel space with no published RGB map;
        # a VAE decode per step would cost more than the step. Progress still comes per step.
        return None

    def last_latents(self, loaded: Loaded) -> Any:
        return None  # no tiny decoder, so no result is ever fast-decoded and worth refining

    def decode_latents(self, loaded: Loaded, latents: Any) -> Image.Image:
        return decode_latents(loaded, latents)

    def capabilities(self, loaded: Loaded) -> Capabilities:
        inpaints = _diffusers_class(INPAINT_PIPELINE) is not None
        tasks = {"text2img", "edit"} | ({"inpaint", "img2img"} if inpaints else set())
        return Capabilities(tasks=frozenset(tasks), inpaint="masked" if inpaints else None, keeps_alpha=False,
                            whole_objects=False, native=loaded.native, multiple=loaded.multiple)

    def release(self, loaded: Loaded) -> None:
        import gc

        import torch

        loaded.inpaint_pipe = None
        loaded.pipe = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


BACKEND = FluxBackend()
