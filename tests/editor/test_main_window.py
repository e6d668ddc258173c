"""The main window as a designer uses it: open, paint, generate, preview, apply, undo, save, export."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings

from editor import main_window as mw
from editor.document import Document
from editor.main_window import MainWindow
from editor.settings import Settings
from inference.metadata import read_recipe


@pytest.fixture(autouse=True)
def no_modal_dialogs(monkeypatch):
    """A modal question would block an offscreen test forever; tests that care override this."""
    monkeypatch.setattr(mw, "ask_unsaved", lambda parent, name, unapplied: "discard")


@pytest.fixture
def ini(tmp_path):
    return str(tmp_path / "settings.ini")


@pytest.fixture
def photo(tmp_path):
    y, x = np.mgrid[0:96, 0:128]
    pixels = np.stack([x * 2, y * 2, (x + y) % 256], -1).astype("uint8")
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def window(qtbot, ini, photo, tiny_sd_inpaint):
    settings = Settings(QSettings(ini, QSettings.Format.IniFormat))
    settings.model = str(tiny_sd_inpaint)
    settings.steps = 2
    settings.prompt = "a red apple"
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.show()
    assert win.open_path(str(photo))
    yield win
    win.bridge.shutdown()


def paint_mask(document, box=(40, 30, 70, 60)):
    document.begin_stroke()
    for x in range(box[0], box[2], 4):
        document.stroke_to(x, (box[1] + box[3]) / 2, radius=12, hardness=1.0)
    document.end_stroke()


def wait_for_results(qtbot, window, count, timeout=120_000):
    qtbot.waitUntil(lambda: len(window.history.entries()) >= count, timeout=timeout)


def test_paint_inpaint_preview_apply_and_undo(qtbot, window):
    doc = window.document
    before = doc.composite_array().copy()
    paint_mask(doc)
    assert window.settings.mode == "inpaint", "a painted mask suggests Inpaint"
    window.generate()
    wait_for_results(qtbot, window, 1)
    assert window.canvas.has_preview, "the result is previewed on the canvas"
    assert np.array_equal(doc.composite_array(), before), "previewing does not change the document"
    entry = window.history.entries()[0]
    window._apply(entry, as_new_layer=False)
    after = doc.composite_array()
    changed = np.any(after != before, axis=-1)
    assert changed.any()
    ys, xs = np.nonzero(changed)
    # Only the grown and feathered region around the painted stroke may change.
    assert xs.min() >= 40 - 12 - 4 - 8 - 1 and xs.max() <= 70 + 12 + 4 + 8
    assert "*" in window.windowTitle()
    window.actions_["undo"].trigger()
    assert np.array_equal(doc.composite_array(), before)


def test_cancel_ends_the_running_job(qtbot, window):
    window.settings.steps = 150
    paint_mask(window.document)
    with qtbot.waitSignal(window.bridge.progress, timeout=60_000):
        window.generate()
    with qtbot.waitSignal(window.bridge.finished, timeout=60_000) as finished:
        window.actions_["cancel"].trigger()
    assert finished.args[0].cancelled
    assert window.worker_label.text() == "Cancelled"
    assert window.history.entries() == []


def test_missing_model_shows_the_banner_and_keeps_the_document(qtbot, window, tmp_path):
    window.settings.model = str(tmp_path / "no-such-model")
    paint_mask(window.document)
    steps_before = window.document.undo_stack.count()
    pixels = window.document.composite_array().copy()
    window.generate()
    qtbot.waitUntil(window.banner.isVisible, timeout=60_000)
    assert "not found" in window.banner.message.text().lower()
    assert window.document.undo_stack.count() == steps_before
    assert np.array_equal(window.document.composite_array(), pixels)


def test_bad_image_shows_the_banner_and_keeps_the_document(qtbot, window, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    document = window.document
    assert not window.open_path(str(broken))
    assert window.document is document
    assert window.banner.isVisible() and "broken.png" in window.banner.message.text()


def test_inpaint_without_a_mask_explains_itself(qtbot, window):
    window.settings.mode = "inpaint"
    window.actions_["generate"].trigger()
    assert window.banner.isVisible()
    assert "mask" in window.banner.message.text().lower()


def test_save_reopen_and_export(qtbot, window, tmp_path, monkeypatch):
    paint_mask(window.document)
    window.generate()
    wait_for_results(qtbot, window, 1)
    window._apply(window.history.entries()[0], as_new_layer=True)
    target = tmp_path / "work.ora"
    monkeypatch.setattr(mw, "ask_save_path", lambda parent, suggested: str(target))
    assert window.save()
    window.wait_for_save()
    assert not window.document.modified and "*" not in window.windowTitle()
    layers = [layer.pixels.copy() for layer in window.document.layers]
    mask = window.document.mask.copy()

    assert window.open_path(str(target))
    reopened = window.document
    assert [layer.name for layer in reopened.layers][0] == "photo"
    assert all(np.array_equal(a, b.pixels) for a, b in zip(layers, reopened.layers, strict=True))
    assert np.array_equal(mask, reopened.mask)
    assert len(window.history.entries()) == 1

    png = tmp_path / "out.png"
    window.export(str(png))
    assert read_recipe(png)["job"]["kind"] == "inpaint"
    jpg = tmp_path / "out.jpg"
    window.export(str(jpg))
    assert Image.open(jpg).size == (128, 96)


def test_unsaved_changes_are_not_lost_without_asking(qtbot, window, photo, monkeypatch):
    paint_mask(window.document)
    asked = []
    monkeypatch.setattr(mw, "ask_unsaved", lambda parent, name, unapplied: asked.append(name) or "cancel")
    document = window.document
    assert not window.open_path(str(photo))
    assert asked == ["photo.png"] and window.document is document


def test_window_layout_and_settings_persist(qtbot, ini, tiny_sd_inpaint):
    settings = Settings(QSettings(ini, QSettings.Format.IniFormat))
    win = MainWindow(settings=settings, document=Document.new(64, 64))
    qtbot.addWidget(win)
    win.show()
    win.docks["history"].hide()
    settings.prompt = "kept"
    win.close()
    again = Settings(QSettings(ini, QSettings.Format.IniFormat))
    assert again.prompt == "kept" and again.window_state
    second = MainWindow(settings=again, document=Document.new(64, 64))
    qtbot.addWidget(second)
    second.show()
    assert not second.docks["history"].isVisible()
    second.bridge.shutdown()


def test_preferences_opens_once_and_its_changes_reach_the_canvas(window, qtbot):
    window.actions_["preferences"].trigger()
    dialog = window._preferences
    assert dialog.isVisible() and not dialog.isModal()
    window.actions_["preferences"].trigger()
    assert window._preferences is dialog
    dialog.opacity_slider.setValue(90)
    assert window.canvas._mask_opacity == pytest.approx(0.9)
    assert window.layers.mask_opacity_slider.value() == 90
    dialog.close()


@pytest.mark.parametrize("live", [True, False])
def test_live_preview_preference(window, live):
    from inference.jobs import Progress

    window.settings.live_preview = live
    window._on_progress(Progress(1, 1, 2, 0.1, Image.new("RGB", (16, 16), "red")))
    assert window.canvas.has_preview is live
    assert window.progress_bar.value() == 1, "progress shows either way"


def test_saving_writes_on_a_thread_while_the_window_goes_on(qtbot, window, tmp_path, monkeypatch):
    """The snapshot is taken when Save is pressed; changes made while it is written stay unsaved."""
    import threading

    from editor import ora

    release = threading.Event()
    real_write = ora.write_prepared

    def slow_write(prepared):
        release.wait(10)
        return real_write(prepared)

    monkeypatch.setattr(ora, "write_prepared", slow_write)
    target = tmp_path / "slow.ora"
    monkeypatch.setattr(mw, "ask_save_path", lambda parent, suggested: str(target))
    before = window.document.layers[0].pixels.copy()
    assert window.save() and window.saving
    assert "Saving slow.ora" in window.statusBar().currentMessage()
    window.document.layers[0].pixels[:] = 0  # the snapshot must not share these pixels
    paint_mask(window.document)  # a change while the file is written
    qtbot.wait(50)  # the event loop runs: nothing waits on the writer
    release.set()
    qtbot.waitUntil(lambda: not window.saving, timeout=10000)
    assert target.is_file() and window.document.path == str(target)
    assert window.document.modified and "*" in window.windowTitle(), "the mask came after the snapshot"
    reopened, _ = ora.load_ora(target)
    assert np.array_equal(reopened.layers[0].pixels, before)


def test_a_failed_save_in_the_background_shows_the_banner(qtbot, window, tmp_path, monkeypatch):
    from editor import ora
    from inference.metadata import SaveError

    def full_disk(prepared):
        raise SaveError("Could not save full.ora: the disk is full.", "ENOSPC")

    monkeypatch.setattr(ora, "write_prepared", full_disk)
    monkeypatch.setattr(mw, "ask_save_path", lambda parent, suggested: str(tmp_path / "full.ora"))
    paint_mask(window.document)
    assert window.save()
    window.wait_for_save()
    assert window.banner.isVisible() and "disk is full" in window.banner.message.text()
    assert window.document.modified and not (tmp_path / "full.ora").exists()


def test_closing_waits_for_a_save_in_progress(qtbot, window, tmp_path, monkeypatch):
    target = tmp_path / "closing.ora"
    monkeypatch.setattr(mw, "ask_save_path", lambda parent, suggested: str(target))
    assert window.save()
    window.close()
    assert not window.saving and target.is_file()


def test_a_generated_image_keeps_its_shape_in_a_wider_selection(window):
    """The target is decided when the job is built and fitted when the result comes back."""
    from inference.jobs import ModelRef, Result

    window.settings.mode = "generate"
    window.document.set_selection((10, 20, 110, 60))
    (job,) = window.prompt.build_request(window.document, ModelRef("builtin")).jobs[:1]
    window._on_finished(Result(7, job, image=Image.new("RGBA", (128, 128), (200, 30, 30, 255))))
    entry = window.history.current()
    window._apply(entry, as_new_layer=True)
    assert window.document.layers[-1].box == (40, 20, 80, 60), "square in a 100x40 box: centred, shape kept"


def test_every_icon_the_ui_names_is_found(qtbot):
    """Icons come from inference.assets (the checkout's assets/ or the wheel's quickbrush_assets);
    a missing file would give a blank button, not an error, so look for each one."""
    import re
    from pathlib import Path

    from editor import theme

    source = "\n".join(p.read_text() for p in Path(theme.__file__).parent.rglob("*.py"))
    names = set(re.findall(r"\bicon\(\"([a-z0-9-]+)\"\)", source))
    assert len(names) >= 4
    for name in sorted(names):
        assert not theme.icon(name).isNull(), name


# The credit each training source needs in the About box (CC-BY asks for it; the rest is courtesy).
CREDITS = {"noto": "Noto Color Emoji", "twemoji": "Twemoji", "fluent-flat": "Fluent Emoji",
           "fluent-modern": "Fluent Emoji", "tabler": "Tabler Icons", "lucide": "Lucide", "openclipart": "Openclipart"}


def test_the_about_box_credits_every_source_the_shipped_model_learnt_from():
    import json

    from inference.assets import assets_dir

    config = json.loads((assets_dir() / "models" / "builtin" / "quickbrush_builtin.json").read_text())
    for source in config["data_sources"]:
        assert CREDITS[source] in mw.ABOUT_TEXT, source
