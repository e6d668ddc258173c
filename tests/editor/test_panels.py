"""The dock panels: what a designer sees and what the main window gets from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QCoreApplication, QEvent, QPoint, QSettings, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette

from editor.document import Document
from editor.panels import HistoryPanel, LayersPanel, ModelPanel, PromptPanel, entry_from_dict, entry_to_dict
from editor.panels import models as models_module
from editor.panels.history import RECIPE_MIME
from editor.panels.prompt import NO_MARGINS, NO_MASK
from editor.settings import Settings
from inference.jobs import MAX_SEED, BadInput, Edit, Generate, Inpaint, Job, ModelRef, Outpaint, Result, Vary
from inference.metadata import format_parameters

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
MODEL = ModelRef("builtin")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def settings(qapp, tmp_path):
    return Settings(QSettings(str(tmp_path / "quickbrush.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def doc(qapp):
    document = Document.new(64, 48, fill=(40, 120, 200))
    yield document
    document.deleteLater()


@pytest.fixture
def prompt(qtbot, settings):
    panel = PromptPanel(settings)
    qtbot.addWidget(panel)
    return panel


def test_outpaint_margins_persist_like_every_other_field(prompt, settings, qtbot, tmp_path):
    prompt.set_margins(64, 0, 128, 32)
    assert (settings.outpaint_left, settings.outpaint_right, settings.outpaint_bottom) == (64, 128, 32)
    again = PromptPanel(Settings(QSettings(str(tmp_path / "quickbrush.ini"), QSettings.Format.IniFormat)))
    qtbot.addWidget(again)
    assert again.margins() == (64, 0, 128, 32)
    settings.outpaint_top = 256  # and a setting changed elsewhere shows in the spin box
    assert prompt.margins() == (64, 256, 128, 32)


def paint_mask(document: Document, points=((20, 20), (30, 24)), radius=5.0) -> None:
    document.begin_stroke()
    for x, y in points:
        document.stroke_to(x, y, radius)
    document.end_stroke()


def make_result(prompt="a red fox in snow", seed=7, kind=Generate, size=(64, 64), colour=(200, 80, 40),
                job_id=1, **fields) -> Result:
    job = kind(prompt=prompt, seed=seed, steps=4, guidance=1.0, model=ModelRef("builtin", sha256="ab" * 32), **fields)
    image = Image.new("RGB", size, colour)
    return Result(job_id, job, image=image, timings={"total": 1.25, "denoise": 1.0},
                  model_info={"name": "builtin"})


# --------------------------------------------------------------------------- prompt panel


def test_prompt_widgets_and_settings_stay_in_sync(prompt, settings, qtbot):
    # Settings -> widgets
    settings.prompt = "a lighthouse at dusk"
    settings.mode = "vary"
    settings.steps = 6
    settings.guidance = 2.5
    settings.strength = 0.35
    settings.variations = 3
    settings.seed = 4_000_000_000  # past a QSpinBox's int range
    settings.seed_locked = True
    assert prompt.prompt_edit.toPlainText() == "a lighthouse at dusk"
    assert prompt.mode_combo.currentData() == "vary"
    assert prompt.steps_spin.value() == 6 and prompt.guidance_spin.value() == 2.5
    assert prompt.strength_spin.value() == pytest.approx(0.35)
    assert prompt.variations_spin.value() == 3
    assert prompt.seed_spin.text() == "4000000000"
    assert prompt.seed_lock_button.isChecked()

    # Widgets -> settings
    prompt.prompt_edit.setPlainText("a cat on a windowsill")
    prompt.negative_edit.setPlainText("blurry")
    prompt.mode_combo.setCurrentIndex(prompt.mode_combo.findData("edit"))
    prompt.steps_spin.setValue(0)
    prompt.guidance_spin.setValue(prompt.guidance_spin.minimum())
    prompt.image_guidance_spin.setValue(2.0)
    prompt.variations_spin.setValue(5)
    prompt.seed_lock_button.click()
    assert settings.prompt == "a cat on a windowsill" and settings.negative_prompt == "blurry"
    assert settings.mode == "edit"
    assert settings.steps == 0 and prompt.steps_spin.text() == "Model default"
    assert settings.guidance == -1.0 and prompt.guidance_spin.text() == "Model default"
    assert settings.image_guidance == 2.0 and settings.variations == 5
    assert settings.seed_locked is False and prompt.seed_lock_button.text() == "Lock"

    # Size presets: a preset, then a custom size.
    settings.mode = "generate"
    prompt.size_combo.setCurrentIndex(prompt.size_combo.findData("512x768"))
    prompt.size_combo.activated.emit(prompt.size_combo.currentIndex())
    assert settings.size_preset == "512x768"
    custom = prompt.size_combo.findData("custom")
    prompt.size_combo.setCurrentIndex(custom)
    prompt.size_combo.activated.emit(custom)
    assert settings.size_preset == "custom:512x768"
    prompt.width_spin.setValue(640)
    assert settings.size_preset == "custom:640x768"
    settings.size_preset = "custom:320x200"
    assert (prompt.width_spin.value(), prompt.height_spin.value()) == (320, 200)


def test_fields_follow_the_mode(prompt, settings):
    prompt.show()
    visible = {
        "generate": {"size"},
        "vary": {"strength"},
        "inpaint": {"inpaint_strength"},
        "outpaint": {"margins"},
        "edit": {"image_guidance"},
    }
    rows = {"size": prompt.size_combo, "strength": prompt.strength_spin,
            "inpaint_strength": prompt.inpaint_strength_spin, "margins": prompt.margins_row,
            "image_guidance": prompt.image_guidance_spin}
    for mode, shown in visible.items():
        settings.mode = mode
        assert {name for name, widget in rows.items() if prompt.form.isRowVisible(widget)} == shown, mode
    assert prompt.prompt_label.text() == "Instruction"


def _jobs_and_box(request):
    assert all(job.target is request.target for job in request.jobs), "one target for all variations"
    return request.jobs, request.box


def test_build_jobs_for_each_mode(prompt, settings, doc):
    settings.prompt = "  a small boat  "
    settings.negative_prompt = "text"
    settings.steps = 3
    settings.guidance = 1.5
    settings.strength = 0.4
    settings.seed = 11
    settings.seed_locked = True

    settings.mode = "generate"
    settings.size_preset = "native"
    (job,), box = _jobs_and_box(prompt.build_request(doc, MODEL))
    assert isinstance(job, Generate) and (job.width, job.height) == (None, None)
    assert box == (0, 0, 64, 48) and job.target.fit == "centre"  # own size, in the middle
    assert (job.prompt, job.negative_prompt, job.steps, job.guidance, job.seed) == ("a small boat", "text", 3, 1.5, 11)
    assert job.model == MODEL
    settings.size_preset = "768x512"
    assert (prompt.build_jobs(doc, MODEL)[0].width, prompt.build_jobs(doc, MODEL)[0].height) == (768, 512)

    settings.mode = "vary"
    (job,), box = _jobs_and_box(prompt.build_request(doc, MODEL))
    assert isinstance(job, Vary) and job.image.size == (64, 48) and job.strength == pytest.approx(0.4)
    assert np.array_equal(np.asarray(job.image), np.asarray(doc.composite())) and box == (0, 0, 64, 48)

    settings.mode = "edit"
    settings.image_guidance = 1.8
    (job,) = prompt.build_jobs(doc, MODEL)
    assert isinstance(job, Edit) and job.image_guidance == pytest.approx(1.8)

    settings.mode = "inpaint"
    paint_mask(doc)
    (job,), box = _jobs_and_box(prompt.build_request(doc, MODEL))
    assert isinstance(job, Inpaint) and job.mask.size == job.image.size == (64, 48)
    assert job.strength == pytest.approx(1.0)  # its own strength, not Vary's 0.4
    settings.inpaint_strength = 0.75
    assert prompt.build_jobs(doc, MODEL)[0].strength == pytest.approx(0.75) and settings.strength == pytest.approx(0.4)
    assert np.array_equal(np.asarray(job.mask), doc.mask) and box == (0, 0, 64, 48)
    assert job.mask_options.crop_padding is not None
    assert job.target.composite == "masked" and job.target.mask.size == (64, 48)
    assert job.target.layer == doc.active_layer.id

    # A selection is the region to work in: image and mask cropped to it, results go back there.
    doc.set_selection((8, 4, 48, 40))
    (job,), box = _jobs_and_box(prompt.build_request(doc, MODEL))
    assert job.image.size == (40, 36) and box == (8, 4, 48, 40)
    assert np.array_equal(np.asarray(job.mask), doc.mask[4:40, 8:48])
    assert job.mask_options.crop_padding is None

    # Outpaint: margins from a selection reaching past the edges ...
    settings.mode = "outpaint"
    doc.set_selection((-16, 0, 80, 48))
    (job,), box = _jobs_and_box(prompt.build_request(doc, MODEL))
    assert isinstance(job, Outpaint) and (job.left, job.top, job.right, job.bottom) == (16, 0, 16, 0)
    assert box == (-16, 0, 80, 48) and job.image.size == (64, 48)
    # ... or from the spin boxes when the selection stays inside.
    doc.set_selection(None)
    prompt.set_margins(0, 32, 0, 0)
    (job,), box = _jobs_and_box(prompt.build_request(doc, MODEL))
    assert (job.left, job.top, job.right, job.bottom) == (0, 32, 0, 0) and box == (0, -32, 64, 48)


def test_impossible_combinations_say_what_to_do(prompt, settings, doc):
    settings.mode = "inpaint"
    with pytest.raises(BadInput) as info:
        prompt.build_jobs(doc, MODEL)
    assert str(info.value) == NO_MASK
    paint_mask(doc, points=((10, 10),))
    doc.set_selection((40, 30, 60, 46))  # the mask is elsewhere
    with pytest.raises(BadInput, match="outside the selection"):
        prompt.build_jobs(doc, MODEL)
    settings.mode = "outpaint"
    doc.set_selection(None)
    with pytest.raises(BadInput) as info:
        prompt.build_jobs(doc, MODEL)
    assert str(info.value) == NO_MARGINS
    settings.mode = "edit"
    settings.prompt = ""
    with pytest.raises(BadInput, match="Say what to change"):
        prompt.build_jobs(doc, MODEL)


def test_variations_locked_count_up_unlocked_draw_and_show_fresh_seeds(prompt, settings, doc):
    settings.variations = 4
    settings.seed = MAX_SEED - 1
    settings.seed_locked = True
    jobs = prompt.build_jobs(doc, MODEL)
    assert [job.seed for job in jobs] == [MAX_SEED - 1, MAX_SEED, 0, 1]
    assert settings.seed == MAX_SEED - 1

    settings.seed_locked = False
    first = prompt.build_jobs(doc, MODEL)
    second = prompt.build_jobs(doc, MODEL)
    seeds = [job.seed for job in first + second]
    assert len(set(seeds)) == 8  # all different (a collision is a 1 in ~10^8 event)
    assert settings.seed == second[0].seed  # the panel shows the first seed of the last generate
    assert prompt.seed_spin.text() == str(second[0].seed)
    for job in second:  # recorded in the jobs, so the recipe reproduces the image
        assert Job.from_dict(job.to_dict(), image=None).seed == job.seed

    prompt.new_seed_button.click()
    assert prompt.seed_spin.text() == str(settings.seed)


def test_painting_a_mask_switches_generate_to_inpaint(prompt, settings, doc):
    settings.mode = "generate"
    doc.mask_changed.connect(lambda _rect: prompt.on_mask_changed(doc.has_mask()))
    paint_mask(doc)
    assert settings.mode == "inpaint" and prompt.mode_combo.currentData() == "inpaint"
    doc.undo_stack.undo()  # no mask any more: back to what the designer had
    assert settings.mode == "generate"
    # A mode the designer picks stays picked.
    settings.mode = "vary"
    paint_mask(doc)
    assert settings.mode == "vary"
    prompt.suggest_mode(doc)
    assert settings.mode == "vary"


def test_typing_a_seed_locks_it(prompt, settings, qtbot):
    prompt.show()
    qtbot.waitExposed(prompt)
    prompt.activateWindow()
    prompt.seed_spin.setFocus()
    qtbot.waitUntil(prompt.seed_spin.hasFocus, timeout=2000)
    assert not settings.seed_locked
    prompt.seed_spin.clear()
    qtbot.keyClicks(prompt.seed_spin, "42")
    assert settings.seed == 42 and settings.seed_locked


def test_a_closed_panel_no_longer_listens_to_settings(qapp, settings):
    panel = PromptPanel(settings)
    panel.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    settings.prompt = "still fine"
    settings.mode = "edit"


def test_generate_and_cancel_buttons(prompt, qtbot):
    with qtbot.waitSignal(prompt.generate_requested, timeout=1000):
        prompt.generate_button.click()
    assert not prompt.cancel_button.isEnabled()
    prompt.set_busy(True)
    assert prompt.cancel_button.isEnabled() and prompt.is_busy()
    with qtbot.waitSignal(prompt.cancel_requested, timeout=1000):
        prompt.cancel_button.click()
    prompt.set_busy(False)
    assert not prompt.cancel_button.isEnabled() and prompt.generate_button.text() == "Generate"


# --------------------------------------------------------------------------- history panel


@pytest.fixture
def history(qtbot):
    panel = HistoryPanel()
    qtbot.addWidget(panel)
    return panel


def test_history_add_preview_apply_discard_rerun(history, qtbot):
    first = history.add_result(make_result(seed=1), box=(0, 0, 64, 64))
    second = history.add_result(make_result(seed=2, colour=(30, 160, 90), job_id=2))
    assert history.add_result(Result(3, Generate(prompt="x"), image=None)) is None  # failed: not history
    assert history.entries() == [first, second]
    assert first.box == (0, 0, 64, 64) and second.box is None
    assert first.thumbnail.width() <= 192 and not first.thumbnail.isNull()
    assert history.model.index(0).data() == "Generate · seed 2"  # newest first

    assert not history.apply_action.isEnabled()
    with qtbot.waitSignal(history.preview_requested, timeout=1000) as preview:
        history.view.setCurrentIndex(history.model.index(1))
    assert preview.args == [first]
    assert history.apply_action.isEnabled()

    with qtbot.waitSignal(history.apply_requested, timeout=1000) as applied:
        history.apply_action.trigger()
    assert applied.args == [first, False]
    with qtbot.waitSignal(history.apply_requested, timeout=1000) as applied:
        history.apply_layer_action.trigger()
    assert applied.args == [first, True]

    with qtbot.waitSignal(history.rerun_requested, timeout=1000) as rerun:
        history.rerun_action.trigger()
    assert rerun.args == [first]
    again = first.job_with_new_seed()
    assert again.seed != first.seed and again.replace(seed=first.seed) == first.job

    with qtbot.waitSignal(history.discarded, timeout=1000) as gone:
        history.discard_action.trigger()
    assert gone.args == [first] and history.entries() == [second]
    assert history.current() is second  # the neighbour is selected and previewed
    with qtbot.waitSignal(history.preview_cleared, timeout=1000):
        history.discard(second)
    assert history.entries() == [] and not history.apply_action.isEnabled()


def test_history_shows_transparent_results_over_a_checkerboard(history, qtbot):
    """The built-in model draws on a transparent background: its thumbnail must not read as black."""
    import dataclasses

    clear = dataclasses.replace(make_result(seed=1), image=Image.new("RGBA", (64, 64), (0, 0, 0, 0)))
    history.add_result(clear)
    history.resize(320, 200)
    history.show()
    qtbot.waitExposed(history.view)
    shot = history.view.viewport().grab().toImage()
    from editor.panels.history import THUMB, HistoryDelegate

    pad = HistoryDelegate.PAD
    colours = {shot.pixelColor(x, y).getRgb()[:3] for x in range(pad + 4, pad + THUMB - 4, 4)
               for y in range(pad + 4, pad + THUMB - 4, 4)}
    assert colours == {(200, 200, 200), (150, 150, 150)}


@pytest.fixture
def clean_clipboard(qapp):
    """Qt's offscreen clipboard crashes at exit if it still owns mime data: empty it after the test."""
    yield QGuiApplication.clipboard()
    QGuiApplication.clipboard().clear()


