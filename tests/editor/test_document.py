"""The document model: what a designer notices when painting masks, applying results and undoing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QImage, QUndoCommand

from editor.document import (
    ApplyResult,
    ClearMask,
    Document,
    FeatherMask,
    GrowMask,
    InvertMask,
    Layer,
    MaskStrokeCommand,
    MoveLayer,
    RemoveLayer,
    RenameLayer,
    ResizeCanvas,
    SetLayerOpacity,
    SetLayerVisible,
    SetSelection,
    array_to_qimage,
)


@pytest.fixture
def photo() -> Image.Image:
    """A deterministic, non-uniform RGB picture, so misplaced pixels show."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), "RGB")


@pytest.fixture
def doc(qapp, photo) -> Document:
    return Document.from_image(photo)


def stroke(doc: Document, points, radius=6.0, hardness=1.0, erase=False):
    doc.begin_stroke(erase=erase)
    for x, y in points:
        doc.stroke_to(x, y, radius, hardness)
    return doc.end_stroke()


def painted(doc: Document, box=(20, 20, 60, 50)) -> np.ndarray:
    """Paint a rectangle of mask through the undo stack, return the mask after it."""
    mask = doc.mask.copy()
    mask[box[1]:box[3], box[0]:box[2]] = 255
    doc.set_mask(mask)
    return doc.mask.copy()


def union(rects) -> QRect:
    out = QRect()
    for r in rects:
        out = out.united(r)
    return out


# --------------------------------------------------------------------------- construction and conversions


def test_new_document_is_a_white_canvas_with_an_empty_mask(qapp):
    doc = Document.new(64, 32)
    assert doc.size == (64, 32)
    assert [layer.name for layer in doc.layers] == ["Background"]
    img = doc.composite()
    assert img.mode == "RGB" and img.size == (64, 32)
    assert np.all(np.asarray(img) == 255)
    assert doc.mask.shape == (32, 64) and doc.mask.dtype == np.uint8 and not doc.mask.any()
    assert doc.mask_image().mode == "L"
    assert not doc.modified and doc.undo_stack.count() == 0


def test_opened_image_comes_back_bit_exact(doc, photo):
    assert np.array_equal(np.asarray(doc.composite()), np.asarray(photo))
    assert doc.layers[0].pixels.shape == (120, 160, 4)


def test_transparent_image_keeps_its_alpha(qapp):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[2:5, 3:7] = (10, 20, 30, 255)
    doc = Document.from_image(Image.fromarray(rgba, "RGBA"))
    out = doc.composite()
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out), rgba)
    flat = np.asarray(doc.composite("RGB"))
    assert tuple(flat[0, 0]) == (255, 255, 255) and tuple(flat[3, 4]) == (10, 20, 30)


def test_qimages_own_their_pixels(doc, photo):
    q = doc.render_qimage(QRect(10, 20, 30, 40))
    layer_q = doc.layers[0].qimage()
    # Mutating the document afterwards does not reach the QImages already handed out.
    doc.layers[0].pixels[...] = 0
    assert (q.width(), q.height()) == (30, 40)
    r, g, b = photo.getpixel((10, 20))
    assert QColor(q.pixel(0, 0)).getRgb()[:3] == (r, g, b)
    assert QColor(layer_q.pixel(10, 20)).getRgb()[:3] == (r, g, b)
    grey = array_to_qimage(np.full((3, 4), 7, np.uint8))
    assert grey.format() == QImage.Format.Format_Grayscale8 and QColor(grey.pixel(1, 1)).red() == 7


def test_mask_overlay_is_tinted_by_the_mask(doc):
    painted(doc, (0, 0, 10, 10))
    overlay = doc.mask_qimage(QRect(0, 0, 20, 20), QColor(255, 0, 0, 128))
    inside, outside = overlay.pixelColor(5, 5), overlay.pixelColor(15, 15)
    assert inside.red() == 255 and abs(inside.alpha() - 128) <= 1 and inside.green() == 0
    assert outside.alpha() == 0


# --------------------------------------------------------------------------- brush strokes


