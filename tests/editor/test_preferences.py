"""The Preferences dialog applies each field as it changes, both ways, and restores defaults."""

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QDialogButtonBox

import editor.preferences as prefs
from editor.preferences import PreferencesDialog
from editor.settings import DEFAULTS, Settings


@pytest.fixture
def settings(tmp_path):
    return Settings(QSettings(str(tmp_path / "prefs.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def dialog(qtbot, settings):
    d = PreferencesDialog(settings)
    qtbot.addWidget(d)
    d.show()
    return d


def test_fields_show_the_current_settings(qtbot, tmp_path):
    settings = Settings(QSettings(str(tmp_path / "p.ini"), QSettings.Format.IniFormat))
    settings.mask_opacity = 0.3
    settings.brush_size = 77
    settings.device = "cpu"
    d = PreferencesDialog(settings)
    qtbot.addWidget(d)
    assert d.opacity_slider.value() == 30 and d.opacity_value.text() == "30 %"
    assert d.size_spin.value() == 77
    assert d.device_combo.currentData() == "cpu"
    assert d.color_button.text() == DEFAULTS["mask_color"]


def test_editing_a_field_changes_the_setting_at_once(dialog, settings):
    dialog.opacity_slider.setValue(80)
    dialog.hardness_slider.setValue(25)
    dialog.size_spin.setValue(12)
    dialog.preview_check.setChecked(False)
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    assert (settings.mask_opacity, settings.brush_hardness, settings.brush_size) == (0.8, 0.25, 12)
    assert settings.live_preview is False and settings.device == "cpu"


def test_a_change_made_elsewhere_shows_in_the_open_dialog(dialog, settings):
    settings.brush_size = 250  # e.g. `]` pressed on the canvas
    settings.mask_color = "#00ff00"
    assert dialog.size_spin.value() == 250
    assert dialog.color_button.text() == "#00ff00"


def test_colour_picker_sets_the_mask_colour_and_cancel_keeps_it(dialog, settings, monkeypatch, qtbot):
    monkeypatch.setattr(prefs, "ask_color", lambda parent, current: QColor("#3366ff"))
    qtbot.mouseClick(dialog.color_button, Qt.MouseButton.LeftButton)
    assert settings.mask_color == "#3366ff"
    monkeypatch.setattr(prefs, "ask_color", lambda parent, current: None)
    qtbot.mouseClick(dialog.color_button, Qt.MouseButton.LeftButton)
    assert settings.mask_color == "#3366ff"


def test_restore_defaults_resets_only_what_the_dialog_shows(dialog, settings, qtbot):
    settings.brush_size = 300
    settings.mask_opacity = 0.9
    settings.live_preview = False
    settings.prompt = "kept: a prompt is not a preference"
    button = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.RestoreDefaults)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert (settings.brush_size, settings.mask_opacity, settings.live_preview) == (
        DEFAULTS["brush_size"], DEFAULTS["mask_opacity"], True)
    assert settings.prompt == "kept: a prompt is not a preference"
    assert dialog.size_spin.value() == DEFAULTS["brush_size"]


def test_clear_recent_files(dialog, settings, qtbot):
    settings.add_recent_file("/pictures/a.png")
    assert dialog.clear_recent_button.isEnabled()
    qtbot.mouseClick(dialog.clear_recent_button, Qt.MouseButton.LeftButton)
    assert settings.recent_files == [] and not dialog.clear_recent_button.isEnabled()


def test_open_models_folder_creates_it_first(dialog, monkeypatch, qtbot, tmp_path):
    opened = []
    monkeypatch.setattr(prefs, "open_folder", opened.append)
    qtbot.mouseClick(dialog.folder_button, Qt.MouseButton.LeftButton)
    from inference.models import store

    assert opened == [str(store.models_dir())] and store.models_dir().is_dir()


@pytest.mark.parametrize("installed", [True, False])
def test_runtime_and_fast_decode(qtbot, settings, monkeypatch, installed):
    monkeypatch.setattr(prefs, "openvino_available", lambda: installed)
    d = PreferencesDialog(settings)
    qtbot.addWidget(d)
    combo = d.runtime_combo
    assert [combo.itemData(i) for i in range(combo.count())] == ["auto", "torch", "openvino"]
    assert combo.currentText() == "Automatic (fastest for this computer)"
    openvino = combo.model().item(combo.findData("openvino"))
    assert openvino.isEnabled() is installed
    if not installed:  # greyed, saying why
        assert "not installed" in openvino.text() and "not installed" in combo.toolTip()
        assert "not installed" in combo.itemData(combo.findData("openvino"), Qt.ItemDataRole.ToolTipRole)
    combo.setCurrentIndex(combo.findData("torch"))
    assert settings.runtime == "torch"
    settings.runtime = "auto"
    assert combo.currentData() == "auto"

    assert not d.fast_decode_check.isChecked()
    assert "10x faster" in d.fast_decode_check.toolTip() and "Refine" in d.fast_decode_check.toolTip()
    d.fast_decode_check.setChecked(True)
    assert settings.fast_decode is True
    settings.fast_decode = False
    assert not d.fast_decode_check.isChecked()

    settings.runtime, settings.fast_decode = "torch", True
    d.restore_defaults()
    assert (settings.runtime, settings.fast_decode) == ("auto", False)


def test_forget_measured_speeds(dialog, monkeypatch, qtbot):
    forgotten = []
    monkeypatch.setattr(prefs, "forget_runtime_choices", lambda: forgotten.append(True))
    with qtbot.waitSignal(dialog.runtime_choices_forgotten, timeout=1000):
        qtbot.mouseClick(dialog.forget_button, Qt.MouseButton.LeftButton)
    assert forgotten == [True] and dialog.forget_note.isVisible() and "timed again" in dialog.forget_note.text()


def test_forget_runtime_choices_removes_the_remembered_ones(tmp_path, monkeypatch):
    from inference import runtimes

    monkeypatch.setenv("QUICKBRUSH_CACHE_DIR", str(tmp_path))
    runtimes.Choices().put("k", runtimes.Choice("openvino", "bfloat16"))
    assert runtimes.Choices().get("k") is not None
    prefs.forget_runtime_choices()
    assert runtimes.Choices().get("k") is None
