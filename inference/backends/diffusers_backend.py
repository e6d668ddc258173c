"""Stable Diffusion family (SD 1.x, 2.x, SDXL) on diffusers and torch.

Loading: a diffusers folder, a Hub repo id (cache first, download only when allowed), or one
original-format checkpoint file via `from_single_file`; LoRAs through diffusers' PEFT adapters.
Running: the pipelines always return latents; this module decodes them itself, so a cancelled job
never pays for the decoder and the Result can report encode/denoise/decode times separately.

torch and diffusers are imported inside the functions that use them: the registry
(inference.backends) imports this module to ask whether it serves a model, and that must cost
nothing when the model turns out to be the built-in one.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from inference.backends import Capabilities, StepCallback
from inference.device import dtype_name, pick_device, pick_dtype, pick_dtype_name
from inference.jobs import BadInput, Cancelled, JobError, ModelMissing, ModelRef, NetworkUnavailable
from inference.models.presets import SCHEDULERS, Preset, match_preset, with_steps_from_name
from inference.models.store import (  # noqa: F401 - file_sha256, folder_fingerprint: once defined here
    CHECKPOINT_SUFFIXES, Located, check_pipeline_folder, file_sha256, folder_fingerprint, locate, looks_like_repo_id,
    weights_variant)


@dataclass
class Loaded:
    """A loaded model: the base pipeline, what it can do, and the derived pipelines it shares weights with."""

    ref: ModelRef
    pipe: Any
    family: str  # "sd1" | "sd2" | "sdxl"
    in_channels: int  # 4 text2img, 9 inpainting UNet, 8 InstructPix2Pix
    native: int  # native resolution in pixels (square side)
    preset: Preset
    device: str
    dtype: Any  # torch.dtype
    nbytes: int
    sha256: str | None
    load_seconds: float
    scheduler_class: str = ""
    scheduler_config: dict[str, Any] = field(default_factory=dict)
    derived: dict[str, Any] = field(default_factory=dict)
    keeps_alpha: bool = False  # the VAE sees RGB only: sources are flattened over grey
    whole_objects: bool = False  # inpaint crops zoom in on the mask (compositing.crop_region)
    backend: "DiffusersBackend" = field(default_factory=lambda: BACKEND)
    runtime: str = "torch"  # "torch" or "openvino" (inference.backends.openvino_backend)
    tiny_decoder: Any = None  # an AutoencoderTiny for previews and Fast decode, when one is found
    kept_latents: Any = None  # the last tiny-decoded run's latents (numpy), for Refine

    @property
    def task(self) -> str:
        return {9: "inpaint", 8: "edit"}.get(self.in_channels, "text2img")

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.pipe.vae.config.block_out_channels) - 1)

    def info(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "task": self.task,
            "native": self.native,
            "preset": self.preset.name,
            "device": self.device,
            "dtype": dtype_name(self.dtype),
            "pipeline": type(self.pipe).__name__,
            "runtime": self.runtime,
        }


# --------------------------------------------------------------------------- loading


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _is_network_error(exc: BaseException) -> bool:
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError)):
            return True
        text = str(exc).lower()
        if any(s in text for s in ("offline mode", "connection", "couldn't connect", "cannot find the requested files")):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _cross_attention_key(keys: set[str]) -> str | None:
    """A UNet cross-attention key projection, whose input width is the text encoder's: 768 for
    SD 1.x (CLIP ViT-L), 1024 for SD 2.x (OpenCLIP ViT-H). Any block's will do: which blocks have
    attention differs between models."""
    found = sorted(k for k in keys if k.startswith("model.diffusion_model.") and k.endswith("attn2.to_k.weight"))
    return found[0] if found else None


def _checkpoint_layout(path: str) -> tuple[str, int]:
    """(family, UNet input channels) of an original-format checkpoint, read from its tensor shapes."""
    first_conv = "model.diffusion_model.input_blocks.0.0.weight"
    if path.lower().endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(path, framework="pt") as handle:
                keys = set(handle.keys())
                if first_conv not in keys:
                    if any("lora" in key for key in keys):
                        raise BadInput(
                            f"{Path(path).name} is a LoRA, not a model: add it under LoRAs (--lora) on top of a model."
                        )
                    raise BadInput(
                        f"{Path(path).name} is not a Stable Diffusion checkpoint.",
                        "It has no UNet weights (model.diffusion_model.*).",
                    )
                channels = handle.get_slice(first_conv).get_shape()[1]
                context_key = _cross_attention_key(keys)
                context = handle.get_slice(context_key).get_shape()[1] if context_key else 768
        except JobError:
            raise
        except Exception as exc:
            raise BadInput(f"{Path(path).name} could not be read: the file is damaged or incomplete.", str(exc)) from exc
    else:
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise BadInput(f"{Path(path).name} could not be read as a checkpoint.", str(exc)) from exc
        state = state.get("state_dict", state)
        keys = set(state)
        if first_conv not in keys:
            raise BadInput(f"{Path(path).name} is not a Stable Diffusion checkpoint.")
        channels = state[first_conv].shape[1]
        context_key = _cross_attention_key(keys)
        context = state[context_key].shape[1] if context_key else 768
    if any(k.startswith("conditioner.embedders.1") for k in keys):
        return "sdxl", channels
    return ("sd2" if context == 1024 else "sd1"), channels


def _shipped_config(path: str, family: str, channels: int, kwargs: dict[str, Any]) -> Path | None:
    """The config folder shipped for a single file's family and variant (SD 1.x, 2.x, SDXL;
    inpainting, InstructPix2Pix), put into `kwargs` with its tokenizers, so it loads offline."""
    from inference.models.importer import shipped_config, shipped_tokenizers

    folder = shipped_config(path, family, {4: "text2img", 9: "inpaint", 8: "pix2pix"}.get(channels))
    if folder is not None:
        kwargs["config"] = str(folder)
        kwargs.update(shipped_tokenizers(folder))
    return folder


def _family_of(pipe: Any) -> str:
    if "XL" in type(pipe).__name__ or getattr(pipe, "text_encoder_2", None) is not None:
        return "sdxl"
    text_encoder = getattr(pipe, "text_encoder", None)
    hidden = getattr(getattr(text_encoder, "config", None), "hidden_size", 768)
    return "sd2" if hidden == 1024 else "sd1"


_PIPELINES = {
    ("sd1", 4): "StableDiffusionPipeline",
    ("sd1", 9): "StableDiffusionInpaintPipeline",
    ("sd1", 8): "StableDiffusionInstructPix2PixPipeline",
    ("sdxl", 4): "StableDiffusionXLPipeline",
    ("sdxl", 9): "StableDiffusionXLInpaintPipeline",
    ("sdxl", 8): "StableDiffusionXLInstructPix2PixPipeline",
}


def _quiet_loading() -> None:
    """No progress bars on the CLI's stderr while weights load (diffusers' and transformers')."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def load(ref: ModelRef, device: str | None = None, dtype: str | None = None) -> Loaded:
    import diffusers
    import torch

    started = time.perf_counter()
    located = locate(ref.source)
    device = pick_device(device)
    torch_dtype = pick_dtype(device, dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    _quiet_loading()
    sha: str | None = None
    try:
        if located.kind == "file":
            family, channels = _checkpoint_layout(located.path)
            cls = getattr(diffusers, _PIPELINES[("sdxl" if family == "sdxl" else "sd1", channels)])
            shipped = None
            if ref.config:
                kwargs["config"] = ref.config
            else:
                shipped = _shipped_config(located.path, family, channels, kwargs)
            if family != "sdxl":
                kwargs["safety_checker"] = None
            try:
                pipe = cls.from_single_file(located.path, local_files_only=_offline(), **kwargs)
            except Exception as exc:
                if shipped is None or _is_network_error(exc):
                    raise
                raise ModelMissing(
                    f"{Path(located.path).name} does not fit the {shipped.name} config files that ship with "
                    "Quickbrush (its tensors have other sizes).",
                    f"Give a diffusers folder or repo id of the same model as its config (--config).\n{exc}",
                ) from exc
            sha = file_sha256(located.path)
        else:
            path = located.path
            if located.kind == "repo":
                path = _snapshot(located.path)
            label = located.path if located.kind == "repo" else Path(path).name
            index = check_pipeline_folder(path, label)
            if "safety_checker" in index:
                # Local editing, like every desktop SD tool: no NSFW filter blacking out results.
                kwargs["safety_checker"] = None
                kwargs["requires_safety_checker"] = False
            variant = weights_variant(path)
            if variant:  # the catalog downloads fp16 files only; diffusers needs telling
                kwargs["variant"] = variant
            pipe = diffusers.DiffusionPipeline.from_pretrained(path, local_files_only=True, **kwargs)
            sha = folder_fingerprint(path)
    except JobError:
        raise
    except Exception as exc:
        if _is_network_error(exc) and located.kind == "file":
            raise NetworkUnavailable(
                f"{Path(located.path).name} needs its model family's config files, which are not downloaded yet, "
                "and there is no network connection.",
                "Connect once so they can be cached, or give a diffusers folder or repo id of the same family "
                f"as the config (--config).\n{exc}",
            ) from exc
        if _is_network_error(exc):
            raise NetworkUnavailable(
                f"{ref.source} is not downloaded yet, and there is no network connection.",
                str(exc),
            ) from exc
        raise ModelMissing(f"Could not load the model {Path(ref.source).name}: {_first_line(exc)}", repr(exc)) from exc

    if not hasattr(pipe, "unet"):
        raise ModelMissing(f"{ref.source} is a {type(pipe).__name__}, which Quickbrush cannot run yet.")
    loaded = finish_load(ref, pipe, device, torch_dtype, sha, started)
    loaded.tiny_decoder = load_tiny_decoder(located, loaded.family, device, torch_dtype, pipe.vae.config)
    return loaded


# --------------------------------------------------------------------------- the tiny decoder

TINY_FOLDER = "vae_tiny"  # inside a model's folder: its own TAESD, in diffusers' AutoencoderTiny format
TINY_SHARED = {"sd1": "taesd", "sd2": "taesd", "sdxl": "taesdxl"}  # in the models folder, for a family


def tiny_decoder_folder(located: Located, family: str) -> Path | None:
    """Where the tiny decoder (TAESD / TAESDXL) for a model is: the model's own `vae_tiny/`,
    else the family's in the models folder (where the model manager puts madebyollin/taesd)."""
    from inference.models.store import models_dir

    places = []
    if located.kind in ("folder", "builtin"):
        places.append(Path(located.path) / TINY_FOLDER)
    places.append(models_dir() / TINY_SHARED.get(family, "taesd"))
    for place in places:
        if (place / "config.json").is_file():
            return place
    return None


def load_tiny_decoder(located: Located, family: str, device: str, torch_dtype: Any, vae_config: Any) -> Any:
    """The AutoencoderTiny for previews and Fast decode, or None (previews then fall back to the
    latent colour approximation, and Fast decode to the full decoder). A damaged one is logged
    and skipped: it must never stop the model itself from loading."""
    import logging

    folder = tiny_decoder_folder(located, family)
    if folder is None:
        return None
    try:
        from diffusers import AutoencoderTiny

        tiny = AutoencoderTiny.from_pretrained(str(folder), torch_dtype=torch_dtype).to(device).eval()
    except Exception:
        logging.getLogger(__name__).warning("the tiny decoder at %s could not be loaded", folder, exc_info=True)
        return None
    return tiny if _fits(tiny, vae_config, folder) else None


def _fits(tiny: Any, vae_config: Any, folder: Path) -> bool:
    """Whether a tiny decoder reads this model's latents and draws its size: TAESDXL beside an
    SD 1.5 model, or a TAESD for another VAE, would give a wrong-sized or meaningless picture."""
    config = tiny.config
    scale = config.upsampling_scaling_factor ** (len(config.decoder_block_out_channels) - 1)
    wanted = 2 ** (len(vae_config.block_out_channels) - 1)
    if config.latent_channels == vae_config.latent_channels and scale == wanted:
        return True
    import logging

    logging.getLogger(__name__).warning(
        "the tiny decoder at %s does not fit this model (latent channels %s, scale %s; the model's VAE: %s, %s)",
        folder, config.latent_channels, scale, vae_config.latent_channels, wanted)
    return False


def finish_load(ref: ModelRef, pipe: Any, device: str, torch_dtype: Any, sha: str | None, started: float,
                loras: bool = True) -> Loaded:
    """The Loaded for a pipeline read from disk: LoRAs applied (unless already in its weights, as
    in an OpenVINO IR), moved to `device`, its family, native size and preset worked out."""
    import torch

    pipe.set_progress_bar_config(disable=True)
    if loras:
        _load_loras(pipe, ref)
    pipe.to(device)

    family = _family_of(pipe)
    in_channels = pipe.unet.config.in_channels
    vae_scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    sample = pipe.unet.config.sample_size
    native = (sample[0] if isinstance(sample, (list, tuple)) else sample) * vae_scale
    names = [Path(lora.source).name for lora in ref.loras] + [Path(ref.source).name, ref.source]
    preset = with_steps_from_name(match_preset(names, ref.preset), names)
    if device.startswith("cuda"):
        _tune_for_cuda(pipe, native, 2 if preset.guidance_for(preset.steps) > 1 else 1)
    nbytes = sum(
        p.numel() * p.element_size()
        for module in pipe.components.values()
        if isinstance(module, torch.nn.Module)
        for p in module.parameters()
    )
    return Loaded(
        ref=ref, pipe=pipe, family=family, in_channels=in_channels, native=native, preset=preset,
        device=device, dtype=torch_dtype, nbytes=nbytes, sha256=sha,
        load_seconds=time.perf_counter() - started,
        scheduler_class=type(pipe.scheduler).__name__, scheduler_config=dict(pipe.scheduler.config),
    )


def _tune_for_cuda(pipe: Any, native: int | None = None, batch: int = 1) -> None:
    """What pays on an NVIDIA GPU: channels-last convolutions, PyTorch's fused SDPA attention
    (diffusers' default processor on torch 2), and torch.compile of the UNet and VAE decoder for
    the fixed shapes a job uses. Inductor's cache goes into Quickbrush's cache folder, so a
    restart reuses the compiled kernels, and one call at the model's native shape compiles them
    while the model loads (the "loading model" the designer already waits through), not in the
    first job. QUICKBRUSH_COMPILE=0 turns compiling off."""
    import torch

    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    if os.environ.get("QUICKBRUSH_COMPILE", "1") == "0":
        return
    from inference.files import cache_dir

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    mode = os.environ.get("QUICKBRUSH_COMPILE_MODE", "max-autotune-no-cudagraphs")
    try:
        pipe.unet = torch.compile(pipe.unet, mode=mode, dynamic=False)
        pipe.vae.decoder = torch.compile(pipe.vae.decoder, mode=mode, dynamic=False)
        if native:
            _warm_up_compiled(pipe, native, batch)
    except Exception:  # an old GPU or a missing compiler: eager still works, only slower
        import logging

        logging.getLogger(__name__).warning("torch.compile is unavailable; running eagerly", exc_info=True)
        pipe.unet = getattr(pipe.unet, "_orig_mod", pipe.unet)
        pipe.vae.decoder = getattr(pipe.vae.decoder, "_orig_mod", pipe.vae.decoder)


def _warm_up_compiled(pipe: Any, native: int, batch: int) -> None:
    """One UNet call and one decode at the native shape, so compiling happens during the load."""
    import torch

    from inference.backends.openvino_backend import _example_unet_inputs

    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    side = native // scale
    arrays, _names = _example_unet_inputs(getattr(pipe.unet, "_orig_mod", pipe.unet), batch, side)
    device, dtype = pipe.unet.device, pipe.unet.dtype
    kwargs: dict[str, Any] = {}
    config = pipe.unet.config
    if config.get("time_cond_proj_dim"):
        kwargs["timestep_cond"] = arrays[3].to(device, dtype)
    if config.get("addition_embed_type") == "text_time":
        kwargs["added_cond_kwargs"] = {"text_embeds": arrays[-2].to(device, dtype),
                                       "time_ids": arrays[-1].to(device, dtype)}
    with torch.inference_mode():
        pipe.unet(arrays[0].to(device, dtype), arrays[1].to(device), arrays[2].to(device, dtype),
                  return_dict=False, **kwargs)
        latents = torch.zeros(1, pipe.vae.config.latent_channels, side, side, device=device, dtype=pipe.vae.dtype)
        pipe.vae.decode(latents, return_dict=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _snapshot(repo_id: str) -> str:
    """The repo's local snapshot: from the cache, or downloaded when the network is allowed."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.txt", "*.model", "*.safetensors"]
    ignore = ["*.fp16.safetensors", "*non_ema*", "*.ckpt", "*.bin", "*.onnx*", "*.msgpack", "*.pb", "*.h5"]
    try:
        return snapshot_download(repo_id, allow_patterns=patterns, ignore_patterns=ignore, local_files_only=True)
    except Exception:
        if _offline():
            raise NetworkUnavailable(
                f"{repo_id} is not downloaded yet, and Quickbrush is offline.",
                "HF_HUB_OFFLINE is set. Download the model once with the network on, or copy its folder "
                "into the models folder.",
            ) from None
    return snapshot_download(repo_id, allow_patterns=patterns, ignore_patterns=ignore)


def _lora_repo_id(source: str) -> bool:
    """Whether a LoRA source that is not on disk is meant as a Hub repo id ("owner/name"), not
    a file: a name ending in a weight suffix ("styles/ink.safetensors") is a path."""
    return looks_like_repo_id(source) and not source.lower().endswith(CHECKPOINT_SUFFIXES + (".bin", ".pt"))


def _load_loras(pipe: Any, ref: ModelRef) -> None:
    if not ref.loras:
        return
    names = []
    for i, lora in enumerate(ref.loras):
        path = Path(lora.source).expanduser()
        name = f"lora{i}"
        if not path.exists() and not _lora_repo_id(lora.source):
            raise BadInput(f"The LoRA file {path.name} was not found.",
                           f"No such file: {path.absolute()}. Check the path, or give a Hugging Face repo id "
                           "(owner/name) for a LoRA from the Hub.")
        try:
            if path.is_file():
                pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
            elif path.exists():
                pipe.load_lora_weights(str(path), adapter_name=name)
            else:
                pipe.load_lora_weights(lora.source, adapter_name=name, local_files_only=_offline())
        except Exception as exc:
            if not path.exists() and _is_network_error(exc):
                raise NetworkUnavailable(f"The LoRA {lora.source} is not downloaded yet, and there is no network.") from exc
            raise BadInput(f"The LoRA {path.name} could not be loaded: {_first_line(exc)}", repr(exc)) from exc
        names.append(name)
    pipe.set_adapters(names, adapter_weights=[lora.scale for lora in ref.loras])


# --------------------------------------------------------------------------- running


def make_scheduler(loaded: Loaded, name: str | None) -> Any:
    """A fresh scheduler for one run, always built from the model's own shipped config.

    Fresh, because schedulers keep per-run state; from the original config, because a previous
    run's overrides (trailing spacing, say) must not leak into the next.
    """
    import diffusers

    original = loaded.scheduler_class, loaded.scheduler_config
    if not name or name == original[0]:
        return getattr(diffusers, original[0]).from_config(original[1])
    if name in SCHEDULERS:
        class_name, overrides = SCHEDULERS[name]
    elif name.endswith("Scheduler") and hasattr(diffusers, name):
        class_name, overrides = name, {}
    else:
        raise BadInput(f"Unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}.")
    return getattr(diffusers, class_name).from_config(original[1], **overrides)


def pipeline_for(loaded: Loaded, task: str) -> Any:
    """The pipeline for `task`, sharing the loaded weights (`from_pipe` copies no tensors)."""
    import diffusers

    if loaded.in_channels == 8:
        if task != "edit":
            raise BadInput(
                "This model only does instruction edits.",
                "Choose a text-to-image or inpainting model for Generate, Vary, Inpaint and Outpaint.",
            )
        return loaded.pipe
    if task == "edit":
        raise BadInput(
            "Instruction edits need an InstructPix2Pix model.",
            "For example timbrooks/instruct-pix2pix, or the built-in model once installed.",
        )
    if loaded.in_channels == 9:
        # An inpainting UNet also serves generate and vary: a full mask over the image.
        return loaded.pipe
    if task == "text2img":
        return loaded.pipe
    if task not in loaded.derived:
        auto = {"img2img": diffusers.AutoPipelineForImage2Image, "inpaint": diffusers.AutoPipelineForInpainting}[task]
        derived = auto.from_pipe(loaded.pipe)
        derived.set_progress_bar_config(disable=True)
        loaded.derived[task] = derived
    return loaded.derived[task]


PROMPT_MEMORY = 8  # prompts (each with its negative) remembered per text encoder


def remember_prompts(pipe: Any) -> None:
    """The text encoders answer a prompt they have seen from memory. A designer varies the seed,
    the mask or the strength far more often than the words, and the encoder is deterministic, so
    the answer is the same; on a 1-step model at 512 px the encoder is 5-10 % of a job. Done on
    the module (an instance `forward`), so every pipeline sharing it (img2img, inpaint) and both
    runtimes (torch, OpenVINO's modules) share the memory; a new model or LoRA set is a new module.
    Idempotent. Written here because diffusers' pipelines take prompt_embeds but keep none."""
    from collections import OrderedDict

    import torch

    def key_of(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return ("tensor", tuple(value.shape), str(value.dtype), value.detach().cpu().numpy().tobytes())
        return repr(value)

    for name in ("text_encoder", "text_encoder_2"):
        module = getattr(pipe, name, None)
        if module is None or getattr(module, "_remembers_prompts", False):
            continue
        memory: OrderedDict = OrderedDict()
        forward = module.forward

        def remembered(*args: Any, _forward=forward, _memory=memory, **kwargs: Any) -> Any:
            key = (tuple(key_of(a) for a in args), tuple(sorted((k, key_of(v)) for k, v in kwargs.items())))
            if key in _memory:
                _memory.move_to_end(key)
                return _memory[key]
            output = _forward(*args, **kwargs)
            _memory[key] = output
            while len(_memory) > PROMPT_MEMORY * 2:  # a prompt and its negative
                _memory.popitem(last=False)
            return output

        object.__setattr__(module, "forward", remembered)
        object.__setattr__(module, "_remembers_prompts", True)
        object.__setattr__(module, "remembered_prompts", memory)


class _StageTimer:
    """Accumulates time spent in the text encoders and the VAE encoder during a pipeline call."""

    def __init__(self, modules: list[Any]):
        self.seconds = 0.0
        self._start: float | None = None
        self._handles = []
        for module in modules:
            self._handles.append(module.register_forward_pre_hook(self._pre))
            self._handles.append(module.register_forward_hook(self._post))

    def _pre(self, *_: Any) -> None:
        self._start = time.perf_counter()

    def _post(self, *_: Any) -> None:
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self._start = None

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def run(
    loaded: Loaded,
    task: str,
    call: dict[str, Any],
    steps: int,
    on_step: StepCallback,
    cancelled: Callable[[], bool],
    scheduler: str | None,
) -> tuple[Image.Image, dict[str, float]]:
    """Run one pipeline call to latents, then decode. `call` holds the pipeline's own arguments.

    `steps` is how many denoising steps actually run; for image-to-image at strength s diffusers
    runs int(num_inference_steps * s) of them, so num_inference_steps is scaled up to match.
    """
    import torch

    pipe = pipeline_for(loaded, task)
    pipe.scheduler = make_scheduler(loaded, scheduler)
    remember_prompts(pipe)
    strength = call.get("strength")
    num_steps = steps
    if strength is not None and strength < 1.0:
        num_steps = max(steps, math.ceil(steps / strength - 1e-6))
    decoder = call.pop("decoder", None) or "full"
    generator = torch.Generator(device="cpu").manual_seed(call.pop("seed"))
    if loaded.preset.eta is not None and scheduler == "tcd":
        call.setdefault("eta", loaded.preset.eta)

    def on_step_end(p: Any, index: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if cancelled():
            p._interrupt = True
        else:
            # Multistep schedulers (PNDM's warm-up) may run more iterations than asked for.
            on_step(index + 1, getattr(p, "_num_timesteps", None) or steps, tensors.get("latents"))
        return tensors

    encoders = [m for m in (getattr(pipe, "text_encoder", None), getattr(pipe, "text_encoder_2", None)) if m is not None]
    encoders.append(pipe.vae.encoder)
    timer = _StageTimer(encoders)
    started = time.perf_counter()
    try:
        with torch.inference_mode():
            output = pipe(
                num_inference_steps=num_steps,
                generator=generator,
                output_type="latent",
                callback_on_step_end=on_step_end,
                **call,
            )
    finally:
        timer.close()
    total = time.perf_counter() - started
    if cancelled():
        raise Cancelled()
    latents = output.images
    tiny = loaded.tiny_decoder if decoder == "tiny" else None
    loaded.kept_latents = latents.detach().float().cpu().numpy() if tiny is not None else None
    decode_start = time.perf_counter()
    with torch.inference_mode():
        image = decode(pipe, latents, tiny)
    return image, {
        "encode": timer.seconds,
        "denoise": total - timer.seconds,
        "decode": time.perf_counter() - decode_start,
    }


def decode(pipe: Any, latents: Any, vae: Any = None) -> Image.Image:
    """Latents to the image, by the model's VAE or the `vae` given (a tiny decoder, whose
    scaling factor of 1 takes the model's scaled latents as they are)."""
    import torch

    vae = vae if vae is not None else pipe.vae
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if upcast:
        vae.to(torch.float32)
    try:
        latents = latents.to(vae.dtype)
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        latents = latents / vae.config.scaling_factor + shift
        pixels = vae.decode(latents, return_dict=False)[0]
    finally:
        if upcast:
            vae.to(torch.float16)
    return pipe.image_processor.postprocess(pixels, output_type="pil")[0]


def preview(loaded: Loaded, latents: Any) -> Image.Image | None:
    """A step's preview: the tiny decoder's picture where there is one (at half the latent size
    above 32 latents, a quarter of its cost and still larger than the canvas preview needs), else
    the latent colour approximation."""
    from inference.previews import latents_to_preview

    if latents is None:
        return None
    if loaded.tiny_decoder is not None:
        import torch

        try:
            with torch.inference_mode():
                small = latents[:1]
                if min(small.shape[-2:]) > 32:
                    small = torch.nn.functional.avg_pool2d(small, 2)
                return decode(loaded.pipe, small, loaded.tiny_decoder)
        except Exception:  # a preview is never worth failing the job
            pass
    return latents_to_preview(latents, loaded.family)


def checked_latents(loaded: Any, latents: Any) -> Any:
    """Kept latents as a float32 array, or BadInput when they are not this model's VAE's."""
    import numpy as np

    array = np.asarray(latents, dtype=np.float32)
    channels = loaded.pipe.vae.config.latent_channels
    if array.ndim != 4 or array.shape[1] != channels:
        raise BadInput("These latents do not belong to this model, so they cannot be refined with it.",
                       f"latents shape {array.shape}, the model's VAE takes {channels} channels")
    return array


def decode_latents(loaded: Loaded, latents: Any) -> Image.Image:
    """Kept latents (numpy, from a tiny-decoded result) decoded again by the model's own VAE."""
    import torch

    tensor = torch.from_numpy(checked_latents(loaded, latents)).to(loaded.device)
    with torch.inference_mode():
        return decode(loaded.pipe, tensor)


# UNet input channels -> what the model runs as itself (pipeline_for says the same in its errors).
_TASKS = {
    9: (frozenset(("inpaint",)), "native"),  # inpainting UNet: image, mask and masked latent in
    8: (frozenset(("edit",)), None),  # InstructPix2Pix: image latent in
}
_TEXT2IMG = (frozenset(("text2img", "img2img", "inpaint")), "masked")


class DiffusersBackend:
    """The Backend protocol over this module's functions (looked up at call time, so a test can
    replace `run` or `decode` here and the engine calls the replacement)."""

    name = "diffusers"

    def claims(self, located: Located) -> bool:
        # A folder is the built-in model's when it has its config (that backend is asked first);
        # any other folder that store.locate accepts holds model_index.json.
        from inference.backends.flux_backend import is_flux2_klein

        if is_flux2_klein(located):  # no UNet: inference.backends.flux_backend runs it
            return False
        if located.kind in ("builtin", "folder"):
            return (Path(located.path) / "model_index.json").is_file()
        return located.kind in ("file", "repo")

    def placement(self, device: str | None, dtype: str | None) -> tuple[str, str]:
        device = pick_device(device)
        return device, pick_dtype_name(device, dtype)

    def load(self, ref: ModelRef, located: Located, device: str, dtype: str, on_stage=None) -> Loaded:
        return load(ref, device, dtype)

    def run(self, loaded, task, call, steps, on_step, cancelled, scheduler):
        return run(loaded, task, call, steps, on_step, cancelled, scheduler)

    def preview(self, loaded, latents):
        return preview(loaded, latents)

    def last_latents(self, loaded: Loaded) -> Any:
        latents, loaded.kept_latents = loaded.kept_latents, None
        return latents

    def decode_latents(self, loaded: Loaded, latents: Any) -> Image.Image:
        return decode_latents(loaded, latents)

    def capabilities(self, loaded: Loaded) -> Capabilities:
        tasks, inpaint = _TASKS.get(loaded.in_channels, _TEXT2IMG)
        return Capabilities(tasks=tasks, inpaint=inpaint, keeps_alpha=loaded.keeps_alpha,
                            whole_objects=loaded.whole_objects, native=loaded.native, multiple=8,
                            tiny_decoder=loaded.tiny_decoder is not None)

    def release(self, loaded: Loaded) -> None:
        import gc

        import torch

        loaded.derived.clear()
        loaded.pipe = None
        loaded.tiny_decoder = None
        gc.collect()  # the pipeline's reference cycles hold its tensors until collected
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


BACKEND = DiffusersBackend()