def test_stroke_changes_mask_and_undo_redo_restore_exact_bytes(doc):
    before = doc.mask.copy()
    command = stroke(doc, [(40, 40), (90, 70)], radius=8, hardness=0.5)
    after = doc.mask.copy()
    assert isinstance(command, MaskStrokeCommand) and command.text() == "Brush stroke"
    assert doc.undo_stack.count() == 1 and doc.modified
    assert after[40, 40] == 255 and after[70, 90] == 255
    assert not np.array_equal(before, after)
    doc.undo_stack.undo()
    assert np.array_equal(doc.mask, before)
    doc.undo_stack.redo()
    assert np.array_equal(doc.mask, after)


def test_pushing_a_stroke_does_not_paint_it_twice(doc):
    """The stroke is on the mask while drawing; the push's first redo must leave it as is."""
    painted(doc, (0, 0, 160, 120))
    doc.begin_stroke(erase=True)
    doc.stroke_to(50, 50, 10, 0.3)
    during = doc.mask.copy()
    command = doc.end_stroke()
    assert command is not None
    assert np.array_equal(doc.mask, during)


def test_stroke_command_keeps_only_the_changed_rectangle(doc):
    command = stroke(doc, [(30, 30), (40, 32)], radius=4)
    rect = command.rect
    assert rect.width() < 25 and rect.height() < 15
    assert command.nbytes == 2 * rect.width() * rect.height()
    outside = np.ones(doc.mask.shape, bool)
    outside[rect.top():rect.bottom() + 1, rect.left():rect.right() + 1] = False
    assert not doc.mask[outside].any()


def test_fast_stroke_leaves_no_gaps(doc):
    """Two mouse events 290 px apart still draw a continuous line, not two dots."""
    doc = Document.new(320, 30)
    stroke(doc, [(10, 10), (300, 10)], radius=5)
    row = doc.mask[10, 10:301]
    assert row.min() == 255
    # The band is solid a few pixels either side of the centre line, all the way.
    assert doc.mask[7:14, 10:301].min() == 255


def test_stroke_spacing_is_even_however_events_are_chunked(qapp):
    one, many = Document.new(200, 20), Document.new(200, 20)
    stroke(one, [(5, 10), (195, 10)], radius=3, hardness=0.2)
    stroke(many, [(5 + i * 0.7, 10) for i in range(0, 272)], radius=3, hardness=0.2)
    # Soft dabs make unevenness visible as ripples; both ways, the core of the line is smooth and full.
    assert one.mask[10, 10:190].min() == 255 and many.mask[10, 10:190].min() == 255


def test_hard_brush_has_a_crisp_edge_and_soft_brush_a_ramp(qapp):
    hard, soft = Document.new(100, 100), Document.new(100, 100)
    stroke(hard, [(50, 50)], radius=20, hardness=1.0)
    stroke(soft, [(50, 50)], radius=20, hardness=0.3)
    hard_row, soft_row = hard.mask[50, 50:80].astype(int), soft.mask[50, 50:80].astype(int)
    # Same reach, full strength in the middle.
    assert hard_row[0] == soft_row[0] == 255
    assert hard_row[25] == soft_row[25] == 0
    # Hard: at most one anti-aliased pixel between full and empty.
    assert np.count_nonzero((hard_row > 0) & (hard_row < 255)) <= 1
    # Soft: a long, monotonic ramp.
    ramp = (soft_row > 0) & (soft_row < 255)
    assert np.count_nonzero(ramp) >= 10
    assert np.all(np.diff(soft_row) <= 0)
    assert soft.mask.sum() < hard.mask.sum()


def test_overlapping_soft_dabs_do_not_build_up(qapp):
    doc = Document.new(100, 100)
    stroke(doc, [(50, 50)], radius=20, hardness=0.3)
    once = doc.mask.copy()
    stroke(doc, [(50, 50), (50, 50.1), (50, 50)], radius=20, hardness=0.3)
    assert np.abs(doc.mask.astype(int) - once.astype(int)).max() <= 2


