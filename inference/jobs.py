"""The one language spoken between the editor and inference: jobs in, progress and results out.

Everything here is plain data. A job is frozen: once submitted, what runs is exactly what the
Result's recipe says ran. Images travel as PIL images; they are excluded from equality and from
the recipe dictionaries (a recipe records their sizes, not their pixels).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from PIL import Image

MAX_SEED = 2**32 - 1
MAX_STEPS = 200
MIN_SIDE, MAX_SIDE = 16, 8192
# Guidance past a few dozen only burns the image; 100 leaves room for any model's odd recipe.
MAX_GUIDANCE = 100.0
MAX_LORA_SCALE = 10.0
# Mask grow runs one dilation pass per pixel; feather stops adding anything visible at
# compositing.MAX_FEATHER (250, counted in uint8 levels).
MAX_GROW = 256
MAX_FEATHER = 250
# One margin may add at most a whole maximum-size image on its side.
MAX_MARGIN = MAX_SIDE


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


class BadField(BadInput):
    """One field of a job holds a value it cannot take (a kind of BadInput).

    `field` is its recipe key ("guidance", "mask_options.grow"), `label` how a designer calls it,
    `rule` what it must be ("a number from 0 to 100"), `value` what it was. `in_recipe()` says the
    same about a recipe read from a file.
    """

    field: str = ""
    label: str = ""
    rule: str = ""
    value: Any = None

    def in_recipe(self) -> BadInput:
        label = self.label.removeprefix("the ")
        return BadInput(f"This recipe is damaged: its {label} must be {self.rule}, not {_shown(self.value)}.",
                        self.details)


# --------------------------------------------------------------------------- checking values
# Every number is checked when a job is built (by the editor, the CLI or from a recipe), so an
# infinite guidance or a seed written as text never reaches a model, and never a recipe.


def _shown(value: Any) -> str:
    """A value as a designer reads it in a message (JSON words, not Python's)."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the text {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if isinstance(value, numbers.Integral):
        return str(int(value)) if abs(int(value)) < 10**18 else "a number far too large"
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return "NaN (not a number)"
        if math.isinf(number):
            return "infinity" if number > 0 else "minus infinity"
        return f"{number:g}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a group of settings"
    return "a value of another kind"


def short_repr(value: Any, limit: int = 300) -> str:
    """repr() cut to `limit` characters for an error's details; never raises (repr of an int past
    4,300 digits does, and so may a caller's object)."""
    try:
        return repr(value)[:limit]
    except Exception:  # noqa: BLE001 - details must never be the error
        return f"<{type(value).__name__} that cannot be shown>"


def _bad(key: str, label: str, rule: str, value: Any) -> BadField:
    error = BadField(f"{label[0].upper()}{label[1:]} must be {rule}, not {_shown(value)}.",
                     f"{key} = {short_repr(value)}")
    error.field, error.label, error.rule, error.value = key, label, rule, value
    return error


def _whole(key: str, label: str, value: Any, low: int, high: int, unit: str = "") -> int:
    """`value` as an int in [low, high]; a bool or text is not a number. A whole float (4.0,
    as other tools write JSON) counts as the integer it is."""
    rule = f"a whole number{unit} from {low} to {high}"
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, float)):
        raise _bad(key, label, rule, value)
    if isinstance(value, float) and not value.is_integer():
        raise _bad(key, label, rule, value)
    number = int(value)
    if not low <= number <= high:
        raise _bad(key, label, rule, value)
    return number


def _real(key: str, label: str, value: Any, low: float, high: float, rule: str | None = None,
          above_low: bool = False) -> float:
    """`value` as a finite float in [low, high] (above `low` when `above_low`)."""
    rule = rule or f"a number from {low:g} to {high:g}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _bad(key, label, rule, value)
    try:
        number = float(value)
    except OverflowError:  # an integer past float range
        raise _bad(key, label, rule, value) from None
    if not (math.isfinite(number) and low <= number <= high) or (above_low and number == low):
        raise _bad(key, label, rule, value)
    return number


