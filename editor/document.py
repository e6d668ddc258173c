"""The editor's document: image layers, the mask, the selection, and the commands that change them.

Every change to a Document goes through ``doc.undo_stack`` as one QUndoCommand, so undo, redo and
the "modified" flag (``not undo_stack.isClean()``) cover everything. Commands keep only what they
need to go back and forth, never whole images when a rectangle will do: a brush stroke stores the
before and after bytes of the rectangle it changed, an applied result the rectangle it pasted
into, a mask inversion nothing at all (it is its own inverse). That keeps the undo history of a
4096x4096 canvas in megabytes, not gigabytes (``doc.undo_bytes()`` says how many).

Pixels are numpy uint8 arrays: layers (H, W, 4) straight-alpha RGBA, the mask (H, W) with 255 =
"regenerate this". Layers carry an (x, y) offset in canvas coordinates and may be smaller than the
canvas (a result applied as a new layer is only as large as the result) or reach past it (after
the canvas shrinks, cropped pixels are kept, so growing it again brings them back). Coordinates
are canvas pixels; boxes are (left, top, right, bottom) with right/bottom exclusive, as in Pillow.
"""

from __future__ import annotations

import itertools
import math
import uuid
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np
import shiboken6
from PIL import Image
from PySide6.QtCore import QObject, QRect, QRectF, Signal
from PySide6.QtGui import QColor, QImage, QUndoCommand, QUndoStack

from inference import compositing

Box = tuple[int, int, int, int]

# Rows composited at a time: bounds the float temporaries of a 4096-wide canvas to a few MB.
_BAND_ROWS = 256
# Brush strokes back up the mask in tiles of this side before first touching them.
_TILE = 64
# Dab spacing as a fraction of the radius: close enough that a fast stroke is a continuous line.
_SPACING = 0.25
_MIN_RADIUS = 0.5

# Command ids for QUndoCommand.mergeWith (any distinct positive integers).
_ID_OPACITY = 0x5142_0001

_layer_ids = itertools.count(1)


# --------------------------------------------------------------------------- conversions


def pil_to_rgba(image: Image.Image) -> np.ndarray:
    """A PIL image as a new (H, W, 4) uint8 RGBA array (RGB gets alpha 255)."""
    if image.mode != "RGBA":
        image = image.convert("RGBA")
    return np.array(image, dtype=np.uint8)


def rgba_to_pil(pixels: np.ndarray) -> Image.Image:
    """An (H, W, 4) uint8 array as a new PIL "RGBA" image."""
    return Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGBA")


def pil_to_mask(image: Image.Image) -> np.ndarray:
    """A PIL image as a new (H, W) uint8 mask (converted to "L")."""
    return np.array(image.convert("L"), dtype=np.uint8)


def array_to_qimage(pixels: np.ndarray) -> QImage:
    """A QImage that owns a copy of `pixels` ((H, W, 4) RGBA or (H, W) grey), safe to keep.

    A QImage built on a numpy buffer does not own it; copying right away means the image stays
    valid whatever happens to the array afterwards (a layer grown, a mask replaced).
    """
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 4:
        fmt = QImage.Format.Format_RGBA8888
    elif arr.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    else:
        raise ValueError(f"Expected (H, W, 4) or (H, W) uint8 pixels, got shape {arr.shape}.")
    h, w = arr.shape[:2]
    if h == 0 or w == 0:
        return QImage()
    return QImage(arr.data, w, h, arr.strides[0], fmt).copy()


def to_qrect(rect: QRect | QRectF | Sequence[int] | None) -> QRect | None:
    """QRect from a QRect, QRectF (rounded outward) or a (left, top, right, bottom) box."""
    if rect is None:
        return None
    if isinstance(rect, QRect):
        return QRect(rect)
    if isinstance(rect, QRectF):
        return rect.toAlignedRect()
    left, top, right, bottom = (int(v) for v in rect)
    return QRect(left, top, right - left, bottom - top)


def qrect_box(rect: QRect) -> Box:
    """(left, top, right, bottom), right/bottom exclusive, of a QRect."""
    return rect.x(), rect.y(), rect.x() + rect.width(), rect.y() + rect.height()


def _intersect(a: Box, b: Box) -> Box | None:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    if left >= right or top >= bottom:
        return None
    return left, top, right, bottom


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _rect(box: Box) -> QRect:
    return QRect(box[0], box[1], box[2] - box[0], box[3] - box[1])