def test_eraser_lowers_the_mask_and_undo_brings_it_back(doc):
    full = painted(doc, (0, 0, 160, 120))
    command = stroke(doc, [(20, 60), (140, 60)], radius=6, erase=True)
    assert command.text() == "Erase mask"
    assert doc.mask[60, 20:141].max() == 0
    assert doc.mask[0, 0] == 255 and doc.mask[119, 159] == 255
    doc.undo_stack.undo()
    assert np.array_equal(doc.mask, full)


def test_pressure_makes_a_thinner_line(qapp):
    light, firm = Document.new(100, 60), Document.new(100, 60)
    for d, pressure in ((light, 0.3), (firm, 1.0)):
        d.begin_stroke()
        d.stroke_to(10, 30, 10, 1.0, pressure)
        d.stroke_to(90, 30, 10, 1.0, pressure)
        d.end_stroke()
    assert np.count_nonzero(light.mask[:, 50]) < np.count_nonzero(firm.mask[:, 50])


def test_empty_strokes_push_nothing(doc):
    doc.begin_stroke()
    assert doc.end_stroke() is None
    # Erasing where nothing is painted changes no byte either.
    assert stroke(doc, [(30, 30), (80, 80)], erase=True) is None
    # Nor does a stroke entirely off the canvas.
    assert stroke(doc, [(-100, -100), (-50, -60)]) is None
    assert doc.undo_stack.count() == 0 and not doc.modified


def test_cancelled_stroke_leaves_the_mask_as_it_was(doc):
    before = painted(doc, (10, 10, 30, 30))
    doc.begin_stroke()
    doc.stroke_to(20, 20, 15)
    doc.stroke_to(120, 90, 15)
    doc.cancel_stroke()
    assert np.array_equal(doc.mask, before)
    assert doc.undo_stack.count() == 1


def test_stroke_signals_cover_the_painted_area(doc, qtbot):
    rects = []
    doc.mask_changed.connect(rects.append)
    command = stroke(doc, [(30, 30), (100, 60)], radius=5)
    painted_area = union(rects)
    assert painted_area.contains(command.rect)
    assert doc.rect.contains(painted_area)
    rects.clear()
    with qtbot.waitSignal(doc.mask_changed) as blocker:
        doc.undo_stack.undo()
    assert blocker.args == [command.rect]
    assert rects == [command.rect]


def test_hundred_strokes_on_a_big_mask_keep_undo_memory_small(qapp):
    """A full-mask copy per stroke would be 100 x 16 MB x 2 = 3.2 GB (1.6 GB before-only)."""
    doc = Document(4096, 4096)
    doc.layers.append(Layer("Background", np.zeros((1, 1, 4), np.uint8)))  # pixels are not the point here
    rng = np.random.default_rng(1)
    for _ in range(100):
        x, y = rng.integers(100, 3996, 2)
        stroke(doc, [(x, y), (x + 40, y + 25)], radius=12, hardness=0.5)
    assert doc.undo_stack.count() == 100
    assert 0 < doc.undo_bytes() < 10 * 1024 * 1024
    assert doc.undo_bytes() < 1_000_000  # in fact about 0.5 MB
    painted_mask = doc.mask.copy()
    for _ in range(100):
        doc.undo_stack.undo()
    assert not doc.mask.any()
    for _ in range(100):
        doc.undo_stack.redo()
    assert np.array_equal(doc.mask, painted_mask)


# --------------------------------------------------------------------------- mask commands


@pytest.mark.parametrize(
    "action, text",
    [
        (lambda d: d.clear_mask(), "Clear mask"),
        (lambda d: d.invert_mask(), "Invert mask"),
        (lambda d: d.grow_mask(5), "Grow mask by 5 px"),
        (lambda d: d.grow_mask(-4), "Shrink mask by 4 px"),
        (lambda d: d.feather_mask(6), "Feather mask by 6 px"),
    ],
)
def test_mask_commands_change_the_mask_and_undo_exactly(doc, action, text):
    stroke(doc, [(40, 40), (100, 60)], radius=10, hardness=0.6)
    before = doc.mask.copy()
    command = action(doc)
    assert isinstance(command, QUndoCommand) and command.text() == text
    after = doc.mask.copy()
    assert not np.array_equal(before, after)
    doc.undo_stack.undo()
    assert np.array_equal(doc.mask, before)
    doc.undo_stack.redo()
    assert np.array_equal(doc.mask, after)


