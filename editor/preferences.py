"""The Preferences dialog: the settings that are not already on a panel, applied as they change.

There is no OK/Cancel: every field is bound to its setting both ways (the same SettingBinding
the panels use), so the canvas shows a new mask colour while the dialog is still open, and a
value changed elsewhere (the Layers panel's mask opacity, `[` and `]` for the brush) shows here
at once. "Restore defaults" is one click back to a known state.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl, Qt, Signal
from PySide6.QtGui import QColor, QDesktopServices, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from editor.panels._common import HintLabel, SettingBinding, section_label
from editor.panels.models import DEVICE_LABELS
from editor.settings import Settings
from inference import runtimes
from inference.models import store

# Settings this dialog shows; "Restore defaults" resets exactly these.
SHOWN = ("mask_color", "mask_opacity", "brush_size", "brush_hardness", "live_preview", "device", "runtime",
         "fast_decode")

RUNTIME_CHOICES = (
    ("auto", "Automatic (fastest for this computer)"),
    ("torch", "PyTorch"),
    ("openvino", "OpenVINO"),
)
RUNTIME_TIP = ("Which library runs Stable Diffusion models on the CPU. Automatic times each one on the first use "
               "of a model (a few minutes, once) and keeps the fastest whose pictures match. The built-in model "
               "always runs on ONNX Runtime.")
NO_OPENVINO = "OpenVINO is not installed here (pip install openvino), so models run on PyTorch."
FAST_DECODE_TEXT = "Decode finals with the tiny decoder"
FAST_DECODE_TIP = ("Decode finals with the tiny decoder: about 10x faster on a CPU, slightly softer; Refine a "
                   "result in the History to decode it in full. Models without a tiny decoder (a vae_tiny folder, "
                   "or taesd in the models folder) always decode in full.")


def ask_color(parent: QWidget, current: QColor) -> QColor | None:
    """The colour picker; None when cancelled. Tests replace this function."""
    color = QColorDialog.getColor(current, parent, "Mask colour")
    return color if color.isValid() else None


def openvino_available() -> bool:
    """Whether OpenVINO can be chosen (a find_spec, nothing imported). Tests replace this function."""
    return runtimes.openvino_available()


def forget_runtime_choices() -> None:
    """Forget which runtime each model was measured fastest on. Tests replace this function."""
    runtimes.Choices().forget()


def open_folder(path: str) -> bool:
    """Show a folder in the file manager. Tests replace this function."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(path))


