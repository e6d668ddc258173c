"""The canvas: CanvasView (zoom, pan, overlays) and its tools (brush, eraser, pan, select)."""

from .tools import TOOLS, ToolState
from .view import ZOOM_MAX, ZOOM_MIN, CanvasView, make_actions

__all__ = ["CanvasView", "ToolState", "TOOLS", "make_actions", "ZOOM_MIN", "ZOOM_MAX"]