def test_copy_recipe_puts_parameters_and_exact_json_on_the_clipboard(history, clean_clipboard):
    result = make_result(prompt="a blue teapot, studio light", seed=123)
    entry = history.add_result(result)
    history.select(entry)
    history.copy_action.trigger()
    mime = QGuiApplication.clipboard().mimeData()
    assert mime.text() == format_parameters(result.job, size=(64, 64), model_info=result.model_info)
    assert "Seed: 123" in mime.text()
    payload = json.loads(bytes(mime.data(RECIPE_MIME)).decode("utf-8"))
    assert payload["job"] == json.loads(json.dumps(result.job.to_dict()))
    assert Job.from_dict(payload["job"]) == result.job


def test_history_entries_round_trip_through_dicts(history):
    inpaint = make_result(kind=Inpaint, image=Image.new("RGB", (64, 48)), mask=Image.new("L", (64, 48), 255))
    entry = history.add_result(inpaint, box=(0, 0, 64, 48))
    data = json.loads(json.dumps(entry_to_dict(entry)))  # JSON-safe
    back = entry_from_dict(data, image=inpaint.image)
    assert back.job == entry.job and back.box == entry.box and back.id == entry.id
    assert back.created == pytest.approx(entry.created) and back.result.timings == entry.result.timings
    assert not back.has_inputs and back.job.image.size == (64, 48)  # placeholders of the recorded size
    with pytest.raises(BadInput):
        back.job_with_new_seed()
    history.clear()
    history.add_entry(back)
    assert history.entries() == [back]
    fresh = history.add_result(make_result())
    assert fresh.id > back.id


