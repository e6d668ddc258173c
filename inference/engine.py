"""Turns a Job into a Result: picks the model and backend, resolves defaults, composites.

The backend comes from the registry (inference.backends), and what the engine decides by (how a
model inpaints, whether it keeps alpha, its native size) from the backend's Capabilities; this
module imports no runtime itself.

The engine belongs to one thread (the worker's); it is not thread-safe by itself. It keeps loaded
models in a small LRU cache bounded by count and by memory, and records in every Result the exact
job that ran, with the defaults it filled in, so the recipe reproduces the image.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from typing import Any, Callable

from PIL import Image

from inference import compositing
from inference import runtimes
from inference.backends import Capabilities, Loaded, backend, backend_for, candidates
from inference.device import check_device, check_dtype, dtype_name
from inference.images import check_pixels, has_alpha
from inference.models.store import estimate_bytes, locate
from inference.jobs import (
    BadInput,
    Cancelled,
    Edit,
    Generate,
    Inpaint,
    Job,
    JobError,
    ModelRef,
    Outpaint,
    OutOfMemory,
    Progress,
    Refine,
    Vary,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]


def _available_memory(device: str) -> int | None:
    try:
        if device.startswith("cuda"):
            import torch

            free, _total = torch.cuda.mem_get_info()
            return int(free)
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # no way to ask: fall back to the count limit alone
        return None


def _is_oom(exc: BaseException) -> bool:
    # torch's OutOfMemoryError by name: importing torch to test a built-in model's error would
    # load torch into a process that never needed it.
    if isinstance(exc, MemoryError) or any(
            cls.__name__ == "OutOfMemoryError" and cls.__module__.startswith("torch") for cls in type(exc).__mro__):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


class Engine:
    def __init__(self, max_models: int = 2, reserve_bytes: int = 1 << 30):
        """`max_models` bounds the cache by count; `reserve_bytes` is the free memory kept for
        activations when a model is loaded beside others (older models are unloaded to keep it)."""
        self.max_models = max_models
        self.reserve_bytes = reserve_bytes
        self._cache: OrderedDict[tuple, Loaded] = OrderedDict()
        self.choices = runtimes.Choices()
        # The backend runtime auto chose per model in this process (so a cached copy of another
        # path, asked for by name earlier, is not taken for it).
        self._auto: dict[tuple, str] = {}
        # What the last job's denoising ended on, where its image came from the tiny decoder (the
        # worker hands it to the Result, for Refine); None otherwise.
        self.last_latents: Any = None

    # -- model cache ----------------------------------------------------------------------

    @staticmethod
    def _key(ref: ModelRef, device: str, dtype: str, backend_name: str = "") -> tuple:
        return (ref.source, ref.config, ref.preset, ref.loras, device, dtype, backend_name)

    def _cached(self, ref: ModelRef, device: str | None, dtype: str | None, runtime: str | None) -> Loaded | None:
        """The cached model for this job, found without looking at its files again: the backend
        of a cached copy of `ref` places the job (device, dtype) as it did when it loaded it. A
        job of runtime auto takes the copy on the path auto chose for it in this process."""
        base = self._key(ref, "", "")
        same = [m for m in reversed(self._cache.values()) if self._key(m.ref, "", "") == base]
        for cached in same:
            name = cached.backend.name
            if name in _BACKEND_OF_RUNTIME.values():  # a model with a runtime choice
                wanted = _BACKEND_OF_RUNTIME[runtime] if runtime not in (None, "auto") else self._auto.get(base)
                if name != wanted:
                    continue
            try:
                key = self._key(ref, *cached.backend.placement(device, dtype), name)
            except JobError:
                continue
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        return None

    def loaded_models(self) -> list[Loaded]:
        return list(self._cache.values())

    def model(self, ref: ModelRef, device: str | None = None, dtype: str | None = None,
              on_load: Callable[[], None] | None = None, runtime: str | None = None,
              size: tuple[int, int] | None = None,
              on_stage: Callable[[str], None] | None = None) -> tuple[Loaded, bool]:
        """The loaded model for `ref`, and whether it was loaded just now (`on_load()` is
        called first when it must be loaded, so a GUI can say "loading model" only then).

        `runtime` None or "auto" runs the model on the path chosen for this machine (probing the
        paths on the first use, at `size`, see inference.runtimes); "torch" or "openvino" on that
        one. `on_stage(text)` hears about the slow first-use steps (converting, timing paths)."""
        check_device(device)
        check_dtype(dtype, allow_int8=True)
        runtimes.check_runtime(runtime)
        cached = self._cached(ref, device, dtype, runtime)
        if cached is not None:
            return cached, False
        located = locate(ref.source)
        chosen, device_key, dtype_key, probed = self._choose(ref, located, device, dtype, runtime, size, on_stage)
        key = self._key(ref, device_key, dtype_key, chosen.name)
        if runtime in (None, "auto"):
            self._auto[self._key(ref, "", "")] = chosen.name
        if key in self._cache:  # the chosen path was loaded before, by name
            self._cache.move_to_end(key)
            if probed is not None:
                self._release(probed)
            return self._cache[key], False
        while len(self._cache) >= self.max_models:
            self._evict_oldest()
        if on_load is not None:
            on_load()
        if probed is not None and probed.backend is chosen and dtype_name(probed.dtype) == dtype_key:
            loaded = probed  # the probe's own float32 torch model is the chosen path
        else:
            if probed is not None:
                self._release(probed)
            self._make_room(estimate_bytes(ref) + self.reserve_bytes, device_key)
            loaded = chosen.load(ref, located, device_key, dtype_key, on_stage=on_stage)
        self._cache[key] = loaded
        return loaded, True

    def _choose(self, ref, located, device, dtype, runtime, size, on_stage):
        """(backend, device, dtype, probed model or None) for a job on the model at `located`."""
        offered = candidates(located)
        if not offered:
            return backend_for(located), None, None, None  # backend_for raises, saying why
        if not any(b.name in _BACKEND_OF_RUNTIME.values() for b in offered):
            # The built-in model: the runtime choice is about Stable Diffusion models, and a
            # designer who set one in Preferences still gets the built-in model as it runs best.
            chosen = offered[0]
            return (chosen, *chosen.placement(device, dtype), None)
        if runtime not in (None, "auto"):
            named = [b for b in offered if _runtime_of(b.name) == runtime]
            if not named:
                if runtime == "openvino" and not runtimes.openvino_available():
                    raise BadInput("OpenVINO is not installed here; choose the runtime auto or torch.")
                raise BadInput(f"The {runtime} runtime cannot run {located.path}.")
            chosen = named[0]
            return (chosen, *chosen.placement(device, dtype), None)
        torch_dtype = None if dtype == "int8" else dtype  # int8 exists on OpenVINO only
        first = offered[-1]  # torch, where OpenVINO is offered too (the registry asks it first)
        device_key, dtype_key = first.placement(device, torch_dtype)
        sd_paths = [b for b in offered if b.name in ("diffusers", "openvino")]
        if len(sd_paths) < 2 or not device_key.startswith("cpu"):
            return first, device_key, dtype_key, None
        # A Stable Diffusion model on the CPU with OpenVINO present: the remembered choice, or a probe.
        from inference.backends import openvino_backend

        key = runtimes.choice_key(openvino_backend.fingerprint_of(located), ref.source, ref.loras, "cpu")
        choice = self.choices.get(key)
        probed = None
        if choice is None:
            choice, probed = openvino_backend.probe(ref, located, size, on_stage)
            self.choices.put(key, choice)
        chosen = backend(_BACKEND_OF_RUNTIME[choice.runtime])
        wanted = choice.dtype if dtype in (None, "auto") else dtype
        if wanted == "int8" and chosen.name != "openvino":
            wanted = None
        device_key, dtype_key = chosen.placement("cpu", wanted)
        return chosen, device_key, dtype_key, probed

    def _make_room(self, needed: int, device: str) -> None:
        """Unload least recently used models until `needed` bytes are free (or none is left)."""
        while self._cache:
            available = _available_memory(device)
            if available is None or available >= needed:
                return
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        _key, loaded = self._cache.popitem(last=False)
        log.info("unloading %s", loaded.ref.source)
        self._release(loaded)

    @staticmethod
    def _release(loaded: Loaded) -> None:
        try:
            loaded.backend.release(loaded)
        except Exception:  # unloading must not fail a job or the quit; the memory goes with the process
            log.warning("releasing %s failed", loaded.ref.source, exc_info=True)

    def unload(self, source: str | None = None) -> int:
        """Unload one model (by source) or all; returns how many were unloaded."""
        keys = [k for k in self._cache if source is None or k[0] == source]
        for key in keys:
            self._release(self._cache.pop(key))
        return len(keys)

    # -- running ----------------------------------------------------------------------------

    def run(
        self, job_id: int, job: Job, on_progress: ProgressCallback, cancelled: CancelCheck
    ) -> tuple[Image.Image, Job, dict[str, float], dict[str, Any]]:
        """Run `job`; returns (image, resolved job, timings, model info). Raises JobError."""
        try:
            return self._run(job_id, job, on_progress, cancelled)
        except JobError:
            raise
        except Exception as exc:
            if _is_oom(exc):
                self.unload()
                raise OutOfMemory(
                    "Not enough memory for this job. Try a smaller size, fewer steps, or another device.",
                    repr(exc),
                ) from exc
            raise

    def _run(self, job_id, job, on_progress, cancelled):
        started = time.perf_counter()
        if cancelled():
            raise Cancelled()
        refine = job if isinstance(job, Refine) else None
        if refine is not None:
            job = refine.source
        self.last_latents = None
        _check_sizes(job)

        def on_stage(text: str) -> None:
            on_progress(Progress(job_id, 0, 1, time.perf_counter() - started, stage="prepare", text=text))

        choosing = time.perf_counter()
        loaded, fresh = self.model(job.model, job.device, job.dtype,
                                   on_load=lambda: on_progress(Progress(job_id, 0, 1, 0.0, stage="load")),
                                   runtime=job.runtime, size=_job_size(job), on_stage=on_stage)
        load_seconds = loaded.load_seconds if fresh else 0.0
        # First use only: the runtime probe and conversions, beyond loading the chosen model.
        prepare_seconds = max(0.0, time.perf_counter() - choosing - load_seconds) if fresh else 0.0
        if cancelled():
            raise Cancelled()

        loaded_backend = loaded.backend
        caps = loaded_backend.capabilities(loaded)
        multiple, native = caps.multiple, caps.native
        preset = loaded.preset
        steps = job.steps or preset.steps
        guidance = preset.guidance_for(steps) if job.guidance is None else job.guidance
        scheduler = job.scheduler or preset.scheduler
        denoise_start = [time.perf_counter()]
        preview_box: list[tuple[int, int, int, int] | None] = [None]

        def on_step(step: int, total: int, latents: Any) -> None:
            # The last step's preview would only be replaced by the decoded image a moment later.
            preview = loaded_backend.preview(loaded, latents) if step < total else None
            elapsed = time.perf_counter() - denoise_start[0]
            on_progress(Progress(job_id, step, total, elapsed, preview, box=preview_box[0]))

        decoder = "tiny" if (job.decoder == "tiny" and caps.tiny_decoder) else "full"
        common = {"prompt": job.prompt, "negative_prompt": job.negative_prompt or None, "guidance_scale": guidance,
                  "seed": job.seed}
        if caps.tiny_decoder:
            common["decoder"] = "full" if refine is not None else decoder
        resolved: dict[str, Any] = {
            "steps": steps,
            "guidance": guidance,
            "scheduler": scheduler or loaded.scheduler_class,
            "device": loaded.device,
            "dtype": dtype_name(loaded.dtype),
            "runtime": (_runtime_of(loaded_backend.name) if job.runtime not in (None, "auto")
                        and loaded_backend.name in _BACKEND_OF_RUNTIME.values() else None),
            "decoder": decoder if caps.tiny_decoder else None,
            "model": ModelRef(job.model.source, job.model.loras, job.model.config, job.model.preset, loaded.sha256),
        }

        def call(task: str, **kwargs: Any) -> tuple[Image.Image, dict[str, float]]:
            denoise_start[0] = time.perf_counter()
            if refine is not None:
                t0 = time.perf_counter()
                image = loaded_backend.decode_latents(loaded, refine.latents)
                return image, {"decode": time.perf_counter() - t0}
            image, timings = loaded_backend.run(loaded, task, {**common, **kwargs}, steps, on_step, cancelled,
                                                scheduler)
            if decoder == "tiny":
                self.last_latents = loaded_backend.last_latents(loaded)
            return image, timings

        composite_seconds = 0.0
        if isinstance(job, Generate):
            width, height = job.width or native, job.height or native
            run_w, run_h = _round_up(width, multiple), _round_up(height, multiple)
            if caps.through_inpaint("text2img"):
                grey = Image.new("RGB", (run_w, run_h), (127, 127, 127))
                white = Image.new("L", (run_w, run_h), 255)
                image, timings = call("inpaint", image=grey, mask_image=white, width=run_w, height=run_h, strength=1.0)
            else:
                image, timings = call("text2img", width=run_w, height=run_h)
            image = _center_crop(image, width, height)
            resolved.update(width=width, height=height)
        elif isinstance(job, (Vary, Edit)):
            # Whole-image kinds run at the model's resolution and come back at the asked size.
            source = _source(job.image, caps)
            width, height = job.width or source.width, job.height or source.height
            cut = None
            if caps.whole_objects:
                # The built-in model knows objects on transparency, not canvases: it works on the
                # object cut out at its own size, laid back over the untouched background.
                t0 = time.perf_counter()
                cut = _cut_out(source, native, job)
                model_input, (run_w, run_h) = cut.frame, cut.frame.size
                composite_seconds += time.perf_counter() - t0
            else:
                run_w, run_h = compositing.model_size(source.width, source.height, native, multiple)
                model_input = source.resize((run_w, run_h), Image.Resampling.LANCZOS)
            if isinstance(job, Edit):
                image, timings = call("edit", image=model_input, image_guidance_scale=job.image_guidance)
            elif caps.through_inpaint("img2img"):
                white = Image.new("L", (run_w, run_h), 255)
                image, timings = call("inpaint", image=model_input, mask_image=white, width=run_w, height=run_h,
                                      strength=job.strength)
            else:
                image, timings = call("img2img", image=model_input, strength=job.strength)
            if cut is not None:
                t0 = time.perf_counter()
                image = compositing.lay_back(source, cut, image)
                composite_seconds += time.perf_counter() - t0
            image = _resize(image, width, height)
        elif isinstance(job, (Inpaint, Outpaint)):
            if isinstance(job, Outpaint):
                # The built-in model gets the transparency it draws on; others an RGB canvas.
                source, mask = compositing.extend_canvas(_source(job.image, caps), job.left, job.top, job.right,
                                                         job.bottom)
                source_for_paste = source
            else:
                source, mask = _source(job.image, caps), job.mask.convert("L")
                source_for_paste = job.image if job.image.mode in ("RGB", "RGBA") else source
            options = job.mask_options
            t0 = time.perf_counter()
            alpha = compositing.prepare_mask(mask, options.grow, options.feather)
            bbox = compositing.mask_bbox(alpha)
            if bbox is None:
                raise BadInput("The mask is empty: paint over the part of the image to fill, then try again.")
            if options.crop_padding is None:
                box = (0, 0, source.width, source.height)
            elif caps.whole_objects:
                box = compositing.object_window(source, bbox, native, options.crop_padding)
            else:
                box = compositing.crop_region(source.size, bbox, options.crop_padding, native)
            run_w, run_h = compositing.model_size(box[2] - box[0], box[3] - box[1], native, multiple)
            crop = source.crop(box).resize((run_w, run_h), Image.Resampling.LANCZOS)
            # The model regenerates everything the feathered alpha touches; the blend hides the edge.
            model_mask = alpha.crop(box).point(lambda v: 255 if v > 0 else 0).resize((run_w, run_h), Image.Resampling.NEAREST)
            composite_seconds += time.perf_counter() - t0
            preview_box[0] = tuple(box)
            image, timings = call("inpaint", image=crop, mask_image=model_mask, width=run_w, height=run_h,
                                  strength=getattr(job, "strength", 1.0))
            t0 = time.perf_counter()
            image = compositing.paste_back(source_for_paste, image, box, alpha, match=options.match_colors)
            composite_seconds += time.perf_counter() - t0
        else:
            raise BadInput(f"Unknown job kind {type(job).__name__}.")

        timings = {"load": load_seconds, **timings}
        if prepare_seconds > 0.05:
            timings["prepare"] = prepare_seconds
        if composite_seconds:
            timings["composite"] = composite_seconds
        timings["total"] = time.perf_counter() - started
        info = dict(loaded.info())
        info["path"] = runtimes.label(_runtime_of(loaded_backend.name) if loaded_backend.name != "builtin"
                                      else info.get("runtime", "onnxruntime"), dtype_name(loaded.dtype))
        resolved_job = job.replace(**resolved)
        if refine is not None:
            resolved_job = refine.replace(source=resolved_job)
        return image, resolved_job, timings, info


_BACKEND_OF_RUNTIME = {"torch": "diffusers", "openvino": "openvino"}


def _runtime_of(backend_name: str) -> str:
    """The runtime a backend is known by in jobs and Preferences (diffusers and FLUX run on torch)."""
    return {"diffusers": "torch", "flux": "torch"}.get(backend_name, backend_name)


def _job_size(job: Job) -> tuple[int, int] | None:
    """The pixel size the model will see, as far as it is known before loading (for the probe)."""
    if job.width and job.height and not hasattr(job, "image"):
        return job.width, job.height
    return None


def _check_sizes(job: Job) -> None:
    """Refuse, before the model loads, a job whose pictures cannot be made: an empty image, or an
    image or result over the one pixel limit (the outpainted canvas is checked by the Outpaint
    job itself). Nothing else about a document's size limits a job: the model only ever sees a
    crop or a resize at its own resolution (compositing.model_size), so a 12 px icon and a
    9000 px banner both work. For the same reason a resolved image job records no width or
    height the designer did not set: None means "the size of the image", and a size outside
    the range a designer may ask for would make the recipe itself invalid."""
    image = getattr(job, "image", None)
    if image is None:
        return
    if image.width < 1 or image.height < 1:
        raise BadInput(f"The image is empty ({image.width} × {image.height} pixels): there is nothing to work on.")
    check_pixels(image.width, image.height, "The image")
    if isinstance(job, (Vary, Edit)):
        check_pixels(job.width or image.width, job.height or image.height, "The result")


def _cut_out(source: Image.Image, native: int, job: Job) -> compositing.Cutout:
    """compositing.cut_out, with a message for the designer where the image holds no object."""
    verb, does = ("edit", "edits") if isinstance(job, Edit) else ("vary", "varies")
    try:
        return compositing.cut_out(source, native)
    except compositing.NoObject as none:
        what = {"transparent": "the image is fully transparent", "plain": "the image is one plain colour"}
        if none.reason in what:
            raise BadInput(
                f"Nothing to {verb}: {what[none.reason]}. The built-in model {does} an object (an emoji, "
                "icon or clip art): draw, generate or paste one first.") from None
        raise BadInput(
            f"The built-in model found no object to {verb}: it {does} emoji, icons and clip art on a plain "
            "or transparent background, and this image's background is not plain.",
            "It looks for what differs from the colour along the image's edges, and here the edges "
            "themselves vary (a photo?). For photos choose a Stable Diffusion model in the Model panel "
            "(an InstructPix2Pix one for edits).") from None


def _source(image: Image.Image, caps: Capabilities) -> Image.Image:
    """What the model reads: RGBA with its transparency for a model that draws transparency (the
    built-in one, trained on transparent emoji and icons: over grey it sees a grey square and edits
    that), else RGB over grey."""
    if caps.keeps_alpha and has_alpha(image):
        return image.convert("RGBA")
    return _rgb(image)


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if has_alpha(image):
        # Composite transparency over mid grey, which the model reads as neutral.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (127, 127, 127, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _center_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    left = (image.width - width) // 2
    top = (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def _resize(image: Image.Image, width: int, height: int) -> Image.Image:
    return image if image.size == (width, height) else image.resize((width, height), Image.Resampling.LANCZOS)