def test_mask_commands_do_what_they_say(doc):
    base = painted(doc, (50, 40, 90, 80))
    doc.clear_mask()
    assert not doc.mask.any()
    doc.undo_stack.undo()

    doc.invert_mask()
    assert np.array_equal(doc.mask, 255 - base)
    doc.undo_stack.undo()

    doc.grow_mask(5)
    assert doc.mask[40, 46] == 255 and doc.mask[35, 70] == 255 and doc.mask[30, 70] == 0
    doc.undo_stack.undo()

    doc.grow_mask(-5)
    assert doc.mask[40, 70] == 0 and doc.mask[45, 70] == 255 and doc.mask[60, 70] == 255
    doc.undo_stack.undo()

    doc.feather_mask(8)
    ramp = doc.mask[60, 86:102].astype(int)  # from inside, out past the edge at x=90
    assert ramp[0] == 255 and ramp[-1] == 0
    assert np.count_nonzero((ramp > 0) & (ramp < 255)) >= 5
    assert np.all(np.diff(ramp) <= 0)
    doc.undo_stack.undo()
    assert np.array_equal(doc.mask, base)


def test_mask_commands_store_only_what_they_need(doc):
    painted(doc, (50, 40, 60, 50))
    clear = ClearMask(doc)
    assert clear.nbytes == 2 * 10 * 10
    assert InvertMask(doc).nbytes == 0  # its own inverse
    assert GrowMask(doc, 3).nbytes == 2 * 16 * 16
    assert FeatherMask(doc, 2).nbytes <= 2 * 14 * 14


def test_mask_commands_that_change_nothing_push_nothing(doc):
    assert doc.clear_mask() is None
    assert doc.grow_mask(3) is None
    assert doc.feather_mask(4) is None
    assert doc.grow_mask(0) is None
    assert doc.undo_stack.count() == 0


def test_invert_signals_the_whole_canvas(doc, qtbot):
    with qtbot.waitSignal(doc.mask_changed) as blocker:
        doc.invert_mask()
    assert blocker.args == [doc.rect]


# --------------------------------------------------------------------------- selection


def test_selection_can_reach_past_the_edge_and_undo(doc, qtbot):
    assert doc.selection is None
    with qtbot.waitSignal(doc.selection_changed):
        command = doc.set_selection(QRect(-32, 10, 100, 50))
    assert isinstance(command, SetSelection) and command.text() == "Select region"
    assert doc.selection == QRect(-32, 10, 100, 50)
    assert doc.selection_box() == (-32, 10, 68, 60)
    doc.set_selection(None)
    assert doc.selection is None
    doc.undo_stack.undo()
    assert doc.selection == QRect(-32, 10, 100, 50)
    doc.undo_stack.undo()
    assert doc.selection is None
    assert doc.set_selection(None) is None  # no change, no step


# --------------------------------------------------------------------------- applying results


def test_apply_into_a_region_changes_only_that_region(doc, photo, qtbot):
    original = np.asarray(doc.composite()).copy()
    patch = Image.new("RGB", (30, 20), (0, 200, 0))
    with qtbot.waitSignal(doc.changed) as blocker:
        command = doc.apply_result(patch, (40, 50))
    assert isinstance(command, ApplyResult) and command.text() == "Apply result"
    assert blocker.args == [QRect(40, 50, 30, 20)]
    out = np.asarray(doc.composite())
    assert np.all(out[50:70, 40:70] == (0, 200, 0))
    outside = np.ones(out.shape[:2], bool)
    outside[50:70, 40:70] = False
    assert np.array_equal(out[outside], original[outside])
    assert len(doc.layers) == 1
    assert command.nbytes == 2 * 30 * 20 * 4
    doc.undo_stack.undo()
    assert np.array_equal(np.asarray(doc.composite()), original)
    doc.undo_stack.redo()
    assert np.array_equal(np.asarray(doc.composite()), out)


