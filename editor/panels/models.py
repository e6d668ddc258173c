"""The Model panel: which installed model and which device, bound to settings.model/device.

It also says which path the model runs on and how fast ("OpenVINO bf16 · 1.3 s an image"):
measured from the last finished job on that model (`note_result`), or, before any, the path
remembered for this computer (inference.runtimes, read without loading anything).

Below, the catalog (`editor.panels.catalog.CatalogPanel`): the vetted models with what is
installed, downloads with progress, Remove, Import and a Hub repository id field. A model it
installs joins the model list (by its catalog name); a catalog repo fetched only in part is kept
out of it.

The model list comes from `inference.models.store.list_models()`; "Browse…" picks a diffusers
folder (by its model_index.json) or a single checkpoint file through `choose_model_path`, a
module-level function tests replace. Which devices exist is asked of PyTorch, whose import takes
seconds: it is asked only once torch is already loaded (the job bridge imports it on its own
thread at start), or when the designer opens the device list, or when `refresh_devices(True)`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from editor.panels._common import HintLabel, SettingBinding, section_label
from editor.panels.catalog import CATALOG_PREFIX, CatalogPanel
from editor.settings import Settings
from inference import runtimes
from inference.jobs import ModelRef, Refine, Result
from inference.models import store
from inference.models.store import ModelInfo

BROWSE = "\x00browse"  # item data of the "Browse…" entry

TASK_LABELS = {
    "all": "generate, inpaint and edit",
    "text2img": "text to image",
    "inpaint": "inpainting",
    "edit": "instruction edit",
    "text2img+edit": "text to image and edit",
    "lora": "LoRA, not a model",
    "unknown": "unknown kind",
}
DEVICE_LABELS = {"auto": "Auto", "cpu": "CPU", "cuda": "CUDA (NVIDIA GPU)", "mps": "MPS (Apple GPU)"}


def choose_model_path(parent: QWidget | None = None) -> str | None:
    """Ask for a model: a .safetensors/.ckpt checkpoint, or a diffusers folder's model_index.json
    or a Quickbrush model's quickbrush_builtin.json (each stands for its folder). None when the
    designer cancels. Tests replace this function."""
    path, _filter = QFileDialog.getOpenFileName(
        parent, "Choose a model", str(store.models_dir()),
        "Models (*.safetensors *.ckpt model_index.json quickbrush_builtin.json);;"
        "Checkpoints (*.safetensors *.ckpt);;Diffusers folders (model_index.json);;"
        "Quickbrush models (quickbrush_builtin.json)")
    if not path:
        return None
    chosen = Path(path)
    return str(chosen.parent) if chosen.name in ("model_index.json", store.BUILTIN_CONFIG) else str(chosen)


def available_devices() -> list[str]:
    """Devices PyTorch can run on here, "cpu" first. Imports torch (slow the first time)."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def image_seconds(timings: dict) -> float | None:
    """Seconds one image took on its path: the job's parts (encoding, denoising, decoding,
    compositing), so neither loading the model nor a first use's conversion and timing (which
    the total holds too) count; the total less loading where no parts were reported."""
    parts = [float(v) for k, v in timings.items() if k not in ("load", "total", "prepare")]
    if parts and sum(parts) > 0:
        return sum(parts)
    total = timings.get("total")
    if total is None:
        return None
    return max(0.0, float(total) - float(timings.get("load", 0.0)) - float(timings.get("prepare", 0.0)))


def speed_text(seconds: float) -> str:
    """"1.3 s an image", or in milliseconds below a tenth of a second (as inference.runtimes.label)."""
    return f"{seconds:.1f} s an image" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms an image"


FIRST_USE = "chosen on first use (timed once, a few minutes)"