def test_history_saves_and_loads_with_the_document(history, qtbot, tmp_path, doc):
    from editor.ora import load_ora, save_ora

    inpaint = make_result(kind=Inpaint, image=Image.new("RGB", (64, 48), (9, 9, 9)),
                          mask=Image.new("L", (64, 48), 255), size=(64, 48))
    first = history.add_result(inpaint, box=(0, 0, 64, 48))
    second = history.add_result(make_result(seed=99, job_id=2))
    save_ora(tmp_path / "doc.ora", doc, history=history.records())
    _doc, records = load_ora(tmp_path / "doc.ora")
    other = HistoryPanel()
    qtbot.addWidget(other)
    loaded = other.load_records(records)
    assert [e.id for e in loaded] == [first.id, second.id]
    assert [e.job for e in loaded] == [first.job, second.job] and loaded[0].box == (0, 0, 64, 48)
    assert loaded[0].has_inputs and loaded[0].job_with_new_seed().image.getpixel((0, 0)) == (9, 9, 9)
    assert np.array_equal(np.asarray(loaded[1].image), np.asarray(second.image))
    assert not loaded[1].thumbnail.isNull() and loaded[0].created == pytest.approx(first.created)
    _doc.deleteLater()


def test_refine_is_offered_only_for_a_fast_decoded_result_and_lands_where_it_did(history, qtbot, tmp_path, doc):
    from editor.ora import load_ora, save_ora
    from inference.jobs import Refine, Target

    target = Target((10, 6, 42, 30), layer=3, fit="contain")
    latents = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    fast = make_result(seed=5, decoder="tiny", target=target)
    fast = Result(fast.job_id, fast.job, image=fast.image, timings=fast.timings, model_info=fast.model_info,
                  latents=latents)
    full = history.add_result(make_result(seed=6, job_id=2, target=target))
    entry = history.add_result(fast)
    history.select(full)
    assert not history.refine_action.isEnabled() and "Fast decode" in history.refine_action.toolTip()
    assert "in memory" in history.refine_action.toolTip(), "says why a reopened result cannot be refined"
    history.select(entry)
    assert history.refine_action.isEnabled() and entry.can_refine
    assert "Refine decodes it in full" in history.model.index(0).data(Qt.ItemDataRole.ToolTipRole)

    with qtbot.waitSignal(history.refine_requested, timeout=1000) as asked:
        history.refine_action.trigger()
    assert asked.args == [entry]
    job = entry.refine_job()
    assert isinstance(job, Refine) and job.latents is latents and job.decoder == "full"
    assert job.target == entry.target == target and job.source == entry.job and job.seed == 5
    with pytest.raises(BadInput):
        full.refine_job()

    # What the worker gives back for it: a Refine job, the same picture decoded in full.
    resolved = job.replace(source=entry.job.replace(decoder="tiny"))
    refined = history.add_result(Result(3, resolved, image=Image.new("RGB", (64, 64), (1, 2, 3)),
                                        timings={"load": 0.0, "decode": 0.2, "total": 0.2},
                                        model_info={"path": "PyTorch fp32"}))
    assert refined.mode_label == "Generate · refined" and refined.refined
    assert history.model.index(0).data() == "Generate · refined · seed 5"
    assert refined.target == target and refined.box == target.box, "it lands exactly where the first did"
    assert refined.job.kind == "generate" and refined.job.decoder == "full", "its recipe reproduces it"
    assert refined.job_with_new_seed().kind == "generate"
    history.select(refined)
    assert not history.refine_action.isEnabled() and "decoded in full already" in history.refine_action.toolTip()

    # Saved and reopened: still labelled refined; the fast one's latents stayed in memory only.
    save_ora(tmp_path / "doc.ora", doc, history=history.records())
    _doc, records = load_ora(tmp_path / "doc.ora")
    loaded = HistoryPanel()
    qtbot.addWidget(loaded)
    back = loaded.load_records(records)
    assert [e.mode_label for e in back] == ["Generate", "Generate", "Generate · refined"]
    assert not any(e.can_refine for e in back)
    _doc.deleteLater()