def test_apply_full_image_result_stores_only_what_changed(doc, photo):
    """An inpaint result is the whole image with a small changed area; undo keeps only that area."""
    result = np.asarray(photo).copy()
    result[30:40, 100:130] = (1, 2, 3)
    original = np.asarray(doc.composite()).copy()
    command = doc.apply_result(Image.fromarray(result, "RGB"))
    assert np.array_equal(np.asarray(doc.composite()), result)
    assert command.nbytes == 2 * 10 * 30 * 4
    doc.undo_stack.undo()
    assert np.array_equal(np.asarray(doc.composite()), original)


def test_apply_into_a_region_box_resizes_the_result(doc):
    command = doc.apply_result(Image.new("RGB", (8, 8), (9, 9, 9)), (10, 10, 42, 26))
    out = np.asarray(doc.composite())
    assert np.all(out[10:26, 10:42] == 9) and not np.all(out[9, 10:42] == 9)
    assert command.target == (10, 10, 42, 26)


def test_apply_as_new_layer_adds_a_layer_and_undo_removes_it(doc, qtbot):
    original = np.asarray(doc.composite()).copy()
    with qtbot.waitSignal(doc.layers_changed):
        command = doc.apply_result(Image.new("RGB", (20, 10), (255, 0, 0)), (5, 6), as_new_layer=True, name="Red")
    assert command.text() == "Apply as new layer"
    assert [layer.name for layer in doc.layers] == ["Background", "Red"]
    assert doc.active_layer is doc.layers[1]
    assert doc.layers[1].rect == QRect(5, 6, 20, 10)
    assert doc.layers[1].nbytes == 20 * 10 * 4  # only as large as the result
    out = np.asarray(doc.composite())
    assert np.all(out[6:16, 5:25] == (255, 0, 0))
    assert np.array_equal(doc.layers[0].pixels[..., :3], original)  # background untouched
    doc.undo_stack.undo()
    assert [layer.name for layer in doc.layers] == ["Background"]
    assert doc.active_layer is doc.layers[0]
    assert np.array_equal(np.asarray(doc.composite()), original)
    doc.undo_stack.redo()
    assert np.array_equal(np.asarray(doc.composite()), out)


def test_transparent_parts_of_a_result_keep_the_layer_below(doc, photo):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:5] = (0, 0, 255, 255)
    doc.apply_result(Image.fromarray(rgba, "RGBA"), (0, 0))
    out = np.asarray(doc.composite())
    assert np.all(out[:5, :10] == (0, 0, 255))
    assert np.array_equal(out[5:10, :10], np.asarray(photo)[5:10, :10])


def test_outpaint_result_grows_the_canvas_and_undo_shrinks_it_back(doc, photo, qtbot):
    base = painted(doc, (10, 10, 20, 20))
    doc.set_selection(QRect(-16, -8, 192, 136))
    original_pixels = doc.layers[0].pixels.copy()
    # What Outpaint(left=16, top=8, right=16, bottom=8) returns: a larger picture, original inside.
    bigger = Image.new("RGB", (192, 136), (7, 8, 9))
    bigger.paste(photo, (16, 8))
    with qtbot.waitSignal(doc.size_changed):
        command = doc.apply_result(bigger, (-16, -8))
    assert "grow canvas" in command.text()
    assert doc.size == (192, 136)
    assert np.array_equal(np.asarray(doc.composite()), np.asarray(bigger))
    assert doc.mask.shape == (136, 192)
    assert np.array_equal(doc.mask[8:128, 16:176], base) and not doc.mask[:8].any()
    assert doc.selection == QRect(0, 0, 192, 136)  # moved with the picture
    doc.undo_stack.undo()
    assert doc.size == (160, 120)
    assert doc.layers[0].rect == QRect(0, 0, 160, 120)
    assert np.array_equal(doc.layers[0].pixels, original_pixels)
    assert np.array_equal(doc.mask, base)
    assert doc.selection == QRect(-16, -8, 192, 136)
    doc.undo_stack.redo()
    assert doc.size == (192, 136)
    assert np.array_equal(np.asarray(doc.composite()), np.asarray(bigger))


