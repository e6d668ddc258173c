"""The one language spoken between the editor and inference: jobs in, progress and results out.

Everything here is plain data. A job is frozen: once submitted, what runs is exactly what the
Result's recipe says ran. Images travel as PIL images; they are excluded from equality and from
the recipe dictionaries (a recipe records their sizes, not their pixels).
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from PIL import Image

MAX_SEED = 2**32 - 1


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


# --------------------------------------------------------------------------- errors


class JobError(Exception):
    """A failure a designer can read. `message` is the one line shown; `details` the rest."""

    kind: ClassVar[str] = "error"

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class ModelMissing(JobError):
    kind = "model_missing"


class NetworkUnavailable(ModelMissing):
    """The model is not on disk and cannot be downloaded now."""

    kind = "network_unavailable"


class BadInput(JobError):
    kind = "bad_input"


class OutOfMemory(JobError):
    kind = "out_of_memory"


class Cancelled(JobError):
    kind = "cancelled"

    def __init__(self, message: str = "Cancelled.", details: str = ""):
        super().__init__(message, details)


ERROR_KINDS: dict[str, type[JobError]] = {
    cls.kind: cls for cls in (JobError, ModelMissing, NetworkUnavailable, BadInput, OutOfMemory, Cancelled)
}


# --------------------------------------------------------------------------- job parts


@dataclass(frozen=True)
class LoraRef:
    """A LoRA file (or Hub repo id) applied on top of the base model at `scale`."""

    source: str
    scale: float = 1.0


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from.

    `source` is a local diffusers folder, a single `.safetensors`/`.ckpt` checkpoint file, a
    Hugging Face repo id (resolved from the local cache, downloaded only if allowed), or
    "builtin". `config` is, for single-file checkpoints only, a diffusers folder or repo id to
    take the component configs from (otherwise diffusers infers it, which may need the Hub).
    `preset` names a row of `inference.models.presets.PRESETS` when the name alone does not say
    which few-step recipe fits (e.g. a renamed SD-Turbo folder).
    """

    source: str
    loras: tuple[LoraRef, ...] = ()
    config: str | None = None
    preset: str | None = None
    # Filled in by the engine after loading, so recipes record exactly what ran.
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "loras": [dataclasses.asdict(lora) for lora in self.loras],
            "config": self.config,
            "preset": self.preset,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelRef":
        return cls(
            source=str(data["source"]),
            loras=tuple(LoraRef(str(item["source"]), float(item.get("scale", 1.0))) for item in data.get("loras", ())),
            config=data.get("config"),
            preset=data.get("preset"),
            sha256=data.get("sha256"),
        )


@dataclass(frozen=True)
class MaskOptions:
    """How a painted mask becomes the region the model may change.

    grow: pixels to dilate (negative shrinks) before feathering.
    feather: width in pixels of the soft blend at the border.
    crop_padding: context kept around the mask's bounding box when cropping to the mask; None
        runs on the whole image.
    match_colors: shift the generated region's colour statistics to match its surroundings.
    """

    grow: int = 4
    feather: int = 8
    crop_padding: int | None = 32
    match_colors: bool = True


# --------------------------------------------------------------------------- where a result lands


COMPOSITE_MODES = ("replace", "masked")
FITS = ("stretch", "contain", "centre")