# --------------------------------------------------------------------------- layers panel


@pytest.fixture
def layered(doc):
    doc.apply_result(Image.new("RGBA", (32, 24), (250, 200, 0, 255)), (4, 4), as_new_layer=True, name="Sun")
    doc.undo_stack.clear()
    return doc


def test_layers_panel_lists_layers_top_first_and_toggles_visibility_with_undo(qtbot, settings, layered):
    panel = LayersPanel(layered, settings)
    qtbot.addWidget(panel)
    names = [panel.list.item(row).text() for row in range(panel.list.count())]
    assert names == ["Sun", "Background"]
    assert panel.list.currentRow() == 0  # the active layer (the new one) is selected

    panel.show()
    qtbot.waitExposed(panel)
    background = panel.list.item(1)
    background.setCheckState(Qt.CheckState.Unchecked)
    assert layered.undo_stack.count() == 1 and not layered.layers[0].visible
    layered.undo_stack.undo()
    assert layered.layers[0].visible and panel.list.item(1).checkState() == Qt.CheckState.Checked

    # A click on the eye hides the layer, as one undo step, without selecting the row.
    rect = panel.list.visualItemRect(panel.list.item(1))
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(rect.left() + 12, rect.center().y()))
    assert not layered.layers[0].visible and layered.undo_stack.index() == 1 and panel.list.currentRow() == 0
    layered.undo_stack.undo()
    assert layered.layers[0].visible

    panel.list.item(0).setText("Sunny")  # what the name editor does after a double-click
    assert layered.layers[1].name == "Sunny" and layered.undo_stack.count() == 1

    panel.list.setCurrentRow(1)
    assert layered.active_layer is layered.layers[0]
    panel.up_button.click()
    assert [layer.name for layer in layered.layers] == ["Sunny", "Background"]
    assert [panel.list.item(row).text() for row in range(2)] == ["Background", "Sunny"]
    assert panel.list.currentRow() == 0 and not panel.up_button.isEnabled()
    panel.remove_button.click()
    assert [layer.name for layer in layered.layers] == ["Sunny"] and not panel.remove_button.isEnabled()
    layered.undo_stack.undo()
    assert panel.list.count() == 2


