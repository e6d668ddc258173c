"""The Prompt panel: what to paint and how, and the Generate button.

Every field is bound both ways to a setting (`editor.settings`), so the panel holds no values of
its own and the last-used parameters, outpaint margins included, persist.

`build_request(document, model)` turns the document and the settings into one frozen job per
variation, each carrying where its result lands; the rules for that live in `editor.targets`.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QFont, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from editor.panels._common import HintLabel, SettingBinding, section_label
from editor.settings import Settings
from editor.theme import icon
from editor.targets import NO_MARGINS, NO_MASK, Request, parse_size, plan
from inference.jobs import MAX_SEED, Job, ModelRef, random_seed

# (setting value, label) in menu order.
MODES: tuple[tuple[str, str], ...] = (
    ("generate", "Generate"),
    ("vary", "Vary"),
    ("inpaint", "Inpaint"),
    ("outpaint", "Outpaint"),
    ("edit", "Edit"),
)
MODE_HINTS = {
    "generate": "A new image from the prompt, into the selection if there is one.",
    "vary": "A variation of the image (or of the selected part).",
    "inpaint": "Repaint the masked area; everything else stays exactly as it is.",
    "outpaint": "Extend the image past its edges: set the margins or drag a selection past the edge.",
    "edit": "Change the image by instruction, e.g. “make it snowy”.",
}
MAX_VARIATIONS = 8

# size_preset setting values -> label. Custom sizes are stored as "custom:WxH".
SIZE_PRESETS: tuple[tuple[str, str], ...] = (
    ("native", "Native (model's own)"),
    ("512x512", "512 × 512"),
    ("768x768", "768 × 768"),
    ("1024x1024", "1024 × 1024"),
    ("512x768", "512 × 768 (portrait)"),
    ("768x512", "768 × 512 (landscape)"),
    ("custom", "Custom…"),
)
DEFAULT_CUSTOM = (640, 640)
MIN_SIDE, MAX_SIDE = 64, 4096

class _SeedSpinBox(QDoubleSpinBox):
    """Seeds go to 2**32 - 1, past QSpinBox's int range: a whole-number double spin box."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(0)
        self.setRange(0, MAX_SEED)
        self.setSingleStep(1)
        self.setGroupSeparatorShown(False)
        self.setAccelerated(True)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt's name
        return str(int(round(value)))


def _plain_text_setter(edit: QPlainTextEdit):
    def apply(value: str) -> None:
        if edit.toPlainText() != value:  # setPlainText resets the cursor: only on real change
            edit.setPlainText(value)
    return apply


def _combo_setter(combo: QComboBox):
    def apply(value: Any) -> None:
        index = combo.findData(value)
        if index >= 0:
            combo.setCurrentIndex(index)
    return apply