def test_outpaint_as_new_layer_grows_canvas_and_keeps_the_background(doc, photo):
    bigger = Image.new("RGB", (200, 120), (7, 8, 9))
    doc.apply_result(bigger, (0, 0), as_new_layer=True)
    assert doc.size == (200, 120)
    assert doc.layers[0].rect == QRect(0, 0, 160, 120)
    doc.set_layer_visible(1, False)
    out = doc.composite()
    assert out.mode == "RGBA"  # the grown strip has nothing under it
    assert np.asarray(out)[0, 199, 3] == 0
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.size == (160, 120) and len(doc.layers) == 1


# --------------------------------------------------------------------------- canvas size


def test_resize_canvas_moves_content_and_undo_restores_everything(doc, photo):
    base = painted(doc, (0, 0, 30, 30))
    command = doc.resize_canvas(100, 80, offset=(-20, -10))
    assert isinstance(command, ResizeCanvas) and command.text() == "Resize canvas"
    assert doc.size == (100, 80)
    assert np.array_equal(np.asarray(doc.composite()), np.asarray(photo)[10:90, 20:120])
    assert np.array_equal(doc.mask, base[10:90, 20:120])
    assert command.nbytes <= 30 * 30  # only the painted part that was cut off
    doc.undo_stack.undo()
    assert doc.size == (160, 120)
    assert np.array_equal(np.asarray(doc.composite()), np.asarray(photo))
    assert np.array_equal(doc.mask, base)


def test_growing_the_canvas_with_an_anchor(doc):
    offset = doc.anchor_offset(200, 160, (0.5, 0.5))
    assert offset == (20, 20)
    command = doc.resize_canvas(200, 160, offset)
    assert command.nbytes == 0
    assert doc.layers[0].rect == QRect(20, 20, 160, 120)
    assert np.asarray(doc.composite("RGBA"))[0, 0, 3] == 0


# --------------------------------------------------------------------------- layers


@pytest.fixture
def two_layers(doc) -> Document:
    doc.apply_result(Image.new("RGB", (160, 120), (200, 0, 0)), (0, 0), as_new_layer=True, name="Red")
    doc.undo_stack.clear()
    return doc


def test_hiding_a_layer_changes_the_picture_and_undo_shows_it_again(two_layers, photo, qtbot):
    doc = two_layers
    with_red = np.asarray(doc.composite()).copy()
    with qtbot.waitSignal(doc.changed) as blocker:
        command = doc.set_layer_visible(1, False)
    assert isinstance(command, SetLayerVisible) and command.text() == "Hide layer “Red”"
    assert blocker.args == [doc.rect]
    assert np.array_equal(np.asarray(doc.composite()), np.asarray(photo))
    doc.undo_stack.undo()
    assert doc.layers[1].visible
    assert np.array_equal(np.asarray(doc.composite()), with_red)


def test_layer_opacity_blends_and_undo_restores(two_layers, photo):
    doc = two_layers
    command = doc.set_layer_opacity(doc.layers[1], 0.5)
    assert isinstance(command, SetLayerOpacity)
    out = np.asarray(doc.composite()).astype(int)
    expected = np.rint(np.asarray(photo).astype(float) * 0.5 + np.array([200, 0, 0]) * 0.5)
    assert np.abs(out - expected).max() <= 1
    doc.undo_stack.undo()
    assert doc.layers[1].opacity == 1.0
    assert np.all(np.asarray(doc.composite()) == (200, 0, 0))


def test_dragging_the_opacity_slider_is_one_undo_step(two_layers):
    doc = two_layers
    for value in range(99, 19, -1):
        doc.set_layer_opacity(1, value / 100)
    assert doc.undo_stack.count() == 1
    assert doc.layers[1].opacity == pytest.approx(0.2)
    doc.undo_stack.undo()
    assert doc.layers[1].opacity == 1.0
    doc.undo_stack.redo()
    assert doc.layers[1].opacity == pytest.approx(0.2)
    # A new drag (merge=False on press) is a new step; another layer's opacity never merges.
    doc.set_layer_opacity(1, 0.5, merge=False)
    doc.set_layer_opacity(1, 0.6)
    doc.set_layer_opacity(0, 0.9)
    assert doc.undo_stack.count() == 3


