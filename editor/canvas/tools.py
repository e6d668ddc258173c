"""Canvas tools and the observable tool state (current tool, brush size, hardness).

A tool turns pointer events, already mapped to image coordinates by the view, into Document
method calls (each of which ends up as one undo command) or into view state (pan). Tools hold no
pixels and know nothing about generation.

`ToolState` is the model a tool-options widget and the settings bind to: every property has a
changed signal emitted only on a real change, so two-way binding never loops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QPointF, QRect, Qt, Signal

if TYPE_CHECKING:  # pragma: no cover
    from .view import CanvasView

TOOLS = ("brush", "eraser", "pan", "select")
PAINT_TOOLS = ("brush", "eraser")
MIN_BRUSH_SIZE = 1
MAX_BRUSH_SIZE = 1000
# `[` / `]` change the size by this factor (about 10 % a step, as Krita), and always by >= 1 px.
SIZE_STEP = 1.1
# A press and release closer than this (screen px) is a click, not a drag (select tool).
CLICK_SLOP = 3.0


def bigger_size(size: int) -> int:
    """The next brush size up: ~10 % larger, at least +1 px, at most MAX_BRUSH_SIZE."""
    size = int(size)
    return min(MAX_BRUSH_SIZE, max(size + 1, int(round(size * SIZE_STEP))))


def smaller_size(size: int) -> int:
    """The next brush size down: ~10 % smaller, at least -1 px, at least MIN_BRUSH_SIZE."""
    size = int(size)
    return max(MIN_BRUSH_SIZE, min(size - 1, int(round(size / SIZE_STEP))))


class ToolState(QObject):
    """Current tool, brush size (diameter in image px) and hardness (0 soft .. 1 hard)."""

    tool_changed = Signal(str)
    brush_size_changed = Signal(int)
    hardness_changed = Signal(float)

    def __init__(self, tool: str = "brush", brush_size: int = 40, hardness: float = 0.8,
                 parent: QObject | None = None):
        super().__init__(parent)
        self._tool = "brush"
        self._last_paint = "brush"
        self._brush_size = 40
        self._hardness = 0.8
        self.set_tool(tool)
        self.set_brush_size(brush_size)
        self.set_hardness(hardness)

    # ---------------------------------------------------------------- tool

    @property
    def tool(self) -> str:
        return self._tool

    @tool.setter
    def tool(self, name: str) -> None:
        self.set_tool(name)

    def set_tool(self, name: str) -> None:
        name = str(name)
        if name not in TOOLS:
            raise ValueError(f"Unknown tool {name!r}; the tools are {', '.join(TOOLS)}.")
        if name in PAINT_TOOLS:
            self._last_paint = name
        if name != self._tool:
            self._tool = name
            self.tool_changed.emit(name)

    @property
    def painting(self) -> bool:
        """Whether the current tool paints the mask (brush or eraser)."""
        return self._tool in PAINT_TOOLS

    def swap(self) -> None:
        """X: brush <-> eraser. From another tool, switch to the paint tool not used last."""
        current = self._tool if self._tool in PAINT_TOOLS else self._last_paint
        self.set_tool("eraser" if current == "brush" else "brush")

    # ---------------------------------------------------------------- brush

    @property
    def brush_size(self) -> int:
        return self._brush_size

    @brush_size.setter
    def brush_size(self, size: int) -> None:
        self.set_brush_size(size)

    def set_brush_size(self, size: float) -> None:
        size = min(MAX_BRUSH_SIZE, max(MIN_BRUSH_SIZE, int(round(float(size)))))
        if size != self._brush_size:
            self._brush_size = size
            self.brush_size_changed.emit(size)

    def bigger(self) -> None:
        self.set_brush_size(bigger_size(self._brush_size))

    def smaller(self) -> None:
        self.set_brush_size(smaller_size(self._brush_size))

    @property
    def radius(self) -> float:
        """Brush radius in image px (what Document.stroke_to takes)."""
        return self._brush_size / 2.0

    @property
    def hardness(self) -> float:
        return self._hardness

    @hardness.setter
    def hardness(self, value: float) -> None:
        self.set_hardness(value)

    def set_hardness(self, value: float) -> None:
        value = min(1.0, max(0.0, float(value)))
        if value != self._hardness:
            self._hardness = value
            self.hardness_changed.emit(value)


# --------------------------------------------------------------------------- tools


@dataclass
class Pointer:
    """One pointer event as tools see it."""

    pos: QPointF  # widget coordinates (logical px)
    image: QPointF  # image (canvas) coordinates
    pressure: float = 1.0
    modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier
    eraser_tip: bool = False  # a stylus turned round: erase whatever the tool


class Tool:
    """Base tool: does nothing. Subclasses get press, move (only while pressed) and release."""

    name = ""
    cursor = Qt.CursorShape.ArrowCursor
    shows_brush = False  # the view draws the brush outline at the pointer

    def press(self, view: "CanvasView", p: Pointer) -> None:
        pass

    def move(self, view: "CanvasView", p: Pointer) -> None:
        pass

    def release(self, view: "CanvasView", p: Pointer) -> None:
        pass

    def finish(self, view: "CanvasView") -> None:
        """End whatever is in progress without a release event (focus lost, tool switched)."""


class PaintTool(Tool):
    """Brush (erase=False) or eraser: one Document stroke from press to release."""

    shows_brush = True
    cursor = Qt.CursorShape.BlankCursor

    def __init__(self, erase: bool):
        self.name = "eraser" if erase else "brush"
        self.erase = erase
        self._doc = None

    @property
    def stroking(self) -> bool:
        return self._doc is not None

    def press(self, view: "CanvasView", p: Pointer) -> None:
        doc = view.document
        if doc is None:
            return
        self.finish(view)
        doc.begin_stroke(self.erase or p.eraser_tip)
        self._doc = doc
        self._dab(view, p)

    def move(self, view: "CanvasView", p: Pointer) -> None:
        if self._doc is not None:
            self._dab(view, p)

    def release(self, view: "CanvasView", p: Pointer) -> None:
        if self._doc is not None:
            self._dab(view, p)
            self.finish(view)

    def finish(self, view: "CanvasView") -> None:
        doc, self._doc = self._doc, None
        if doc is not None:
            doc.end_stroke()  # commit what was painted: one undo step
            view.stroke_finished.emit()

    def _dab(self, view: "CanvasView", p: Pointer) -> None:
        state = view.tool_state
        # The document interpolates between successive points (a dab every radius/4).
        self._doc.stroke_to(p.image.x(), p.image.y(), state.radius, state.hardness, p.pressure)


class PanTool(Tool):
    name = "pan"
    cursor = Qt.CursorShape.OpenHandCursor

    def press(self, view: "CanvasView", p: Pointer) -> None:
        view.begin_pan(p.pos)

    def move(self, view: "CanvasView", p: Pointer) -> None:
        view.pan_to(p.pos)

    def release(self, view: "CanvasView", p: Pointer) -> None:
        view.pan_to(p.pos)
        view.end_pan()

    def finish(self, view: "CanvasView") -> None:
        view.end_pan()


class SelectTool(Tool):
    """Rectangle selection on the pixel grid; may reach past the image. A click deselects.

    Shift keeps it square, Alt draws it from the centre. While dragging, the rectangle is view
    state (the rubber band); the document gets one SetSelection on release.
    """

    name = "select"
    cursor = Qt.CursorShape.CrossCursor

    def __init__(self) -> None:
        self._start: Pointer | None = None
        self._dragged = False

    def press(self, view: "CanvasView", p: Pointer) -> None:
        self._start = p
        self._dragged = False

    def move(self, view: "CanvasView", p: Pointer) -> None:
        if self._start is None:
            return
        d = p.pos - self._start.pos
        if not self._dragged and math.hypot(d.x(), d.y()) < CLICK_SLOP:
            return
        self._dragged = True
        view.set_rubber_band(self.rect(self._start.image, p.image, p.modifiers))

    def release(self, view: "CanvasView", p: Pointer) -> None:
        if self._start is None:
            return
        self.move(view, p)
        start, self._start = self._start, None
        view.set_rubber_band(None)
        doc = view.document
        if doc is None:
            return
        if not self._dragged:
            doc.set_selection(None)
            return
        rect = self.rect(start.image, p.image, p.modifiers)
        doc.set_selection(rect if not rect.isEmpty() else None)

    def finish(self, view: "CanvasView") -> None:
        self._start = None
        view.set_rubber_band(None)

    @staticmethod
    def rect(a: QPointF, b: QPointF, modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> QRect:
        """Pixel-grid rectangle spanned by a drag from `a` to `b` (image coordinates)."""
        ax, ay, bx, by = a.x(), a.y(), b.x(), b.y()
        dx, dy = bx - ax, by - ay
        if modifiers & Qt.KeyboardModifier.ShiftModifier:
            side = max(abs(dx), abs(dy))
            dx = math.copysign(side, dx)
            dy = math.copysign(side, dy)
        if modifiers & Qt.KeyboardModifier.AltModifier:
            x0, y0, x1, y1 = ax - dx, ay - dy, ax + dx, ay + dy
        else:
            x0, y0, x1, y1 = ax, ay, ax + dx, ay + dy
        left, right = sorted((round(x0), round(x1)))
        top, bottom = sorted((round(y0), round(y1)))
        return QRect(int(left), int(top), int(right - left), int(bottom - top))


def make_tools() -> dict[str, Tool]:
    return {"brush": PaintTool(False), "eraser": PaintTool(True), "pan": PanTool(), "select": SelectTool()}


__all__ = ["ToolState", "Tool", "PaintTool", "PanTool", "SelectTool", "Pointer", "TOOLS", "PAINT_TOOLS",
           "MIN_BRUSH_SIZE", "MAX_BRUSH_SIZE", "bigger_size", "smaller_size", "make_tools"]