def test_layer_opacity_drag_is_one_undo_step(qtbot, settings, layered):
    panel = LayersPanel(layered, settings)
    qtbot.addWidget(panel)
    sun = layered.active_layer
    before = layered.undo_stack.count()
    slider = panel.opacity_slider
    assert slider.value() == 100
    slider.setSliderDown(True)  # pressed: a drag begins
    for value in (90, 70, 45):
        slider.setValue(value)
    slider.setSliderDown(False)
    assert sun.opacity == pytest.approx(0.45) and panel.opacity_value.text() == "45 %"
    assert layered.undo_stack.count() == before + 1
    slider.setSliderDown(True)  # a second drag is a second step
    slider.setValue(20)
    slider.setSliderDown(False)
    assert layered.undo_stack.count() == before + 2
    layered.undo_stack.undo()
    assert sun.opacity == pytest.approx(0.45) and slider.value() == 45
    layered.undo_stack.undo()
    assert sun.opacity == 1.0 and slider.value() == 100


def test_mask_row_signals_visibility_and_binds_opacity(qtbot, settings, layered):
    panel = LayersPanel(layered, settings)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.mask_visibility_changed, timeout=1000) as shown:
        panel.mask_check.click()
    assert shown.args == [False]
    with qtbot.assertNotEmitted(panel.mask_visibility_changed):
        panel.set_mask_visible(True)
    assert panel.mask_visible()
    settings.mask_opacity = 0.3
    assert panel.mask_opacity_slider.value() == 30 and panel.mask_opacity_value.text() == "30 %"
    panel.mask_opacity_slider.setValue(75)
    assert settings.mask_opacity == pytest.approx(0.75)

    other = Document.new(16, 16)
    panel.set_document(other)
    assert [panel.list.item(row).text() for row in range(panel.list.count())] == ["Background"]
    layered.set_layer_visible(0, False)  # the old document no longer reaches the panel
    assert panel.list.item(0).checkState() == Qt.CheckState.Checked
    other.deleteLater()


