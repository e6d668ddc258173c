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


# --------------------------------------------------------------------------- issue 16's defects


def _fake_result(window, seed=21, job_id=900):
    """A finished Generate as if the worker gave it: built from the window's own request."""
    from inference.jobs import ModelRef, Result

    window.settings.mode = "generate"
    window.settings.seed, window.settings.seed_locked = seed, True
    (job,) = window.prompt.build_request(window.document, ModelRef("builtin")).jobs[:1]
    result = Result(job_id, job, image=Image.new("RGBA", (32, 32), (200, 30, 30, 255)))
    window._on_finished(result)
    return window.history.entries()[-1]


def test_new_starts_untitled_with_no_folder_of_the_last_document(qtbot, window, monkeypatch):
    """Defect 4: New kept the opened photo's name in the title and the Save As suggestion."""
    assert window.windowTitle().startswith("photo.png")
    monkeypatch.setattr(mw, "ask_new_size", lambda parent, default: (64, 64))
    window.new_document()
    assert window.windowTitle().startswith("Untitled")
    suggested = []
    monkeypatch.setattr(mw, "ask_save_path", lambda parent, s: suggested.append(s) or None)
    window.save_as()
    assert suggested == ["Untitled.ora"]


def test_export_takes_the_documents_own_recipe(qtbot, window, tmp_path, monkeypatch):
    """Defect 3: the recipe lived in the window, leaked into the next document, and was lost on reopen."""
    entry = _fake_result(window, seed=21)
    window._apply(entry, as_new_layer=True)
    window.export(str(tmp_path / "a.png"))
    assert read_recipe(tmp_path / "a.png")["job"]["seed"] == 21
    window.document.undo_stack.undo()  # un-applied: the picture no longer holds that result
    window.export(str(tmp_path / "b.png"))
    assert read_recipe(tmp_path / "b.png") is None
    window.document.undo_stack.redo()

    monkeypatch.setattr(mw, "ask_save_path", lambda parent, s: str(tmp_path / "art.ora"))
    assert window.save()
    window.wait_for_save()
    monkeypatch.setattr(mw, "ask_new_size", lambda parent, default: (64, 64))
    window.new_document()
    window.export(str(tmp_path / "c.png"))
    assert read_recipe(tmp_path / "c.png") is None, "a new document has no recipe of the last one"
    assert window.open_path(str(tmp_path / "art.ora"))
    window.export(str(tmp_path / "d.png"))
    assert read_recipe(tmp_path / "d.png")["job"]["seed"] == 21, "the recipe survives a reopen"


def test_quitting_with_unapplied_results_offers_save_discard_cancel(qtbot, window, tmp_path, monkeypatch):
    """Defect 2: unapplied results vanished on quit without a word (only Discard and Cancel)."""
    window.document.mark_saved()
    _fake_result(window)
    assert window.document.needs_saving and "*" in window.windowTitle()
    asked = []
    monkeypatch.setattr(mw, "ask_unsaved", lambda parent, name, unapplied: asked.append(unapplied) or "cancel")
    assert not window.close() and window.isVisible(), "Cancel keeps the window and its results"
    assert asked == [1]
    target = tmp_path / "kept.ora"
    monkeypatch.setattr(mw, "ask_unsaved", lambda parent, name, unapplied: "save")
    monkeypatch.setattr(mw, "ask_save_path", lambda parent, s: str(target))
    assert window.close()
    from editor.ora import load_ora

    _doc, records = load_ora(target)
    assert len(records) == 1 and records[0]["applied"] is None, "the unapplied result was saved"


def test_cancel_all_stops_the_queue_and_loading_shows_only_when_loading(qtbot, window):
    """Defect 6: Esc cancelled only the running job, and every job said "loading model…"."""
    texts = []
    real = window.worker_label.setText
    window.worker_label.setText = lambda text: (texts.append(text), real(text))[1]
    window.settings.mode = "vary"
    window.settings.variations = 1
    window.generate()
    wait_for_results(qtbot, window, 1)
    assert any("loading model" in t for t in texts), "the first job loads the model"
    texts.clear()
    window.settings.variations = 6
    finished = []
    window.bridge.finished.connect(finished.append)
    window.generate()
    window.cancel_all()
    qtbot.waitUntil(lambda: len(finished) == 6, timeout=60_000)
    assert all(r.cancelled for r in finished[1:]), "the queued ones never ran"
    assert not any("loading model" in t for t in texts), "the model was loaded already"
    assert window.actions_["cancel_all"].shortcut().toString() == "Shift+Esc"


