"""The canvas view: painting, erasing, selecting, zooming and panning as a designer does it, offscreen."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, Qt
from PySide6.QtGui import QColor, QInputDevice, QNativeGestureEvent, QPointingDevice, QTabletEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from editor.canvas import CanvasView, ToolState
from editor.canvas.tools import MAX_BRUSH_SIZE, MIN_BRUSH_SIZE, bigger_size, smaller_size
from editor.document import Document

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
BASE = (90, 140, 200)  # the flat test image colour


@pytest.fixture
def doc(qapp) -> Document:
    return Document.new(200, 160, BASE)


@pytest.fixture
def view(qtbot, doc) -> CanvasView:
    v = CanvasView(doc, ToolState(brush_size=10, hardness=1.0))
    qtbot.addWidget(v)
    v.resize(420, 340)
    v.show()
    qtbot.waitExposed(v)
    return v


def at(view: CanvasView, x: float, y: float) -> QPoint:
    """Widget point (integer, as mouse events carry) over image point (x, y)."""
    return view.image_to_widget(QPointF(x, y)).toPoint()


def drag(qtbot, view, points, button=Qt.MouseButton.LeftButton, modifiers=Qt.KeyboardModifier.NoModifier):
    qtbot.mousePress(view, button, modifiers, points[0])
    for p in points[1:]:
        qtbot.mouseMove(view, p)
    qtbot.mouseRelease(view, button, modifiers, points[-1])


def pixel(view: CanvasView, x: float, y: float) -> tuple[int, int, int]:
    """Colour the view shows over image point (x, y)."""
    img = view.grab().toImage()
    c = img.pixelColor(view.image_to_widget(QPointF(x, y)).toPoint())
    return c.red(), c.green(), c.blue()


def close(a, b, tol=3) -> bool:
    return all(abs(int(u) - int(v)) <= tol for u, v in zip(a, b))


def wheel(view, pos: QPointF, dy: int, modifiers=Qt.KeyboardModifier.ControlModifier, pixel_delta=QPoint()):
    event = QWheelEvent(QPointF(pos), QPointF(view.mapToGlobal(QPointF(pos))), pixel_delta, QPoint(0, dy),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view, event)


# --------------------------------------------------------------------------- brush and eraser


def test_brush_drag_paints_along_the_path_and_one_undo_restores_the_exact_mask(qtbot, view, doc):
    pre = np.zeros_like(doc.mask)
    pre[10:30, 10:30] = 200
    doc.set_mask(pre)
    before = doc.mask.copy()
    finished = []
    view.stroke_finished.connect(lambda: finished.append(True))
    steps = [at(view, x, 80) for x in range(40, 161, 15)]
    drag(qtbot, view, steps)

    assert finished == [True]
    assert doc.undo_stack.count() == 2  # set_mask + one stroke
    row = doc.mask[80, 45:156]
    assert (row == 255).all(), "the stroke covers its path"
    assert not doc.mask[100:, :].any() and not doc.mask[:60, 40:].any(), "nothing painted off the path"
    painted = pixel(view, 100, 80)
    assert not close(painted, BASE, 10), "the mask shows as an overlay"

    doc.undo_stack.undo()
    assert np.array_equal(doc.mask, before)
    assert close(pixel(view, 100, 80), BASE), "the view repaints what undo restored"


def test_a_fast_drag_with_few_events_leaves_a_continuous_line(qtbot, view, doc):
    drag(qtbot, view, [at(view, 10, 20), at(view, 190, 140), at(view, 20, 140)])
    # Sample along both segments: every point is covered (the document interpolates dabs).
    for t in np.linspace(0.03, 0.97, 80):
        x, y = 10 + 180 * t, 20 + 120 * t
        assert doc.mask[int(round(y)), int(round(x))] == 255, (x, y)
        assert doc.mask[140, int(round(190 - 170 * t))] == 255
    assert doc.undo_stack.count() == 1


def test_eraser_lowers_the_mask(qtbot, view, doc):
    doc.set_mask(np.full_like(doc.mask, 255))
    view.set_tool("eraser")
    drag(qtbot, view, [at(view, 30, 50), at(view, 170, 50)])
    assert (doc.mask[50, 40:160] == 0).all()
    assert (doc.mask[100:, :] == 255).all()
    assert doc.undo_stack.undoText() == "Erase mask"


def test_tablet_pressure_scales_the_brush_and_the_stroke_is_not_doubled(qtbot, view, doc):
    view.actual_size()
    view.tool_state.set_brush_size(40)
    pen = QPointingDevice("test pen", 4242, QInputDevice.DeviceType.Stylus, QPointingDevice.PointerType.Pen,
                          QInputDevice.Capability.Position | QInputDevice.Capability.Pressure, 1, 3)

    def send(kind, x, y, pressure, button=Qt.MouseButton.LeftButton):
        pos = QPointF(view.image_to_widget(QPointF(x, y)))
        buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.TabletRelease else Qt.MouseButton.LeftButton
        event = QTabletEvent(kind, pen, pos, QPointF(view.mapToGlobal(pos)), pressure, 0, 0, 0, 0, 0,
                             Qt.KeyboardModifier.NoModifier, button, buttons)
        QApplication.sendEvent(view, event)
        return event.isAccepted()

    assert send(QEvent.Type.TabletPress, 40, 80, 0.25)
    assert send(QEvent.Type.TabletMove, 100, 80, 0.25)
    assert send(QEvent.Type.TabletRelease, 160, 80, 0.25)
    assert doc.undo_stack.count() == 1
    column = doc.mask[:, 100]
    width = int((column > 127).sum())
    assert 6 <= width <= 14, f"a quarter of a 40 px brush is ~10 px wide, got {width}"


# --------------------------------------------------------------------------- zoom and pan


def test_ctrl_wheel_zooms_keeping_the_image_point_under_the_cursor(qtbot, view):
    zooms = []
    view.zoom_changed.connect(zooms.append)
    for pos, dy in ((QPointF(123, 77), 120), (QPointF(300, 250), 360), (QPointF(60, 300), -240)):
        before = view.widget_to_image(pos)
        old = view.zoom
        wheel(view, pos, dy)
        after = view.widget_to_image(pos)
        assert (view.zoom > old) == (dy > 0) and view.zoom != old
        assert math.hypot(after.x() - before.x(), after.y() - before.y()) * view.zoom < 0.5
    assert len(zooms) == 3 and zooms[-1] == view.zoom


def test_pinch_zooms_at_the_gesture_point(qtbot, view):
    pos = QPointF(150, 120)
    before = view.widget_to_image(pos)
    old = view.zoom
    event = QNativeGestureEvent(Qt.NativeGestureType.ZoomNativeGesture, QPointingDevice.primaryPointingDevice(), 2,
                                pos, pos, QPointF(view.mapToGlobal(pos)), 0.5, QPointF())
    QApplication.sendEvent(view, event)
    assert view.zoom == pytest.approx(old * 1.5)
    after = view.widget_to_image(pos)
    assert math.hypot(after.x() - before.x(), after.y() - before.y()) * view.zoom < 0.5


def test_plain_wheel_scrolls(qtbot, view):
    view.set_zoom(4.0)
    before = view.image_to_widget(QPointF(100, 80))
    wheel(view, QPointF(200, 170), -120, Qt.KeyboardModifier.NoModifier)
    after = view.image_to_widget(QPointF(100, 80))
    assert after.y() < before.y() and after.x() == before.x() and view.zoom == 4.0


@pytest.mark.parametrize("how", ["space", "middle"])
def test_space_drag_and_middle_drag_pan_by_the_mouse_delta(qtbot, view, doc, how):
    a, b = QPoint(200, 150), QPoint(263, 121)
    point = view.widget_to_image(QPointF(a))
    if how == "space":
        qtbot.keyPress(view, Qt.Key.Key_Space)
        drag(qtbot, view, [a, QPoint(230, 140), b])
        qtbot.keyRelease(view, Qt.Key.Key_Space)
    else:
        drag(qtbot, view, [a, QPoint(230, 140), b], button=Qt.MouseButton.MiddleButton)
    moved_to = view.image_to_widget(point)
    assert moved_to.x() == pytest.approx(b.x(), abs=1e-6) and moved_to.y() == pytest.approx(b.y(), abs=1e-6)
    assert not doc.mask.any() and doc.undo_stack.count() == 0, "panning paints nothing"


def test_fit_shows_the_whole_image_centred_and_actual_size_is_100_percent(qtbot, view, doc):
    view.set_zoom(7.0, QPointF(10, 10))
    view.fit()
    top_left = view.image_to_widget(QPointF(0, 0))
    bottom_right = view.image_to_widget(QPointF(doc.width, doc.height))
    assert top_left.x() >= 0 and top_left.y() >= 0
    assert bottom_right.x() <= view.width() and bottom_right.y() <= view.height()
    centre = view.image_to_widget(QPointF(doc.width / 2, doc.height / 2))
    assert centre.x() == pytest.approx(view.width() / 2) and centre.y() == pytest.approx(view.height() / 2)
    # It fills the view in one direction (up to the margin).
    assert min(view.width() - (bottom_right.x() - top_left.x()), view.height() - (bottom_right.y() - top_left.y())) < 40
    view.actual_size()
    assert view.zoom == 1.0
    view.zoom_in()
    assert view.zoom > 1.0
    view.zoom_out()
    view.zoom_out()
    assert view.zoom < 1.0
    view.set_zoom(1000)
    assert view.zoom == 32.0
    view.set_zoom(0)
    assert view.zoom == 0.02


def test_fit_follows_resizes_until_the_designer_zooms(qtbot, view, doc):
    view.resize(800, 600)
    qtbot.waitUntil(lambda: view.width() == 800)
    assert view.image_to_widget(QPointF(doc.width / 2, doc.height / 2)).x() == pytest.approx(400)
    view.set_zoom(3.0)
    zoom = view.zoom
    view.resize(600, 500)
    qtbot.waitUntil(lambda: view.width() == 600)
    assert view.zoom == zoom


# --------------------------------------------------------------------------- shortcuts and tools


def test_bracket_keys_change_the_brush_size(qtbot, view):
    state = view.tool_state
    state.set_brush_size(40)
    qtbot.keyClick(view, "]")
    assert state.brush_size == 44
    qtbot.keyClick(view, "[")
    qtbot.keyClick(view, "[")
    assert state.brush_size == 36
    assert bigger_size(1) == 2 and smaller_size(2) == 1 and smaller_size(1) == MIN_BRUSH_SIZE
    assert bigger_size(MAX_BRUSH_SIZE) == MAX_BRUSH_SIZE
    state.set_brush_size(5000)
    assert state.brush_size == MAX_BRUSH_SIZE


def test_x_swaps_brush_and_eraser_and_b_e_choose(qtbot, view):
    tools = []
    view.tool_changed.connect(tools.append)
    qtbot.keyClick(view, Qt.Key.Key_X)
    assert view.tool == "eraser"
    qtbot.keyClick(view, Qt.Key.Key_X)
    assert view.tool == "brush"
    qtbot.keyClick(view, Qt.Key.Key_E)
    qtbot.keyClick(view, Qt.Key.Key_B)
    assert tools == ["eraser", "brush", "eraser", "brush"]
    assert view.canvas_actions["brush"].isChecked()


def test_actions_carry_the_designer_shortcuts(view):
    actions = view.canvas_actions
    expected = {"brush": "B", "eraser": "E", "swap": "X", "smaller": "[", "bigger": "]", "fit": "Ctrl+0",
                "actual_size": "Ctrl+1", "toggle_mask": "H", "zoom_out": "Ctrl+-"}
    for key, shortcut in expected.items():
        assert shortcut in [s.toString() for s in actions[key].shortcuts()], key
    zoom_in = [s.toString() for s in actions["zoom_in"].shortcuts()]
    assert "Ctrl+=" in zoom_in and "Ctrl++" in zoom_in
    assert all(a in view.actions() for a in actions.values())


def test_h_hides_and_shows_the_mask_overlay(qtbot, view, doc):
    mask = np.zeros_like(doc.mask)
    mask[60:100, 80:120] = 255
    doc.set_mask(mask)
    shown = pixel(view, 100, 80)
    assert not close(shown, BASE, 10)
    qtbot.keyClick(view, Qt.Key.Key_H)
    assert not view.mask_visible
    assert close(pixel(view, 100, 80), BASE)
    qtbot.keyClick(view, Qt.Key.Key_H)
    assert view.mask_visible and pixel(view, 100, 80) == shown
    assert doc.undo_stack.count() == 1, "mask visibility is view state, not an undo step"


def test_mask_colour_and_opacity_are_settable(qtbot, view, doc):
    doc.set_mask(np.full_like(doc.mask, 255))
    view.set_mask_color(QColor(0, 255, 0))
    view.set_mask_opacity(1.0)
    assert close(pixel(view, 50, 50), (0, 255, 0))
    view.set_mask_opacity(0.0)
    assert close(pixel(view, 50, 50), BASE)
    view.set_mask_opacity(0.5)
    assert close(pixel(view, 50, 50), (45, 198, 100), 4)


def test_select_tool_sets_the_selection_past_the_edge_and_a_click_clears_it(qtbot, view, doc):
    view.actual_size()
    view.set_tool("select")
    drag(qtbot, view, [at(view, 20, 30), at(view, 70, 60), at(view, 120, 90)])
    assert doc.selection == QRect(20, 30, 100, 60)
    assert not doc.mask.any()
    drag(qtbot, view, [at(view, 150, 100), at(view, 230, 190)])
    assert doc.selection == QRect(150, 100, 80, 90), "the selection may reach past the image"
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=at(view, 50, 50))
    assert doc.selection is None
    doc.undo_stack.undo()
    assert doc.selection == QRect(150, 100, 80, 90)


def test_cursor_moved_reports_image_coordinates_or_none_off_the_image(qtbot, view, doc):
    seen = []
    view.cursor_moved.connect(seen.append)
    target = at(view, 50, 40)
    qtbot.mouseMove(view, target)
    qtbot.waitUntil(lambda: bool(seen) and seen[-1] is not None)
    expected = view.widget_to_image(QPointF(target))
    assert seen[-1].x() == pytest.approx(expected.x()) and seen[-1].y() == pytest.approx(expected.y())
    qtbot.mouseMove(view, QPoint(3, 3))  # the dark surround
    qtbot.waitUntil(lambda: seen[-1] is None)


# --------------------------------------------------------------------------- rendering


def test_a_4096_document_renders_and_pans_smoothly(qtbot):
    pixels = np.zeros((4096, 4096, 3), np.uint8)
    pixels[:, :2048] = (220, 30, 30)
    pixels[:, 2048:] = (30, 30, 220)
    pixels[1000:1100, :] = (255, 255, 255)
    doc = Document.from_image(Image.fromarray(pixels, "RGB"))
    mask = np.zeros((4096, 4096), np.uint8)
    mask[3000:3500, 3000:3500] = 255
    doc.set_mask(mask)
    view = CanvasView(doc)
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    qtbot.waitExposed(view)
    img = view.grab().toImage()
    left = img.pixelColor(view.image_to_widget(QPointF(1000, 2000)).toPoint())
    right = img.pixelColor(view.image_to_widget(QPointF(3000, 2000)).toPoint())
    stripe = img.pixelColor(view.image_to_widget(QPointF(1000, 1050)).toPoint())
    assert (left.red(), left.blue()) == (220, 30) and (right.red(), right.blue()) == (30, 220)
    assert stripe.green() > 200, "a 100 px stripe shows at ~10 %"

    # Once cached, a frame is cheap at any zoom: only the visible part is drawn.
    start = time.perf_counter()
    frames = 0
    for zoom in (0.1, 0.37, 1.0, 4.0):
        view.set_zoom(zoom, QPointF(250, 200))
        for _ in range(3):
            view.pan_by(17, -9)
            view.grab()
            frames += 1
    per_frame = (time.perf_counter() - start) / frames
    assert per_frame < 0.25, f"{per_frame * 1000:.0f} ms a frame"
    view.actual_size()
    view.center_on(QPointF(2048, 1050))
    img = view.grab().toImage()
    assert img.pixelColor(250, 200).green() == 255
    assert doc.undo_stack.count() == 1


def test_set_preview_shows_the_preview_at_its_box(qtbot, view, doc):
    view.set_preview(Image.new("RGB", (16, 16), (20, 230, 40)), box=(50, 50, 100, 100))
    assert view.has_preview
    assert close(pixel(view, 75, 75), (20, 230, 40))
    assert close(pixel(view, 150, 120), BASE)
    view.set_preview(Image.new("RGB", (8, 8), (250, 250, 0)))  # no box: the whole canvas
    assert close(pixel(view, 150, 120), (250, 250, 0))
    view.set_preview(None)
    assert close(pixel(view, 75, 75), BASE)
    assert doc.undo_stack.count() == 0


def test_changes_to_the_document_repaint_only_what_changed(qtbot, view, doc):
    doc.apply_result(Image.new("RGB", (40, 40), (255, 0, 0)), box=(10, 10))
    assert close(pixel(view, 30, 30), (255, 0, 0))
    assert close(pixel(view, 120, 120), BASE)
    doc.undo_stack.undo()
    assert close(pixel(view, 30, 30), BASE)


def _photo(width: int = 720, height: int = 480) -> Image.Image:
    """A photo-like scene: sky gradient, sun, hills, a lake, grain."""
    y = np.linspace(0, 1, height)[:, None, None]
    sky = (1 - y) * np.array([70, 130, 210]) + y * np.array([250, 200, 160])
    img = Image.fromarray(np.broadcast_to(sky, (height, width, 3)).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    draw.ellipse((480, 90, 560, 170), fill=(255, 236, 180))
    draw.polygon([(0, 330), (150, 240), (300, 310), (450, 220), (720, 320), (720, 480), (0, 480)], fill=(60, 100, 60))
    draw.polygon([(0, 380), (250, 330), (720, 370), (720, 480), (0, 480)], fill=(40, 75, 45))
    draw.rectangle((0, 420, 720, 480), fill=(50, 90, 120))
    img = img.filter(ImageFilter.GaussianBlur(1.5))
    grain = np.random.default_rng(1).normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + grain, 0, 255).astype(np.uint8), "RGB")


def test_screenshot_of_a_photo_with_mask_and_selection(qtbot):
    doc = Document.from_image(_photo())
    view = CanvasView(doc, ToolState(brush_size=60, hardness=0.7))
    qtbot.addWidget(view)
    view.resize(900, 620)
    view.show()
    qtbot.waitExposed(view)
    # Paint the mask with real mouse events: a blob over the sun, a stroke along the hills.
    drag(qtbot, view, [at(view, x, 130 + 8 * math.sin(x / 9)) for x in range(490, 561, 10)])
    drag(qtbot, view, [at(view, x, 280 - 40 * math.sin(x / 120)) for x in range(60, 420, 25)])
    view.tool_state.set_brush_size(30)
    view.set_tool("eraser")
    drag(qtbot, view, [at(view, 150, 250), at(view, 200, 300)])
    view.set_tool("select")
    drag(qtbot, view, [at(view, 420, 40), at(view, 780, 260)])  # reaches past the right edge
    assert doc.selection is not None and doc.selection.right() >= doc.width
    view.set_tool("brush")
    view.tool_state.set_brush_size(80)
    qtbot.mouseMove(view, at(view, 330, 380))
    qtbot.waitUntil(lambda: view._pointer is not None)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "canvas.png"
    assert view.grab().save(str(path))
    assert path.stat().st_size > 10_000


def test_zoomed_out_levels_updated_by_rectangle_match_a_full_rebuild(qapp):
    from PySide6.QtGui import QImage, QPainter

    from editor.canvas.view import _Pyramid
    from editor.document import array_to_qimage

    rng = np.random.default_rng(3)
    base = array_to_qimage(rng.integers(0, 256, (203, 317, 4), dtype=np.uint8))  # odd sizes
    pyramid = _Pyramid(base)
    assert pyramid.level(9) == 4, "levels stop once they are small"
    assert [im.width() for im in pyramid.levels] == [317, 159, 80, 40, 20]
    patch = array_to_qimage(rng.integers(0, 256, (37, 51, 4), dtype=np.uint8))
    for x, y in ((0, 0), (270, 170), (101, 57)):
        painter = QPainter(pyramid.base)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        painter.drawImage(QPoint(x, y), patch)
        painter.end()
        pyramid.changed(QRect(x, y, 51, 37))
    fresh = _Pyramid(pyramid.base.copy())
    fresh.level(4)
    for k in range(1, 5):
        a, b = pyramid.levels[k], fresh.levels[k]
        assert a.format() == b.format() == QImage.Format.Format_ARGB32_Premultiplied
        assert a == b, f"level {k} differs"


def test_switching_documents_follows_the_new_one_only(qtbot, view, doc):
    other = Document.new(64, 48, (10, 200, 10))
    view.set_document(other)
    assert view.document is other
    assert close(pixel(view, 32, 24), (10, 200, 10))
    doc.apply_result(Image.new("RGB", (200, 160), (255, 0, 0)))  # the old document: not shown, no error
    assert close(pixel(view, 32, 24), (10, 200, 10))
    drag(qtbot, view, [at(view, 5, 24), at(view, 60, 24)])
    assert other.mask[24, 10:55].all() and not doc.mask.any()
    view.set_document(None)
    view.grab()


def test_shortcuts_fire_once_from_a_main_window_menu(qtbot, doc):
    from PySide6.QtWidgets import QMainWindow

    window = QMainWindow()
    qtbot.addWidget(window)
    view = CanvasView(doc)
    window.setCentralWidget(view)
    menu = window.menuBar().addMenu("&View")
    for action in view.canvas_actions.values():
        menu.addAction(action)
    window.resize(500, 400)
    window.show()
    window.activateWindow()
    qtbot.waitActive(window)
    view.setFocus()
    triggered = []
    view.canvas_actions["swap"].triggered.connect(lambda: triggered.append("swap"))
    qtbot.keyClick(view, Qt.Key.Key_X)
    assert triggered == ["swap"] and view.tool == "eraser"
    qtbot.keyClick(view, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert view.zoom == 1.0
    qtbot.keyClick(view, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert view.zoom == 1.5