# --------------------------------------------------------------------------- model panel


@pytest.fixture
def models_folder(tmp_path, monkeypatch, tiny_sd):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copytree(tiny_sd, folder / "tiny-sd")
    monkeypatch.setenv("QUICKBRUSH_MODELS", str(folder))
    monkeypatch.setattr("inference.models.store.builtin_dir", lambda: tmp_path / "no-builtin")
    monkeypatch.setattr("inference.models.store._hub_cache_models", lambda: [])
    return folder


def test_model_panel_lists_installed_models_and_gives_a_model_ref(qtbot, settings, models_folder, monkeypatch):
    monkeypatch.setattr(models_module, "available_devices", lambda: ["cpu", "cuda"])
    panel = ModelPanel(settings)
    qtbot.addWidget(panel)
    [info] = panel.models()
    assert info.name == "tiny-sd" and info.task == "text2img"
    assert panel.model_combo.currentText() == "tiny-sd — text to image"
    assert settings.model == ""  # nothing chosen: the default (first installed) model
    assert panel.model_ref() == ModelRef(str(models_folder / "tiny-sd"))

    panel.refresh_devices()
    assert panel.devices() == ["auto", "cpu", "cuda"]
    panel.device_combo.setCurrentIndex(2)
    assert settings.device == "cuda"
    settings.device = "cpu"
    assert panel.device_combo.currentData() == "cpu"

    # Browse...: the dialog goes through a function tests replace.
    chosen = models_folder.parent / "elsewhere" / "model.safetensors"
    monkeypatch.setattr(models_module, "choose_model_path", lambda parent: str(chosen))
    browse = panel.model_combo.findData(models_module.BROWSE)
    panel.model_combo.setCurrentIndex(browse)
    panel.model_combo.activated.emit(browse)
    assert settings.model == str(chosen) and panel.model_ref().source == str(chosen)
    assert panel.model_combo.currentData() == str(chosen)
    monkeypatch.setattr(models_module, "choose_model_path", lambda parent: None)  # cancelled: nothing changes
    browse = panel.model_combo.findData(models_module.BROWSE)
    panel.model_combo.setCurrentIndex(browse)
    panel.model_combo.activated.emit(browse)
    assert settings.model == str(chosen) and panel.model_combo.currentData() == str(chosen)

    first = panel.model_combo.findData(info.source)
    panel.model_combo.setCurrentIndex(first)
    panel.model_combo.activated.emit(first)
    assert settings.model == info.source
    panel.set_status("Loaded on CPU in 0.4 s")
    assert panel.status() == "Loaded on CPU in 0.4 s"