@dataclass(frozen=True)
class Target:
    """Where a job's result lands on the document, decided once when the job is built.

    The editor fills it in (`editor.targets.plan`); inference only carries it from the Job to
    the Result (`Result.target`), so it is plain data: a layer id, never a Qt object.

    layer: the id of the layer the result goes into (None: the active layer when applied).
    box: (left, top, right, bottom) in canvas pixels that the result image covers; it may reach
        past the canvas (outpaint, a selection past an edge: applying grows the canvas).
    mask: None, or an "L" image of the box's size: how much of the result replaces the layer's
        own pixels, 255 = all of it. Inpaint and outpaint set it to their grown and feathered
        mask, so the layer stays byte-identical outside it whatever the other layers show.
    composite: "replace" puts the result over the layer in the box (vary, edit, generate);
        "masked" blends it into the layer through `mask`.
    fit: "stretch" resizes the result to the box; "contain" keeps its shape, centred in the box
        (a square 128 px generated emoji in a wide selection); "centre" keeps its own size,
        centred in the box when it fits (a generated image without a selection).
    """

    box: tuple[int, int, int, int]
    layer: int | None = None
    mask: Image.Image | None = field(default=None, compare=False, hash=False, repr=False)
    composite: str = "replace"
    fit: str = "stretch"

    def __post_init__(self) -> None:
        box = tuple(int(v) for v in self.box)
        if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
            raise BadInput(f"A result needs a non-empty box to land in, not {self.box}.")
        object.__setattr__(self, "box", box)
        if self.composite not in COMPOSITE_MODES:
            raise ValueError(f"composite must be one of {COMPOSITE_MODES}, not {self.composite!r}.")
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, not {self.fit!r}.")
        if self.composite == "masked":
            if self.mask is None:
                raise ValueError("A masked target needs a mask.")
            if self.mask.size != (box[2] - box[0], box[3] - box[1]):
                raise ValueError(f"The target mask is {self.mask.size}, its box {box}.")

    @property
    def size(self) -> tuple[int, int]:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]


# --------------------------------------------------------------------------- jobs


def _image_field() -> Any:
    return field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Job:
    """Fields common to every kind. `steps`/`guidance` of None mean "the model's default"."""

    kind: ClassVar[str] = "job"
    needs_image: ClassVar[bool] = False
    needs_mask: ClassVar[bool] = False

    prompt: str = ""
    negative_prompt: str = ""
    model: ModelRef = field(default_factory=lambda: ModelRef("builtin"))
    seed: int = -1
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    device: str | None = None
    dtype: str | None = None
    scheduler: str | None = None
    # Where the result lands (editor data carried through; not part of the recipe).
    target: Target | None = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        # Draw a random seed once and record it, so the Result's recipe reproduces the image.
        if self.seed is None or self.seed < 0:
            object.__setattr__(self, "seed", random_seed())
        if self.seed > MAX_SEED:
            raise BadInput(f"Seed must be between 0 and {MAX_SEED}.")
        if self.steps is not None and not 1 <= self.steps <= 200:
            raise BadInput("Steps must be between 1 and 200.")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and not 16 <= value <= 8192:
                raise BadInput(f"{name.capitalize()} must be between 16 and 8192 pixels.")
        if self.needs_image and getattr(self, "image", None) is None:
            raise BadInput(f"{self.kind.capitalize()} needs an image.")
        if self.needs_mask and getattr(self, "mask", None) is None:
            raise BadInput(f"{self.kind.capitalize()} needs a mask.")
        image, mask = getattr(self, "image", None), getattr(self, "mask", None)
        if image is not None and mask is not None and image.size != mask.size:
            raise BadInput(
                f"The mask is {mask.width}x{mask.height} but the image is {image.width}x{image.height}; "
                "they must be the same size."
            )

    def replace(self, **changes: Any) -> "Job":
        return dataclasses.replace(self, **changes)

    # -- recipe (the exact job, minus pixels) --------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Image.Image):
                data[f"{f.name}_size"] = list(value.size)
            elif f.name == "model":
                data["model"] = value.to_dict()
            elif f.name == "mask_options":
                data["mask_options"] = dataclasses.asdict(value)
            elif f.name == "target" or (value is None and f.name in ("image", "mask")):
                continue
            else:
                data[f.name] = value
        return data

    @staticmethod
    def from_dict(data: Mapping[str, Any], **images: Image.Image | None) -> "Job":
        """Rebuild a job from `to_dict` output; pass `image=`/`mask=` for kinds that need them."""
        kind = data.get("kind")
        cls = JOB_KINDS.get(kind)  # type: ignore[arg-type]
        if cls is None:
            raise BadInput(f"Unknown job kind {kind!r} in recipe.")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names or key in ("image", "mask", "target"):
                continue
            if key == "model":
                value = ModelRef.from_dict(value)
            elif key == "mask_options":
                value = MaskOptions(**value)
            kwargs[key] = value
        for key, value in images.items():
            if key in names and value is not None:
                kwargs[key] = value
        return cls(**kwargs)

    def describe(self) -> str:
        return f"{self.kind}: {self.prompt[:60]!r}"


