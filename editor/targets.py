"""Where a result lands: decided once when its jobs are built, fitted by one function when applied.

`plan(document, settings, model, seeds)` reads the document (image, mask, selection, active
layer) and the settings and returns a `Request`: one Job per seed, each carrying the same
`inference.jobs.Target` (layer, box, blend mask, how it composites). The Result carries the
target back (`Result.target`), the History keeps it with the entry, and `fit(document, entry)`
turns it into one undo command. Nothing else converts boxes: the prompt panel, the main window,
the History panel and the canvas's previews all ask this module.

The domain rules the Prompt panel used to hold live here too: which region each mode works on,
which crop it sends, and the messages a designer sees when a mode cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from PIL import Image

from editor.document import _intersect
from inference import compositing
from inference.jobs import (
    BadInput,
    Edit,
    Generate,
    Inpaint,
    Job,
    MaskOptions,
    ModelRef,
    Outpaint,
    Target,
    Vary,
)

Box = tuple[int, int, int, int]

NO_MASK = "Paint a mask over the area to change first (B)"
NO_MARGINS = "Set how far to extend the image (Left/Top/Right/Bottom), or drag a selection past its edge"
NO_INSTRUCTION = "Say what to change first, e.g. “make it snowy”"
NO_IMAGE = "There is no image to work on yet: open or paste one first"
OUTSIDE = "The selection lies outside the image: select part of the image, or deselect"
MASK_OUTSIDE = "The mask lies outside the selection: paint inside the selection, or deselect"
NO_LAYER = "There is no layer to put the result in: add one, or apply the result as a new layer"

# How each kind's result goes into its layer (see Target).
_COMPOSITE = {"generate": "replace", "vary": "replace", "edit": "replace", "inpaint": "masked", "outpaint": "masked"}


@dataclass(frozen=True)
class Request:
    """What one Generate press submits: the jobs (one per seed) and where all their results land."""

    jobs: tuple[Job, ...]
    target: Target

    @property
    def box(self) -> Box:
        return self.target.box


def parse_size(preset: str) -> tuple[int, int] | None:
    """(width, height) of a size_preset value ("512x768", "custom:640x480"); None for native."""
    text = str(preset).strip().lower()
    if text.startswith("custom:"):
        text = text[len("custom:"):]
    if "x" not in text:
        return None
    try:
        w, h = (int(part) for part in text.split("x", 1))
    except ValueError:
        return None
    return (w, h) if w > 0 and h > 0 else None


# --------------------------------------------------------------------------- building jobs


def plan(document: Any, settings: Any, model: ModelRef, seeds: Sequence[int]) -> Request:
    """One job per seed from the document and the settings, with their shared Target.

    Raises BadInput with a message for the designer when the mode cannot run on what the
    document holds (no mask to inpaint, nothing to extend, no layer, ...).
    """
    s = settings
    kind, fields, target = _plan(document, s)
    common: dict[str, Any] = {
        "prompt": s.prompt.strip(),
        "negative_prompt": s.negative_prompt.strip(),
        "model": model,
        "steps": s.steps if s.steps > 0 else None,
        "guidance": s.guidance if s.guidance >= 0 else None,
        "device": None if s.device in ("", "auto") else s.device,
        "runtime": None if s.runtime in ("", "auto") else s.runtime,
        # Only a model with a tiny decoder uses it; the others decode in full whatever this says.
        "decoder": "tiny" if s.fast_decode else None,
    }
    jobs = tuple(kind(**common, **fields, seed=int(seed), target=target) for seed in seeds)
    return Request(jobs, target)


def _active_layer_id(document: Any) -> int | None:
    layer = document.active_layer
    return None if layer is None else layer.id


def _plan(document: Any, s: Any) -> tuple[type[Job], dict[str, Any], Target]:
    mode = s.mode
    canvas: Box = (0, 0, int(document.width), int(document.height))
    selection: Box | None = document.selection_box()
    layer = _active_layer_id(document)

    if mode == "generate":
        size = parse_size(s.size_preset)
        fields: dict[str, Any] = {}
        if size is not None:
            fields.update(width=size[0], height=size[1])
        if selection is not None:  # keep the image's shape inside the selection
            return Generate, fields, Target(selection, layer, fit="contain")
        return Generate, fields, Target(canvas, layer, fit="centre")

    if not getattr(document, "layers", None):
        raise BadInput(NO_IMAGE)

    if mode == "outpaint":
        margins: Sequence[int] = (0, 0, 0, 0)
        if selection is not None:
            margins = (max(0, -selection[0]), max(0, -selection[1]),
                       max(0, selection[2] - canvas[2]), max(0, selection[3] - canvas[3]))
        if max(margins) == 0:
            margins = tuple(int(getattr(s, f"outpaint_{side}")) for side in ("left", "top", "right", "bottom"))
        if max(margins) == 0:
            raise BadInput(NO_MARGINS)
        left, top, right, bottom = (int(v) for v in margins)
        image = document.composite()
        job_fields = {"image": image, "left": left, "top": top, "right": right, "bottom": bottom}
        box = (-left, -top, canvas[2] + right, canvas[3] + bottom)
        options = MaskOptions(grow=0, feather=16)
        return Outpaint, {**job_fields, "mask_options": options}, Target(
            box, layer, blend_mask("outpaint", image=image, margins=(left, top, right, bottom), options=options),
            "masked")

    # The image kinds work on the selection (cropped to the canvas), or on the whole canvas.
    region = canvas
    if selection is not None:
        region = _intersect(selection, canvas)
        if region is None:
            raise BadInput(OUTSIDE)
    image = _crop(document.composite(), region, canvas)

    if mode == "vary":
        return Vary, {"image": image, "strength": float(s.strength)}, Target(region, layer)
    if mode == "edit":
        if not s.prompt.strip():
            raise BadInput(NO_INSTRUCTION)
        return Edit, {"image": image, "image_guidance": float(s.image_guidance)}, Target(region, layer)
    if mode == "inpaint":
        if not document.has_mask():
            raise BadInput(NO_MASK)
        mask = _crop(document.mask_image(), region, canvas)
        if mask.getbbox() is None:
            raise BadInput(MASK_OUTSIDE)
        # A selection is the region the model sees: run on all of it rather than around the mask.
        options = MaskOptions(crop_padding=None) if selection is not None else MaskOptions()
        return Inpaint, {"image": image, "mask": mask, "strength": float(s.inpaint_strength),
                         "mask_options": options}, Target(region, layer, blend_mask("inpaint", mask=mask,
                                                                                        options=options), "masked")
    raise BadInput(f"Unknown mode {mode!r}.")


def _crop(image: Image.Image, region: Box, canvas: Box) -> Image.Image:
    return image if region == canvas else image.crop(region)


def blend_mask(kind: str, *, image: Image.Image | None = None, mask: Image.Image | None = None,
               margins: Sequence[int] = (0, 0, 0, 0), options: MaskOptions | None = None) -> Image.Image:
    """How much of an inpaint or outpaint result replaces the layer: the same grown and feathered
    mask the engine pastes back with (`compositing.prepare_mask`), so outside it the layer stays
    byte-identical, whatever the other layers show."""
    options = options or MaskOptions()
    if kind == "outpaint":
        if image is None:
            raise ValueError("An outpaint blend mask needs the source image.")
        _canvas, mask = compositing.extend_canvas(Image.new("L", image.size), *margins)
    if mask is None:
        raise ValueError("An inpaint blend mask needs the mask.")
    return compositing.prepare_mask(mask, options.grow, options.feather)


def restore(job: Job, spec: Mapping[str, Any] | None, box: Sequence[int] | None,
            image_size: tuple[int, int] | None, layer_id: Any = None) -> Target | None:
    """A loaded entry's Target, from its saved spec (box, layer index, composite, fit) and its job;
    the blend mask is rebuilt from the job's own mask and options. Files from before targets
    were saved have only a box (None: the top left at the result's own size)."""
    spec = dict(spec or {})
    raw = spec.get("box", box)
    if raw is None:
        if image_size is None:
            return None
        raw = (0, 0, *image_size)
    try:
        target_box = tuple(int(v) for v in raw)
        if len(target_box) != 4:
            raise ValueError(raw)
    except (TypeError, ValueError):
        raise BadInput("A result in this document has a damaged place on the canvas.", repr(raw)) from None
    layer = spec.get("layer")
    if layer is not None and layer_id is not None:
        layer = layer_id(layer)
    elif not isinstance(layer, int) or isinstance(layer, bool):
        layer = None
    composite = spec.get("composite") if spec.get("composite") in ("replace", "masked") else _COMPOSITE.get(job.kind)
    fit = spec.get("fit") if spec.get("fit") in ("stretch", "contain", "centre") else "stretch"
    mask = None
    if composite == "masked":
        size = (target_box[2] - target_box[0], target_box[3] - target_box[1])
        try:
            if isinstance(job, Outpaint):
                mask = blend_mask("outpaint", image=job.image, margins=(job.left, job.top, job.right, job.bottom),
                                  options=job.mask_options)
            elif isinstance(job, Inpaint):
                mask = blend_mask("inpaint", mask=job.mask, options=job.mask_options)
        except (ValueError, AttributeError):
            mask = None
        if mask is None:
            composite = "replace"
        elif mask.size != size:
            mask = mask.resize(size, Image.Resampling.BILINEAR)
    return Target(target_box, layer, mask, composite or "replace", fit)


# --------------------------------------------------------------------------- fitting a result


def placement(target: Target, size: tuple[int, int]) -> Box:
    """The canvas box an image of `size` covers when it lands on `target`."""
    box = target.box
    (w, h), (bw, bh) = size, target.size
    if target.fit == "stretch" or (w, h) == (bw, bh):
        return box
    if target.fit == "centre":
        # A generated image smaller than the canvas goes in its middle at its own size (a 128 px
        # emoji on a 768x512 page); one as large or larger goes at the top left, growing the canvas.
        if w > bw or h > bh:
            return (box[0], box[1], box[0] + w, box[1] + h)
        left, top = box[0] + (bw - w) // 2, box[1] + (bh - h) // 2
        return (left, top, left + w, top + h)
    # contain: as large as fits without changing its shape, centred. Stretching a square 128 px
    # result over a wide selection distorts it (an emoji or icon above all).
    if w * bh == h * bw:
        return box
    scale = min(bw / w, bh / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    left, top = box[0] + (bw - nw) // 2, box[1] + (bh - nh) // 2
    return (left, top, left + nw, top + nh)


def preview_box(target: Target | None, image_size: tuple[int, int], within: Box | None,
                canvas: tuple[int, int]) -> Box:
    """Where a live preview of `image_size` goes: the crop `within` the result, placed where the
    result will land."""
    if target is None:
        target = Target((0, 0, *canvas))
    if within is None:
        return placement(target, image_size)
    base = target.box
    return (base[0] + within[0], base[1] + within[1], base[0] + within[2], base[1] + within[3])


def fit(document: Any, entry: Any, as_new_layer: bool = False, name: str | None = None) -> Any:
    """Put a history entry's result on `document` where its target says, as one undo command.

    Into the target's layer (the active one if that layer is gone), or as a new layer above the
    active one; a masked target blends only through its mask, so the layer keeps every other
    pixel exactly. Returns the pushed command.
    """
    image = entry.image
    if image is None:
        raise BadInput("This result has no image to apply.")
    target: Target | None = entry.target
    if target is None:
        target = Target((0, 0, *image.size))
    box = placement(target, image.size)
    mask = None
    if target.composite == "masked" and target.mask is not None:
        mask = target.mask
        size = (box[2] - box[0], box[3] - box[1])
        if mask.size != size:
            mask = mask.resize(size, Image.Resampling.BILINEAR)
    layer = None
    if not as_new_layer:
        layer = _layer_by_id(document, target.layer)
        if layer is None:
            layer = document.active_layer
        if layer is None:
            raise BadInput(NO_LAYER)
    if name is None:
        name = f"{entry.mode_label}: {entry.prompt[:30]}".strip(": ")
    return document.apply_result(image, box, as_new_layer=as_new_layer, name=name, layer=layer, mask=mask,
                                 entry=entry)


def _layer_by_id(document: Any, layer_id: int | None) -> Any:
    if layer_id is None:
        return None
    for layer in document.layers:
        if layer.id == layer_id:
            return layer
    return None


__all__ = ["Request", "plan", "fit", "placement", "preview_box", "restore", "blend_mask", "parse_size",
           "NO_MASK", "NO_MARGINS", "NO_INSTRUCTION", "NO_IMAGE", "OUTSIDE", "MASK_OUTSIDE", "NO_LAYER"]