def remembered_runtime(source: str, settings: Settings) -> str:
    """What the Runtime row says before any job on `source`: the built-in model's own runtime,
    the one chosen in Preferences, or the path measured fastest here before. Cheap: a folder's
    fingerprint (configs and file sizes) is all it reads; a single file would need hashing and
    a repo id a look into the Hub's cache, so those say "chosen on first use"."""
    from inference.backends import serving

    backend_name = serving(source)
    if backend_name == "builtin":
        return runtimes.label("onnxruntime", "float32")
    if backend_name is None:
        return ""
    if settings.runtime == "torch":
        return "PyTorch (chosen in Preferences)"
    if settings.runtime == "openvino":
        if not runtimes.openvino_available():
            return "OpenVINO is not installed (see Preferences)"
        return "OpenVINO (chosen in Preferences)"
    if settings.device not in ("auto", "cpu", "") or not runtimes.openvino_available():
        return "PyTorch"
    try:
        from inference.backends.openvino_backend import fingerprint_of
        from inference.models.store import locate

        located = locate(source)
        if located.kind != "folder":
            return FIRST_USE
        choice = runtimes.Choices().get(runtimes.choice_key(fingerprint_of(located), source, (), "cpu"))
    except Exception:  # an unreadable folder: the job will say what is wrong with it
        return FIRST_USE
    return FIRST_USE if choice is None else f"{choice.label} (measured fastest here)"


def _catalog_task(entry) -> str:
    """A catalog entry's capabilities as a ModelInfo task (TASK_LABELS)."""
    caps = set(entry.capabilities)
    if {"generate", "inpaint", "edit"} <= caps:
        return "all"
    if {"generate", "edit"} <= caps:
        return "text2img+edit"
    if "edit" in caps:
        return "edit"
    if "inpaint" in caps and "generate" not in caps:
        return "inpaint"
    return "text2img" if "generate" in caps else "unknown"


def _default_source(models: list[ModelInfo]) -> str:
    """What store.default_model() would say, from an already scanned list."""
    for info in models:
        if info.task in ("all", "text2img", "inpaint"):
            return info.source
    return store.BUILTIN


class _DeviceCombo(QComboBox):
    """Asks for the real device list just before it first opens."""

    about_to_show = Signal()

    def showPopup(self) -> None:  # noqa: N802 - Qt's name
        self.about_to_show.emit()
        super().showPopup()