@dataclass(frozen=True, kw_only=True)
class Generate(Job):
    """Text to image."""

    kind: ClassVar[str] = "generate"


@dataclass(frozen=True, kw_only=True)
class Vary(Job):
    """Image to image. `strength` 0 keeps the image, 1 ignores it."""

    kind: ClassVar[str] = "vary"
    needs_image: ClassVar[bool] = True
    image: Image.Image = _image_field()
    strength: float = 0.6

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.strength <= 1.0:
            raise BadInput("Strength must be above 0 and at most 1.")


@dataclass(frozen=True, kw_only=True)
class Inpaint(Job):
    """Fill the white part of `mask` (L mode, same size as `image`); the rest stays bit-identical."""

    kind: ClassVar[str] = "inpaint"
    needs_image: ClassVar[bool] = True
    needs_mask: ClassVar[bool] = True
    image: Image.Image = _image_field()
    mask: Image.Image = _image_field()
    strength: float = 1.0
    mask_options: MaskOptions = field(default_factory=MaskOptions)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.strength <= 1.0:
            raise BadInput("Strength must be above 0 and at most 1.")


@dataclass(frozen=True, kw_only=True)
class Outpaint(Job):
    """Extend the canvas by the given pixels on each side and fill the new area."""

    kind: ClassVar[str] = "outpaint"
    needs_image: ClassVar[bool] = True
    image: Image.Image = _image_field()
    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0
    mask_options: MaskOptions = field(default_factory=lambda: MaskOptions(grow=0, feather=16))

    def __post_init__(self) -> None:
        super().__post_init__()
        sides = (self.left, self.top, self.right, self.bottom)
        if min(sides) < 0:
            raise BadInput("Outpaint margins cannot be negative.")
        if max(sides) == 0:
            raise BadInput("Outpaint needs at least one side to extend.")


@dataclass(frozen=True, kw_only=True)
class Edit(Job):
    """Instruction edit (InstructPix2Pix): `prompt` is the instruction, e.g. "make it snowy"."""

    kind: ClassVar[str] = "edit"
    needs_image: ClassVar[bool] = True
    image: Image.Image = _image_field()
    image_guidance: float = 1.5


JOB_KINDS: dict[str, type[Job]] = {cls.kind: cls for cls in (Generate, Vary, Inpaint, Outpaint, Edit)}


# --------------------------------------------------------------------------- progress and results


@dataclass(frozen=True)
class Progress:
    """One denoising step done. `preview` is a small, cheap RGB approximation (may be None)."""

    job_id: int
    step: int
    total: int
    elapsed: float
    preview: Image.Image | None = field(default=None, compare=False, repr=False)
    stage: str = "denoise"
    # Where the preview lies in the result image (left, top, right, bottom); None: all of it.
    # Inpainting previews only the crop around the mask that the model works on.
    box: tuple[int, int, int, int] | None = None

    @property
    def eta(self) -> float | None:
        """Seconds left, extrapolated from the steps so far."""
        if self.step <= 0:
            return None
        return self.elapsed / self.step * (self.total - self.step)


@dataclass(frozen=True)
class Result:
    """What a job gave: an image with its exact recipe and timings, or an error."""

    job_id: int
    job: Job
    image: Image.Image | None = field(default=None, compare=False, repr=False)
    timings: Mapping[str, float] = field(default_factory=dict)
    error: JobError | None = None
    model_info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.image is not None

    @property
    def target(self) -> Target | None:
        """Where the result lands, as decided when the job was built (`Job.target`)."""
        return self.job.target

    @property
    def cancelled(self) -> bool:
        return isinstance(self.error, Cancelled)