def _text(key: str, label: str, value: Any, optional: bool = False) -> str | None:
    """A string, or None where optional. Lone surrogates (argv bytes that were not UTF-8,
    decoded with surrogateescape, or a JSON "\\udc80") are no text a model can read."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _bad(key, label, "text", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        error = BadField(f"{label[0].upper()}{label[1:]} holds bytes that are not valid UTF-8 text; "
                         "retype it (or check the terminal's text encoding).", f"{key} = {short_repr(value)}")
        error.field, error.label, error.rule, error.value = key, label, "valid UTF-8 text", value
        raise error from None
    return value


# --------------------------------------------------------------------------- job parts


@dataclass(frozen=True)
class LoraRef:
    """A LoRA file (or Hub repo id) applied on top of the base model at `scale`."""

    source: str
    scale: float = 1.0

    def __post_init__(self) -> None:
        _path("loras.source", "LoRA", self.source)
        object.__setattr__(self, "scale", _real("loras.scale", "LoRA scale", self.scale,
                                                -MAX_LORA_SCALE, MAX_LORA_SCALE))


def _path(key: str, label: str, value: Any) -> str:
    """A model or LoRA source: non-empty text. Surrogates stay: on POSIX a file name may hold
    bytes that are not UTF-8, and Python keeps them that way (os.fsencode gives them back)."""
    if not isinstance(value, str) or not value.strip():
        raise _bad(key, label, "a folder, file or Hugging Face repo id", value)
    return value


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

    def __post_init__(self) -> None:
        _path("model.source", "model", self.source)
        if isinstance(self.loras, (str, bytes)) or not isinstance(self.loras, (tuple, list)):
            raise _bad("model.loras", "LoRA list", "a list of LoRAs", self.loras)
        for lora in self.loras:
            if not isinstance(lora, LoraRef):
                raise _bad("model.loras", "LoRA list", "a list of LoRAs", self.loras)
        object.__setattr__(self, "loras", tuple(self.loras))  # a list would make the job unhashable
        if self.config is not None:
            _path("model.config", "model config", self.config)
        for name, label in (("preset", "preset"), ("sha256", "model hash")):
            _text(f"model.{name}", label, getattr(self, name), optional=True)

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
        """Rebuild from `to_dict` output (a recipe); a damaged one raises BadInput saying what."""
        if not isinstance(data, Mapping):
            raise BadInput("This recipe is damaged: it does not say which model made the image.",
                           f"model = {short_repr(data)}")
        if data.get("source") is None:
            raise BadInput("This recipe is damaged: its model has no source (the folder, file or repo id "
                           "it comes from).", f"model = {short_repr(dict(data))}")
        items = data.get("loras")
        if items is None:
            items = ()
        if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
            raise BadInput("This recipe is damaged: its list of LoRAs cannot be read.", f"model.loras = {short_repr(items)}")
        try:
            loras = []
            for item in items:
                if not isinstance(item, Mapping) or item.get("source") is None:
                    raise BadInput("This recipe is damaged: one of its LoRAs does not say which file it is.",
                                   f"model.loras = {short_repr(items)}")
                loras.append(LoraRef(item["source"], item.get("scale", 1.0)))
            return cls(source=data["source"], loras=tuple(loras), config=data.get("config"),
                       preset=data.get("preset"), sha256=data.get("sha256"))
        except BadField as error:
            raise error.in_recipe() from error


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "grow", _whole("mask_options.grow", "mask grow", self.grow, -MAX_GROW, MAX_GROW,
                                                " of pixels"))
        object.__setattr__(self, "feather", _whole("mask_options.feather", "mask feather", self.feather, 0,
                                                   MAX_FEATHER, " of pixels"))
        if self.crop_padding is not None:
            object.__setattr__(self, "crop_padding", _whole("mask_options.crop_padding", "crop padding",
                                                            self.crop_padding, 0, MAX_SIDE, " of pixels"))
        if not isinstance(self.match_colors, bool):
            raise _bad("mask_options.match_colors", "colour matching", "on or off (true or false)",
                       self.match_colors)


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

RUNTIMES = ("auto", "torch", "openvino")  # inference.runtimes explains the choice
DECODERS = ("full", "tiny")


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
    # "auto" or None: the path inference.runtimes chose for this machine; "torch" or "openvino".
    runtime: str | None = None
    # The VAE decoder of the final image: None or "full" (the model's own), "tiny" (TAESD: a
    # tenth of the time on a CPU, a little softer; Refine re-decodes with the full one).
    decoder: str | None = None
    # Where the result lands (editor data carried through; not part of the recipe).
    target: Target | None = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        _text("prompt", "the prompt", self.prompt)
        _text("negative_prompt", "the negative prompt", self.negative_prompt)
        if not isinstance(self.model, ModelRef):
            raise _bad("model", "the model", "a model reference", self.model)
        # Draw a random seed once and record it, so the Result's recipe reproduces the image.
        # Negative (-1, as the CLI and A1111 write it) means "draw one".
        seed = self.seed
        whole = isinstance(seed, numbers.Integral) or (isinstance(seed, float) and seed.is_integer())
        if whole and not isinstance(seed, bool) and seed < 0:
            seed = None
        seed = random_seed() if seed is None else _whole("seed", "seed", seed, 0, MAX_SEED)
        object.__setattr__(self, "seed", seed)
        if self.steps is not None:
            object.__setattr__(self, "steps", _whole("steps", "steps", self.steps, 1, MAX_STEPS))
        if self.guidance is not None:
            object.__setattr__(self, "guidance", _real("guidance", "guidance", self.guidance, 0.0, MAX_GUIDANCE))
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _whole(name, name, value, MIN_SIDE, MAX_SIDE, " of pixels"))
        for name, label in (("device", "device"), ("dtype", "number format (dtype)"), ("scheduler", "scheduler"),
                            ("runtime", "runtime"), ("decoder", "decoder")):
            _text(name, label, getattr(self, name), optional=True)
        if self.runtime is not None and self.runtime not in RUNTIMES:
            raise _bad("runtime", "the runtime", f"one of {', '.join(RUNTIMES)}", self.runtime)
        if self.decoder is not None and self.decoder not in DECODERS:
            raise _bad("decoder", "the decoder", f"one of {', '.join(DECODERS)}", self.decoder)
        for name in ("image", "mask"):
            value = getattr(self, name, None)
            if value is not None and not isinstance(value, Image.Image):
                raise _bad(name, f"the {name}", "an image", value)
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
        """Rebuild a job from `to_dict` output; pass `image=`/`mask=` for kinds that need them.

        The rebuilt job passes the same checks as one built by hand; a recipe with a missing or
        wrong value raises BadInput naming the field. Keys this version does not know are skipped.
        """
        if not isinstance(data, Mapping):
            raise BadInput("This recipe is damaged: it does not describe a job.", short_repr(data))
        kind = data.get("kind")
        cls = JOB_KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            shown = short_repr(kind, 60) if isinstance(kind, str) else _shown(kind)
            raise BadInput(f"Unknown job kind {shown} in this recipe (it may come from a newer Quickbrush).",
                           f"Known kinds: {', '.join(JOB_KINDS)}.")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        try:
            for key, value in data.items():
                if key not in names or key in ("image", "mask", "target"):
                    continue
                if key == "model":
                    value = ModelRef.from_dict(value)
                elif key == "mask_options":
                    if not isinstance(value, Mapping):
                        raise BadInput("This recipe is damaged: its mask options cannot be read.",
                                       f"mask_options = {short_repr(value)}")
                    known = {f.name for f in dataclasses.fields(MaskOptions)}
                    value = MaskOptions(**{k: v for k, v in value.items() if k in known})
                kwargs[key] = value
            for key, value in images.items():
                if key in names and value is not None:
                    kwargs[key] = value
            return cls(**kwargs)
        except BadField as error:
            raise error.in_recipe() from error

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
        _check_strength(self)


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
        _check_strength(self)
        _check_mask_options(self)


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
        _check_mask_options(self)
        for side in ("left", "top", "right", "bottom"):
            object.__setattr__(self, side, _whole(side, f"the {side} margin", getattr(self, side), 0, MAX_MARGIN,
                                                  " of pixels"))
        if max(self.left, self.top, self.right, self.bottom) == 0:
            raise BadInput("Outpaint needs at least one side to extend.")
        from inference.images import check_pixels  # images imports this module

        check_pixels(self.image.width + self.left + self.right, self.image.height + self.top + self.bottom,
                     "The extended canvas")


@dataclass(frozen=True, kw_only=True)
class Edit(Job):
    """Instruction edit (InstructPix2Pix): `prompt` is the instruction, e.g. "make it snowy"."""

    kind: ClassVar[str] = "edit"
    needs_image: ClassVar[bool] = True
    image: Image.Image = _image_field()
    image_guidance: float = 1.5

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "image_guidance", _real("image_guidance", "image guidance", self.image_guidance,
                                                         0.0, MAX_GUIDANCE))


def _check_strength(job: Job) -> None:
    object.__setattr__(job, "strength", _real("strength", "strength", getattr(job, "strength"), 0.0, 1.0,
                                              "a number above 0 and at most 1", above_low=True))


def _check_mask_options(job: Job) -> None:
    if not isinstance(getattr(job, "mask_options"), MaskOptions):
        raise _bad("mask_options", "the mask options", "mask options", getattr(job, "mask_options"))


@dataclass(frozen=True, kw_only=True)
class Refine(Job):
    """Decode a finished result's latents again with the model's own (full) VAE decoder.

    `source` is the resolved job that made the result (with its images) and `latents` what its
    denoising ended on (`Result.latents`): nothing is denoised again, so the refined image is the
    same picture, only decoded in full quality, and lands where the first one did.
    """

    kind: ClassVar[str] = "refine"
    source: Job | None = field(default=None, compare=False, hash=False, repr=False)
    latents: Any = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.source, Job) or isinstance(self.source, Refine):
            raise BadInput("Refine needs the result it re-decodes.")
        if self.latents is None:
            raise BadInput("This result kept no latents to refine (it was decoded in full already, or made by "
                           "a model without a separate decoder).")
        super().__post_init__()

    @classmethod
    def of(cls, source: Job, latents: Any) -> "Refine":
        """The Refine of a result made by `source`: same model, seed and placement."""
        return cls(source=source, latents=latents, prompt=source.prompt, negative_prompt=source.negative_prompt,
                   model=source.model, seed=source.seed, steps=source.steps, guidance=source.guidance,
                   device=source.device, dtype=source.dtype, scheduler=source.scheduler, runtime=source.runtime,
                   decoder="full", target=source.target)

    def to_dict(self) -> dict[str, Any]:
        # What the image is, recipe-wise: the source job decoded in full (it reproduces this image).
        return self.source.replace(decoder="full").to_dict()


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
    # What a "prepare" stage is doing, in words ("converting the UNet for OpenVINO").
    text: str = ""

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
    # What the denoising ended on (a float32 numpy array), kept where the image was decoded by the
    # tiny decoder, so Refine can decode it again in full; None otherwise.
    latents: Any = field(default=None, compare=False, repr=False)

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