class PreferencesDialog(QDialog):
    # The measured runtime choices were forgotten (the Model panel shows "chosen on first use" again).
    runtime_choices_forgotten = Signal()

    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("PreferencesDialog")
        self.setWindowTitle("Preferences")
        self.settings = settings
        self._build()

    def _build(self) -> None:
        s = self.settings
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 12)
        layout.setSpacing(10)

        # ---- mask and brush
        layout.addWidget(section_label("Mask and brush"))
        form = self._form(layout)
        self.color_button = QPushButton()
        self.color_button.setToolTip("Colour of the mask overlay on the canvas")
        self.color_button.clicked.connect(self._pick_color)
        s.bind("mask_color", self._show_color)
        form.addRow("Mask colour", self.color_button)

        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(5, 100)
        self.opacity_value = QLabel()
        self.opacity_value.setMinimumWidth(44)
        self.opacity_value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._bindings = [SettingBinding(s, "mask_opacity", self.opacity_slider, self.opacity_slider.valueChanged,
                                         self._show_opacity, lambda v: v / 100)]
        self.opacity_slider.valueChanged.connect(lambda v: self.opacity_value.setText(f"{v} %"))
        form.addRow("Mask opacity", _row(self.opacity_slider, self.opacity_value))

        self.size_spin = QSpinBox()
        self.size_spin.setRange(1, 1000)
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip("Brush diameter in image pixels; [ and ] change it while painting")
        self._bindings.append(SettingBinding(s, "brush_size", self.size_spin, self.size_spin.valueChanged,
                                             self.size_spin.setValue))
        form.addRow("Brush size", self.size_spin)

        self.hardness_slider = QSlider(Qt.Orientation.Horizontal)
        self.hardness_slider.setRange(0, 100)
        self.hardness_value = QLabel()
        self.hardness_value.setMinimumWidth(44)
        self.hardness_value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._bindings.append(SettingBinding(s, "brush_hardness", self.hardness_slider,
                                             self.hardness_slider.valueChanged, self._show_hardness,
                                             lambda v: v / 100))
        self.hardness_slider.valueChanged.connect(lambda v: self.hardness_value.setText(f"{v} %"))
        form.addRow("Brush hardness", _row(self.hardness_slider, self.hardness_value))

        # ---- generation
        layout.addWidget(section_label("Generation"))
        form = self._form(layout)
        self.preview_check = QCheckBox("Show a live preview on the canvas while a job runs")
        self._bindings.append(SettingBinding(s, "live_preview", self.preview_check, self.preview_check.toggled,
                                             self.preview_check.setChecked))
        form.addRow("", self.preview_check)

        self.device_combo = QComboBox()
        for device in ("auto", "cpu", "cuda", "mps"):
            self.device_combo.addItem(DEVICE_LABELS[device], device)
        self.device_combo.setToolTip("Where models run. Auto picks a GPU when there is one.")
        self._bindings.append(SettingBinding(s, "device", self.device_combo, self.device_combo.currentIndexChanged,
                                             self._show_device, lambda i: self.device_combo.itemData(i)))
        form.addRow("Device", self.device_combo)

        self.runtime_combo = QComboBox()
        for value, text in RUNTIME_CHOICES:
            self.runtime_combo.addItem(text, value)
        self.runtime_combo.setToolTip(RUNTIME_TIP)
        if not openvino_available():
            index = self.runtime_combo.findData("openvino")
            item = self.runtime_combo.model().item(index)
            item.setEnabled(False)
            item.setText("OpenVINO (not installed)")
            self.runtime_combo.setItemData(index, NO_OPENVINO, Qt.ItemDataRole.ToolTipRole)
            self.runtime_combo.setToolTip(f"{RUNTIME_TIP}\n\n{NO_OPENVINO}")
        self._bindings.append(SettingBinding(s, "runtime", self.runtime_combo, self.runtime_combo.currentIndexChanged,
                                             self._show_runtime, lambda i: self.runtime_combo.itemData(i)))
        form.addRow("Runtime", self.runtime_combo)

        self.forget_button = QPushButton("Forget measured speeds")
        self.forget_button.setToolTip("Time the runtimes again: each model is measured anew the next time it "
                                      "loads (a few minutes, once). Models loaded now keep their runtime.")
        self.forget_button.clicked.connect(self._forget_speeds)
        self.forget_note = HintLabel("", wrap=True)
        self.forget_note.hide()
        form.addRow("", _row(self.forget_button, None))
        form.addRow("", self.forget_note)

        self.fast_decode_check = QCheckBox(FAST_DECODE_TEXT)
        self.fast_decode_check.setToolTip(FAST_DECODE_TIP)
        self._bindings.append(SettingBinding(s, "fast_decode", self.fast_decode_check, self.fast_decode_check.toggled,
                                             self.fast_decode_check.setChecked))
        form.addRow("Fast decode", self.fast_decode_check)
        self.fast_decode_hint = HintLabel("About 10x faster on a CPU, slightly softer. Refine a result in the "
                                          "History to decode it in full.", wrap=True)
        form.addRow("", self.fast_decode_hint)

        folder = str(store.models_dir())
        self.folder_label = HintLabel(folder, wrap=True)
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.folder_button = QPushButton("Open folder")
        self.folder_button.setToolTip("Put diffusers folders and .safetensors checkpoints here")
        self.folder_button.clicked.connect(lambda: self._open_models_folder(folder))
        form.addRow("Models folder", self.folder_label)
        form.addRow("", _row(self.folder_button, None))

        # ---- files
        layout.addWidget(section_label("Files"))
        form = self._form(layout)
        self.clear_recent_button = QPushButton("Clear recent files")
        self.clear_recent_button.clicked.connect(lambda: s.set("recent_files", []))
        s.bind("recent_files", self._show_recent)
        form.addRow("", _row(self.clear_recent_button, None))

        layout.addStretch(1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.RestoreDefaults
                                   | QDialogButtonBox.StandardButton.Close)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self.restore_defaults)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
        self.setMinimumWidth(420)

    @staticmethod
    def _form(parent_layout: QVBoxLayout) -> QFormLayout:
        form = QFormLayout()
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(6)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        parent_layout.addLayout(form)
        return form

    # ------------------------------------------------------------------ setting -> widget

    def _show_color(self, value: str) -> None:
        swatch = QPixmap(28, 14)
        swatch.fill(QColor(value))
        self.color_button.setIcon(swatch)
        self.color_button.setIconSize(swatch.size())
        self.color_button.setText(QColor(value).name())

    def _show_opacity(self, value: float) -> None:
        self.opacity_slider.setValue(round(value * 100))
        self.opacity_value.setText(f"{self.opacity_slider.value()} %")

    def _show_hardness(self, value: float) -> None:
        self.hardness_slider.setValue(round(value * 100))
        self.hardness_value.setText(f"{self.hardness_slider.value()} %")

    def _show_recent(self, files: list[str]) -> None:
        self.clear_recent_button.setEnabled(bool(files))

    def _show_device(self, value: str) -> None:
        index = self.device_combo.findData(value)
        self.device_combo.setCurrentIndex(index if index >= 0 else 0)

    def _show_runtime(self, value: str) -> None:
        index = self.runtime_combo.findData(value)
        self.runtime_combo.setCurrentIndex(index if index >= 0 else 0)

    # ------------------------------------------------------------------ actions

    def _forget_speeds(self) -> None:
        forget_runtime_choices()
        self.forget_note.setText("Forgotten: each model is timed again the next time it loads.")
        self.forget_note.show()
        self.runtime_choices_forgotten.emit()

    def _pick_color(self) -> None:
        color = ask_color(self, QColor(self.settings.mask_color))
        if color is not None:
            self.settings.mask_color = color.name()

    def _open_models_folder(self, folder: str) -> None:
        # The folder may not exist on a fresh install; the file manager cannot show what is not there.
        Path(folder).mkdir(parents=True, exist_ok=True)
        open_folder(folder)

    def restore_defaults(self) -> None:
        for name in SHOWN:
            self.settings.reset(name)


def _row(widget: QWidget, trailing: QWidget | None) -> QHBoxLayout:
    row = QHBoxLayout()
    row.setSpacing(8)
    row.addWidget(widget, 1 if trailing is not None else 0)
    if trailing is not None:
        row.addWidget(trailing)
    else:
        row.addStretch(1)
    return row