class PromptPanel(QWidget):
    """Prompt, mode and parameters; emits `generate_requested` and `cancel_requested`."""

    generate_requested = Signal()
    cancel_requested = Signal()
    cancel_all_requested = Signal()

    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self._busy = False
        self._auto_inpaint = False  # the mode was switched to Inpaint by a painted mask
        self.setObjectName("PromptPanel")
        self._build()
        self._bind()
        settings.mode_changed.connect(self._mode_shown)
        self._mode_shown(settings.mode)

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(10, 10, 10, 10)
        outer.setSpacing(8)

        self.mode_combo = QComboBox()
        for value, label in MODES:
            self.mode_combo.addItem(label, value)
        self.mode_combo.setToolTip("What to do with the prompt. Painting a mask switches Generate to Inpaint.")
        mode_row = QHBoxLayout()
        mode_row.setSpacing(8)
        mode_label = QLabel("&Mode")
        mode_label.setBuddy(self.mode_combo)
        mode_row.addWidget(mode_label)
        mode_row.addWidget(self.mode_combo, 1)
        outer.addLayout(mode_row)
        self.mode_hint = HintLabel()
        outer.addWidget(self.mode_hint)

        self.prompt_label = section_label("Prompt")
        outer.addWidget(self.prompt_label)
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setTabChangesFocus(True)
        self.prompt_edit.setMinimumHeight(self._lines_height(self.prompt_edit, 3))
        self.prompt_label.setBuddy(self.prompt_edit)
        outer.addWidget(self.prompt_edit, 3)

        self.negative_label = section_label("Negative prompt")
        outer.addWidget(self.negative_label)
        self.negative_edit = QPlainTextEdit()
        self.negative_edit.setTabChangesFocus(True)
        self.negative_edit.setPlaceholderText("What to avoid (optional)")
        self.negative_edit.setMinimumHeight(self._lines_height(self.negative_edit, 2))
        outer.addWidget(self.negative_edit, 1)
        # Ctrl+Enter in a prompt box generates (the designer just typed the prompt) instead of
        # adding a line; the window's Generate shortcut never sees keys a text box keeps.
        self.prompt_edit.installEventFilter(self)
        self.negative_edit.installEventFilter(self)

        form = QFormLayout()
        form.setContentsMargins(0, 4, 0, 0)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(6)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.form = form

        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(0, 200)
        self.steps_spin.setSpecialValueText("Model default")
        self.steps_spin.setToolTip("Denoising steps. Few-step models need 1–8; 0 uses the model's own default.")
        form.addRow("Steps", self.steps_spin)

        self.guidance_spin = QDoubleSpinBox()
        self.guidance_spin.setRange(-0.5, 30.0)
        self.guidance_spin.setSingleStep(0.5)
        self.guidance_spin.setDecimals(1)
        self.guidance_spin.setSpecialValueText("Model default")
        self.guidance_spin.setToolTip("How closely to follow the prompt (CFG scale). "
                                      "Turbo and LCM models want 0–1.5.")
        form.addRow("Guidance", self.guidance_spin)

        # Vary and Inpaint keep a strength each: a variation wants the picture kept (0.6), a
        # repainted area usually wants the old pixels gone (1.0), and the designer switches often.
        def strength_spin(tooltip: str) -> QDoubleSpinBox:
            spin = QDoubleSpinBox()
            spin.setRange(0.05, 1.0)
            spin.setSingleStep(0.05)
            spin.setDecimals(2)
            spin.setToolTip(tooltip)
            form.addRow("Strength", spin)
            return spin

        self.strength_spin = strength_spin("How much may change: low keeps the picture, 1 repaints it entirely.")
        self.inpaint_strength_spin = strength_spin(
            "How much of the masked area may change: 1 paints it anew, lower keeps its shapes and colours.")

        self.image_guidance_spin = QDoubleSpinBox()
        self.image_guidance_spin.setRange(0.0, 10.0)
        self.image_guidance_spin.setSingleStep(0.1)
        self.image_guidance_spin.setDecimals(2)
        self.image_guidance_spin.setToolTip("How closely the edit keeps to the original image.")
        form.addRow("Image guidance", self.image_guidance_spin)

        self.seed_spin = _SeedSpinBox()
        self.seed_spin.setToolTip("The random seed. Typing one locks it.")
        self.new_seed_button = QToolButton()
        self.new_seed_button.setText("New")
        self.new_seed_button.setToolTip("Draw a new random seed")
        self.seed_lock_button = QToolButton()
        self.seed_lock_button.setText("Lock")
        self.seed_lock_button.setCheckable(True)
        self.seed_lock_button.setToolTip("Locked: every Generate uses this seed (variations count up from it).\n"
                                         "Unlocked: every Generate draws a fresh seed and shows it here.")
        width = max(self.seed_lock_button.fontMetrics().horizontalAdvance(t) for t in ("Lock", "Locked", "New")) + 16
        self.seed_lock_button.setMinimumWidth(width)  # "Lock" <-> "Locked" without the row jumping
        seed_row = QHBoxLayout()
        seed_row.setSpacing(4)
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.new_seed_button)
        seed_row.addWidget(self.seed_lock_button)
        self.seed_row = QWidget()
        self.seed_row.setLayout(seed_row)
        seed_row.setContentsMargins(0, 0, 0, 0)
        form.addRow("Seed", self.seed_row)

        self.variations_spin = QSpinBox()
        self.variations_spin.setRange(1, MAX_VARIATIONS)
        self.variations_spin.setToolTip("How many results one Generate makes, each with its own seed.")
        form.addRow("Variations", self.variations_spin)

        self.size_combo = QComboBox()
        for value, label in SIZE_PRESETS:
            self.size_combo.addItem(label, value)
        for combo in (self.mode_combo, self.size_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        self.size_combo.setToolTip("Size of a generated image. Native: the size the model was trained at.")
        form.addRow("Size", self.size_combo)

        self.width_spin = QSpinBox()
        self.height_spin = QSpinBox()
        for spin in (self.width_spin, self.height_spin):
            spin.setRange(MIN_SIDE, MAX_SIDE)
            spin.setSingleStep(64)
            spin.setSuffix(" px")
        custom_row = QHBoxLayout()
        custom_row.setContentsMargins(0, 0, 0, 0)
        custom_row.setSpacing(6)
        custom_row.addWidget(self.width_spin, 1)
        times = QLabel("×")
        times.setAlignment(Qt.AlignmentFlag.AlignCenter)
        custom_row.addWidget(times)
        custom_row.addWidget(self.height_spin, 1)
        self.custom_size_row = QWidget()
        self.custom_size_row.setLayout(custom_row)
        form.addRow("", self.custom_size_row)

        self.margin_spins: dict[str, QSpinBox] = {}
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(4)
        # Left | Right on the first row, Top | Bottom on the second: opposite sides side by side.
        for i, side in enumerate(("left", "right", "top", "bottom")):
            spin = QSpinBox()
            spin.setRange(0, 2048)
            spin.setSingleStep(64)
            spin.setToolTip(f"Pixels to add on the {side}")
            label = QLabel(side.capitalize())
            label.setBuddy(spin)
            grid.addWidget(label, i // 2, (i % 2) * 2)
            grid.addWidget(spin, i // 2, (i % 2) * 2 + 1)
            grid.setColumnStretch((i % 2) * 2 + 1, 1)
            self.margin_spins[side] = spin
        self.margins_row = QWidget()
        self.margins_row.setLayout(grid)
        form.addRow("Extend (px)", self.margins_row)
        outer.addLayout(form)

        outer.addSpacing(4)
        self.generate_button = QPushButton("Generate")
        self.generate_button.setIcon(icon("generate"))
        self.generate_button.setObjectName("generateButton")
        self.generate_button.setDefault(True)
        self.generate_button.setMinimumHeight(40)
        self.generate_button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        font = QFont(self.generate_button.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.generate_button.setFont(font)
        self.generate_button.setStyleSheet(
            "QPushButton#generateButton { background-color: palette(highlight); color: palette(highlighted-text);"
            " border: 1px solid palette(highlight); border-radius: 4px; padding: 6px 14px; }"
            "QPushButton#generateButton:hover { border-color: palette(highlighted-text); }"
            "QPushButton#generateButton:pressed { background-color: palette(dark); }"
            "QPushButton#generateButton:disabled { background-color: palette(button); color: palette(mid); }")
        self.generate_button.setToolTip(f"Generate ({QKeySequence('Ctrl+Return').toString(QKeySequence.SequenceFormat.NativeText)})")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setIcon(icon("cancel"))
        self.cancel_button.setMinimumHeight(40)
        self.cancel_button.setToolTip("Cancel the running job (Esc); queued jobs still run")
        self.cancel_button.setEnabled(False)
        self.cancel_all_button = QToolButton()
        self.cancel_all_button.setText("All")
        self.cancel_all_button.setMinimumHeight(40)
        self.cancel_all_button.setToolTip("Cancel the running job and every queued one (Shift+Esc)")
        self.cancel_all_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.cancel_all_button)
        outer.addLayout(buttons)

        self.generate_button.clicked.connect(self.generate_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.cancel_all_button.clicked.connect(self.cancel_all_requested)
        self.new_seed_button.clicked.connect(self.new_seed)
        self.size_combo.activated.connect(self._size_chosen)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if (watched in (self.prompt_edit, self.negative_edit) and event.type() == QEvent.Type.KeyPress
                and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
                and event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            self.generate_requested.emit()
            return True
        return super().eventFilter(watched, event)

    @staticmethod
    def _lines_height(edit: QPlainTextEdit, lines: int) -> int:
        margins = edit.contentsMargins()
        return int(edit.fontMetrics().lineSpacing() * lines + 2 * edit.document().documentMargin()
                   + margins.top() + margins.bottom() + 4)

    # ------------------------------------------------------------------ bindings

    def _bind(self) -> None:
        s = self.settings
        self._bindings = [
            SettingBinding(s, "prompt", self.prompt_edit, self.prompt_edit.textChanged,
                           _plain_text_setter(self.prompt_edit), lambda: self.prompt_edit.toPlainText()),
            SettingBinding(s, "negative_prompt", self.negative_edit, self.negative_edit.textChanged,
                           _plain_text_setter(self.negative_edit), lambda: self.negative_edit.toPlainText()),
            SettingBinding(s, "mode", self.mode_combo, self.mode_combo.currentIndexChanged,
                           _combo_setter(self.mode_combo), self._mode_from_combo),
            SettingBinding(s, "steps", self.steps_spin, self.steps_spin.valueChanged, self.steps_spin.setValue),
            SettingBinding(s, "guidance", self.guidance_spin, self.guidance_spin.valueChanged,
                           lambda v: self.guidance_spin.setValue(max(float(v), self.guidance_spin.minimum())),
                           lambda v: -1.0 if v <= self.guidance_spin.minimum() else float(v)),
            SettingBinding(s, "strength", self.strength_spin, self.strength_spin.valueChanged,
                           self.strength_spin.setValue),
            SettingBinding(s, "inpaint_strength", self.inpaint_strength_spin,
                           self.inpaint_strength_spin.valueChanged, self.inpaint_strength_spin.setValue),
            SettingBinding(s, "image_guidance", self.image_guidance_spin, self.image_guidance_spin.valueChanged,
                           self.image_guidance_spin.setValue),
            SettingBinding(s, "seed", self.seed_spin, self.seed_spin.valueChanged,
                           lambda v: self.seed_spin.setValue(float(v)), self._seed_from_spin),
            SettingBinding(s, "seed_locked", self.seed_lock_button, self.seed_lock_button.toggled,
                           self._show_locked),
            *(SettingBinding(s, f"outpaint_{side}", spin, spin.valueChanged, spin.setValue)
              for side, spin in self.margin_spins.items()),
            SettingBinding(s, "variations", self.variations_spin, self.variations_spin.valueChanged,
                           self.variations_spin.setValue),
            SettingBinding(s, "size_preset", self.size_combo, self.width_spin.valueChanged,
                           self._show_size, self._custom_size_value),
        ]
        # The height spin writes the same setting as the width spin.
        self.height_spin.valueChanged.connect(self._bindings[-1]._from_widget)

    def _mode_from_combo(self, index: int) -> str | None:
        value = self.mode_combo.itemData(index)
        self._auto_inpaint = False  # the designer chose a mode: don't switch it back for them
        return value

    def _seed_from_spin(self, value: float) -> int:
        # Typing a seed means "use this one": lock it, or the next Generate would replace it.
        if self.seed_spin.hasFocus() and not self.settings.seed_locked:
            self.settings.seed_locked = True
        return int(round(value))

    def _show_locked(self, locked: bool) -> None:
        self.seed_lock_button.setChecked(bool(locked))
        self.seed_lock_button.setText("Locked" if locked else "Lock")

    def _show_size(self, preset: str) -> None:
        preset = str(preset)
        index = self.size_combo.findData(preset)
        size = parse_size(preset)
        if index < 0 or preset.startswith("custom"):
            index = self.size_combo.findData("custom")
        self.size_combo.setCurrentIndex(index)
        custom = self.size_combo.currentData() == "custom"
        if custom:
            w, h = size or DEFAULT_CUSTOM
            self.width_spin.setValue(w)
            self.height_spin.setValue(h)
        self._update_rows()

    def _custom_size_value(self, *_args: Any) -> str | None:
        if self.size_combo.currentData() != "custom":
            return None
        return f"custom:{self.width_spin.value()}x{self.height_spin.value()}"

    def _size_chosen(self, index: int) -> None:
        value = self.size_combo.itemData(index)
        if value == "custom":
            current = parse_size(self.settings.size_preset)
            w, h = current or DEFAULT_CUSTOM
            self.settings.size_preset = f"custom:{w}x{h}"
        else:
            self.settings.size_preset = value
        self._update_rows()

    # ------------------------------------------------------------------ mode-dependent fields

    def _mode_shown(self, mode: str) -> None:
        self.mode_hint.setText(MODE_HINTS.get(mode, ""))
        if mode == "edit":
            self.prompt_label.setText("Instruction")
            self.prompt_edit.setPlaceholderText("What to change, e.g. “make it snowy”")
        else:
            self.prompt_label.setText("Prompt")
            self.prompt_edit.setPlaceholderText("Describe what to paint…")
        self._update_rows()

    def _update_rows(self) -> None:
        mode = self.settings.mode
        form = self.form
        form.setRowVisible(self.strength_spin, mode == "vary")
        form.setRowVisible(self.inpaint_strength_spin, mode == "inpaint")
        form.setRowVisible(self.image_guidance_spin, mode == "edit")
        form.setRowVisible(self.size_combo, mode == "generate")
        form.setRowVisible(self.custom_size_row, mode == "generate" and self.size_combo.currentData() == "custom")
        form.setRowVisible(self.margins_row, mode == "outpaint")

    # ------------------------------------------------------------------ public API

    @property
    def mode(self) -> str:
        return self.settings.mode

    def new_seed(self) -> int:
        """Draw a fresh random seed into the seed field (and the setting)."""
        seed = random_seed()
        self.settings.seed = seed
        return seed

    def margins(self) -> tuple[int, int, int, int]:
        """The outpaint margins of the spin boxes: (left, top, right, bottom)."""
        return tuple(self.margin_spins[side].value() for side in ("left", "top", "right", "bottom"))  # type: ignore[return-value]

    def set_margins(self, left: int, top: int, right: int, bottom: int) -> None:
        for side, value in zip(("left", "top", "right", "bottom"), (left, top, right, bottom)):
            self.margin_spins[side].setValue(int(value))

    def set_busy(self, busy: bool) -> None:
        """A job is running: Cancel becomes active, and Generate queues another job."""
        self._busy = bool(busy)
        self.cancel_button.setEnabled(self._busy)
        self.cancel_all_button.setEnabled(self._busy)
        self.generate_button.setText("Add to queue" if self._busy else "Generate")

    def is_busy(self) -> bool:
        return self._busy

    def on_mask_changed(self, has_mask: bool) -> None:
        """The mode follows what the designer did: a painted mask turns Generate into Inpaint,
        and clearing it again turns it back (only if it was switched here, not chosen)."""
        mode = self.settings.mode
        if has_mask and mode == "generate":
            self.settings.mode = "inpaint"
            self._auto_inpaint = True
        elif not has_mask and mode == "inpaint" and self._auto_inpaint:
            self.settings.mode = "generate"
            self._auto_inpaint = False

    def suggest_mode(self, document) -> None:
        """Look at the document (its mask) and switch the mode if what it holds suggests one."""
        self.on_mask_changed(document.has_mask())

    # ------------------------------------------------------------------ jobs

    def seeds(self, count: int | None = None) -> list[int]:
        """Seeds for `count` variations: locked counts up from the seed; unlocked draws fresh ones."""
        count = self.settings.variations if count is None else int(count)
        count = max(1, min(MAX_VARIATIONS, count))
        if self.settings.seed_locked:
            first = int(self.settings.seed)
            return [(first + i) % (MAX_SEED + 1) for i in range(count)]
        seeds: list[int] = []
        while len(seeds) < count:
            seed = random_seed()
            if seed not in seeds:
                seeds.append(seed)
        return seeds

    def build_jobs(self, document, model: ModelRef) -> list[Job]:
        """One job per variation from the document and the settings (see `build_request`)."""
        return list(self.build_request(document, model).jobs)

    def build_request(self, document, model: ModelRef) -> Request:
        """The jobs for one Generate, each carrying where its result lands (`editor.targets.plan`).

        Raises BadInput with a message for the designer when the mode cannot run on what the
        document holds. When the seed is not locked, the first drawn seed is shown in the seed
        field.
        """
        seeds = self.seeds()
        request = plan(document, self.settings, model, seeds)
        if not self.settings.seed_locked:
            self.settings.seed = seeds[0]
        return request


__all__ = ["PromptPanel", "MODES", "SIZE_PRESETS", "parse_size", "NO_MASK", "NO_MARGINS"]
