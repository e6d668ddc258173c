"""What the engine knows about a runtime: one Backend protocol, a registry, Capabilities.

Each backend (the built-in model on onnxruntime or torch, Stable Diffusion on diffusers, and the
runtimes to come) is one module with one Backend instance, `BACKEND`. The registry names them by
import path, and each module imports its runtime (torch, diffusers, onnxruntime) only inside
`load` and `run`: choosing the backend for a model folder imports nothing heavy, so a job on the
built-in model never imports torch (tests/inference/test_backends.py checks it in a fresh process).

The engine asks a backend what it needs to know (`Capabilities`) instead of reading UNet channel
counts, and a loaded model carries the backend that runs it (`loaded.backend`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

from PIL import Image

from inference.jobs import ModelRef
from inference.models.store import Located, not_a_model_folder

StepCallback = Callable[[int, int, Any], None]

TASKS = ("text2img", "img2img", "inpaint", "edit")


@dataclass(frozen=True)
class Capabilities:
    """What a loaded model can do, in the terms the engine decides with.

    `tasks`: what the model runs as itself (a subset of TASKS). A model that only inpaints (an
    inpainting UNet) is asked for generate and vary as an inpaint of the whole canvas.
    `inpaint`: "native" when the model reads a mask itself (an inpainting UNet, the built-in
    model), "masked" when it inpaints as masked image-to-image (diffusers' inpaint pipeline on a
    text-to-image UNet), None when it cannot.
    `keeps_alpha`: it reads and draws transparency, so sources keep their alpha.
    `whole_objects`: it draws whole objects (emoji, icons) at `native` px: an inpaint window
    shows the object at 1:1, and edit and vary work on the object cut out of its canvas.
    `native`: the square side it was trained at; `multiple`: what its sizes must divide by.
    """

    tasks: frozenset[str]
    inpaint: str | None
    keeps_alpha: bool
    whole_objects: bool
    native: int
    multiple: int
    tiny_decoder: bool = False  # a TAESD-style decoder is at hand: previews, and Fast decode ("tiny")

    @property
    def edits(self) -> bool:
        """Whether it edits by instruction (the Edit job)."""
        return "edit" in self.tasks

    def through_inpaint(self, task: str) -> bool:
        """Whether `task` (text2img, img2img) runs as an inpaint of a whole-canvas mask here."""
        return task not in self.tasks and self.inpaint == "native" and "inpaint" in self.tasks


@runtime_checkable
class Loaded(Protocol):
    """A model a backend loaded, as the engine caches and reports it."""

    ref: ModelRef
    backend: "Backend"
    preset: Any  # inference.models.presets.Preset
    device: str
    dtype: Any  # a torch dtype or its name: inference.device.dtype_name reads both
    nbytes: int
    sha256: str | None
    load_seconds: float
    scheduler_class: str

    def info(self) -> dict[str, Any]: ...


@runtime_checkable
class Backend(Protocol):
    name: str

    def claims(self, located: Located) -> bool:
        """Whether this backend serves the model at `located`; cheap: reads a file name or two,
        imports nothing heavy."""

    def placement(self, device: str | None, dtype: str | None) -> tuple[str, str]:
        """The device and dtype name a job asking for `device`/`dtype` (None or "auto": choose)
        runs on with this backend; BadInput for one it cannot use."""

    def load(self, ref: ModelRef, located: Located, device: str, dtype: str,
             on_stage: Callable[[str], None] | None = None) -> Loaded:
        """`on_stage(text)` hears about slow first-use steps (converting for OpenVINO)."""

    def run(self, loaded: Any, task: str, call: dict[str, Any], steps: int, on_step: StepCallback,
            cancelled: Callable[[], bool], scheduler: str | None) -> tuple[Image.Image, dict[str, float]]:
        """One model call: `task` in TASKS, `call` the pipeline-style arguments (prompt, image,
        mask_image, strength, seed...); returns the image and stage timings (encode, denoise,
        decode). `on_step(step, total, latents)` after each step; Cancelled when `cancelled()`."""

    def preview(self, loaded: Any, latents: Any) -> Image.Image | None: ...

    def last_latents(self, loaded: Any) -> Any:
        """What the last `run` denoised to (numpy), where Refine can decode it again; or None."""

    def decode_latents(self, loaded: Any, latents: Any) -> Image.Image:
        """`latents` from last_latents, decoded by the model's own (full) decoder."""

    def capabilities(self, loaded: Any) -> Capabilities: ...

    def release(self, loaded: Any) -> None:
        """Drop what `loaded` holds (the engine unloads it)."""


# Asked in this order; the first that claims a model serves it. The built-in model's folder is
# recognised by its own config file, so it comes before diffusers, which takes the rest.
# OpenVINO and diffusers (torch) claim the same Stable Diffusion models; which one runs a job is
# the engine's choice (inference.runtimes), so `candidates` lists both.
# FLUX.2 klein folders are recognised by their model_index.json's pipeline class; the Stable
# Diffusion backends leave them to "flux".
REGISTRY: dict[str, str] = {
    "builtin": "inference.backends.builtin_backend",
    "flux": "inference.backends.flux_backend",
    "openvino": "inference.backends.openvino_backend",
    "diffusers": "inference.backends.diffusers_backend",
}


def backend(name: str) -> Backend:
    """The backend registered as `name` (its module is imported now, its runtime is not)."""
    return importlib.import_module(REGISTRY[name]).BACKEND


def candidates(located: Located) -> list[Backend]:
    """Every backend that can run the model at `located`, in registry order."""
    return [backend(name) for name in REGISTRY if backend(name).claims(located)]


def backend_for(located: Located) -> Backend:
    """The backend that serves the model at `located` by default (torch for Stable Diffusion:
    the runtime that needs no conversion), or ModelMissing saying why none does."""
    found = candidates(located)
    if not found:
        raise not_a_model_folder(located.path)
    return found[-1]


def serving(source: str) -> str | None:
    """The name of the backend that would run the model `source`, None if it cannot be found
    (a job on it will explain). For a GUI deciding what to prepare; touches no model."""
    from inference.models.store import locate

    try:
        return backend_for(locate(source)).name
    except Exception:
        return None