def _diff_box(a: np.ndarray, b: np.ndarray) -> Box | None:
    """Bounding box (of the first two axes) where two equal-shaped arrays differ."""
    diff = a != b
    if diff.ndim == 3:
        diff = diff.any(axis=2)
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(diff.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _nonzero_box(a: np.ndarray) -> Box | None:
    rows = np.flatnonzero(a.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(a.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _over(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Straight-alpha `src` over `dst` (both (H, W, 4) uint8); exact where src is opaque."""
    sa = src[..., 3:4].astype(np.float32) / 255.0
    if np.all(sa == 1.0):
        return src.copy()
    da = dst[..., 3:4].astype(np.float32) / 255.0
    oa = sa + da * (1.0 - sa)
    rgb = src[..., :3] * sa + dst[..., :3] * (da * (1.0 - sa))
    rgb = rgb / np.where(oa > 0, oa, 1.0)
    out = np.empty_like(src)
    out[..., :3] = np.clip(np.rint(rgb), 0, 255)
    out[..., 3:4] = np.clip(np.rint(oa * 255.0), 0, 255)
    # Where nothing is opaque keep the destination, so a transparent result changes nothing.
    return np.where(sa > 0, out, dst)


def composite_band(layers: Sequence["Layer"], box: Box) -> np.ndarray:
    """The visible `layers` (bottom first), with their opacity, alpha-composited: (h, w, 4) uint8
    of the canvas box `box`. Module-level so that a save composites its snapshot of the layers
    (editor.ora, on a thread) with exactly the code the Document uses."""
    left, top, right, bottom = box
    h, w = bottom - top, right - left
    layers = [layer for layer in layers if layer.visible and layer.opacity > 0]
    # Start from the topmost layer that hides everything beneath it, exactly.
    start = 0
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if layer.opacity >= 1.0 and _intersect(layer.box, box) == box:
            sub = layer.pixels[top - layer.y:bottom - layer.y, left - layer.x:right - layer.x]
            if sub[..., 3].min() == 255:
                start = i
                break
    rgb = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w, 1), np.float32)
    exact: np.ndarray | None = None
    for i in range(start, len(layers)):
        layer = layers[i]
        over = _intersect(layer.box, box)
        if over is None:
            continue
        ol, ot, orr, ob = over
        src = layer.pixels[ot - layer.y:ob - layer.y, ol - layer.x:orr - layer.x]
        if i == start and over == box and layer.opacity >= 1.0:
            exact = src
            rgb[...] = src[..., :3]
            alpha[...] = src[..., 3:4].astype(np.float32) / 255.0
            continue
        exact = None
        sa = src[..., 3:4].astype(np.float32) * (layer.opacity / 255.0)
        win = (slice(ot - top, ob - top), slice(ol - left, orr - left))
        da = alpha[win]
        oa = sa + da * (1.0 - sa)
        mixed = src[..., :3] * sa + rgb[win] * (da * (1.0 - sa))
        rgb[win] = mixed / np.where(oa > 0, oa, 1.0)
        alpha[win] = oa
    if exact is not None:
        return exact.copy()
    out = np.empty((h, w, 4), np.uint8)
    out[..., :3] = np.clip(np.rint(rgb), 0, 255)
    out[..., 3:4] = np.clip(np.rint(alpha * 255.0), 0, 255)
    return out


# --------------------------------------------------------------------------- layers


class Layer:
    """One image layer: straight-alpha RGBA pixels placed at (x, y) on the canvas.

    Change a layer only through the Document's commands (so undo sees it); reading is free.
    `id` is unique for the session and stable across undo, handy for panels.
    """

    def __init__(self, name: str, pixels: np.ndarray, x: int = 0, y: int = 0,
                 visible: bool = True, opacity: float = 1.0):
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 4:
            raise ValueError(f"Layer pixels must be (H, W, 4) uint8, got {pixels.dtype} {pixels.shape}.")
        self.id = next(_layer_ids)
        self.name = str(name)
        self.pixels = pixels
        self.x = int(x)
        self.y = int(y)
        self.visible = bool(visible)
        self.opacity = float(opacity)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def box(self) -> Box:
        return self.x, self.y, self.x + self.width, self.y + self.height

    @property
    def rect(self) -> QRect:
        """Where the layer lies on the canvas (may reach past the canvas)."""
        return QRect(self.x, self.y, self.width, self.height)

    def image(self) -> Image.Image:
        """The layer's own pixels as a PIL "RGBA" image (a copy)."""
        return rgba_to_pil(self.pixels)

    def qimage(self) -> QImage:
        """The layer's own pixels as a QImage that owns its copy (e.g. for thumbnails)."""
        return array_to_qimage(self.pixels)

    @property
    def nbytes(self) -> int:
        return int(self.pixels.nbytes)

    def __repr__(self) -> str:
        return (f"Layer({self.name!r}, {self.width}x{self.height} at ({self.x}, {self.y}), "
                f"visible={self.visible}, opacity={self.opacity:g})")


# --------------------------------------------------------------------------- brush


def _dab(cx: float, cy: float, radius: float, hardness: float, bounds: Box) -> tuple[Box, np.ndarray] | None:
    """A round brush dab centred at (cx, cy): its box (clipped to `bounds`) and uint8 values.

    Full strength inside radius * hardness, a smoothstep ramp to 0 at the radius, and a one-pixel
    anti-aliased rim so that hardness 1 is a clean but not jagged edge. Distances are measured
    from pixel centres (pixel i covers [i, i + 1)).
    """
    box = _intersect((math.floor(cx - radius - 1), math.floor(cy - radius - 1),
                      math.ceil(cx + radius + 1) + 1, math.ceil(cy + radius + 1) + 1), bounds)
    if box is None:
        return None
    left, top, right, bottom = box
    xs = np.arange(left, right, dtype=np.float32) + (0.5 - cx)
    ys = np.arange(top, bottom, dtype=np.float32) + (0.5 - cy)
    d = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    rim = np.clip(radius + 0.5 - d, 0.0, 1.0)
    inner = radius * hardness
    if radius - inner > 1e-3:
        t = np.clip((radius - d) / (radius - inner), 0.0, 1.0)
        rim = np.minimum(rim, t * t * (3.0 - 2.0 * t))
    values = np.rint(rim * 255.0).astype(np.uint8)
    return box, values


class _Stroke:
    """What a stroke in progress needs: where it was, and the mask as it was where it has been."""

    def __init__(self, erase: bool):
        self.erase = erase
        self.last: tuple[float, float, float] | None = None  # x, y, radius
        self.residual = 0.0  # distance travelled since the last dab
        self.tiles: dict[tuple[int, int], np.ndarray] = {}
        self.box: Box | None = None


# --------------------------------------------------------------------------- document


class Document(QObject):
    """Layers, mask and selection of one canvas, with the undo stack that changes them.

    Signals:
      changed(QRect): the composite image may have changed in this canvas rectangle (repaint it).
      mask_changed(QRect): the mask changed in this rectangle.
      layers_changed(): the layer list, a layer's properties or the active layer changed.
      selection_changed(): the selection rectangle changed (or was removed).
      size_changed(): the canvas size changed (changed and mask_changed follow for the new rect).
      modified_changed(bool): `modified` flipped (the undo stack's cleanChanged, inverted).
      needs_saving_changed(bool): `needs_saving` flipped (pixels or history changed since a save).

    `history` (editor.history.History) holds the document's results and which are applied; it
    is saved with the document. `path` is the .ora the document was saved as (None: never),
    `source_path` the image it was opened from; `display_name` is what titles show.
    """

    changed = Signal(QRect)
    mask_changed = Signal(QRect)
    layers_changed = Signal()
    selection_changed = Signal()
    size_changed = Signal()
    modified_changed = Signal(bool)
    needs_saving_changed = Signal(bool)

    def __init__(self, width: int, height: int, parent: QObject | None = None):
        super().__init__(parent)
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"A document needs a positive size, got {width}x{height}.")
        self._width = width
        self._height = height
        self.layers: list[Layer] = []
        self.mask = np.zeros((height, width), np.uint8)
        self._selection: QRect | None = None
        self._active = -1
        self._stroke: _Stroke | None = None
        self.path: str | None = None
        self.source_path: str | None = None
        # Names the document's autosave; random, so two windows' documents never share one.
        self.uid = uuid.uuid4().hex
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        from editor.history import History  # imported here: history -> targets -> inference only

        self.history = History(self)
        self._needs_saving = False
        self.history.changed.connect(self._update_needs_saving)

    def _clean_changed(self, clean: bool) -> None:
        self.modified_changed.emit(not clean)
        self._update_needs_saving()

    def _update_needs_saving(self) -> None:
        value = self.needs_saving
        if value != self._needs_saving:
            self._needs_saving = value
            self.needs_saving_changed.emit(value)

    # ------------------------------------------------------------------ construction

    @classmethod
    def new(cls, width: int, height: int, fill: Sequence[int] | QColor | None = (255, 255, 255, 255),
            parent: QObject | None = None) -> "Document":
        """A blank canvas with one "Background" layer filled with `fill` (None: transparent)."""
        doc = cls(width, height, parent)
        if isinstance(fill, QColor):
            fill = (fill.red(), fill.green(), fill.blue(), fill.alpha())
        rgba = (0, 0, 0, 0) if fill is None else tuple(int(v) for v in fill)
        if len(rgba) == 3:
            rgba = (*rgba, 255)
        pixels = np.empty((doc._height, doc._width, 4), np.uint8)
        pixels[...] = np.array(rgba, np.uint8)
        doc.layers.append(Layer("Background", pixels))
        doc._active = 0
        return doc

    @classmethod
    def from_image(cls, image: Image.Image, name: str = "Background", parent: QObject | None = None) -> "Document":
        """A document whose background layer is `image` (any PIL mode; stored as RGBA)."""
        doc = cls(image.width, image.height, parent)
        doc.layers.append(Layer(name, pil_to_rgba(image)))
        doc._active = 0
        return doc

    # ------------------------------------------------------------------ plain state

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def size(self) -> tuple[int, int]:
        return self._width, self._height

    @property
    def rect(self) -> QRect:
        return QRect(0, 0, self._width, self._height)

    @property
    def box(self) -> Box:
        return 0, 0, self._width, self._height

    @property
    def modified(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def needs_saving(self) -> bool:
        """Whether closing now would lose something: a change, or a result not saved yet."""
        return self.modified or self.history.dirty

    @property
    def display_name(self) -> str:
        """The .ora's file name, else the opened image's, else "Untitled"."""
        for path in (self.path, self.source_path):
            if path:
                return Path(path).name
        return "Untitled"

    def suggested_path(self, suffix: str = ".ora") -> str:
        """Where Save As and Export start: beside the document's own file, never another's."""
        base = Path(self.path or self.source_path or "Untitled")
        return str(base.with_suffix(suffix))

    def history_records(self) -> list[dict]:
        """The history as `editor.ora.save_ora` / `prepare_save` take it, each target's layer
        saved by its index (layer ids hold for one session only)."""
        index = {layer.id: i for i, layer in enumerate(self.layers)}
        return self.history.records(index.get)

    def load_history(self, records: Sequence[dict]) -> None:
        """Make `records` (from `editor.ora.load_ora`) this document's history."""
        layers = self.layers

        def layer_id(index: object) -> int | None:
            ok = isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(layers)
            return layers[index].id if ok else None  # type: ignore[index]

        self.history.load_records(records, layer_id=layer_id)

    def mark_saved(self, path: str | None = None) -> None:
        """After a successful save: the current state is clean, and `path` (if given) is the file."""
        if path is not None:
            self.path = str(path)
        self.history.mark_saved()
        self.undo_stack.setClean()
        self._update_needs_saving()

    @property
    def selection(self) -> QRect | None:
        """The region to generate in (canvas coordinates, may reach past the canvas), or None."""
        return None if self._selection is None else QRect(self._selection)

    def selection_box(self) -> Box | None:
        return None if self._selection is None else qrect_box(self._selection)

    @property
    def active_layer_index(self) -> int:
        return self._active

    @property
    def active_layer(self) -> Layer | None:
        return self.layers[self._active] if 0 <= self._active < len(self.layers) else None

    def set_active_layer(self, layer: Layer | int) -> None:
        """Which layer "Apply" paints into. View state, not an undo step."""
        index = self.layer_index(layer)
        if index != self._active:
            self._active = index
            self.layers_changed.emit()

    def layer_index(self, layer: Layer | int) -> int:
        if isinstance(layer, Layer):
            for i, candidate in enumerate(self.layers):
                if candidate is layer:
                    return i
            raise ValueError(f"{layer!r} is not in this document.")
        index = int(layer)
        if not 0 <= index < len(self.layers):
            raise IndexError(f"No layer {index}; the document has {len(self.layers)}.")
        return index

    def _layer(self, layer: Layer | int) -> Layer:
        return self.layers[self.layer_index(layer)]

    def undo_bytes(self) -> int:
        """Bytes of pixel data held by the undo stack's commands."""
        stack = self.undo_stack
        return sum(int(getattr(stack.command(i), "nbytes", 0)) for i in range(stack.count()))

    # ------------------------------------------------------------------ reading pixels

    def composite_array(self, rect: QRect | Sequence[int] | None = None) -> np.ndarray:
        """Visible layers, with their opacity, alpha-composited: (h, w, 4) uint8 of `rect`.

        `rect` is clipped to the canvas (None: the whole canvas). A single opaque layer comes back
        bit-exact; transparent areas (no layer covers them) have alpha 0.
        """
        box = self.box if rect is None else _intersect(qrect_box(to_qrect(rect)), self.box)
        if box is None:
            return np.zeros((0, 0, 4), np.uint8)
        left, top, right, bottom = box
        out = np.empty((bottom - top, right - left, 4), np.uint8)
        for y0 in range(top, bottom, _BAND_ROWS):
            y1 = min(bottom, y0 + _BAND_ROWS)
            out[y0 - top:y1 - top] = self._composite_band((left, y0, right, y1))
        return out

    def _composite_band(self, box: Box) -> np.ndarray:
        return composite_band(self.layers, box)

    def composite(self, mode: str | None = None) -> Image.Image:
        """The visible image as PIL: "RGB" when fully opaque, else "RGBA" (mode=None).

        mode="RGBA" always keeps alpha; mode="RGB" flattens transparency onto white.
        """
        arr = self.composite_array()
        opaque = bool(arr[..., 3].min() == 255) if arr.size else True
        if mode is None:
            mode = "RGB" if opaque else "RGBA"
        if mode == "RGBA":
            return rgba_to_pil(arr)
        if mode != "RGB":
            raise ValueError(f"composite() gives RGB or RGBA, not {mode!r}.")
        if opaque:
            return Image.fromarray(np.ascontiguousarray(arr[..., :3]), "RGB")
        white = Image.new("RGBA", (self._width, self._height), (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba_to_pil(arr)).convert("RGB")

    def render_qimage(self, rect: QRect | Sequence[int] | None = None) -> QImage:
        """The composite of `rect` (clipped to the canvas) as a QImage owning its pixels."""
        return array_to_qimage(self.composite_array(rect))

    def mask_image(self) -> Image.Image:
        """The mask as a PIL "L" image (a copy): 255 = area to change."""
        return Image.fromarray(self.mask.copy(), "L")

    def mask_qimage(self, rect: QRect | Sequence[int] | None = None, color: QColor | None = None) -> QImage:
        """The mask of `rect` (clipped) as a QImage owning its pixels.

        Without `color`: Grayscale8. With it: a premultiplied ARGB overlay in that colour whose
        alpha is mask * color.alpha / 255, ready to draw over the image.
        """
        box = self.box if rect is None else _intersect(qrect_box(to_qrect(rect)), self.box)
        if box is None:
            return QImage()
        sub = self.mask[box[1]:box[3], box[0]:box[2]]
        if color is None:
            return array_to_qimage(sub)
        a = sub.astype(np.uint16) * color.alpha() // 255
        out = np.empty(sub.shape + (4,), np.uint8)
        out[..., 0] = a * color.red() // 255
        out[..., 1] = a * color.green() // 255
        out[..., 2] = a * color.blue() // 255
        out[..., 3] = a
        h, w = sub.shape
        return QImage(out.data, w, h, out.strides[0], QImage.Format.Format_RGBA8888_Premultiplied).copy()

    def has_mask(self) -> bool:
        return bool(self.mask.any())

    def mask_bbox(self) -> Box | None:
        """Bounding box of the painted (non-zero) mask, or None."""
        return _nonzero_box(self.mask)

    # ------------------------------------------------------------------ mask painting

    @property
    def stroking(self) -> bool:
        return self._stroke is not None

    def begin_stroke(self, erase: bool = False) -> None:
        """Start a mask stroke (erase=True lowers the mask). A stroke left open is ended first."""
        if self._stroke is not None:
            self.end_stroke()
        self._stroke = _Stroke(bool(erase))

    def stroke_to(self, x: float, y: float, radius: float, hardness: float = 1.0, pressure: float = 1.0) -> QRect:
        """Continue the stroke to (x, y), stamping dabs every radius/4 along the way.

        The first call stamps one dab. `pressure` (0..1) scales the radius, interpolated along the
        segment. Painting takes the maximum of mask and dab, erasing the minimum of mask and
        255 - dab, so passing over the same place twice does not build up. Returns the rectangle
        changed by this call (also emitted as mask_changed); empty when nothing was touched.
        """
        stroke = self._stroke
        if stroke is None:
            raise RuntimeError("stroke_to() needs begin_stroke() first.")
        hardness = min(1.0, max(0.0, float(hardness)))
        r1 = max(_MIN_RADIUS, float(radius) * min(1.0, max(0.0, float(pressure))))
        x, y = float(x), float(y)
        dirty: Box | None = None

        def stamp(cx: float, cy: float, r: float) -> None:
            nonlocal dirty
            box = self._stamp(stroke, cx, cy, r, hardness)
            if box is not None:
                dirty = box if dirty is None else _union(dirty, box)

        if stroke.last is None:
            stamp(x, y, r1)
            stroke.residual = 0.0
        else:
            x0, y0, r0 = stroke.last
            dist = math.hypot(x - x0, y - y0)
            if dist > 0:
                # Walk the segment, a dab every `spacing` of path length, carrying what is left over
                # to the next call so that spacing stays even however the events are chunked.
                travelled = stroke.residual
                s = 0.0
                while True:
                    spacing = max(_MIN_RADIUS, _SPACING * (r0 + (r1 - r0) * (s / dist)))
                    step = max(0.0, spacing - travelled)
                    if s + step > dist:
                        break
                    s += step
                    travelled = 0.0
                    t = s / dist
                    stamp(x0 + (x - x0) * t, y0 + (y - y0) * t, r0 + (r1 - r0) * t)
                stroke.residual = travelled + (dist - s)
        stroke.last = (x, y, r1)
        if dirty is None:
            return QRect()
        stroke.box = dirty if stroke.box is None else _union(stroke.box, dirty)
        rect = _rect(dirty)
        self.mask_changed.emit(rect)
        return rect

    def _stamp(self, stroke: _Stroke, cx: float, cy: float, radius: float, hardness: float) -> Box | None:
        dab = _dab(cx, cy, radius, hardness, self.box)
        if dab is None:
            return None
        box, values = dab
        left, top, right, bottom = box
        # Back up every tile this dab touches, the first time, so end_stroke knows the old bytes.
        for ty in range(top // _TILE, (bottom - 1) // _TILE + 1):
            for tx in range(left // _TILE, (right - 1) // _TILE + 1):
                if (tx, ty) not in stroke.tiles:
                    stroke.tiles[(tx, ty)] = self.mask[ty * _TILE:(ty + 1) * _TILE, tx * _TILE:(tx + 1) * _TILE].copy()
        region = self.mask[top:bottom, left:right]
        if stroke.erase:
            np.minimum(region, 255 - values, out=region)
        else:
            np.maximum(region, values, out=region)
        return box

    def end_stroke(self) -> "MaskStrokeCommand | None":
        """Finish the stroke: push one MaskStrokeCommand, or nothing if no mask byte changed."""
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke.box is None:
            return None
        left, top, right, bottom = stroke.box
        after = self.mask[top:bottom, left:right]
        before = after.copy()
        for (tx, ty), tile in stroke.tiles.items():
            over = _intersect((tx * _TILE, ty * _TILE, tx * _TILE + tile.shape[1], ty * _TILE + tile.shape[0]),
                              stroke.box)
            if over is None:
                continue
            ol, ot, orr, ob = over
            before[ot - top:ob - top, ol - left:orr - left] = \
                tile[ot - ty * _TILE:ob - ty * _TILE, ol - tx * _TILE:orr - tx * _TILE]
        diff = _diff_box(before, after)
        if diff is None:
            return None
        dl, dt, dr, db = diff
        command = MaskStrokeCommand(self, left + dl, top + dt, before[dt:db, dl:dr].copy(),
                                    after[dt:db, dl:dr].copy(), erase=stroke.erase, applied=True)
        self.undo_stack.push(command)
        return command

    def cancel_stroke(self) -> None:
        """Abandon the stroke in progress, putting back the mask as it was before it."""
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke.box is None:
            return
        for (tx, ty), tile in stroke.tiles.items():
            self.mask[ty * _TILE:ty * _TILE + tile.shape[0], tx * _TILE:tx * _TILE + tile.shape[1]] = tile
        self.mask_changed.emit(_rect(stroke.box))

    # ------------------------------------------------------------------ convenience: push commands

    def clear_mask(self) -> "ClearMask | None":
        return self._push_mask_edit(ClearMask(self))

    def invert_mask(self) -> "InvertMask":
        command = InvertMask(self)
        self.undo_stack.push(command)
        return command

    def grow_mask(self, pixels: int) -> "GrowMask | None":
        """Grow (negative: shrink) the mask by `pixels`; the result is hard-edged (0 or 255)."""
        return self._push_mask_edit(GrowMask(self, pixels)) if int(pixels) else None

    def feather_mask(self, pixels: int) -> "FeatherMask | None":
        """Soften the mask's edge with an outward ramp `pixels` wide."""
        return self._push_mask_edit(FeatherMask(self, pixels)) if int(pixels) > 0 else None

    def set_mask(self, mask: np.ndarray | Image.Image, text: str = "Set mask") -> "SetMask | None":
        """Replace the whole mask (same size as the canvas), as one undo step."""
        return self._push_mask_edit(SetMask(self, mask, text))

    def _push_mask_edit(self, command: "SetMask") -> "SetMask | None":
        if command.empty:
            return None
        self.undo_stack.push(command)
        return command

    def set_selection(self, rect: QRect | QRectF | Sequence[int] | None) -> QUndoCommand | None:
        """Set (None: remove) the selection; nothing is pushed when it does not change."""
        rect = to_qrect(rect)
        if rect is not None and rect.isEmpty():
            rect = None
        if rect == self._selection:
            return None
        command = SetSelection(self, rect)
        self.undo_stack.push(command)
        return command

    def apply_result(self, image: Image.Image, box: Sequence[int] | QRect | None = None,
                     as_new_layer: bool = False, name: str | None = None, layer: "Layer | int | None" = None,
                     mask: Image.Image | None = None, entry: object = None) -> "ApplyResult":
        """Put `image` on the document as one undo step (see ApplyResult). Results from jobs go
        through `editor.targets.fit`, which reads their target."""
        command = ApplyResult(self, image, box, as_new_layer=as_new_layer, name=name, layer=layer, mask=mask,
                              entry=entry)
        self.undo_stack.push(command)
        return command

    def resize_canvas(self, width: int, height: int, offset: tuple[int, int] = (0, 0)) -> QUndoCommand | None:
        if (int(width), int(height)) == self.size and tuple(offset) == (0, 0):
            return None
        command = ResizeCanvas(self, width, height, offset)
        self.undo_stack.push(command)
        return command

    def anchor_offset(self, width: int, height: int, anchor: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int]:
        """Offset for resize_canvas that pins the old canvas at `anchor` ((0, 0) top left, (1, 1) bottom right)."""
        return (int(round((int(width) - self._width) * anchor[0])),
                int(round((int(height) - self._height) * anchor[1])))

    def set_layer_visible(self, layer: Layer | int, visible: bool) -> QUndoCommand | None:
        layer = self._layer(layer)
        if layer.visible == bool(visible):
            return None
        command = SetLayerVisible(self, layer, visible)
        self.undo_stack.push(command)
        return command

    def set_layer_opacity(self, layer: Layer | int, opacity: float, merge: bool = True) -> QUndoCommand | None:
        """Change opacity (0..1). Consecutive calls for one layer merge into one undo step;
        pass merge=False for the first change of a new gesture (slider pressed) to start a new step."""
        layer = self._layer(layer)
        opacity = min(1.0, max(0.0, float(opacity)))
        if layer.opacity == opacity:
            return None
        command = SetLayerOpacity(self, layer, opacity, merge=merge)
        self.undo_stack.push(command)
        return command

    def move_layer(self, layer: Layer | int, to_index: int) -> QUndoCommand | None:
        layer = self._layer(layer)
        to_index = int(to_index)
        if not 0 <= to_index < len(self.layers):
            raise IndexError(f"No position {to_index}; the document has {len(self.layers)} layers.")
        if self.layer_index(layer) == to_index:
            return None
        command = MoveLayer(self, layer, to_index)
        self.undo_stack.push(command)
        return command

    def remove_layer(self, layer: Layer | int) -> QUndoCommand:
        command = RemoveLayer(self, self._layer(layer))
        self.undo_stack.push(command)
        return command

    def rename_layer(self, layer: Layer | int, name: str) -> QUndoCommand | None:
        layer = self._layer(layer)
        if layer.name == str(name):
            return None
        command = RenameLayer(self, layer, name)
        self.undo_stack.push(command)
        return command

    # ------------------------------------------------------------------ primitive writes (commands only)

    def _clip_rect(self, box: Box) -> QRect:
        over = _intersect(box, self.box)
        return QRect() if over is None else _rect(over)

    def _write_mask(self, x: int, y: int, values: np.ndarray) -> None:
        h, w = values.shape
        if h == 0 or w == 0:
            return
        self.mask[y:y + h, x:x + w] = values
        self.mask_changed.emit(QRect(x, y, w, h))

    def _write_layer(self, layer: Layer, x: int, y: int, values: np.ndarray) -> None:
        """Write canvas-positioned `values` into `layer` (which must cover them)."""
        h, w = values.shape[:2]
        layer.pixels[y - layer.y:y - layer.y + h, x - layer.x:x - layer.x + w] = values
        if layer.visible:
            rect = self._clip_rect((x, y, x + w, y + h))
            if not rect.isEmpty():
                self.changed.emit(rect)

    def _set_layer_geometry(self, layer: Layer, box: Box) -> None:
        """Grow or crop `layer` to `box`; new area is transparent, cropped pixels are dropped."""
        if box == layer.box:
            return
        left, top, right, bottom = box
        pixels = np.zeros((bottom - top, right - left, 4), np.uint8)
        keep = _intersect(box, layer.box)
        if keep is not None:
            kl, kt, kr, kb = keep
            pixels[kt - top:kb - top, kl - left:kr - left] = \
                layer.pixels[kt - layer.y:kb - layer.y, kl - layer.x:kr - layer.x]
        old = layer.box
        layer.pixels, layer.x, layer.y = pixels, left, top
        if layer.visible:
            rect = self._clip_rect(_union(old, box))
            if not rect.isEmpty():
                self.changed.emit(rect)
        self.layers_changed.emit()

    def _layer_touched(self, layer: Layer) -> None:
        rect = self._clip_rect(layer.box)
        if not rect.isEmpty():
            self.changed.emit(rect)
        self.layers_changed.emit()

    def _insert_layer(self, index: int, layer: Layer, activate: bool = True) -> None:
        self.layers.insert(index, layer)
        if activate or self._active < 0:
            self._active = index
        elif self._active >= index:
            self._active += 1
        self._layer_touched(layer)

    def _remove_layer(self, index: int) -> Layer:
        layer = self.layers.pop(index)
        if self._active > index or self._active >= len(self.layers):
            self._active -= 1
        self._layer_touched(layer)
        return layer

    def _move_layer(self, from_index: int, to_index: int) -> None:
        active = self.active_layer
        layer = self.layers.pop(from_index)
        self.layers.insert(to_index, layer)
        if active is not None:
            self._active = self.layer_index(active)
        self._layer_touched(layer)

    def _set_selection(self, rect: QRect | None) -> None:
        if rect != self._selection:
            self._selection = None if rect is None else QRect(rect)
            self.selection_changed.emit()

    def _reshape(self, width: int, height: int, dx: int, dy: int, mask: np.ndarray) -> None:
        """Set the canvas size, shift every layer (and the selection) by (dx, dy), take `mask`."""
        self._width, self._height = int(width), int(height)
        for layer in self.layers:
            layer.x += dx
            layer.y += dy
        self.mask = mask
        if self._selection is not None and (dx or dy):
            self._selection = self._selection.translated(dx, dy)
            self.selection_changed.emit()
        self.size_changed.emit()
        self.layers_changed.emit()
        self.changed.emit(self.rect)
        self.mask_changed.emit(self.rect)


# --------------------------------------------------------------------------- commands


# PySide does not hand a child command to its parent: QUndoCommand(text, parent) leaves the
# Python wrapper owning the C++ child, so when the wrapper is collected it deletes the child the
# parent still lists (a crash on redo), or deletes it a second time after the parent did (a crash
# on teardown). Holding every child's wrapper here until Qt has destroyed the C++ object (the
# wrapper turns invalid) lets the parent alone delete it, as Qt intends.
_CHILDREN: set[QUndoCommand] = set()


def _keep_child(command: QUndoCommand) -> None:
    for gone in [child for child in _CHILDREN if not shiboken6.isValid(child)]:
        _CHILDREN.discard(gone)
    _CHILDREN.add(command)


class DocumentCommand(QUndoCommand):
    """Base: holds the document weakly (the stack lives inside it) and reports `nbytes`.

    With a `parent`, the command is a child step of a compound one: Qt's QUndoCommand runs
    children's redo in order and their undo in reverse when the parent's base redo/undo run.
    """

    def __init__(self, doc: Document, text: str, parent: QUndoCommand | None = None):
        super().__init__(text, parent)
        if parent is not None:
            _keep_child(self)
        self._doc_ref = weakref.ref(doc)
        self.nbytes = 0

    @property
    def doc(self) -> Document:
        doc = self._doc_ref()
        if doc is None:
            raise RuntimeError("The document of this command is gone.")
        return doc


class MaskEditCommand(DocumentCommand):
    """A mask change kept as the before and after bytes of one rectangle, at (x, y).

    With applied=True the change is already on the mask when the command is pushed (a brush
    stroke paints as the pen moves), so the first redo() does nothing; later redos write the
    after bytes, undos the before bytes, exactly.
    """

    def __init__(self, doc: Document, text: str, x: int, y: int, before: np.ndarray, after: np.ndarray,
                 applied: bool = False):
        super().__init__(doc, text)
        if before.shape != after.shape or before.ndim != 2:
            raise ValueError(f"before {before.shape} and after {after.shape} must be equal 2-D shapes.")
        self.x, self.y = int(x), int(y)
        self.before = before
        self.after = after
        self._skip_redo = bool(applied)
        self.nbytes = int(before.nbytes + after.nbytes)

    @property
    def rect(self) -> QRect:
        return QRect(self.x, self.y, self.before.shape[1], self.before.shape[0])

    def redo(self) -> None:
        if self._skip_redo:
            self._skip_redo = False
            return
        self.doc._write_mask(self.x, self.y, self.after)

    def undo(self) -> None:
        self.doc._write_mask(self.x, self.y, self.before)


class MaskStrokeCommand(MaskEditCommand):
    """One brush or eraser stroke."""

    def __init__(self, doc: Document, x: int, y: int, before: np.ndarray, after: np.ndarray,
                 erase: bool = False, applied: bool = True):
        super().__init__(doc, "Erase mask" if erase else "Brush stroke", x, y, before, after, applied=applied)
        self.erase = erase


class SetMask(MaskEditCommand):
    """Replace the whole mask with `new`, storing only the rectangle where the two differ.

    When nothing differs the command is `empty` (the convenience methods then push nothing).
    """

    def __init__(self, doc: Document, new: np.ndarray | Image.Image, text: str = "Set mask"):
        new = pil_to_mask(new) if isinstance(new, Image.Image) else np.asarray(new, np.uint8)
        if new.shape != doc.mask.shape:
            raise ValueError(f"The new mask is {new.shape[1]}x{new.shape[0]} "
                             f"but the canvas is {doc.width}x{doc.height}.")
        diff = _diff_box(doc.mask, new)
        if diff is None:
            x = y = 0
            before = after = np.zeros((0, 0), np.uint8)
        else:
            x, y, right, bottom = diff
            before = doc.mask[y:bottom, x:right].copy()
            after = np.array(new[y:bottom, x:right], np.uint8)
        super().__init__(doc, text, x, y, before, after)

    @property
    def empty(self) -> bool:
        return self.before.size == 0


class ClearMask(SetMask):
    def __init__(self, doc: Document):
        super().__init__(doc, np.zeros_like(doc.mask), "Clear mask")


class GrowMask(SetMask):
    """Grow the mask by `pixels` (negative shrinks); the result is hard-edged (0 or 255)."""

    def __init__(self, doc: Document, pixels: int):
        pixels = int(pixels)
        new = np.asarray(compositing.prepare_mask(doc.mask_image(), pixels, 0))
        text = f"Grow mask by {pixels} px" if pixels >= 0 else f"Shrink mask by {-pixels} px"
        super().__init__(doc, new, text)
        self.pixels = pixels


class FeatherMask(SetMask):
    """Soften the mask's edge with a smooth ramp `pixels` wide, outward (compositing.prepare_mask)."""

    def __init__(self, doc: Document, pixels: int):
        pixels = max(0, int(pixels))
        new = np.asarray(compositing.prepare_mask(doc.mask_image(), 0, pixels))
        super().__init__(doc, new, f"Feather mask by {pixels} px")
        self.pixels = pixels


class InvertMask(DocumentCommand):
    """Invert the mask. Its own inverse, so it stores nothing."""

    def __init__(self, doc: Document):
        super().__init__(doc, "Invert mask")

    def _flip(self) -> None:
        doc = self.doc
        np.subtract(255, doc.mask, out=doc.mask)
        doc.mask_changed.emit(doc.rect)

    redo = _flip
    undo = _flip


class SetSelection(DocumentCommand):
    def __init__(self, doc: Document, rect: QRect | QRectF | Sequence[int] | None):
        rect = to_qrect(rect)
        super().__init__(doc, "Select region" if rect is not None else "Deselect")
        self.old = doc.selection
        self.new = None if rect is None or rect.isEmpty() else rect

    def redo(self) -> None:
        self.doc._set_selection(self.new)

    def undo(self) -> None:
        self.doc._set_selection(self.old)


class ResizeCanvas(DocumentCommand):
    """New canvas size; the old canvas's top left lands at `offset` (dx, dy) in the new one.

    Layers move with the content and are never cropped (their pixels past the canvas are kept),
    so undo is exact for free. The mask is cropped to the canvas; only its non-zero part that the
    crop loses is stored.
    """

    def __init__(self, doc: Document, width: int, height: int, offset: tuple[int, int] = (0, 0),
                 parent: QUndoCommand | None = None):
        super().__init__(doc, "Resize canvas", parent)
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"A canvas needs a positive size, got {width}x{height}.")
        self.old_size = doc.size
        self.new_size = (width, height)
        self.dx, self.dy = int(offset[0]), int(offset[1])
        # Part of the old mask that falls outside the new canvas, kept as the box of its non-zero pixels.
        self.lost: tuple[int, int, np.ndarray] | None = None
        kept = _intersect((0, 0, *self.old_size), (-self.dx, -self.dy, width - self.dx, height - self.dy))
        if kept == (0, 0, *self.old_size):
            return  # growing only: the whole mask stays on the canvas
        lost = doc.mask.copy()
        if kept is not None:
            lost[kept[1]:kept[3], kept[0]:kept[2]] = 0
        box = _nonzero_box(lost)
        if box is not None:
            self.lost = (box[0], box[1], lost[box[1]:box[3], box[0]:box[2]].copy())
            self.nbytes = int(self.lost[2].nbytes)

    @staticmethod
    def _moved(mask: np.ndarray, size: tuple[int, int], dx: int, dy: int) -> np.ndarray:
        width, height = size
        out = np.zeros((height, width), np.uint8)
        h, w = mask.shape
        over = _intersect((0, 0, width, height), (dx, dy, dx + w, dy + h))
        if over is not None:
            ol, ot, orr, ob = over
            out[ot:ob, ol:orr] = mask[ot - dy:ob - dy, ol - dx:orr - dx]
        return out

    def redo(self) -> None:
        doc = self.doc
        doc._reshape(*self.new_size, self.dx, self.dy, self._moved(doc.mask, self.new_size, self.dx, self.dy))

    def undo(self) -> None:
        doc = self.doc
        mask = self._moved(doc.mask, self.old_size, -self.dx, -self.dy)
        if self.lost is not None:
            x, y, values = self.lost
            region = mask[y:y + values.shape[0], x:x + values.shape[1]]
            np.maximum(region, values, out=region)  # zero wherever the kept part was written
        doc._reshape(*self.old_size, -self.dx, -self.dy, mask)


class _InsertLayer(DocumentCommand):
    """Child step: insert `layer` at `index` and make it active; undo takes it out again."""

    def __init__(self, doc: Document, layer: Layer, index: int, parent: QUndoCommand):
        super().__init__(doc, "Insert layer", parent)
        self.layer, self.index = layer, int(index)
        self._previous_active = doc.active_layer_index
        self.nbytes = layer.nbytes

    def redo(self) -> None:
        self.doc._insert_layer(self.index, self.layer, activate=True)

    def undo(self) -> None:
        doc = self.doc
        doc._remove_layer(doc.layer_index(self.layer))
        if 0 <= self._previous_active < len(doc.layers):
            doc.set_active_layer(self._previous_active)


class _WriteLayer(DocumentCommand):
    """Child step: give `layer` the box `new_box` and write `after` into it; undo writes `before`
    back and restores `old_box`. Both are (x, y, pixels) in canvas coordinates, or None."""

    def __init__(self, doc: Document, layer: Layer, old_box: Box, new_box: Box,
                 before: tuple[int, int, np.ndarray] | None, after: tuple[int, int, np.ndarray] | None,
                 parent: QUndoCommand):
        super().__init__(doc, "Write layer", parent)
        self.layer, self.old_box, self.new_box = layer, old_box, new_box
        self.before, self.after = before, after
        self.nbytes = sum(int(part[2].nbytes) for part in (before, after) if part is not None)

    def redo(self) -> None:
        self.doc._set_layer_geometry(self.layer, self.new_box)
        if self.after is not None:
            self.doc._write_layer(self.layer, *self.after)

    def undo(self) -> None:
        if self.before is not None:
            self.doc._write_layer(self.layer, *self.before)
        self.doc._set_layer_geometry(self.layer, self.old_box)


def _blend_masked(new: np.ndarray, old: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`new` through `mask` (0..255) over `old`, in premultiplied alpha: exactly `old` where the
    mask is 0 and exactly `new` where it is 255, so nothing outside the mask moves by a bit."""
    m = mask.astype(np.float32)[..., None] / 255.0
    na, oa = new[..., 3:4].astype(np.float32) / 255.0, old[..., 3:4].astype(np.float32) / 255.0
    alpha = na * m + oa * (1.0 - m)
    rgb = new[..., :3] * (na * m) + old[..., :3] * (oa * (1.0 - m))
    rgb = rgb / np.where(alpha > 0, alpha, 1.0)
    out = np.empty_like(new)
    out[..., :3] = np.clip(np.rint(rgb), 0, 255)
    out[..., 3:4] = np.clip(np.rint(alpha * 255.0), 0, 255)
    out = np.where(mask[..., None] == 0, old, out)
    return np.where(mask[..., None] == 255, new, out)


class ApplyResult(DocumentCommand):
    """Put a generated image on the document: into a layer, or as a new layer. One undo step,
    built from child commands: a canvas resize when the image reaches past the canvas, then the
    layer write or the layer insertion.

    `box` is where the image goes: (left, top), or a (left, top, right, bottom) region (QRect
    too) that the image is resized to if its size differs; None is (0, 0). It may reach past the
    canvas (an outpaint result, or a selection past the edge): then the canvas grows to hold it,
    everything shifting right/down when it reaches past the left/top, and undo shrinks it back.

    Into a layer (`layer`, default the active one), the image is composited over the layer's
    pixels (an opaque image replaces them), or, with a `mask` ("L", the box's size), blended
    through it, so the layer keeps its own pixels exactly where the mask is 0. The layer grows if
    the image reaches past it. As a new layer, a mask becomes the layer's alpha. Only the
    rectangle that actually changed is kept, before and after. `entry` (a history entry) is
    marked applied in `doc.history` while the command is done.
    """

    def __init__(self, doc: Document, image: Image.Image, box: Sequence[int] | QRect | None = None,
                 as_new_layer: bool = False, name: str | None = None, layer: Layer | int | None = None,
                 mask: Image.Image | None = None, entry: object = None):
        super().__init__(doc, "Apply as new layer" if as_new_layer else "Apply result")
        self.entry = entry
        self._steps: list[DocumentCommand] = []  # the children, for nbytes
        pixels = pil_to_rgba(image)
        if isinstance(box, QRect):
            box = qrect_box(box)
        if box is None:
            box = (0, 0)
        box = tuple(int(v) for v in box)
        if len(box) == 4:
            w, h = box[2] - box[0], box[3] - box[1]
            if w <= 0 or h <= 0:
                raise ValueError(f"Empty region {box} to apply into.")
            if (w, h) != (image.width, image.height):
                pixels = pil_to_rgba(image.convert("RGBA").resize((w, h), Image.Resampling.LANCZOS))
        elif len(box) != 2:
            raise ValueError(f"box must be (left, top) or (left, top, right, bottom), got {box}.")
        h, w = pixels.shape[:2]
        mask_values: np.ndarray | None = None
        if mask is not None:
            if mask.size != (w, h):
                mask = mask.resize((w, h), Image.Resampling.BILINEAR)
            mask_values = pil_to_mask(mask)
        target = (box[0], box[1], box[0] + w, box[1] + h)

        # Grow the canvas first when the image reaches past it.
        grown = _union(doc.box, target)
        dx, dy = -grown[0], -grown[1]
        self.resize: ResizeCanvas | None = None
        if grown != doc.box:
            self.resize = ResizeCanvas(doc, grown[2] - grown[0], grown[3] - grown[1], (dx, dy), parent=self)
            self._steps.append(self.resize)
            self.setText(self.text() + " (grow canvas)")
        target = (target[0] + dx, target[1] + dy, target[2] + dx, target[3] + dy)
        self.target = target
        self.as_new_layer = bool(as_new_layer)

        if self.as_new_layer:
            if mask_values is not None:
                pixels = pixels.copy()
                pixels[..., 3] = (pixels[..., 3].astype(np.uint16) * mask_values // 255).astype(np.uint8)
            self.layer = Layer(name or "Result", pixels, target[0], target[1])
            self._steps.append(_InsertLayer(doc, self.layer, doc.active_layer_index + 1 if doc.layers else 0,
                                            parent=self))
        else:
            if layer is None:
                layer = doc.active_layer
                if layer is None:
                    raise ValueError("There is no layer to apply into.")
            self.layer = doc._layer(layer)
            self._write_child(doc, pixels, mask_values, target, dx, dy)
        self.nbytes = sum(step.nbytes for step in self._steps)

    def _write_child(self, doc: Document, pixels: np.ndarray, mask: np.ndarray | None, target: Box,
                     dx: int, dy: int) -> None:
        h, w = pixels.shape[:2]
        # Layer geometry in post-resize coordinates, before and after.
        lx, ly = self.layer.x + dx, self.layer.y + dy
        old_box: Box = (lx, ly, lx + self.layer.width, ly + self.layer.height)
        new_box: Box = _union(old_box, target)
        existing = np.zeros((h, w, 4), np.uint8)
        over = _intersect(old_box, target)
        if over is not None:
            ol, ot, orr, ob = over
            existing[ot - target[1]:ob - target[1], ol - target[0]:orr - target[0]] = \
                self.layer.pixels[ot - ly:ob - ly, ol - lx:orr - lx]
        result = _over(pixels, existing) if mask is None else _blend_masked(pixels, existing, mask)
        if new_box != old_box:
            changed: Box | None = (0, 0, w, h)  # the layer grows: keep all of it
        else:
            changed = _diff_box(existing, result)
        before = after = None
        if changed is not None:
            cl, ct, cr, cb = changed
            after = (target[0] + cl, target[1] + ct, result[ct:cb, cl:cr].copy())
            cbox = (target[0] + cl, target[1] + ct, target[0] + cr, target[1] + cb)
            kept = _intersect(cbox, old_box)
            if kept is not None:
                kl, kt, kr, kb = kept
                before = (kl, kt, existing[kt - target[1]:kb - target[1], kl - target[0]:kr - target[0]].copy())
        self._steps.append(_WriteLayer(doc, self.layer, old_box, new_box, before, after, parent=self))

    def redo(self) -> None:
        super().redo()  # the children, in order
        history = getattr(self.doc, "history", None)
        if self.entry is not None and history is not None:
            history._applied_push(self.entry)

    def undo(self) -> None:
        history = getattr(self.doc, "history", None)
        if self.entry is not None and history is not None:
            history._applied_pop(self.entry)
        super().undo()  # the children, in reverse


class SetLayerVisible(DocumentCommand):
    def __init__(self, doc: Document, layer: Layer | int, visible: bool):
        super().__init__(doc, "")
        self.layer = doc._layer(layer)
        self.visible = bool(visible)
        self.setText(f"{'Show' if visible else 'Hide'} layer “{self.layer.name}”")

    def _set(self, visible: bool) -> None:
        self.layer.visible = visible
        self.doc._layer_touched(self.layer)

    def redo(self) -> None:
        self._set(self.visible)

    def undo(self) -> None:
        self._set(not self.visible)


class SetLayerOpacity(DocumentCommand):
    """Layer opacity; consecutive changes to the same layer merge into one undo step."""

    def __init__(self, doc: Document, layer: Layer | int, opacity: float, merge: bool = True):
        super().__init__(doc, "")
        self.layer = doc._layer(layer)
        self.setText(f"Layer opacity “{self.layer.name}”")
        self.old = self.layer.opacity
        self.new = min(1.0, max(0.0, float(opacity)))
        self.merge = bool(merge)

    def id(self) -> int:  # noqa: A003 - Qt's name
        return _ID_OPACITY

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, SetLayerOpacity) or other.layer is not self.layer or not other.merge:
            return False
        self.new = other.new
        self.setObsolete(self.new == self.old)  # dragged back to where it started: no step at all
        return True

    def _set(self, opacity: float) -> None:
        self.layer.opacity = opacity
        self.doc._layer_touched(self.layer)

    def redo(self) -> None:
        self._set(self.new)

    def undo(self) -> None:
        self._set(self.old)


class MoveLayer(DocumentCommand):
    """Move a layer to `to_index` (0 is the bottom)."""

    def __init__(self, doc: Document, layer: Layer | int, to_index: int):
        super().__init__(doc, "")
        self.layer = doc._layer(layer)
        self.setText(f"Move layer “{self.layer.name}”")
        self.from_index = doc.layer_index(self.layer)
        self.to_index = int(to_index)

    def redo(self) -> None:
        self.doc._move_layer(self.from_index, self.to_index)

    def undo(self) -> None:
        self.doc._move_layer(self.to_index, self.from_index)


class RemoveLayer(DocumentCommand):
    def __init__(self, doc: Document, layer: Layer | int):
        super().__init__(doc, "")
        self.layer = doc._layer(layer)
        self.setText(f"Remove layer “{self.layer.name}”")
        self.index = doc.layer_index(self.layer)
        self.was_active = doc.active_layer_index == self.index
        self.nbytes = self.layer.nbytes

    def redo(self) -> None:
        self.doc._remove_layer(self.index)

    def undo(self) -> None:
        self.doc._insert_layer(self.index, self.layer, activate=self.was_active)


class RenameLayer(DocumentCommand):
    def __init__(self, doc: Document, layer: Layer | int, name: str):
        super().__init__(doc, "")
        self.layer = doc._layer(layer)
        self.setText(f"Rename layer “{self.layer.name}”")
        self.old = self.layer.name
        self.new = str(name)

    def _set(self, name: str) -> None:
        self.layer.name = name
        self.doc.layers_changed.emit()

    def redo(self) -> None:
        self._set(self.new)

    def undo(self) -> None:
        self._set(self.old)


__all__ = [
    "Document", "Layer", "DocumentCommand", "MaskEditCommand", "MaskStrokeCommand", "SetMask", "ClearMask",
    "InvertMask", "GrowMask", "FeatherMask", "SetSelection", "ResizeCanvas", "ApplyResult", "SetLayerVisible",
    "SetLayerOpacity", "MoveLayer", "RemoveLayer", "RenameLayer", "pil_to_rgba", "rgba_to_pil", "pil_to_mask",
    "array_to_qimage", "to_qrect", "qrect_box",
]