def test_model_dock_says_which_runtime_and_how_fast(qtbot, settings, models_folder, monkeypatch, tmp_path,
                                                    tiny_builtin):
    from inference import runtimes
    from inference.backends.openvino_backend import fingerprint_of
    from inference.jobs import Refine
    from inference.models.store import locate

    monkeypatch.setenv("QUICKBRUSH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(runtimes, "openvino_available", lambda: True)
    panel = ModelPanel(settings)
    qtbot.addWidget(panel)
    source = panel.effective_model()
    assert panel.runtime_text() == models_module.FIRST_USE, "nothing measured yet"

    # A choice remembered from an earlier run shows before any job, read without loading.
    key = runtimes.choice_key(fingerprint_of(locate(source)), source, (), "cpu")
    runtimes.Choices().put(key, runtimes.Choice("openvino", "bfloat16"))
    panel.refresh_runtime()
    assert panel.runtime_text() == "OpenVINO bf16 (measured fastest here)"
    settings.runtime = "torch"
    assert panel.runtime_text() == "PyTorch (chosen in Preferences)"
    settings.runtime = "auto"

    # A finished job says what it ran on and how long an image took, loading left out.
    job = Generate(prompt="x", model=ModelRef(source), seed=1)
    info = {"runtime": "openvino", "dtype": "bfloat16", "path": "OpenVINO bf16", "device": "cpu"}
    timings = {"load": 5.0, "encode": 0.1, "denoise": 1.0, "decode": 0.2, "total": 6.3}
    panel.note_result(Result(1, job, image=Image.new("RGB", (8, 8)), timings=timings, model_info=info))
    assert panel.runtime_text() == "OpenVINO bf16 · 1.3 s an image"
    # A first use's conversion and timing are in the total, not in the image's time.
    panel.note_result(Result(2, job, image=Image.new("RGB", (8, 8)), model_info=info,
                             timings={"load": 2.0, "encode": 0.01, "denoise": 0.04, "total": 45.0}))
    assert panel.runtime_text() == "OpenVINO bf16 · 50 ms an image"
    # A Refine (a decode only), a failed job and another model's job leave it as it is.
    refine = Refine.of(job, np.zeros((1, 4, 4, 4), np.float32))
    panel.note_result(Result(3, refine, image=Image.new("RGB", (8, 8)), timings={"decode": 9.0, "total": 9.0},
                             model_info=info))
    panel.note_result(Result(4, job, error=BadInput("no")))
    other = Generate(prompt="x", model=ModelRef(str(tiny_builtin)), seed=1)
    panel.note_result(Result(5, other, image=Image.new("RGB", (8, 8)), timings={"total": 0.4, "load": 0.1},
                             model_info={"runtime": "onnxruntime", "dtype": "float32", "path": "ONNX Runtime fp32"}))
    assert panel.runtime_text() == "OpenVINO bf16 · 50 ms an image"

    # The built-in model runs on ONNX Runtime, known before any job; then with its speed.
    settings.model = str(tiny_builtin)
    assert panel.runtime_text() == "ONNX Runtime fp32 · 0.3 s an image"
    panel.forget_measured()
    assert panel.runtime_text() == "ONNX Runtime fp32"
    settings.model = source
    assert panel.runtime_text() == "OpenVINO bf16 (measured fastest here)"
    runtimes.Choices().forget()
    panel.refresh_runtime()
    assert panel.runtime_text() == models_module.FIRST_USE
    monkeypatch.setattr(runtimes, "openvino_available", lambda: False)
    panel.refresh_runtime()
    assert panel.runtime_text() == "PyTorch", "without OpenVINO there is nothing to choose"


def test_image_seconds_leaves_out_loading():
    assert models_module.image_seconds({"load": 1.0, "total": 3.5}) == 2.5
    assert models_module.image_seconds({"load": 1.0, "denoise": 0.5, "decode": 0.25, "total": 40.0}) == 0.75
    assert models_module.image_seconds({}) is None


# --------------------------------------------------------------------------- screenshots


def dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor(30, 30, 32), QColor(43, 43, 46), QColor(222, 222, 222)
    for role, colour in (
        (QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, window),
        (QPalette.ColorRole.ToolTipBase, window), (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, QColor(53, 53, 57)),
        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.Highlight, QColor(64, 128, 214)),
        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)), (QPalette.ColorRole.Link, QColor(90, 160, 240)),
        (QPalette.ColorRole.PlaceholderText, QColor(130, 130, 135)), (QPalette.ColorRole.Mid, QColor(70, 70, 74)),
        (QPalette.ColorRole.Dark, QColor(25, 25, 27)), (QPalette.ColorRole.Light, QColor(75, 75, 80)),
    ):
        p.setColor(role, colour)
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(125, 125, 130))
    return p


@pytest.fixture
def dark_fusion(qapp):
    old_style, old_palette = qapp.style().name(), qapp.palette()
    qapp.setStyle("Fusion")
    qapp.setPalette(dark_palette())
    yield
    qapp.setStyle(old_style)
    qapp.setPalette(old_palette)


def _grab(qtbot, widget, name, size):
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"panel-{name}.png"
    assert widget.grab().save(str(path))
    return path


