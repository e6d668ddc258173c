"""CanvasView: the widget that shows a Document and lets the designer paint, select, zoom and pan.

Drawing, back to front: dark surround, checkerboard under the image, the composite, the mask as a
translucent colour overlay, a result preview, the selection (marching ants, also past the image
edge), and the brush outline at the pointer.

Speed at 4096 x 4096: the composite and the tinted mask are cached as premultiplied QImages,
refreshed only in the rectangles the document reports as changed, lazily at the next paint (so a
burst of changes costs one render). Each cache keeps a pyramid of halvings, built on demand and
updated by rectangle, so a zoomed-out view samples a level at most twice its screen size with
bilinear filtering instead of sampling 16 M pixels; at zoom >= 1 the pixels are shown
nearest-neighbour, as painters expect. Every paint draws only the exposed part of the view.

Coordinates: `zoom` is device pixels per image pixel, so 100 % is pixel-exact on a high-DPI
screen too (as Photoshop and Krita do); widget coordinates are logical pixels, so the scale
between widget and image is zoom / devicePixelRatio.

The view changes the document only through its methods (one undo command each); zoom, pan, mask
visibility, the preview and the rubber band are view state and never touch the undo stack.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QBrush,
    QColor,
    QFont,
    QIcon,
    QImage,
    QKeySequence,
    QMouseEvent,
    QNativeGestureEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPointingDevice,
    QRegion,
    QTabletEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from inference.assets import icons_dir

from ..document import Document, array_to_qimage, to_qrect
from .tools import PaintTool, Pointer, Tool, ToolState, make_tools

ZOOM_MIN = 0.02
ZOOM_MAX = 32.0
# Zoom in/out (keyboard) steps through these, as Photoshop does.
ZOOM_LEVELS = (0.02, 0.03, 0.04, 0.05, 0.0625, 0.0833, 0.125, 0.1667, 0.25, 0.3333, 0.5, 0.6667,
               1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)
# Ctrl+wheel: one notch (120 units) zooms by 2^(1/4); trackpads send smaller deltas, zooming smoothly.
WHEEL_ZOOM_PER_NOTCH = 2 ** 0.25
WHEEL_SCROLL_PER_NOTCH = 60.0  # logical px a plain wheel notch pans
FIT_MARGIN = 16.0  # logical px left around the image by fit()
KEEP_VISIBLE = 48.0  # panning keeps at least this much of the image (logical px) in view

BACKGROUND = QColor(40, 40, 43)
IMAGE_BORDER = QColor(0, 0, 0, 140)
CHECKER_LIGHT = QColor(204, 204, 204)
CHECKER_DARK = QColor(153, 153, 153)
CHECKER_SQUARE = 8  # logical px
OUTSIDE_SELECTION_TINT = QColor(255, 255, 255, 18)  # selected area past the image edge (outpaint)
DEFAULT_MASK_COLOR = QColor("#ff3c64")
DEFAULT_MASK_OPACITY = 0.5
ANTS_INTERVAL_MS = 120

_FMT = QImage.Format.Format_ARGB32_Premultiplied
_MIN_LEVEL_SIDE = 32
_ICONS = icons_dir()


# --------------------------------------------------------------------------- image pyramid


class _Pyramid:
    """An image (level 0) and its successive halvings, built on demand, updated by rectangle."""

    def __init__(self, image: QImage):
        self.levels: list[QImage] = [image if image.format() == _FMT else image.convertToFormat(_FMT)]

    @property
    def base(self) -> QImage:
        return self.levels[0]

    def level(self, k: int) -> int:
        """Build levels up to `k` if needed; the index of the level actually available (<= k)."""
        while len(self.levels) <= k:
            prev = self.levels[-1]
            if max(prev.width(), prev.height()) <= _MIN_LEVEL_SIDE:
                break
            self.levels.append(QImage((prev.width() + 1) // 2, (prev.height() + 1) // 2, _FMT))
            self._downsample(len(self.levels) - 1, prev.rect())
        return min(k, len(self.levels) - 1)

    def changed(self, rect: QRect) -> None:
        """Level 0 changed inside `rect`: bring the built levels up to date (or drop them)."""
        if len(self.levels) == 1:
            return
        base = self.levels[0]
        if rect.width() * rect.height() * 4 >= base.width() * base.height():
            del self.levels[1:]  # cheaper to rebuild lazily, and only the levels a paint needs
            return
        for k in range(1, len(self.levels)):
            rect = self._downsample(k, rect)
            if rect.isEmpty():
                return

    def _downsample(self, k: int, rect: QRect) -> QRect:
        prev, cur = self.levels[k - 1], self.levels[k]
        rect = rect.intersected(prev.rect())
        if rect.isEmpty():
            return QRect()
        # Align to 2 x 2 blocks, so an update computes exactly what a full build would.
        left, top = rect.left() & ~1, rect.top() & ~1
        right, bottom = rect.x() + rect.width(), rect.y() + rect.height()
        right += right & 1
        bottom += bottom & 1
        src = prev.copy(QRect(left, top, right - left, bottom - top))
        pw, ph = prev.width(), prev.height()
        if right > pw or bottom > ph:  # odd size: repeat the last column / row instead of transparency
            p = QPainter(src)
            p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
            if right > pw:
                p.drawImage(QPoint(pw - left, 0), src.copy(QRect(pw - 1 - left, 0, 1, src.height())))
            if bottom > ph:
                p.drawImage(QPoint(0, ph - top), src.copy(QRect(0, ph - 1 - top, src.width(), 1)))
            p.end()
        half = src.scaled((right - left) // 2, (bottom - top) // 2, Qt.AspectRatioMode.IgnoreAspectRatio,
                          Qt.TransformationMode.SmoothTransformation)
        p = QPainter(cur)
        p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        p.drawImage(QPoint(left // 2, top // 2), half)
        p.end()
        return QRect(left // 2, top // 2, half.width(), half.height())


def _to_qimage(image: Image.Image | QImage) -> QImage:
    if isinstance(image, QImage):
        return image.convertToFormat(_FMT)
    if isinstance(image, Image.Image):
        return array_to_qimage(np.asarray(image.convert("RGBA"), np.uint8)).convertToFormat(_FMT)
    raise TypeError(f"Expected a PIL image or a QImage, got {type(image).__name__}.")


def _checker_pixmap() -> QPixmap:
    pix = QPixmap(CHECKER_SQUARE * 2, CHECKER_SQUARE * 2)
    pix.fill(CHECKER_LIGHT)
    p = QPainter(pix)
    p.fillRect(0, 0, CHECKER_SQUARE, CHECKER_SQUARE, CHECKER_DARK)
    p.fillRect(CHECKER_SQUARE, CHECKER_SQUARE, CHECKER_SQUARE, CHECKER_SQUARE, CHECKER_DARK)
    p.end()
    return pix


def _icon(name: str) -> QIcon:
    path = _ICONS / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


# --------------------------------------------------------------------------- the view


class CanvasView(QWidget):
    """Shows a Document; brush, eraser, pan and select tools; zoom and pan; overlays.

    Signals:
      zoom_changed(float): the zoom (device px per image px) changed.
      cursor_moved(object): the pointer's image coordinates (QPointF), or None off the image.
      tool_changed(str): the current tool changed (re-emitted from `tool_state`).
      stroke_finished(): a brush or eraser stroke ended (its undo command is on the stack).
      mask_visible_changed(bool): the mask overlay was shown or hidden.
    """

    zoom_changed = Signal(float)
    cursor_moved = Signal(object)
    tool_changed = Signal(str)
    stroke_finished = Signal()
    mask_visible_changed = Signal(bool)

    def __init__(self, document: Document | None = None, tool_state: ToolState | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setAttribute(Qt.WidgetAttribute.WA_TabletTracking)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(64, 64)
        self.setAutoFillBackground(False)

        self._doc: Document | None = None
        self._zoom = 1.0
        self._origin = QPointF(0.0, 0.0)  # widget position of image point (0, 0)
        self._fit_mode = True  # follow the widget size until the designer zooms or pans
        self._composite: _Pyramid | None = None
        self._mask: _Pyramid | None = None
        self._dirty_composite = QRegion()
        self._dirty_mask = QRegion()
        self._mask_color = QColor(DEFAULT_MASK_COLOR)
        self._mask_opacity = DEFAULT_MASK_OPACITY
        self._mask_visible = True
        self._preview: _Pyramid | None = None
        self._preview_box: QRect | None = None
        self._rubber_band: QRect | None = None
        self._checker = QBrush(_checker_pixmap())
        self._ants_offset = 0
        self._ants = QTimer(self)
        self._ants.setInterval(ANTS_INTERVAL_MS)
        self._ants.timeout.connect(self._march)

        self._pointer: QPointF | None = None  # last pointer position in the widget, None outside
        self._last_cursor_report: object = None
        self._space = False
        self._pan_start: tuple[QPointF, QPointF] | None = None  # (pointer, origin) when the pan began
        self._drag: str | None = None  # "pan" or "tool" while a button is held
        self._drag_button = Qt.MouseButton.NoButton
        self._tablet_stroke = False

        self.tool_state = tool_state or ToolState(parent=self)
        self._tools: dict[str, Tool] = make_tools()
        self.tool_state.tool_changed.connect(self._on_tool_changed)
        self.tool_state.brush_size_changed.connect(lambda _size: self._update_brush_outline())
        self.canvas_actions: dict[str, QAction] = self._make_actions()
        self.addActions(list(self.canvas_actions.values()))
        self._update_cursor()

        if document is not None:
            self.set_document(document)

    # ================================================================ document

    @property
    def document(self) -> Document | None:
        return self._doc

    def set_document(self, document: Document | None) -> None:
        """Show `document` (None: nothing); the view fits it once it has a size."""
        if document is self._doc:
            return
        self._finish_tool()
        old = self._doc
        if old is not None:
            for signal, slot in self._doc_connections(old):
                try:
                    signal.disconnect(slot)
                except (RuntimeError, TypeError):
                    pass
        self._doc = document
        self._preview = None
        self._preview_box = None
        self._rubber_band = None
        if document is not None:
            for signal, slot in self._doc_connections(document):
                signal.connect(slot)
        self._rebuild_caches()
        self._fit_mode = True
        self.fit()
        self._update_ants_timer()
        self._update_cursor()
        self.update()

    def _doc_connections(self, doc: Document):
        return ((doc.changed, self._on_changed), (doc.mask_changed, self._on_mask_changed),
                (doc.size_changed, self._on_size_changed), (doc.selection_changed, self._on_selection_changed))

    def _rebuild_caches(self) -> None:
        doc = self._doc
        if doc is None:
            self._composite = self._mask = None
            return
        size = QSize(doc.width, doc.height)
        for name in ("_composite", "_mask"):
            image = QImage(size, _FMT)
            image.fill(0)
            setattr(self, name, _Pyramid(image))
        self._dirty_composite = QRegion(doc.rect)
        self._dirty_mask = QRegion(doc.rect)

    def _on_changed(self, rect: QRect) -> None:
        self._dirty_composite += rect
        self._update_image_rect(QRectF(rect))

    def _on_mask_changed(self, rect: QRect) -> None:
        self._dirty_mask += rect
        if self._mask_visible:
            self._update_image_rect(QRectF(rect))

    def _on_size_changed(self) -> None:
        self._rebuild_caches()
        if self._fit_mode:
            self.fit()
        self.update()

    def _on_selection_changed(self) -> None:
        self._update_ants_timer()
        self.update()  # old and new outlines; rare, so the whole view

    def _flush(self) -> None:
        """Bring the caches up to date where the document changed (once per paint, not per signal)."""
        doc = self._doc
        if doc is None:
            return
        if not self._dirty_composite.isEmpty():
            self._refresh(self._composite, self._dirty_composite, doc.render_qimage)
            self._dirty_composite = QRegion()
        if not self._dirty_mask.isEmpty() and self._mask_visible:
            color = QColor(self._mask_color)
            color.setAlpha(255)  # opacity is applied when drawing, so changing it re-renders nothing
            self._refresh(self._mask, self._dirty_mask, lambda r: doc.mask_qimage(r, color))
            self._dirty_mask = QRegion()

    def _refresh(self, pyramid: _Pyramid, region: QRegion, render) -> None:
        bounds = self._doc.rect
        rects = [r.intersected(bounds) for r in region]
        if len(rects) > 16:
            rects = [region.boundingRect().intersected(bounds)]
        painter = QPainter(pyramid.base)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        for rect in rects:
            if not rect.isEmpty():
                painter.drawImage(rect.topLeft(), render(rect))
        painter.end()
        for rect in rects:
            if not rect.isEmpty():
                pyramid.changed(rect)

    # ================================================================ coordinates

    @property
    def zoom(self) -> float:
        """Device pixels per image pixel (1.0 = 100 %)."""
        return self._zoom

    def _scale(self) -> float:
        """Logical widget pixels per image pixel."""
        return self._zoom / self.devicePixelRatioF()

    def widget_to_image(self, point: QPointF | QPoint) -> QPointF:
        s = self._scale()
        return QPointF((point.x() - self._origin.x()) / s, (point.y() - self._origin.y()) / s)

    def image_to_widget(self, point: QPointF | QPoint) -> QPointF:
        s = self._scale()
        return QPointF(self._origin.x() + point.x() * s, self._origin.y() + point.y() * s)

    def image_rect_to_widget(self, rect: QRectF | QRect) -> QRectF:
        rect = QRectF(rect)
        s = self._scale()
        return QRectF(self._origin.x() + rect.x() * s, self._origin.y() + rect.y() * s,
                      rect.width() * s, rect.height() * s)

    def visible_image_rect(self) -> QRectF:
        """The part of image space the view shows (may reach past the image)."""
        s = self._scale()
        return QRectF(-self._origin.x() / s, -self._origin.y() / s, self.width() / s, self.height() / s)

    def _update_image_rect(self, rect: QRectF) -> None:
        r = self.image_rect_to_widget(rect).toAlignedRect().adjusted(-2, -2, 2, 2)
        self.update(r.intersected(self.rect()))

    # ================================================================ zoom and pan

    def set_zoom(self, zoom: float, anchor: QPointF | QPoint | None = None) -> None:
        """Zoom to `zoom`, keeping the image point under `anchor` (widget coords; default the centre) fixed."""
        zoom = min(ZOOM_MAX, max(ZOOM_MIN, float(zoom)))
        anchor = QPointF(self.rect().center()) if anchor is None else QPointF(anchor)
        fixed = self.widget_to_image(anchor)
        changed = zoom != self._zoom
        self._zoom = zoom
        s = self._scale()
        self._origin = QPointF(anchor.x() - fixed.x() * s, anchor.y() - fixed.y() * s)
        self._fit_mode = False
        self.update()
        self._report_cursor()
        if changed:
            self.zoom_changed.emit(zoom)

    def zoom_by(self, factor: float, anchor: QPointF | QPoint | None = None) -> None:
        self.set_zoom(self._zoom * factor, anchor)

    def zoom_in(self, anchor: QPointF | QPoint | None = None) -> None:
        """Next zoom level up (100 %, 150 %, 200 %, 300 % ...)."""
        self.set_zoom(next((z for z in ZOOM_LEVELS if z > self._zoom * 1.001), ZOOM_MAX), anchor)

    def zoom_out(self, anchor: QPointF | QPoint | None = None) -> None:
        self.set_zoom(next((z for z in reversed(ZOOM_LEVELS) if z < self._zoom / 1.001), ZOOM_MIN), anchor)

    def actual_size(self) -> None:
        """100 %: one image pixel per device pixel, pixel-aligned, around the view centre."""
        self.set_zoom(1.0)
        dpr = self.devicePixelRatioF()
        self._origin = QPointF(round(self._origin.x() * dpr) / dpr, round(self._origin.y() * dpr) / dpr)
        self.update()

    def fit(self) -> None:
        """Zoom so the whole image shows, centred, with a small margin; follows resizes until changed."""
        doc = self._doc
        if doc is None or self.width() <= 0 or self.height() <= 0:
            return
        avail_w = max(1.0, self.width() - 2 * FIT_MARGIN)
        avail_h = max(1.0, self.height() - 2 * FIT_MARGIN)
        scale = min(avail_w / doc.width, avail_h / doc.height)
        zoom = min(ZOOM_MAX, max(ZOOM_MIN, scale * self.devicePixelRatioF()))
        changed = zoom != self._zoom
        self._zoom = zoom
        s = self._scale()
        self._origin = QPointF((self.width() - doc.width * s) / 2, (self.height() - doc.height * s) / 2)
        self._fit_mode = True
        self.update()
        self._report_cursor()
        if changed:
            self.zoom_changed.emit(zoom)

    def center_on(self, point: QPointF | QPoint) -> None:
        """Pan so the image point `point` is at the centre of the view."""
        s = self._scale()
        self._origin = QPointF(self.width() / 2 - point.x() * s, self.height() / 2 - point.y() * s)
        self._fit_mode = False
        self.update()
        self._report_cursor()

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the image by (dx, dy) logical px, keeping a little of it in view."""
        self._origin = self._clamped(QPointF(self._origin.x() + dx, self._origin.y() + dy))
        self._fit_mode = False
        self.update()
        self._report_cursor()

    def _clamped(self, origin: QPointF) -> QPointF:
        doc = self._doc
        if doc is None:
            return origin
        s = self._scale()
        w, h = doc.width * s, doc.height * s
        keep_x, keep_y = min(KEEP_VISIBLE, w), min(KEEP_VISIBLE, h)
        x = min(self.width() - keep_x, max(keep_x - w, origin.x()))
        y = min(self.height() - keep_y, max(keep_y - h, origin.y()))
        return QPointF(x, y)

    def begin_pan(self, pos: QPointF) -> None:
        self._pan_start = (QPointF(pos), QPointF(self._origin))
        self._update_cursor()

    def pan_to(self, pos: QPointF) -> None:
        if self._pan_start is None:
            return
        start, origin = self._pan_start
        self._origin = self._clamped(origin + (QPointF(pos) - start))
        self._fit_mode = False
        self.update()
        self._report_cursor()

    def end_pan(self) -> None:
        self._pan_start = None
        self._update_cursor()

    # ================================================================ overlays

    @property
    def mask_color(self) -> QColor:
        return QColor(self._mask_color)

    def set_mask_color(self, color: QColor | str) -> None:
        color = QColor(color)
        if not color.isValid() or color.rgb() == self._mask_color.rgb():
            return
        self._mask_color = color
        if self._doc is not None:
            self._dirty_mask = QRegion(self._doc.rect)
        self.update()

    @property
    def mask_opacity(self) -> float:
        return self._mask_opacity

    def set_mask_opacity(self, opacity: float) -> None:
        opacity = min(1.0, max(0.0, float(opacity)))
        if opacity != self._mask_opacity:
            self._mask_opacity = opacity
            self.update()

    @property
    def mask_visible(self) -> bool:
        return self._mask_visible

    def set_mask_visible(self, visible: bool) -> None:
        visible = bool(visible)
        if visible == self._mask_visible:
            return
        self._mask_visible = visible
        action = self.canvas_actions.get("toggle_mask")
        if action is not None and action.isChecked() != visible:
            action.setChecked(visible)
        self.update()
        self.mask_visible_changed.emit(visible)

    def toggle_mask(self) -> None:
        self.set_mask_visible(not self._mask_visible)

    def set_preview(self, image: Image.Image | QImage | None,
                    box: Sequence[int] | QRect | None = None) -> None:
        """Show `image` over the canvas, scaled into `box` (left, top, right, bottom); None box: the
        whole canvas. None image removes the preview. View state only: the document is untouched."""
        if image is None:
            self._preview = None
            self._preview_box = None
        else:
            qimage = _to_qimage(image)
            self._preview = _Pyramid(qimage) if not qimage.isNull() else None
            self._preview_box = to_qrect(box)
        self.update()

    @property
    def has_preview(self) -> bool:
        return self._preview is not None

    def set_rubber_band(self, rect: QRect | None) -> None:
        """The selection being dragged (image coords), drawn like the selection; None hides it."""
        self._rubber_band = None if rect is None else QRect(rect)
        self._update_ants_timer()
        self.update()

    def _selection_rect(self) -> QRect | None:
        if self._rubber_band is not None:
            return self._rubber_band
        return self._doc.selection if self._doc is not None else None

    def _update_ants_timer(self) -> None:
        if self._selection_rect() is not None and self.isVisible():
            if not self._ants.isActive():
                self._ants.start()
        else:
            self._ants.stop()

    def _march(self) -> None:
        rect = self._selection_rect()
        if rect is None:
            self._ants.stop()
            return
        self._ants_offset = (self._ants_offset + 1) % 8
        r = self.image_rect_to_widget(rect).toAlignedRect()
        # Only the outline: four thin strips.
        strips = QRegion(r.adjusted(-2, -2, 2, 2)) - QRegion(r.adjusted(2, 2, -2, -2))
        self.update(strips)

    # ================================================================ painting

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        self._flush()
        painter = QPainter(self)
        for rect in event.region():
            painter.setClipRect(rect)
            self._paint_rect(painter, QRectF(rect))
        painter.end()

    def _paint_rect(self, painter: QPainter, exposed: QRectF) -> None:
        painter.fillRect(exposed, BACKGROUND)
        doc = self._doc
        if doc is None:
            return
        image_rect = self.image_rect_to_widget(doc.rect)
        visible = image_rect.intersected(exposed)
        if not visible.isEmpty():
            painter.setBrushOrigin(image_rect.topLeft())
            painter.fillRect(visible, self._checker)
            painter.setBrushOrigin(QPointF())
            self._draw_pyramid(painter, self._composite, QRectF(doc.rect), exposed)
            if self._mask_visible and self._mask_opacity > 0:
                self._draw_pyramid(painter, self._mask, QRectF(doc.rect), exposed, self._mask_opacity)

        selection = self._selection_rect()
        if selection is not None:
            outside = QRegion(self.image_rect_to_widget(selection).toAlignedRect()) - QRegion(
                image_rect.toAlignedRect())
            for r in outside:
                painter.fillRect(r, OUTSIDE_SELECTION_TINT)

        if self._preview is not None:
            box = self._preview_box if self._preview_box is not None else doc.rect
            self._draw_pyramid(painter, self._preview, QRectF(box), exposed)

        # A hairline round the image separates it from the surround, whatever its edge colours.
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(QPen(IMAGE_BORDER, 0))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(image_rect.adjusted(-1, -1, 0, 0))

        if selection is not None:
            self._draw_selection(painter, selection)
        if self._rubber_band is not None:
            self._draw_size_label(painter, self._rubber_band)
        self._draw_brush_outline(painter)

    def _draw_pyramid(self, painter: QPainter, pyramid: _Pyramid | None, box: QRectF, exposed: QRectF,
                      opacity: float = 1.0) -> None:
        """Draw `pyramid` scaled into `box` (image coords), only where it meets `exposed`."""
        if pyramid is None or box.isEmpty():
            return
        base = pyramid.base
        if base.isNull():
            return
        device_scale = self._zoom * box.width() / base.width()  # device px per base px
        k = 0
        if device_scale < 1.0:
            k = pyramid.level(int(math.floor(math.log2(1.0 / device_scale) + 1e-9)))
        image = pyramid.levels[k]
        s = self._scale()
        sx = s * box.width() / image.width()  # logical px per level px
        sy = s * box.height() / image.height()
        top_left = self.image_to_widget(box.topLeft())
        x0 = max(0, math.floor((exposed.left() - top_left.x()) / sx) - 1)
        y0 = max(0, math.floor((exposed.top() - top_left.y()) / sy) - 1)
        x1 = min(image.width(), math.ceil((exposed.right() - top_left.x()) / sx) + 1)
        y1 = min(image.height(), math.ceil((exposed.bottom() - top_left.y()) / sy) + 1)
        if x1 <= x0 or y1 <= y0:
            return
        target = QRectF(top_left.x() + x0 * sx, top_left.y() + y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
        # Nearest-neighbour from 100 % up (crisp pixels); bilinear from a level <= 2x the screen size below.
        smooth = sx * self.devicePixelRatioF() < 0.999
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        painter.setOpacity(opacity)
        painter.drawImage(target, image, QRectF(x0, y0, x1 - x0, y1 - y0))
        painter.setOpacity(1.0)

    def _draw_selection(self, painter: QPainter, rect: QRect) -> None:
        r = self.image_rect_to_widget(rect)
        # Snap to the pixel grid so the 1 px lines are crisp.
        r = QRectF(round(r.left()) + 0.5, round(r.top()) + 0.5,
                   max(0, round(r.right()) - round(r.left()) - 1), max(0, round(r.bottom()) - round(r.top()) - 1))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(255, 255, 255, 230), 0))
        painter.drawRect(r)
        ants = QPen(QColor(0, 0, 0, 230), 0)
        ants.setDashPattern([4, 4])
        ants.setDashOffset(-self._ants_offset)
        painter.setPen(ants)
        painter.drawRect(r)

    def _draw_size_label(self, painter: QPainter, rect: QRect) -> None:
        text = f"{rect.width()} × {rect.height()}"
        font = QFont(self.font())
        font.setPointSizeF(max(8.0, font.pointSizeF() * 0.9))
        painter.setFont(font)
        metrics = painter.fontMetrics()
        w, h = metrics.horizontalAdvance(text) + 12, metrics.height() + 6
        corner = self.image_rect_to_widget(rect).bottomRight()
        x = min(self.width() - w - 4, corner.x() + 8)
        y = min(self.height() - h - 4, corner.y() + 8)
        label = QRectF(max(4, x), max(4, y), w, h)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(20, 20, 22, 210))
        painter.drawRoundedRect(label, 4, 4)
        painter.setPen(QColor(235, 235, 235))
        painter.drawText(label, Qt.AlignmentFlag.AlignCenter, text)

    # ---------------------------------------------------------------- brush outline
    #
    # The outline is painted here at the pointer, with the system cursor hidden, rather than set
    # as a QCursor pixmap: cursor pixmaps are capped at small sizes on several platforms (32-64 px
    # on Windows and some X servers) and would need rebuilding on every zoom change, while a brush
    # of a few hundred image px at 400 % spans thousands of screen px. Painting works at any size,
    # is anti-aliased, and costs only the repaint of the two small outline strips per move.

    def _brush_screen_radius(self) -> float:
        return self.tool_state.radius * self._scale()

    def _shows_brush(self) -> bool:
        return (self._pointer is not None and self._doc is not None and self.tool_state.painting
                and not self._space and self._drag != "pan")

    def _brush_outline_rect(self, pos: QPointF | None) -> QRect:
        if pos is None:
            return QRect()
        r = max(self._brush_screen_radius(), 6.0) + 3
        return QRectF(pos.x() - r, pos.y() - r, 2 * r, 2 * r).toAlignedRect()

    def _brush_outline_region(self, pos: QPointF | None) -> QRegion:
        """A ring around the outline (not the disc inside, so big brushes repaint little)."""
        outer = self._brush_outline_rect(pos)
        if outer.isEmpty():
            return QRegion()
        inner_half = (self._brush_screen_radius() - 3) / math.sqrt(2)
        if inner_half < 8:
            return QRegion(outer)
        c = outer.center()
        i = int(inner_half)
        return QRegion(outer) - QRegion(QRect(c.x() - i, c.y() - i, 2 * i, 2 * i))

    def _update_brush_outline(self, old: QPointF | None = None) -> None:
        region = self._brush_outline_region(self._pointer) + self._brush_outline_region(old)
        if not region.isEmpty():
            self.update(region)
        elif old is None:
            self.update()

    def _draw_brush_outline(self, painter: QPainter) -> None:
        if not self._shows_brush():
            return
        pos = self._pointer
        r = self._brush_screen_radius()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        # Two tones: a dark halo under a light ring, visible on any image.
        if r >= 2.5:
            painter.setPen(QPen(QColor(0, 0, 0, 150), 2.5))
            painter.drawEllipse(pos, r, r)
            painter.setPen(QPen(QColor(255, 255, 255, 235), 1.0))
            painter.drawEllipse(pos, r, r)
        if r < 6:  # tiny brush: a small cross so the hot spot stays visible
            arm = 5.0
            for pen in (QPen(QColor(0, 0, 0, 150), 2.5), QPen(QColor(255, 255, 255, 235), 1.0)):
                painter.setPen(pen)
                painter.drawLine(QPointF(pos.x() - arm, pos.y()), QPointF(pos.x() + arm, pos.y()))
                painter.drawLine(QPointF(pos.x(), pos.y() - arm), QPointF(pos.x(), pos.y() + arm))

    # ================================================================ tools and events

    @property
    def tool(self) -> str:
        return self.tool_state.tool

    def set_tool(self, name: str) -> None:
        self.tool_state.set_tool(name)

    def _current_tool(self) -> Tool:
        return self._tools[self.tool_state.tool]

    def _on_tool_changed(self, name: str) -> None:
        self._finish_tool()
        for key in ("brush", "eraser", "pan", "select"):
            action = self.canvas_actions.get(key) if hasattr(self, "canvas_actions") else None
            if action is not None and action.isChecked() != (key == name):
                action.setChecked(key == name)
        self._update_cursor()
        self.update()
        self.tool_changed.emit(name)

    def _finish_tool(self) -> None:
        """End a drag in progress (a stroke is committed as one undo step)."""
        if self._drag == "tool":
            for tool in self._tools.values():
                tool.finish(self)
        if self._drag == "pan":
            self.end_pan()
        self._drag = None
        self._drag_button = Qt.MouseButton.NoButton
        self._tablet_stroke = False

    def _update_cursor(self) -> None:
        if self._drag == "pan":
            shape = Qt.CursorShape.ClosedHandCursor
        elif self._space:
            shape = Qt.CursorShape.OpenHandCursor
        elif self._doc is None:
            shape = Qt.CursorShape.ArrowCursor  # no outline is drawn without a document
        else:
            shape = self._current_tool().cursor
        if self.cursor().shape() != shape:
            self.setCursor(shape)

    def _pointer_event(self, pos: QPointF, modifiers, pressure: float = 1.0, eraser_tip: bool = False) -> Pointer:
        return Pointer(QPointF(pos), self.widget_to_image(pos), pressure, modifiers, eraser_tip)

    def _move_pointer(self, pos: QPointF | None) -> None:
        old = self._pointer
        self._pointer = None if pos is None else QPointF(pos)
        if self.tool_state.painting:
            self._update_brush_outline(old)
        self._report_cursor()

    def _report_cursor(self) -> None:
        point = None
        if self._pointer is not None and self._doc is not None:
            p = self.widget_to_image(self._pointer)
            if 0 <= p.x() < self._doc.width and 0 <= p.y() < self._doc.height:
                point = p
        last = self._last_cursor_report
        if point is None and last is None:
            return
        if point is not None and last is not None and point == last:
            return
        self._last_cursor_report = point
        self.cursor_moved.emit(None if point is None else QPointF(point))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        pos = event.position()
        self._move_pointer(pos)
        if self._drag is not None:
            event.accept()
            return
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (
                button == Qt.MouseButton.LeftButton and (self._space or self.tool_state.tool == "pan")):
            self._drag, self._drag_button = "pan", button
            self.begin_pan(pos)
        elif button == Qt.MouseButton.LeftButton:
            self._drag, self._drag_button = "tool", button
            self._current_tool().press(self, self._pointer_event(pos, event.modifiers()))
        else:
            super().mousePressEvent(event)
            return
        self._update_cursor()
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        self._move_pointer(pos)
        if self._drag == "pan":
            self.pan_to(pos)
        elif self._drag == "tool" and not self._tablet_stroke:
            self._current_tool().move(self, self._pointer_event(pos, event.modifiers()))
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        if self._drag is None or event.button() != self._drag_button:
            super().mouseReleaseEvent(event)
            return
        drag, self._drag, self._drag_button = self._drag, None, Qt.MouseButton.NoButton
        if drag == "pan":
            self.pan_to(pos)
            self.end_pan()
        elif not self._tablet_stroke:
            self._current_tool().release(self, self._pointer_event(pos, event.modifiers()))
        self._update_cursor()
        self._move_pointer(pos)
        event.accept()

    def tabletEvent(self, event: QTabletEvent) -> None:  # noqa: N802
        """Pen strokes with pressure. Accepted events get no synthetic mouse event, so no double stroke;
        everything else (hover, side buttons, other tools) is ignored and arrives as mouse events."""
        pos = event.position()
        kind = event.type()
        tool = self._current_tool()
        eraser_tip = event.pointerType() == QPointingDevice.PointerType.Eraser
        if kind == QEvent.Type.TabletPress:
            if (event.button() == Qt.MouseButton.LeftButton and isinstance(tool, PaintTool)
                    and self._drag is None and not self._space):
                self.setFocus(Qt.FocusReason.MouseFocusReason)
                self._move_pointer(pos)
                self._drag, self._drag_button, self._tablet_stroke = "tool", Qt.MouseButton.LeftButton, True
                tool.press(self, self._pointer_event(pos, event.modifiers(), event.pressure(), eraser_tip))
                event.accept()
                return
        elif kind == QEvent.Type.TabletMove and self._tablet_stroke:
            self._move_pointer(pos)
            tool.move(self, self._pointer_event(pos, event.modifiers(), event.pressure(), eraser_tip))
            event.accept()
            return
        elif kind == QEvent.Type.TabletRelease and self._tablet_stroke:
            tool.release(self, self._pointer_event(pos, event.modifiers(), event.pressure(), eraser_tip))
            self._drag, self._drag_button, self._tablet_stroke = None, Qt.MouseButton.NoButton, False
            self._move_pointer(pos)
            event.accept()
            return
        event.ignore()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        angle = event.angleDelta()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            steps = (angle.y() or angle.x()) / 120.0
            if steps:
                self.zoom_by(WHEEL_ZOOM_PER_NOTCH ** steps, event.position())
                self._update_brush_outline()
            event.accept()
            return
        pixels = event.pixelDelta()
        if not pixels.isNull():
            dx, dy = float(pixels.x()), float(pixels.y())
        else:
            dx = angle.x() / 120.0 * WHEEL_SCROLL_PER_NOTCH
            dy = angle.y() / 120.0 * WHEEL_SCROLL_PER_NOTCH
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier and dx == 0:
            dx, dy = dy, 0.0  # Shift+wheel scrolls sideways
        if dx or dy:
            self.pan_by(dx, dy)
        event.accept()

    def event(self, event: QEvent) -> bool:  # noqa: A003
        if event.type() == QEvent.Type.NativeGesture and isinstance(event, QNativeGestureEvent):
            if event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
                self.zoom_by(1.0 + event.value(), event.position())
                self._update_brush_outline()
                return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space:
            # Space pans between strokes; pressed mid-stroke it does nothing.
            if not event.isAutoRepeat() and not self._space and self._drag != "tool":
                self._space = True
                self._update_cursor()
                self._update_brush_outline()
            event.accept()
            return
        # The actions' shortcuts normally fire first; this catches keys when the view is used
        # without an active window holding them (embedded, tests).
        pressed = QKeySequence(event.keyCombination())
        for action in self.canvas_actions.values():
            if action.isEnabled() and any(seq.matches(pressed) == QKeySequence.SequenceMatch.ExactMatch
                                          for seq in action.shortcuts()):
                action.trigger()
                event.accept()
                return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space = False
                self._update_cursor()
                self._update_brush_outline()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event) -> None:  # noqa: N802
        if self._space:  # the release may go to another widget
            self._space = False
            self._update_cursor()
        super().focusOutEvent(event)

    def enterEvent(self, event) -> None:  # noqa: N802
        self._move_pointer(event.position())
        super().enterEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802
        if self._drag is None:
            self._move_pointer(None)
        super().leaveEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        if self._fit_mode:
            self.fit()
        else:  # keep the image point at the centre of the view where it was
            old, new = event.oldSize(), event.size()
            if old.isValid():
                self._origin += QPointF((new.width() - old.width()) / 2, (new.height() - old.height()) / 2)
        super().resizeEvent(event)

    def showEvent(self, event) -> None:  # noqa: N802
        self._update_ants_timer()
        super().showEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802
        self._ants.stop()
        super().hideEvent(event)

    # ================================================================ actions

    def _make_actions(self) -> dict[str, QAction]:
        """QActions with the designer shortcuts; the main window can put them in menus and toolbars."""
        state = self.tool_state

        def make(key: str, text: str, shortcuts: Sequence, slot, icon: str | None = None,
                 checkable: bool = False, tip: str | None = None) -> QAction:
            action = QAction(text, self)
            action.setObjectName(f"canvas_{key}")
            seqs = [QKeySequence(s) for s in shortcuts]
            unique: list[QKeySequence] = []
            for seq in seqs:
                if not seq.isEmpty() and seq not in unique:
                    unique.append(seq)
            action.setShortcuts(unique)
            if icon:
                action.setIcon(_icon(icon))
            action.setCheckable(checkable)
            if tip or unique:
                shortcut = unique[0].toString(QKeySequence.SequenceFormat.NativeText) if unique else ""
                action.setToolTip(f"{tip or text.replace('&', '')}" + (f" ({shortcut})" if shortcut else ""))
            if checkable:
                action.triggered.connect(lambda checked=False: slot(checked))
            else:
                action.triggered.connect(lambda checked=False: slot())
            return action

        actions = {
            "brush": make("brush", "&Brush", ["B"], lambda _c: state.set_tool("brush"), "brush", True,
                          "Mask brush"),
            "eraser": make("eraser", "&Eraser", ["E"], lambda _c: state.set_tool("eraser"), "eraser", True,
                           "Mask eraser"),
            "select": make("select", "&Rectangle Select", ["M"], lambda _c: state.set_tool("select"), "select",
                           True, "Rectangle selection: the region to generate in"),
            "pan": make("pan", "&Pan", [], lambda _c: state.set_tool("pan"), "pan", True,
                        "Pan (or hold Space, or drag with the middle button)"),
            "swap": make("swap", "S&wap Brush and Eraser", ["X"], state.swap),
            "smaller": make("smaller", "&Smaller Brush", ["["], state.smaller),
            "bigger": make("bigger", "&Bigger Brush", ["]"], state.bigger),
            "zoom_in": make("zoom_in", "Zoom &In", [QKeySequence.StandardKey.ZoomIn, "Ctrl+=", "Ctrl++"],
                            self.zoom_in),
            "zoom_out": make("zoom_out", "Zoom &Out", [QKeySequence.StandardKey.ZoomOut, "Ctrl+-"], self.zoom_out),
            "fit": make("fit", "&Fit on Screen", ["Ctrl+0"], self.fit, "zoom-fit"),
            "actual_size": make("actual_size", "&Actual Size (100 %)", ["Ctrl+1"], self.actual_size),
            "toggle_mask": make("toggle_mask", "Show &Mask", ["H"], self.set_mask_visible, "mask", True,
                                "Show or hide the mask overlay"),
        }
        group = QActionGroup(self)
        group.setExclusive(True)
        for key in ("brush", "eraser", "select", "pan"):
            group.addAction(actions[key])
        actions[state.tool].setChecked(True)
        actions["toggle_mask"].setChecked(self._mask_visible)
        return actions


def make_actions(view: CanvasView) -> dict[str, QAction]:
    """The view's actions by name (they live as long as the view); see CanvasView.canvas_actions."""
    return dict(view.canvas_actions)


__all__ = ["CanvasView", "make_actions", "ZOOM_MIN", "ZOOM_MAX", "ZOOM_LEVELS"]