def test_after_generating_from_the_prompt_single_letter_shortcuts_reach_the_canvas(qtbot, window):
    """Defect 7: after typing a prompt and Ctrl+Enter, B, E, H and X typed into the prompt box."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window.settings.mode = "vary"
    window.canvas.tool_state.set_tool("eraser")
    edit = window.prompt.prompt_edit
    edit.setFocus()
    QTest.keyClicks(edit, " sky")
    text = edit.toPlainText()
    QTest.keyClick(edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert window.canvas.hasFocus()
    QTest.keyClick(window.canvas, Qt.Key.Key_B)
    assert window.canvas.tool_state.tool == "brush" and edit.toPlainText() == text
    wait_for_results(qtbot, window, 1)


def test_a_failed_job_puts_the_model_status_back(qtbot, window):
    from inference.jobs import BadInput, Generate, Result

    window.models.set_status("cpu · lcm")
    job = Generate(prompt="x")
    window._on_started(1, job)
    assert window.models.status() == "Running generate"
    window._on_finished(Result(1, job, error=BadInput("Nothing to edit.")))
    assert window.models.status() == "cpu · lcm" and window.worker_label.text() == "Failed"


# --------------------------------------------------------------------------- issue 17: runtimes


def test_a_first_use_preparation_says_what_it_does(qtbot, window):
    from inference.jobs import Generate, Progress

    job = Generate(prompt="x")
    window._on_started(1, job)
    window._on_progress(Progress(1, 0, 1, 2.0, stage="prepare", text="converting the model for OpenVINO (once)"))
    assert window.worker_label.text() == "Converting the model for OpenVINO (once)…"
    assert window.progress_bar.isVisible() and window.progress_bar.maximum() == 0, "busy, not a frozen bar"
    assert "Preparing the model" in window.models.status()
    window._on_progress(Progress(1, 1, 2, 2.5))
    assert window.worker_label.text() == "Generating"


@pytest.mark.slow
def test_fast_decode_then_refine_lands_where_the_first_result_did(qtbot, ini, tiny_sd_fast):
    settings = Settings(QSettings(ini, QSettings.Format.IniFormat))
    settings.model, settings.steps, settings.prompt = str(tiny_sd_fast), 2, "a red apple"
    settings.runtime, settings.fast_decode, settings.mode = "torch", True, "generate"
    settings.seed, settings.seed_locked = 11, True
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.show()
    try:
        submitted = []
        real_submit = win.bridge.submit
        win.bridge.submit = lambda job: (submitted.append(job), real_submit(job))[1]
        win.generate()
        wait_for_results(qtbot, win, 1)
        (fast,) = win.history.entries()
        assert submitted[0].runtime == "torch" and submitted[0].decoder == "tiny"
        assert fast.job.decoder == "tiny" and fast.can_refine
        assert win.models.runtime_text().startswith("PyTorch fp32 · ") and "an image" in win.models.runtime_text()
        win.history.select(fast)
        assert win.history.refine_action.isEnabled()
        win.history.refine_action.trigger()
        wait_for_results(qtbot, win, 2)
        refined = win.history.entries()[-1]
        assert submitted[-1].kind == "refine" and submitted[-1].target == fast.target
        assert refined.refined and refined.mode_label == "Generate · refined"
        assert refined.target == fast.target and refined.image.size == fast.image.size
        assert refined.job.decoder == "full" and refined.job.seed == fast.job.seed
        assert not np.array_equal(np.asarray(refined.image), np.asarray(fast.image)), "decoded by the full VAE"
        assert win.history.current() is refined and not win.history.refine_action.isEnabled()
        win._apply(refined, as_new_layer=True)
        assert win.document.history.is_applied(refined)
    finally:
        win.bridge.shutdown()