def _gradient(size, a, b) -> Image.Image:
    w, h = size
    t = np.linspace(0.0, 1.0, w)[None, :, None]
    y = np.linspace(0.0, 1.0, h)[:, None, None]
    arr = (np.array(a) * (1 - t) + np.array(b) * t) * (0.7 + 0.3 * y)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def test_panels_screenshots(qtbot, settings, dark_fusion, models_folder, monkeypatch):
    monkeypatch.setattr(models_module, "available_devices", lambda: ["cpu"])
    settings.prompt = "a cosy reading nook by a rainy window, warm lamp light, watercolour"
    settings.negative_prompt = "blurry, text"
    settings.mode = "inpaint"
    settings.seed = 3141592653
    settings.variations = 4
    prompt = PromptPanel(settings)
    qtbot.addWidget(prompt)
    paths = [_grab(qtbot, prompt, "prompt", (340, 640))]
    settings.mode = "outpaint"
    paths.append(_grab(qtbot, prompt, "prompt-outpaint", (340, 640)))

    history = HistoryPanel()
    qtbot.addWidget(history)
    for i, (kind, text, colours) in enumerate((
        (Generate, "a lighthouse on a cliff at dusk, dramatic clouds, oil painting", ((40, 60, 140), (240, 140, 60))),
        (Inpaint, "a red umbrella", ((200, 40, 60), (250, 200, 120))),
        (Vary, "", ((20, 120, 90), (200, 230, 140))),
    )):
        extra = {}
        if kind is not Generate:
            extra = {"image": Image.new("RGB", (96, 64))}
            if kind is Inpaint:
                extra["mask"] = Image.new("L", (96, 64), 255)
        result = make_result(prompt=text, seed=1000 + i * 7919, kind=kind, job_id=i, **extra)
        result = Result(i, result.job, image=_gradient((96 if i != 1 else 64, 64), *colours), timings=result.timings)
        history.add_result(result)
    history.select(history.entries()[-1])
    paths.append(_grab(qtbot, history, "history", (340, 480)))

    doc = Document.new(256, 192, fill=(90, 110, 140))
    doc.apply_result(_gradient((128, 96), (250, 200, 40), (250, 90, 40)), (40, 30), as_new_layer=True, name="Sun")
    doc.apply_result(Image.new("RGBA", (64, 64), (255, 255, 255, 160)), (150, 20), as_new_layer=True,
                     name="Cloud (applied result)")
    doc.set_layer_visible(1, False)
    layers = LayersPanel(doc, settings)
    qtbot.addWidget(layers)
    paths.append(_grab(qtbot, layers, "layers", (300, 360)))

    model = ModelPanel(settings)
    qtbot.addWidget(model)
    model.set_status("Loaded on CPU (float32) in 0.4 s")
    paths.append(_grab(qtbot, model, "models", (320, 200)))
    for path in paths:
        assert path.stat().st_size > 1000
    doc.deleteLater()


def test_panel_scroll_area_fills_the_dock_and_scrolls_only_below_the_minimum(qtbot, settings):
    from editor.panels._common import PanelScrollArea

    panel = PromptPanel(settings)
    scroll = PanelScrollArea(panel)
    qtbot.addWidget(scroll)
    minimum = panel.minimumSizeHint().height()
    scroll.resize(400, minimum + 200)
    scroll.show()
    # Room to spare: the panel fills it and nothing scrolls (the scroll bar settles one event later).
    qtbot.waitUntil(lambda: scroll.verticalScrollBar().maximum() == 0, timeout=2000)
    assert panel.height() == scroll.viewport().height() == minimum + 200
    scroll.resize(400, minimum // 2)
    qtbot.waitUntil(lambda: scroll.verticalScrollBar().maximum() > 0, timeout=2000)
    assert panel.height() == minimum, "squeezed: the panel keeps its minimum and scrolls"
    assert panel.width() == scroll.viewport().width()


def test_ctrl_enter_in_a_prompt_box_generates_instead_of_adding_a_line(prompt, qtbot):
    prompt.show()
    prompt.prompt_edit.setPlainText("red apple")
    for edit in (prompt.prompt_edit, prompt.negative_edit):
        edit.setFocus()
        with qtbot.waitSignal(prompt.generate_requested, timeout=1000):
            qtbot.keyClick(edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert prompt.prompt_edit.toPlainText() == "red apple" and prompt.negative_edit.toPlainText() == ""
    qtbot.keyClick(prompt.prompt_edit, Qt.Key.Key_Return)
    assert prompt.prompt_edit.toPlainText().count("\n") == 1, "plain Enter still starts a new line"


def test_history_says_1_step_not_1_steps():
    import dataclasses

    from editor.history import HistoryEntry
    from editor.panels import history

    four = make_result()
    one = HistoryEntry(dataclasses.replace(four, job=four.job.replace(steps=1)))
    assert "1 step" in history._details(one) and "1 steps" not in history._details(one)
    assert "1 step" in history._tooltip(one) and "1 steps" not in history._tooltip(one)
    assert "4 steps" in history._details(HistoryEntry(four)) and "4 steps" in history._tooltip(HistoryEntry(four))