class ModelPanel(QWidget):
    """Model and device choice. `model_ref()` is what the next job runs on."""

    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ModelPanel")
        self.settings = settings
        self._models: list[ModelInfo] = []
        self._devices: list[str] | None = None  # None: not asked yet
        # (source, runtime setting) -> what the last finished job on it measured.
        self._measured: dict[tuple[str, str], str] = {}
        self._build()
        self.refresh()
        self._device_binding = SettingBinding(settings, "device", self.device_combo,
                                              self.device_combo.currentIndexChanged, self._show_device,
                                              lambda i: self.device_combo.itemData(i))
        self._model_binding = SettingBinding(settings, "model", self.model_combo, self.model_combo.activated,
                                             self._show_model, self._model_chosen)
        if "torch" in sys.modules:  # already paid for: ask now
            self.refresh_devices(probe=True)
        settings.runtime_changed.connect(lambda _value: self.refresh_runtime())
        settings.device_changed.connect(lambda _value: self.refresh_runtime())

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        form = QFormLayout()
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(6)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        self.model_combo = QComboBox()
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(14)
        self.refresh_button = QToolButton()
        self.refresh_button.setText("Rescan")
        self.refresh_button.setToolTip(f"Look for models again in {store.models_dir()}")
        model_row = QHBoxLayout()
        model_row.setSpacing(6)
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.refresh_button)
        form.addRow("Model", model_row)

        self.source_label = HintLabel(wrap=False)
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.source_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        form.addRow("", self.source_label)

        self.device_combo = _DeviceCombo()
        self.device_combo.setToolTip("Where the model runs. Auto picks a GPU when there is one.")
        form.addRow("Device", self.device_combo)

        self.runtime_label = QLabel()  # a value, not a hint: the path the model runs on
        self.runtime_label.setWordWrap(True)
        self.runtime_label.setObjectName("runtime_label")
        self.runtime_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.runtime_label.setToolTip("The runtime and precision the model runs on, and the time one image took "
                                      "on it (without loading). Preferences chooses the runtime.")
        form.addRow("Runtime", self.runtime_label)
        layout.addLayout(form)

        self.status_label = HintLabel("Not loaded yet: the first job loads it.")
        layout.addWidget(self.status_label)

        layout.addSpacing(4)
        layout.addWidget(section_label("Get models"))
        self.catalog = CatalogPanel(self.settings, runtime_of=self.runtime_for)
        layout.addWidget(self.catalog, 1)
        self.catalog.installed_changed.connect(self.refresh)
        self.catalog.states_changed.connect(self._fill_models)

        self.refresh_button.clicked.connect(self.refresh)
        self.device_combo.about_to_show.connect(lambda: self.refresh_devices(probe=self._devices is None))

    # ------------------------------------------------------------------ models

    def refresh(self) -> None:
        """Scan the installed models again and list them."""
        self._models = store.list_models()
        self._fill_models()

    def models(self) -> list[ModelInfo]:
        return list(self._models)

    def _fill_models(self) -> None:
        combo = self.model_combo
        combo.blockSignals(True)
        try:
            combo.clear()
            for info in self._listed():
                combo.addItem(f"{info.name} — {TASK_LABELS.get(info.task, info.task)}", info.source)
                index = combo.count() - 1
                combo.setItemData(index, f"{info.source}\n{info.pipeline or info.where}", Qt.ItemDataRole.ToolTipRole)
                if info.task == "lora":  # a LoRA file in the models folder cannot run on its own
                    item = combo.model().item(index)
                    item.setEnabled(False)
            current = self.settings.model
            if current and combo.findData(current) < 0:
                path = Path(current)
                combo.addItem(f"{path.name or current} — chosen file", current)
                combo.setItemData(combo.count() - 1, current, Qt.ItemDataRole.ToolTipRole)
            if combo.count() == 0:
                combo.addItem("Built-in (not installed)", store.BUILTIN)
            combo.insertSeparator(combo.count())
            combo.addItem("Browse…", BROWSE)
            combo.setItemData(combo.count() - 1, "A diffusers folder (pick its model_index.json) or a "
                              ".safetensors / .ckpt checkpoint", Qt.ItemDataRole.ToolTipRole)
        finally:
            combo.blockSignals(False)
        self._show_model(self.settings.model)

    def _listed(self) -> list[ModelInfo]:
        """The scanned models, named as the catalog names them, with the catalog's installed
        models the scan does not see (a pinned snapshot) added, and a catalog repo that is only
        partly fetched left out."""
        catalog = getattr(self, "catalog", None)
        if catalog is None:
            return list(self._models)
        installed = catalog.installed_sources()
        by_repo = {entry.repo: source for source, entry in installed.items() if entry.repo}
        partial = catalog.partial_repos()
        listed = []
        for info in self._models:
            if info.where == "hub-cache":
                if info.source in by_repo:  # the checked snapshot the catalog installed: listed below
                    continue
                if info.source in partial:
                    continue
            entry = installed.get(info.source)
            listed.append(ModelInfo(entry.name, info.source, info.where, info.task, info.pipeline)
                          if entry is not None and info.where != "builtin" else info)
        seen = {info.source for info in listed}
        for source, entry in installed.items():
            if source not in seen and entry.kind == "pipeline":
                listed.append(ModelInfo(entry.name, source, "catalog", _catalog_task(entry), entry.pipeline or ""))
        for entry in catalog.installed_loras():  # a base model with a LoRA: one choice
            listed.append(ModelInfo(entry.name, CATALOG_PREFIX + entry.id, "catalog", _catalog_task(entry)))
        return listed

    def chosen_model(self) -> str:
        """The chosen model as the settings hold it (a catalog LoRA entry as "catalog:<id>"), or
        the default (built-in or first installed)."""
        return self.settings.model or (_default_source(self._models) if self._models else store.default_model())

    def effective_model(self) -> str:
        """The model source jobs use: the chosen one, or the default (built-in or first installed);
        for a catalog LoRA entry, its base model's folder."""
        chosen = self.chosen_model()
        if chosen.startswith(CATALOG_PREFIX):
            try:
                ref = self.catalog.model_ref(chosen)
            except Exception:  # noqa: BLE001 - gone since: the job will say so (model_ref raises)
                return chosen
            return ref.source if ref is not None else chosen
        return chosen

    def _show_model(self, source: str) -> None:
        combo = self.model_combo
        effective = source or (_default_source(self._models) if self._models else store.BUILTIN)
        index = combo.findData(effective)
        if index < 0 and source:
            self._fill_models()  # a browsed path: list it (this calls back with it listed)
            return
        combo.blockSignals(True)
        combo.setCurrentIndex(max(index, 0))
        combo.blockSignals(False)
        info = next((m for m in self._listed() if m.source == effective), None)
        self.source_label.setText(self._elide(effective))
        self.source_label.setToolTip(effective)
        if info is not None:
            combo.setToolTip(f"{info.name}: {TASK_LABELS.get(info.task, info.task)}\n{info.source}")
        self.refresh_runtime()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        full = self.source_label.toolTip()
        if full:
            self.source_label.setText(self._elide(full))

    def _elide(self, text: str) -> str:
        width = max(120, self.source_label.width() or 220)
        return self.source_label.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, width)

    def _model_chosen(self, index: int) -> str | None:
        value = self.model_combo.itemData(index)
        if value != BROWSE:
            return value
        path = choose_model_path(self)
        if not path:
            self._show_model(self.settings.model)  # cancelled: show the model in use again
            return None
        return path

    def model_ref(self) -> ModelRef:
        """The model the next job runs on: a catalog model with its preset (and a LoRA entry's
        LoRA), anything else as it is named. ModelMissing when a chosen catalog model is gone."""
        chosen = self.chosen_model()
        ref = self.catalog.model_ref(chosen)
        return ref if ref is not None else ModelRef(chosen)

    def set_status(self, text: str) -> None:
        """What the worker says about the model: "Loading…", "Loaded on CUDA in 3.1 s", an error."""
        self.status_label.setText(text)

    def status(self) -> str:
        return self.status_label.text()

    # ------------------------------------------------------------------ runtime

    def note_result(self, result: Result) -> None:
        """Remember the path and speed a finished job measured, for its model (a Refine only
        decodes again: it says nothing about the speed of an image)."""
        info = result.model_info or {}
        if not result.ok or isinstance(result.job, Refine) or not info.get("path"):
            return
        job = result.job
        text = str(info["path"])
        seconds = image_seconds(dict(result.timings or {}))
        if seconds is not None:
            text += f" · {speed_text(seconds)}"
        self._measured[(job.model.source, job.runtime or "auto")] = text
        self.refresh_runtime()

    def runtime_for(self, source: str) -> str:
        """The runtime a model runs on: measured by its last job here, else remembered."""
        text = self._measured.get((source, self.settings.runtime or "auto"))
        return text if text is not None else remembered_runtime(source, self.settings)

    def refresh_runtime(self) -> None:
        """Show the path of the model jobs use now: measured, remembered, or to be chosen."""
        self.runtime_label.setText(self.runtime_for(self.effective_model()))
        catalog = getattr(self, "catalog", None)
        if catalog is not None:
            catalog.refresh_runtimes()

    def forget_measured(self) -> None:
        """The runtime choices were forgotten (Preferences): say what the next load will do."""
        self._measured.clear()
        self.refresh_runtime()

    def runtime_text(self) -> str:
        return self.runtime_label.text()

    # ------------------------------------------------------------------ devices

    def refresh_devices(self, probe: bool = True) -> None:
        """List the devices; with probe=True ask PyTorch which exist (imports it when needed)."""
        if probe:
            QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
            try:
                self._devices = available_devices()
            except Exception:  # no torch, or a broken one: CPU is always there
                self._devices = ["cpu"]
            finally:
                QGuiApplication.restoreOverrideCursor()
        self._fill_devices()

    def devices(self) -> list[str]:
        """The device values listed ("auto" first)."""
        return [self.device_combo.itemData(i) for i in range(self.device_combo.count())]

    def _fill_devices(self) -> None:
        combo = self.device_combo
        wanted = ["auto"] + (self._devices if self._devices is not None else ["cpu"])
        current = self.settings.device
        if current not in wanted:  # keep what the settings say, even before asking torch
            wanted.append(current)
        if self.devices() == wanted:
            return
        binding = getattr(self, "_device_binding", None)
        combo.blockSignals(True)
        try:
            combo.clear()
            for device in wanted:
                combo.addItem(DEVICE_LABELS.get(device, device), device)
        finally:
            combo.blockSignals(False)
        if binding is not None:
            binding._from_settings(current)

    def _show_device(self, device: str) -> None:
        if self.device_combo.findData(device) < 0:
            self._fill_devices()
        index = self.device_combo.findData(device)
        self.device_combo.setCurrentIndex(max(index, 0))


__all__ = ["ModelPanel", "choose_model_path", "available_devices", "TASK_LABELS"]