def test_dragging_opacity_back_to_where_it_started_leaves_no_step(two_layers):
    doc = two_layers
    doc.set_layer_opacity(1, 0.5)
    doc.set_layer_opacity(1, 1.0)
    assert doc.undo_stack.count() == 0
    assert doc.layers[1].opacity == 1.0


def test_moving_a_layer_changes_the_order_and_undo(two_layers, photo):
    doc = two_layers
    command = doc.move_layer(1, 0)
    assert isinstance(command, MoveLayer)
    assert [layer.name for layer in doc.layers] == ["Red", "Background"]
    assert doc.active_layer.name == "Red"  # the active layer follows the move
    assert np.array_equal(np.asarray(doc.composite()), np.asarray(photo))
    doc.undo_stack.undo()
    assert [layer.name for layer in doc.layers] == ["Background", "Red"]
    assert np.all(np.asarray(doc.composite()) == (200, 0, 0))


def test_removing_and_renaming_layers_undo(two_layers, photo):
    doc = two_layers
    red = doc.layers[1]
    command = doc.remove_layer(red)
    assert isinstance(command, RemoveLayer) and command.text() == "Remove layer “Red”"
    assert len(doc.layers) == 1 and np.array_equal(np.asarray(doc.composite()), np.asarray(photo))
    doc.undo_stack.undo()
    assert doc.layers[1] is red and doc.active_layer is red
    rename = doc.rename_layer(red, "Sky")
    assert isinstance(rename, RenameLayer)
    assert red.name == "Sky"
    doc.undo_stack.undo()
    assert red.name == "Red"


def test_apply_goes_into_the_active_layer(two_layers):
    doc = two_layers
    background = doc.layers[0].pixels.copy()
    doc.set_active_layer(1)
    doc.apply_result(Image.new("RGB", (4, 4), (1, 1, 1)), (0, 0))
    assert np.array_equal(doc.layers[0].pixels, background)
    assert np.all(doc.layers[1].pixels[:4, :4, :3] == 1)


def test_applying_past_a_small_layer_grows_that_layer(doc):
    doc.apply_result(Image.new("RGB", (10, 10), (50, 50, 50)), (0, 0), as_new_layer=True)
    layer = doc.layers[1]
    doc.apply_result(Image.new("RGB", (10, 10), (60, 60, 60)), (30, 20))
    assert layer.rect == QRect(0, 0, 40, 30)
    assert layer.pixels[15, 15, 3] == 0  # between the two: transparent, shows the background
    doc.undo_stack.undo()
    assert layer.rect == QRect(0, 0, 10, 10) and np.all(layer.pixels[..., :3] == 50)


# --------------------------------------------------------------------------- modified flag and memory


def test_modified_follows_the_clean_state(doc, qtbot, tmp_path):
    assert not doc.modified
    with qtbot.waitSignal(doc.modified_changed) as blocker:
        doc.invert_mask()
    assert blocker.args == [True] and doc.modified
    doc.mark_saved(str(tmp_path / "a.ora"))
    assert not doc.modified and doc.path.endswith("a.ora")
    doc.clear_mask()
    assert doc.modified
    doc.undo_stack.undo()
    assert not doc.modified  # back at the saved state
    doc.undo_stack.undo()
    assert doc.modified


def test_every_command_reports_its_memory(doc):
    stroke(doc, [(20, 20), (40, 40)])
    doc.apply_result(Image.new("RGB", (10, 10), (0, 0, 0)), (0, 0))
    doc.apply_result(Image.new("RGB", (10, 10), (0, 0, 0)), (0, 0), as_new_layer=True)
    stack = doc.undo_stack
    sizes = [stack.command(i).nbytes for i in range(stack.count())]
    assert all(size > 0 for size in sizes)
    assert doc.undo_bytes() == sum(sizes)


def test_a_closed_document_is_freed(qapp):
    import gc
    import weakref

    doc = Document.new(64, 64)
    stroke(doc, [(10, 10), (30, 30)])
    doc.apply_result(Image.new("RGB", (8, 8)), (0, 0), as_new_layer=True)
    ref = weakref.ref(doc)
    del doc
    gc.collect()
    assert ref() is None
