"""The main window: menus, toolbar, docks and status bar; wires the parts, owns little logic.

Everything that changes the document goes through its undo stack (the panels and canvas call the
Document's command methods); everything that runs a model goes through the JobBridge. Dialogs go
through the module-level `ask_*` functions so tests can replace them.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image
from PySide6.QtCore import QByteArray, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QImage, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from editor.autosave import AutosaveManager
from editor.banner import ErrorBanner
from editor.canvas import CanvasView, ToolState
from editor.document import Document
from editor.jobs import JobBridge
from editor.panels._common import PanelScrollArea
from editor.panels.history import HistoryPanel
from editor.panels.layers import LayersPanel
from editor.panels.models import ModelPanel
from editor.panels.prompt import PromptPanel
from editor import targets
from editor.settings import Settings
from editor.theme import icon
from inference.jobs import BadInput, JobError, Progress, Result, Target
from inference.version import version as _version

log = logging.getLogger(__name__)

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff);;OpenRaster (*.ora)"
OPEN_FILTER = "Images and documents (*.ora *.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff);;All files (*)"
OPENABLE = {".ora", ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
EXPORT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
Box = tuple[int, int, int, int]


# --------------------------------------------------------------------------- dialogs (patchable)


def ask_open_path(parent: QWidget) -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Open", "", OPEN_FILTER)
    return path or None


def ask_save_path(parent: QWidget, suggested: str) -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, "Save document", suggested, "OpenRaster (*.ora)")
    return path or None


def ask_export_path(parent: QWidget, suggested: str) -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, "Export image", suggested, "PNG (*.png);;JPEG (*.jpg);;WebP (*.webp)")
    return path or None


def ask_new_size(parent: QWidget, default: tuple[int, int]) -> tuple[int, int] | None:
    text, ok = QInputDialog.getText(parent, "New image", "Size (width x height):", text=f"{default[0]}x{default[1]}")
    if not ok:
        return None
    try:
        width, height = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise BadInput(f"“{text}” is not a size; write it like 1024x768.") from None
    if not (1 <= width <= 16384 and 1 <= height <= 16384):
        raise BadInput("Width and height must be between 1 and 16384 pixels.")
    return width, height


def ask_pixels(parent: QWidget, title: str, label: str, default: int, minimum: int = -500) -> int | None:
    value, ok = QInputDialog.getInt(parent, title, label, default, minimum, 500)
    return value if ok else None


def ask_unsaved(parent: QWidget, name: str, unapplied: int) -> str:
    """Ask before unsaved work is lost: "save", "discard" or "cancel".

    `unapplied` results count as work: they are kept with the document when it is saved.
    """
    what = "unsaved changes"
    if unapplied:
        what += f" and {unapplied} result{'s' if unapplied != 1 else ''} not applied yet"
    box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes", f"{name} has {what}.", parent=parent)
    box.setInformativeText("Save them with the document before closing it?")
    buttons = QMessageBox.StandardButton
    box.setStandardButtons(buttons.Save | buttons.Discard | buttons.Cancel)
    box.setDefaultButton(buttons.Save)
    answer = box.exec()
    return {buttons.Save: "save", buttons.Discard: "discard"}.get(answer, "cancel")


ABOUT_TEXT = f"""<h3>Quickbrush {_version()}</h3>
<p>A desktop image editor with a fast diffusion model that runs on your own computer.</p>
<p>Quickbrush and its built-in model are released under the Apache License 2.0.</p>
<p>It is built on: Qt for Python (PySide6, LGPL-3.0), PyTorch (BSD-3-Clause), diffusers, transformers,
huggingface_hub, safetensors and accelerate (Apache-2.0), ONNX Runtime (MIT), model2vec (MIT),
tokenizers (Apache-2.0), Pillow (MIT-CMU), NumPy (BSD-3-Clause) and platformdirs (MIT).</p>
<p><b>The built-in model</b> was trained by the Quickbrush project on emoji, icons and clip art it
does not include: Twemoji by Twitter, Inc and other contributors (CC-BY 4.0), Noto Color Emoji by
Google (OFL-1.1, images Apache-2.0) and Fluent Emoji by Microsoft (MIT), with names from Unicode
CLDR via emojibase-data (MIT); Tabler Icons by Paweł Kuna (MIT) and Lucide (ISC; parts from
Feather, MIT); and Openclipart (public domain). Its text encoder is distilled from
all-MiniLM-L6-v2 (Apache-2.0).
Details: assets/models/builtin/DATA.md.</p>
<p>Models you load yourself keep their own licences.</p>"""


# --------------------------------------------------------------------------- window


class MainWindow(QMainWindow):
    # Emitted from the saving thread with (document, path, clean marker, error or None); Qt
    # queues it to the GUI thread, where _on_saved finishes the save.
    _save_done = Signal(object, str, object, object)
    # After set_document swapped the window's document (the new one).
    document_changed = Signal(object)
    # After a result was applied to the document.
    result_applied = Signal()

    def __init__(self, settings: Settings | None = None, bridge: JobBridge | None = None,
                 document: Document | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("QuickbrushMainWindow")
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self.settings = settings or Settings()
        # The bridge first: it freezes import-time objects out of the garbage collector's way.
        self.bridge = bridge or JobBridge(parent=self)
        self.document = document or Document.new(768, 512)
        self._job_started_at: dict[int, float] = {}
        self._model_status = ""
        self._preferences = None
        self._saving: threading.Thread | None = None
        self._save_done.connect(self._on_saved)

        self.tool_state = ToolState(brush_size=self.settings.brush_size, hardness=self.settings.brush_hardness)
        self.canvas = CanvasView(self.document, self.tool_state)
        self.banner = ErrorBanner()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.canvas, 1)
        self.setCentralWidget(central)

        self.prompt = PromptPanel(self.settings)
        self.history = HistoryPanel()
        self.history.set_history(self.document.history)
        self.layers = LayersPanel(self.document, self.settings)
        self.models = ModelPanel(self.settings)
        self.docks: dict[str, QDockWidget] = {}
        self._add_dock("prompt", "Prompt", self.prompt, Qt.DockWidgetArea.RightDockWidgetArea)
        self._add_dock("history", "History", self.history, Qt.DockWidgetArea.RightDockWidgetArea)
        self._add_dock("layers", "Layers", self.layers, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._add_dock("model", "Model", self.models, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._default_state = self.saveState()

        self._build_status_bar()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._connect()
        self._restore_window()
        self._watch_document(self.document)
        self._update_title()
        self._update_size_label()
        self.autosave = AutosaveManager(self)  # follows document_changed and result_applied

    # -- construction ------------------------------------------------------------------

    def _add_dock(self, name: str, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        # In a scroll area, so a small screen (1366x768, or a high-DPI laptop) squeezes a panel
        # and scrolls it instead of pushing the window's minimum height past the screen.
        scroll = PanelScrollArea(widget)
        scroll.setObjectName(f"scroll_{name}")
        dock.setWidget(scroll)
        self.addDockWidget(area, dock)
        self.docks[name] = dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.worker_label = QLabel("Ready")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(260)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.hide()
        self.queue_button = QToolButton()
        self.queue_button.setText("Queue")
        self.queue_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.queue_button.hide()
        self.cursor_label = QLabel("")
        self.zoom_label = QLabel("")
        self.size_label = QLabel("")
        for label in (self.cursor_label, self.zoom_label, self.size_label):
            label.setMinimumWidth(90)
        bar.addWidget(self.worker_label)
        bar.addWidget(self.progress_bar)
        bar.addWidget(self.queue_button)
        bar.addPermanentWidget(self.cursor_label)
        bar.addPermanentWidget(self.zoom_label)
        bar.addPermanentWidget(self.size_label)

    def _action(self, text: str, slot: Any, shortcut: Any = None, icon_name: str | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if icon_name:
            action.setIcon(icon(icon_name))
        action.triggered.connect(lambda _checked=False: self._guarded(slot))
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        k = QKeySequence.StandardKey
        self.actions_ = a = {}
        a["new"] = self._action("&New…", self.new_document, k.New)
        a["open"] = self._action("&Open…", self.open_dialog, k.Open, "open")
        a["save"] = self._action("&Save", self.save, k.Save, "save")
        a["save_as"] = self._action("Save &As…", self.save_as, k.SaveAs)
        a["export"] = self._action("&Export…", self.export_dialog, "Ctrl+E")
        a["quit"] = self._action("&Quit", self.close, k.Quit)
        a["undo"] = self._action("&Undo", lambda: self._undo(True), k.Undo, "undo")
        a["redo"] = self._action("&Redo", lambda: self._undo(False), "Ctrl+Shift+Z", "redo")
        a["copy"] = self._action("&Copy image", self.copy_image, k.Copy)
        a["paste"] = self._action("&Paste image", self.paste_image, k.Paste)
        a["clear_mask"] = self._action("C&lear mask", lambda: self.document.clear_mask(), "Ctrl+Shift+D")
        a["invert_mask"] = self._action("&Invert mask", lambda: self.document.invert_mask(), "Ctrl+I")
        a["grow_mask"] = self._action("&Grow or shrink mask…", self.grow_mask)
        a["feather_mask"] = self._action("&Feather mask…", self.feather_mask)
        a["deselect"] = self._action("&Deselect", lambda: self.document.set_selection(None), "Ctrl+D")
        a["generate"] = self._action("&Generate", self.generate, "Ctrl+Return", "generate")
        a["cancel"] = self._action("&Cancel running job", self.cancel, "Esc", "cancel")
        a["cancel"].setToolTip("Cancel the running job (Esc); queued jobs still run")
        a["cancel_all"] = self._action("Cancel &all jobs", self.cancel_all, "Shift+Esc")
        a["cancel_all"].setToolTip("Cancel the running job and every queued one (Shift+Esc)")
        a["apply"] = self._action("&Apply result", lambda: self._apply_current(False), "Ctrl+Shift+Return")
        a["unload"] = self._action("&Unload models", self.bridge.unload_models)
        a["reset_layout"] = self._action("&Reset layout", self.reset_layout)
        a["preferences"] = self._action("Pre&ferences…", self.show_preferences,
                                        k.Preferences if QKeySequence.keyBindings(k.Preferences) else "Ctrl+,")
        a["preferences"].setMenuRole(QAction.MenuRole.PreferencesRole)
        a["about"] = self._action("&About Quickbrush", self.about)
        a["cancel"].setEnabled(False)
        a["cancel_all"].setEnabled(False)

    def _build_menus(self) -> None:
        a, c = self.actions_, self.canvas.canvas_actions
        menu = self.menuBar().addMenu("&File")
        menu.addActions([a["new"], a["open"]])
        self.recent_menu = menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        menu.addSeparator()
        menu.addActions([a["save"], a["save_as"], a["export"]])
        menu.addSeparator()
        menu.addAction(a["quit"])
        menu = self.menuBar().addMenu("&Edit")
        menu.addActions([a["undo"], a["redo"]])
        menu.addSeparator()
        menu.addActions([a["copy"], a["paste"]])
        menu.addSeparator()
        menu.addAction(a["preferences"])
        menu = self.menuBar().addMenu("&Mask")
        menu.addActions([c["brush"], c["eraser"], c["swap"], c["smaller"], c["bigger"]])
        menu.addSeparator()
        menu.addActions([a["clear_mask"], a["invert_mask"], a["grow_mask"], a["feather_mask"], c["toggle_mask"]])
        menu.addSeparator()
        menu.addActions([c["select"], a["deselect"]])
        menu = self.menuBar().addMenu("&View")
        menu.addActions([c["zoom_in"], c["zoom_out"], c["fit"], c["actual_size"]])
        menu.addSeparator()
        for dock in self.docks.values():
            menu.addAction(dock.toggleViewAction())
        menu.addAction(a["reset_layout"])
        menu = self.menuBar().addMenu("&Generate")
        menu.addActions([a["generate"], a["cancel"], a["cancel_all"], a["apply"]])
        menu.addSeparator()
        menu.addAction(a["unload"])
        menu = self.menuBar().addMenu("&Help")
        menu.addAction(a["about"])

    def _build_toolbar(self) -> None:
        a, c = self.actions_, self.canvas.canvas_actions
        bar = self.addToolBar("Tools")
        bar.setObjectName("toolbar_tools")
        bar.setMovable(False)
        bar.addActions([a["open"], a["save"]])
        bar.addSeparator()
        bar.addActions([a["undo"], a["redo"]])
        bar.addSeparator()
        bar.addActions([c["brush"], c["eraser"], c["select"], c["pan"], c["toggle_mask"], c["fit"]])
        bar.addSeparator()
        bar.addActions([a["generate"], a["cancel"]])

    def _connect(self) -> None:
        s = self.settings
        # Brush and mask display follow the settings both ways.
        self.tool_state.brush_size_changed.connect(lambda v: s.set("brush_size", v))
        self.tool_state.hardness_changed.connect(lambda v: s.set("brush_hardness", v))
        s.bind("mask_opacity", self.canvas.set_mask_opacity)
        s.bind("mask_color", self.canvas.set_mask_color)
        self.layers.mask_visibility_changed.connect(self.canvas.set_mask_visible)
        self.canvas.mask_visible_changed.connect(self.layers.set_mask_visible)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.canvas.cursor_moved.connect(self._show_cursor)
        self.zoom_label.setText(f"{self.canvas.zoom * 100:.0f} %")

        self.prompt.generate_requested.connect(lambda: self._guarded(self.generate))
        self.prompt.cancel_requested.connect(self.cancel)
        self.prompt.cancel_all_requested.connect(self.cancel_all)
        self.history.preview_requested.connect(self._preview_entry)
        self.history.preview_cleared.connect(lambda: self.canvas.set_preview(None))
        self.history.apply_requested.connect(lambda entry, new_layer: self._guarded(self._apply, entry, new_layer))
        self.history.rerun_requested.connect(lambda entry: self._guarded(self._rerun, entry))
        self.history.refine_requested.connect(lambda entry: self._guarded(self._refine, entry))

        b = self.bridge
        b.started.connect(self._on_started)
        b.progress.connect(self._on_progress)
        b.finished.connect(self._on_finished)
        b.queue_changed.connect(self._on_queue_changed)
        b.busy_changed.connect(self._on_busy_changed)
        # A diffusers model chosen (now or later) warms the worker up; the built-in one needs none.
        s.bind("model", lambda _source: b.warm_up_for(self.models.effective_model()))

    def _watch_document(self, document: Document) -> None:
        self._unwatch_document()
        connections = [
            (document.mask_changed, self._on_mask_changed),
            (document.size_changed, self._update_size_label),
            (document.needs_saving_changed, lambda needs: self._update_title(modified=needs)),
            (document.undo_stack.canUndoChanged, self.actions_["undo"].setEnabled),
            (document.undo_stack.canRedoChanged, self.actions_["redo"].setEnabled),
        ]
        connections = [(signal, _ignore_deleted(slot)) for signal, slot in connections]
        for signal, slot in connections:
            signal.connect(slot)
        self._connections = connections
        self.actions_["undo"].setEnabled(document.undo_stack.canUndo())
        self.actions_["redo"].setEnabled(document.undo_stack.canRedo())

    def _unwatch_document(self) -> None:
        """Cut the old document's signals: Qt may emit them while deleting it, after the window's actions."""
        for signal, slot in getattr(self, "_connections", []):
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):  # already deleted or disconnected
                pass
        self._connections = []

    # -- error handling ----------------------------------------------------------------------

    def _guarded(self, slot: Any, *args: Any) -> Any:
        """Run a user action; a failure becomes the banner, never a crash or a lost document."""
        try:
            return slot(*args)
        except JobError as exc:
            self.show_error(exc.message, exc.details)
        except Exception as exc:  # the designer's work must survive any bug in an action
            log.exception("action failed")
            import traceback

            self.show_error(f"Something went wrong: {exc}", traceback.format_exc())
        return None

    def show_error(self, message: str, details: str = "") -> None:
        log.info("error shown: %s", message)
        self.banner.show_error(message, details)

    # -- documents ----------------------------------------------------------------------------

    def set_document(self, document: Document, history: list[dict] | None = None) -> None:
        """Show `document`; `history` (records from `editor.ora.load_ora`) becomes its History."""
        old = self.document
        self.document = document
        if history:
            document.load_history(history)
        self.canvas.set_document(document)
        self.layers.set_document(document)
        self.history.set_history(document.history)
        self.canvas.set_preview(None)
        self._watch_document(document)
        self.prompt.on_mask_changed(document.has_mask())
        self._update_title()
        self._update_size_label()
        if old is not None and old is not document:
            old.deleteLater()
        self.document_changed.emit(document)

    def _may_discard(self) -> bool:
        """Whether the current document may go: nothing to lose, saved now, or the designer said
        discard. Unapplied results count, since they are saved with the document."""
        document = self.document
        if not document.needs_saving:
            return True
        answer = ask_unsaved(self, document.display_name, len(document.history.unapplied()))
        if answer == "save":
            if not self.save():
                return False
            self.wait_for_save()  # the document goes next: its file must be complete first
            return not self.document.needs_saving
        return answer == "discard"

    def new_document(self) -> None:
        if not self._may_discard():
            return
        size = ask_new_size(self, (self.document.width, self.document.height))
        if size:
            self.set_document(Document.new(*size))

    def open_dialog(self) -> None:
        path = ask_open_path(self)
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> bool:
        """Open an image or .ora; on failure the current document stays as it was."""
        from editor.ora import load_ora
        from inference.images import open_image

        if not self._may_discard():
            return False
        try:
            if Path(path).suffix.lower() == ".ora":
                document, history = load_ora(path)
            else:
                image = open_image(path)
                document, history = Document.from_image(image, name=Path(path).stem), []
                document.source_path = str(path)
        except JobError as exc:
            self.show_error(exc.message, exc.details)
            return False
        self.set_document(document, history)
        self.settings.add_recent_file(str(Path(path).resolve()))
        self.canvas.fit()
        log.info("opened %s (%dx%d)", path, document.width, document.height)
        return True

    def save(self) -> bool:
        path = self.document.path
        if not path or not str(path).lower().endswith(".ora"):
            return self.save_as()
        return self._save_to(path)

    def save_as(self) -> bool:
        suggested = self.document.suggested_path(".ora")
        path = ask_save_path(self, suggested)
        if not path:
            return False
        if not path.lower().endswith(".ora"):
            path += ".ora"
        return self._save_to(path)

    def _save_to(self, path: str) -> bool:
        """Snapshot the document here, then encode and write it on a thread: a large document
        takes seconds to compress, and the window must not freeze meanwhile. True when the save
        started; how it ended shows in the status bar, the title and (on failure) the banner."""
        from editor.ora import prepare_save

        self.wait_for_save()  # one save at a time, in order
        try:
            prepared = prepare_save(path, self.document, self.document.history_records())
        except JobError as exc:
            self.show_error(exc.message, exc.details)
            return False
        document = self.document
        marker = _clean_marker(document)
        self._saving = threading.Thread(target=self._write, args=(prepared, document, marker),
                                        name="quickbrush-save", daemon=True)
        self.statusBar().showMessage(f"Saving {prepared.target.name}…")
        self._saving.start()
        return True

    def _write(self, prepared, document: Document, marker: object) -> None:
        from editor.ora import write_prepared

        error: JobError | None = None
        try:
            write_prepared(prepared)
        except JobError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - reported in the banner, never lost in a thread
            error = JobError(f"Could not save {prepared.target.name}.", f"{type(exc).__name__}: {exc}")
        self._save_done.emit(document, str(prepared.target), marker, error)

    def _on_saved(self, document: Document, path: str, marker: object, error: JobError | None) -> None:
        self._saving = None
        if error is not None:
            self.statusBar().clearMessage()
            self.show_error(error.message, error.details)
            return
        if _clean_marker(document) == marker:
            document.mark_saved(path)
        else:  # changed while it was being written: the file holds the earlier state
            document.path = path
        self.settings.add_recent_file(str(Path(path).resolve()))
        self.statusBar().showMessage(f"Saved {Path(path).name}", 4000)
        self._update_title()
        log.info("saved %s", path)

    @property
    def saving(self) -> bool:
        return self._saving is not None

    def wait_for_save(self) -> None:
        """Block until a save in progress is written and reported (quitting, saving again)."""
        thread = self._saving
        if thread is None:
            return
        thread.join()
        for _ in range(1000):  # deliver the queued _save_done
            if self._saving is not thread:
                return
            QApplication.processEvents()
        self._saving = None  # the report never came (the window is going): do not wait forever

    def export_dialog(self) -> None:
        base = Path(self.document.suggested_path(".png"))
        path = ask_export_path(self, str(base.with_name(base.stem + "-export.png")))
        if path:
            self.export(path)

    def export(self, path: str) -> None:
        """PNG (with the recipe of the document's last applied result), JPEG or WebP of the visible image."""
        from inference.metadata import atomic_write, save_png

        suffix = Path(path).suffix.lower()
        if suffix not in EXPORT_FORMATS:
            raise BadInput(f"Export as PNG, JPEG or WebP (not {suffix or 'no extension'}).")
        image = self.document.composite()
        if suffix == ".png":
            applied = self.document.history.last_applied()
            if applied is not None:
                result = applied.result
                save_png(path, image, result.job, timings=dict(result.timings), model_info=dict(result.model_info))
            else:
                atomic_write(path, lambda handle: image.save(handle, "PNG"))
        else:
            if image.mode == "RGBA":
                background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, image).convert("RGB")
            atomic_write(path, lambda handle: image.save(handle, EXPORT_FORMATS[suffix], quality=95))
        self.statusBar().showMessage(f"Exported {Path(path).name}", 4000)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent_files:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.triggered.connect(lambda _c=False, p=path: self._guarded(self.open_path, p))
        if not self.settings.recent_files:
            self.recent_menu.addAction("No recent files").setEnabled(False)

    # -- edit ---------------------------------------------------------------------------------

    def _undo(self, undo: bool) -> None:
        if self.document.stroking:
            return  # finish the stroke first; undoing under the brush would tear it in two
        (self.document.undo_stack.undo if undo else self.document.undo_stack.redo)()

    def copy_image(self) -> None:
        image = self.document.composite("RGBA")
        qimage = QImage(image.tobytes(), image.width, image.height, 4 * image.width, QImage.Format.Format_RGBA8888)
        QApplication.clipboard().setImage(qimage.copy())

    def paste_image(self) -> None:
        qimage = QApplication.clipboard().image()
        if qimage.isNull():
            raise BadInput("The clipboard holds no image.")
        qimage = qimage.convertToFormat(QImage.Format.Format_RGBA8888)
        data = bytes(qimage.constBits())[: qimage.sizeInBytes()]
        stride = qimage.bytesPerLine()
        image = Image.frombuffer("RGBA", (qimage.width(), qimage.height()), data, "raw", "RGBA", stride, 1).copy()
        self.document.apply_result(image, (0, 0), as_new_layer=True, name="Pasted")

    def grow_mask(self) -> None:
        pixels = ask_pixels(self, "Grow or shrink mask", "Pixels (negative shrinks):", 8)
        if pixels:
            self.document.grow_mask(pixels)

    def feather_mask(self) -> None:
        pixels = ask_pixels(self, "Feather mask", "Pixels:", 8, minimum=1)
        if pixels:
            self.document.feather_mask(pixels)

    # -- jobs ---------------------------------------------------------------------------------

    def generate(self) -> None:
        request = self.prompt.build_request(self.document, self.models.model_ref())
        for job in request.jobs:
            self.bridge.submit(job)
        # The designer typed a prompt and pressed Ctrl+Enter: painting comes next, so the canvas
        # takes the keys again (B, E, H, X would otherwise type into the prompt box).
        focused = QApplication.focusWidget()
        if focused is not None and self.prompt.isAncestorOf(focused):
            self.canvas.setFocus()
        log.info("queued %d %s job(s)", len(request.jobs), request.jobs[0].kind if request.jobs else "")

    def cancel(self) -> None:
        """Esc: the running job only; what is queued runs next (Shift+Esc cancels everything)."""
        self.bridge.cancel_running()

    def cancel_all(self) -> None:
        count = self.bridge.cancel_all()
        self.canvas.set_preview(None)
        if count:
            self.statusBar().showMessage(f"Cancelled {count} job{'s' if count != 1 else ''}", 4000)

    def _rerun(self, entry: Any) -> None:
        self.bridge.submit(entry.job_with_new_seed())

    def _refine(self, entry: Any) -> None:
        """Decode a fast-decoded result again in full; the refined one lands where it did."""
        self.bridge.submit(entry.refine_job())

    def _on_started(self, job_id: int, job: Any) -> None:
        self._job_started_at[job_id] = time.monotonic()
        # "loading model…" comes with the engine's load progress, only when it really loads.
        self.worker_label.setText(f"{job.kind.capitalize()}: starting…")
        if not self.models.status().startswith("Running "):
            self._model_status = self.models.status()  # put back if this job fails or is cancelled
        self.models.set_status(f"Running {job.kind}")
        self.progress_bar.setRange(0, 0)
        self.progress_bar.show()

    def _on_progress(self, update: Progress) -> None:
        if update.stage in ("load", "prepare"):
            running = self.bridge.running()
            kind = running[1].kind.capitalize() if running is not None else "Job"
            if update.stage == "load":
                self.worker_label.setText(f"{kind}: loading model…")
            else:
                # The first use of a model here converts and times it (a minute, once): say so,
                # or the busy bar looks frozen.
                text = update.text or "preparing the model"
                self.worker_label.setText(f"{text[0].upper()}{text[1:]}…")
                self.models.set_status("Preparing the model for this computer (once)…")
            self.progress_bar.setRange(0, 0)
            return
        self.progress_bar.setRange(0, update.total)
        self.progress_bar.setValue(update.step)
        eta = update.eta
        left = f" · {eta:.1f} s left" if eta is not None and update.step < update.total else ""
        self.progress_bar.setFormat(f"Step %v/%m{left}")
        self.worker_label.setText("Generating")
        if update.preview is not None and self.settings.live_preview:
            running = self.bridge.running()
            target = running[1].target if running is not None and running[0] == update.job_id else None
            self.canvas.set_preview(update.preview, targets.preview_box(
                target, update.preview.size, update.box, (self.document.width, self.document.height)))

    def _on_finished(self, result: Result) -> None:
        self._job_started_at.pop(result.job_id, None)
        self.progress_bar.hide()
        if result.ok:
            total = result.timings.get("total", 0.0)
            self.worker_label.setText(f"Done in {total:.1f} s")
            self.models.set_status(f"{result.model_info.get('device', '')} · {result.model_info.get('preset', '')}")
            self.models.note_result(result)
            entry = self.history.add_result(result)
            if entry is not None:
                self.history.select(entry)
            log.info("job %d finished: %s ok in %.2fs on %s", result.job_id, result.job.kind, total,
                     result.job.model.source)
        elif result.cancelled:
            self.models.set_status(self._model_status)
            self.worker_label.setText("Cancelled")
            self.canvas.set_preview(None)
            log.info("job %d cancelled", result.job_id)
        else:
            self.models.set_status(self._model_status)
            self.worker_label.setText("Failed")
            self.canvas.set_preview(None)
            error = result.error
            self.show_error(getattr(error, "message", str(error)), getattr(error, "details", ""))
            log.info("job %d failed: %s", result.job_id, error)

    def _on_busy_changed(self, busy: bool) -> None:
        self.prompt.set_busy(busy)
        self.actions_["cancel"].setEnabled(busy)
        self.actions_["cancel_all"].setEnabled(busy)

    def _on_queue_changed(self) -> None:
        queued = self.bridge.queued()
        self.queue_button.setVisible(bool(queued))
        self.queue_button.setText(f"Queue ({len(queued)})")
        menu = self.queue_button.menu()
        if menu is None:
            from PySide6.QtWidgets import QMenu

            menu = QMenu(self.queue_button)
            self.queue_button.setMenu(menu)
        menu.clear()
        for job_id, job in queued:
            action = menu.addAction(f"Remove {job.kind}: {job.prompt[:40] or '(no prompt)'} · seed {job.seed}")
            action.triggered.connect(lambda _c=False, i=job_id: self.bridge.remove_queued(i))

    def _preview_entry(self, entry: Any) -> None:
        if entry.image is None:
            self.canvas.set_preview(None)
            return
        target = entry.target or Target((0, 0, *entry.image.size))
        self.canvas.set_preview(entry.image, targets.placement(target, entry.image.size))

    def _apply_current(self, as_new_layer: bool) -> None:
        entry = self.history.current()
        if entry is None:
            raise BadInput("Pick a result in the History panel first.")
        self._apply(entry, as_new_layer)

    def _apply(self, entry: Any, as_new_layer: bool) -> None:
        targets.fit(self.document, entry, as_new_layer=as_new_layer)
        self.canvas.set_preview(None)
        self.result_applied.emit()
        log.info("applied %s result%s", entry.mode, " as new layer" if as_new_layer else "")

    # -- status -------------------------------------------------------------------------------

    def _on_mask_changed(self, _rect: QRect) -> None:
        self.prompt.on_mask_changed(self.document.has_mask())

    def _show_cursor(self, point: Any) -> None:
        self.cursor_label.setText("" if point is None else f"{int(point.x())}, {int(point.y())}")

    def _update_size_label(self) -> None:
        self.size_label.setText(f"{self.document.width} × {self.document.height}")

    def _update_title(self, modified: bool | None = None) -> None:
        modified = self.document.needs_saving if modified is None else modified
        self.setWindowTitle(f"{self.document.display_name}{'*' if modified else ''} — Quickbrush")

    def show_preferences(self) -> None:
        """One non-modal dialog, kept: its fields apply as they change, so it can stay open."""
        if self._preferences is None:
            from editor.preferences import PreferencesDialog

            self._preferences = PreferencesDialog(self.settings, self)
            self._preferences.runtime_choices_forgotten.connect(self.models.forget_measured)
        self._preferences.show()
        self._preferences.raise_()
        self._preferences.activateWindow()

    def about(self) -> None:
        QMessageBox.about(self, "About Quickbrush", ABOUT_TEXT)

    # -- window state ---------------------------------------------------------------------

    def _restore_window(self) -> None:
        geometry, state = self.settings.window_geometry, self.settings.window_state
        if geometry:
            self.restoreGeometry(QByteArray.fromBase64(geometry.encode()))
        else:
            self._first_run_geometry()
        if state:
            self.restoreState(QByteArray.fromBase64(state.encode()))
        else:
            QTimer.singleShot(0, self._fit_docks)

    def _fit_docks(self) -> None:
        """Give the Prompt and Layers panels the height they want, at least their minimum, so
        Generate is in sight without scrolling; History and Model keep at least their minimum and
        take what is left (their lists scroll anyway)."""
        for name, other in (("prompt", "history"), ("layers", "model")):
            dock, rest = self.docks[name], self.docks[other]
            scroll = dock.widget()
            chrome = dock.height() - scroll.height()  # the dock's title bar
            panel = scroll.widget()
            total = dock.height() + rest.height()
            # The other panel keeps half again its minimum: History should show a result and its buttons.
            room = total - int(rest.widget().widget().minimumSizeHint().height() * 1.5) - 2 * chrome
            height = max(panel.minimumSizeHint().height(), min(panel.sizeHint().height(), room)) + chrome
            if dock.isVisible() and rest.isVisible() and total > height:
                self.resizeDocks([dock, rest], [height, total - height], Qt.Orientation.Vertical)

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        self._fit_docks()

    def _first_run_geometry(self) -> None:
        """1400x900 where it fits, else 90 % of the screen, centred. On a high-DPI laptop (say
        1440x900 logical px at 2x) a fixed size would put the window's edges off the screen."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            self.resize(1400, 900)
            return
        area = screen.availableGeometry()
        width, height = min(1400, int(area.width() * 0.9)), min(900, int(area.height() * 0.9))
        self.setGeometry(QRect(area.x() + (area.width() - width) // 2, area.y() + (area.height() - height) // 2,
                               width, height))

    def save_window_state(self) -> None:
        self.settings.window_geometry = bytes(self.saveGeometry().toBase64()).decode()
        self.settings.window_state = bytes(self.saveState().toBase64()).decode()
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.wait_for_save()  # a save in progress finishes before the window goes
        if not self._may_discard():
            event.ignore()
            return
        self.autosave.shutdown()  # saved or discarded: its autosave goes
        self.save_window_state()
        self._unwatch_document()
        self.bridge.shutdown()
        event.accept()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if urls and Path(urls[0].toLocalFile()).suffix.lower() in OPENABLE:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = event.mimeData().urls()[0].toLocalFile()
        event.acceptProposedAction()
        # Opening may ask about unsaved changes: do it after the drop has finished.
        QTimer.singleShot(0, lambda: self._guarded(self.open_path, path))


def _ignore_deleted(slot: Any) -> Any:
    """A slot that does nothing once Qt has deleted the window it updates.

    A document can outlive the window (tests, a window torn down without closeEvent); its undo
    stack still emits cleanChanged while Qt deletes it.
    """

    def call(*args: Any) -> None:
        try:
            slot(*args)
        except RuntimeError as exc:
            if "already deleted" not in str(exc):
                raise

    return call


def _clean_marker(document: Document) -> tuple[int, object]:
    """Names the document's state: the undo stack's index and the command that led to it (an
    undo followed by a new command reaches the same index with different content)."""
    stack = document.undo_stack
    index = stack.index()
    return index, (stack.command(index - 1) if index > 0 else None)
