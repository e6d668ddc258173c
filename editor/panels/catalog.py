"""The Model dock's catalog: the vetted models (inference/models/catalog.toml), what is installed,
downloads with progress, Cancel, Remove, Import, and any Hub repository id typed in.

The list is compact, one two-line row a model (name, then what it does), its size and its state;
a row opens (or its tooltip tells) the rest: capabilities, licence with its link, memory, and for
an installed model the runtime it runs on. Everything slow runs in `editor.downloads`' threads:
the downloads, the states (deciding "installed" verifies files), imports and removals; the GUI
thread only shows what they report. Inference is reached only through its APIs
(`inference.models.catalog`, `.downloads`, `.importer`), imported when first needed.

Dialogs go through module-level functions (`ask_licence`, `confirm_remove`, `choose_import_path`)
that tests replace.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QFontMetrics, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from editor.banner import ErrorBanner
from editor.downloads import BackgroundTask, DownloadManager, as_job_error, guarded
from editor.panels._common import HintLabel
from editor.settings import Settings
from inference.jobs import Cancelled, JobError, ModelMissing, ModelRef

ENTRY_ROLE = Qt.ItemDataRole.UserRole  # the catalog id, on a top-level row
CATALOG_PREFIX = "catalog:"  # settings.model of a catalog LoRA entry: "catalog:sd15-lcm"
LINK_ROLE = Qt.ItemDataRole.UserRole + 1  # a licence's address, on its detail row

FILTERS = (
    ("All models", None),
    ("Generate", "generate"),
    ("Inpaint", "inpaint"),
    ("Edit", "edit"),
    ("Decoders", "decoder"),
    ("LoRAs", "lora"),
)
CAPABILITY_LABELS = {"generate": "text to image", "inpaint": "inpainting", "edit": "instruction edit",
                     "decoder": "fast previews and decode", "lora": "LoRA (with its base model)"}
STATE_LABELS = {"installed": "Installed", "partial": "Partial", "absent": "", "checking": "…"}


# --------------------------------------------------------------------------- text


def human_bytes(n: float | None) -> str:
    """"2.1 GB", "540 MB", "12 KB" (decimal units, as the Hub and file managers show them)."""
    if n is None or n < 0:
        return "?"
    n = float(n)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{int(n)} bytes"


def human_speed(bytes_per_s: float | None) -> str:
    return f"{human_bytes(bytes_per_s)}/s" if bytes_per_s and bytes_per_s > 0 else "starting"


def human_time_left(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "time left unknown"
    seconds = round(seconds)
    if seconds < 60:
        return f"{max(seconds, 1)} s left"
    minutes = (seconds + 30) // 60
    if minutes < 60:
        return f"{minutes} min left"
    return f"{minutes // 60} h {minutes % 60:02d} min left"


def progress_line(progress) -> str:
    """The total of a download: "1.2 GB of 2.1 GB · 5.1 MB/s · 3 min left"."""
    return (f"{human_bytes(progress.done)} of {human_bytes(progress.total)} · "
            f"{human_speed(progress.bytes_per_s)} · {human_time_left(progress.seconds_left)}")


def _current_file(progress):
    files = list(progress.files or ())
    for f in files:
        if f.name == progress.current:
            return files.index(f) + 1, len(files), f
    for i, f in enumerate(files):  # none named: the first one not done yet
        if f.done < f.total:
            return i + 1, len(files), f
    return (len(files), len(files), files[-1]) if files else (0, 0, None)


def file_line(progress) -> str:
    """The file being fetched: "File 3 of 7: 400 MB of 1.7 GB · unet/diffusion_pytorch_model.safetensors"
    (the numbers first: a narrow dock elides the name)."""
    index, count, f = _current_file(progress)
    if f is None:
        return "Asking the Hub what to fetch…"
    return f"File {index} of {count}: {human_bytes(f.done)} of {human_bytes(f.total)} · {f.name}"


def files_tooltip(progress) -> str:
    rows = []
    for f in progress.files or ():
        mark = "✓" if f.total and f.done >= f.total else ("…" if f.done else "·")
        rows.append(f"{mark} {f.name}: {human_bytes(f.done)} of {human_bytes(f.total)}")
    return "\n".join(rows)


def percent(done: int, total: int) -> int:
    return int(100 * done / total) if total else 0


def licence_html(entry) -> str:
    name = html.escape(entry.licence or "unknown licence")
    text = f'<a href="{html.escape(entry.licence_url)}">{name}</a>' if entry.licence_url else name
    if not entry.commercial:
        text += " — <b>non-commercial use only</b>"
    return text


def entry_tooltip(entry, state: str, runtime: str = "") -> str:
    lines = [f"{entry.name} ({entry.id})", entry.description, "",
             "Does: " + (", ".join(CAPABILITY_LABELS.get(c, c) for c in entry.capabilities) or "—"),
             ("Comes with Quickbrush: no download" if entry.kind == "builtin"
              else f"Download: {human_bytes(entry.download_bytes) if entry.download_bytes else 'size known when it starts'}")
             + (f" · about {human_bytes(entry.memory_bytes)} of memory when loaded" if entry.memory_bytes else ""),
             f"Licence: {entry.licence}" + ("" if entry.commercial else " (non-commercial use only)")]
    if entry.large:
        lines.append(f"Large: it needs about {human_bytes(entry.memory_bytes)} of memory.")
    if entry.base:
        lines.append(f"Applies to: {entry.base}")
    if entry.repo:
        lines.append(f"From: {entry.repo}" + (f" @ {entry.revision[:10]}" if entry.revision else ""))
    if state == "installed" and runtime:
        lines.append(f"Runs on: {runtime}")
    return "\n".join(lines)


class _EntryDelegate(QStyledItemDelegate):
    """A model's row: its name, and below it, dimmer, what it does (both elided to the width)."""

    def paint(self, painter, option, index) -> None:
        text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        if index.column() != 0 or index.parent().isValid() or "\n" not in text:
            super().paint(painter, option, index)
            return
        title, description = text.split("\n", 1)
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        rect = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, opt, opt.widget).adjusted(2, 1, -2, -1)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        palette = opt.palette
        main = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        dim = QColor(main)
        dim.setAlphaF(0.8 if selected else 0.6)
        metrics = QFontMetrics(opt.font)
        line = metrics.height()
        painter.save()
        painter.setFont(opt.font)
        painter.setPen(main)
        painter.drawText(rect.x(), rect.y(), rect.width(), line, int(Qt.AlignmentFlag.AlignLeft),
                         metrics.elidedText(title, Qt.TextElideMode.ElideRight, rect.width()))
        painter.setPen(dim)
        painter.drawText(rect.x(), rect.y() + line, rect.width(), line, int(Qt.AlignmentFlag.AlignLeft),
                         metrics.elidedText(description, Qt.TextElideMode.ElideRight, rect.width()))
        painter.restore()


# --------------------------------------------------------------------------- dialogs (tests replace these)


def ask_licence(parent: QWidget | None, entry) -> bool:
    """Show a non-commercial licence and ask to accept it. True: accepted."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Information)
    box.setWindowTitle(f"{entry.name}: licence")
    box.setTextFormat(Qt.TextFormat.RichText)
    if getattr(entry, "adhoc", False):  # a typed repository: Quickbrush does not know its licence
        link = f'<a href="{html.escape(entry.licence_url)}">model card</a>' if entry.licence_url else "model card"
        box.setText(f"<p>Quickbrush does not know the licence of <b>{html.escape(entry.name)}</b>.</p>"
                    f"<p>Read it on its {link}: some models allow non-commercial use only. "
                    "Accept to download it under the terms it gives.</p>")
    else:
        box.setText(f"<p><b>{html.escape(entry.name)}</b> comes under the {licence_html(entry)}.</p>"
                    "<p>It allows non-commercial use only: work you sell or do for a client needs a "
                    "licence from its makers. Read it before you accept.</p>")
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
    accept = box.addButton("Accept and download", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is accept


def confirm_remove(parent: QWidget | None, entry) -> bool:
    answer = QMessageBox.question(
        parent, f"Remove {entry.name}?",
        f"Remove {entry.name} from this computer? It frees about {human_bytes(entry.download_bytes)}; "
        "you can download it again later.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
    return answer == QMessageBox.StandardButton.Yes


def choose_import_path(parent: QWidget | None, folder: bool) -> str | None:
    """A model file (checkpoint, LoRA) or a diffusers folder to import; None when cancelled."""
    if folder:
        path = QFileDialog.getExistingDirectory(parent, "Import a diffusers model folder")
    else:
        path, _filter = QFileDialog.getOpenFileName(
            parent, "Import a model file", "",
            "Models and LoRAs (*.safetensors *.ckpt *.bin *.pt);;All files (*)")
    return path or None


# --------------------------------------------------------------------------- the panel


def _real_catalog():
    from inference.models import catalog

    return catalog


def _real_downloads():
    from inference.models import downloads

    return downloads


def _real_importer():
    from inference.models import importer

    return importer


class CatalogPanel(QWidget):
    """The catalog list and its actions. `installed_changed` fires when a model was installed,
    imported or removed (the Model list scans again); `states_changed` when the states were read
    again. `runtime_of(source)` says which runtime an installed model runs on."""

    installed_changed = Signal()
    states_changed = Signal()

    def __init__(self, settings: Settings, runtime_of: Callable[[str], str] | None = None,
                 parent: QWidget | None = None, catalog_api: Any = None, downloads_api: Any = None,
                 importer_api: Any = None):
        super().__init__(parent)
        self.setObjectName("CatalogPanel")
        self.settings = settings
        self._runtime_of = runtime_of or (lambda source: "")
        self._catalog_api = catalog_api
        self._downloads_api = downloads_api
        self._importer_api = importer_api
        self._custom: list[Any] = []  # entries made from typed repo ids, this session
        self._states: dict[str, str] = {}
        self._sources: dict[str, str] = {}  # installed entry id -> ModelRef source
        self._items: dict[str, QTreeWidgetItem] = {}
        self._problems: dict[str, str | None] = {}
        self._states_task: BackgroundTask | None = None
        self._states_again = False
        self._tasks: list[BackgroundTask] = []  # imports and removals in flight
        self.ready = False  # the states have been read once
        self.downloads = DownloadManager(self, lambda: self._api("downloads"))
        # A dock closed with the window: its downloads stop (kept for a resume), no thread left behind.
        tasks = self.downloads._tasks
        self.destroyed.connect(lambda *_: [task.cancel() for task in list(tasks.values())])
        self._build()
        self.downloads.started.connect(self._download_started)
        self.downloads.progress.connect(self._download_progress)
        self.downloads.finished.connect(self._download_finished)
        self.downloads.failed.connect(self._download_failed)
        self._fill()
        self.refresh_states()

    # ------------------------------------------------------------------ APIs (lazy)

    def _api(self, name: str):
        given = getattr(self, f"_{name}_api")
        if given is not None:
            return given
        return {"catalog": _real_catalog, "downloads": _real_downloads, "importer": _real_importer}[name]()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)

        top = QHBoxLayout()
        top.setSpacing(6)
        self.filter_combo = QComboBox()
        for label, capability in FILTERS:
            self.filter_combo.addItem(label, capability)
        self.filter_combo.setToolTip("Show the models that can do one thing")
        self.import_button = QToolButton()
        self.import_button.setText("Import")
        self.import_button.setToolTip("Copy a model you have (a .safetensors checkpoint, a LoRA or a diffusers "
                                      "folder) into Quickbrush's models folder")
        self.import_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.import_button)
        self.import_file_action = menu.addAction("A file (checkpoint or LoRA)…")
        self.import_folder_action = menu.addAction("A diffusers folder…")
        self.import_button.setMenu(menu)
        top.addWidget(self.filter_combo, 1)
        top.addWidget(self.import_button)
        layout.addLayout(top)

        self.tree = QTreeWidget()
        self.tree.setObjectName("catalog_list")
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Model", "Size"])
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.tree.setIndentation(14)
        self.tree.setMinimumHeight(112)  # three rows: a 768 px screen keeps the dock short
        self.tree.setItemDelegateForColumn(0, _EntryDelegate(self.tree))
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setMinimumSectionSize(24)
        self.tree.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        layout.addWidget(self.tree, 1)

        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        self.download_button = QPushButton("Download")
        self.cancel_button = QPushButton("Cancel")
        self.remove_button = QPushButton("Remove")
        self.use_button = QPushButton("Use")
        self.use_button.setToolTip("Make it the model the next job runs on")
        for button in (self.download_button, self.cancel_button, self.remove_button, self.use_button):
            button.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            button.setMinimumWidth(10)
            buttons.addWidget(button)
        layout.addLayout(buttons)

        self.progress_box = QWidget()
        box = QVBoxLayout(self.progress_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        self.total_bar = QProgressBar()
        self.total_bar.setObjectName("download_total")
        self.total_bar.setRange(0, 1000)
        self.total_bar.setTextVisible(True)
        self.total_label = QLabel()
        self.total_label.setObjectName("download_total_text")
        self.file_bar = QProgressBar()
        self.file_bar.setObjectName("download_file")
        self.file_bar.setRange(0, 1000)
        self.file_bar.setTextVisible(False)
        self.file_bar.setMaximumHeight(6)
        self.file_label = HintLabel(wrap=False)
        self.file_label.setObjectName("download_file_text")
        self.file_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        for w in (self.total_bar, self.total_label, self.file_bar, self.file_label):
            box.addWidget(w)
        self.progress_box.hide()
        layout.addWidget(self.progress_box)

        self.error_banner = ErrorBanner()
        self.error_banner.setObjectName("catalog_error")
        layout.addWidget(self.error_banner)
        self.message_label = HintLabel()
        self.message_label.setObjectName("catalog_message")
        self.message_label.hide()
        layout.addWidget(self.message_label)

        repo_row = QHBoxLayout()
        repo_row.setSpacing(6)
        self.repo_edit = QLineEdit()
        self.repo_edit.setPlaceholderText("Hub repository id, e.g. stabilityai/sd-turbo")
        self.repo_edit.setToolTip("Any diffusers model on the Hugging Face Hub: owner/name")
        self.repo_edit.setClearButtonEnabled(True)
        self.repo_button = QPushButton("Get")
        self.repo_button.setToolTip("Add this repository to the list and download it")
        repo_row.addWidget(self.repo_edit, 1)
        repo_row.addWidget(self.repo_button)
        layout.addLayout(repo_row)

        self.filter_combo.currentIndexChanged.connect(lambda _i: self._fill())
        self.tree.currentItemChanged.connect(lambda *_: self._update_actions())
        self.tree.itemActivated.connect(self._open_link)
        self.download_button.clicked.connect(lambda: self.download())
        self.cancel_button.clicked.connect(lambda: self.cancel())
        self.remove_button.clicked.connect(lambda: self.remove())
        self.use_button.clicked.connect(lambda: self.use())
        self.repo_button.clicked.connect(lambda: self.add_repo(self.repo_edit.text()))
        self.repo_edit.returnPressed.connect(lambda: self.add_repo(self.repo_edit.text()))
        self.import_file_action.triggered.connect(lambda: self.import_model(folder=False))
        self.import_folder_action.triggered.connect(lambda: self.import_model(folder=True))

    # ------------------------------------------------------------------ entries and states

    def all_entries(self) -> list[Any]:
        try:
            listed = list(self._api("catalog").entries())
        except JobError as exc:
            self.show_error(exc.message, exc.details)
            return list(self._custom)
        except Exception as exc:  # noqa: BLE001 - a damaged catalog file must not take the dock down
            error = as_job_error(exc, "Reading the model catalog")
            self.show_error(error.message, error.details)
            return list(self._custom)
        known = {e.id for e in listed}
        return listed + [e for e in self._custom if e.id not in known]

    def entry(self, entry_id: str):
        for e in self.all_entries():
            if e.id == entry_id:
                return e
        raise KeyError(entry_id)

    def entries_shown(self) -> list[str]:
        return [self.tree.topLevelItem(i).data(0, ENTRY_ROLE) for i in range(self.tree.topLevelItemCount())]

    def capability(self) -> str | None:
        return self.filter_combo.currentData()

    def set_capability(self, capability: str | None) -> None:
        self.filter_combo.setCurrentIndex(max(0, self.filter_combo.findData(capability)))

    def state_of(self, entry_id: str) -> str:
        """"installed", "partial", "absent", or "checking" before the states are read."""
        return self._states.get(entry_id, "checking")

    def installed_sources(self) -> dict[str, Any]:
        """ModelRef source -> entry, for every installed pipeline (what the Model list offers)."""
        found = {}
        for e in self.all_entries():
            source = self._sources.get(e.id)
            if source and e.kind in ("pipeline", "builtin") and self._states.get(e.id) == "installed":
                found[source] = e
        return found

    def installed_sources_by_id(self) -> dict[str, str]:
        """Entry id -> ModelRef source of every installed entry."""
        return {i: s for i, s in self._sources.items() if self._states.get(i) == "installed"}

    def partial_repos(self) -> set[str]:
        """Repo ids of entries fetched only in part: the Model list must not offer them."""
        return {e.repo for e in self.all_entries() if e.repo and self._states.get(e.id) == "partial"}

    def refresh_runtimes(self) -> None:
        """Show again which runtime each installed model runs on (a job measured one)."""
        for e in self.all_entries():
            if e.id in self._items and self._states.get(e.id) == "installed":
                self._show_entry(e)

    def refresh_states(self) -> None:
        """Read again which entries are installed (on a thread: it verifies files)."""
        if self._states_task is not None:
            self._states_again = True
            return
        entries = self.all_entries()

        def work(_report):
            downloads = self._api("downloads")
            states, sources = {}, {}
            for e in entries:
                try:
                    states[e.id] = downloads.state(e)
                    if states[e.id] == "installed":
                        sources[e.id] = downloads.model_source(e)
                except Exception:  # noqa: BLE001 - an unreadable cache entry counts as not there
                    states[e.id] = "absent"
            return states, sources

        task = BackgroundTask(work, "Looking at the installed models")
        task.succeeded.connect(guarded(self, self._states_read))
        task.failed.connect(guarded(self, self._states_failed))
        self._states_task = task
        task.start()

    def _states_read(self, value) -> None:
        states, sources = value
        self._states.update(states)
        for entry_id in states:
            self._sources.pop(entry_id, None)
        self._sources.update(sources)
        self._states_done()

    def _states_failed(self, error) -> None:
        self.show_error(error.message, error.details)
        self._states_done()

    def _states_done(self) -> None:
        self._states_task = None
        self.ready = True
        self._fill()
        self.states_changed.emit()
        if self._states_again:
            self._states_again = False
            self.refresh_states()

    def wait_ready(self) -> bool:
        return self.ready and self._states_task is None

    # ------------------------------------------------------------------ the list

    def _fill(self) -> None:
        current = self.current_id()
        capability = self.capability()
        expanded = {i for i, item in self._items.items() if item.isExpanded()}
        self.tree.clear()
        self._items.clear()
        for e in self.all_entries():
            if capability is not None and capability not in e.capabilities:
                continue
            item = QTreeWidgetItem()
            item.setData(0, ENTRY_ROLE, e.id)
            self.tree.addTopLevelItem(item)
            self._items[e.id] = item
            self._show_entry(e)
            item.setExpanded(e.id in expanded)
        if current in self._items:
            self.tree.setCurrentItem(self._items[current])
        elif self.tree.topLevelItemCount():
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        self._update_actions()

    def _runtime(self, e) -> str:
        source = self._sources.get(e.id)
        if not source or e.kind not in ("pipeline", "builtin") or self._states.get(e.id) != "installed":
            return ""
        try:
            return self._runtime_of(source)
        except Exception:  # noqa: BLE001 - the runtime row is a hint; the job says what is wrong
            return ""

    def _status_text(self, e) -> str:
        progress = self.downloads.last_progress(e.id)
        if self.downloads.is_active(e.id):
            return f"{percent(progress.done, progress.total)} %" if progress is not None else "Starting"
        return STATE_LABELS.get(self.state_of(e.id), self.state_of(e.id))

    def status_text(self, entry_id: str) -> str:
        """What the row says of its state: "Installed", "42 %", "Partial", ""."""
        item = self._items.get(entry_id)
        return item.text(1).partition("\n")[2] if item is not None else ""

    def _size_cell(self, e, status: str) -> str:
        size = e.download_bytes
        progress = self.downloads.last_progress(e.id)
        if not size and progress is not None:  # a typed repo: its size is known once listed
            size = progress.total
        return f"{human_bytes(size) if size else '—'}\n{status}"

    def _show_entry(self, e) -> None:
        item = self._items.get(e.id)
        if item is None:
            return
        state = self.state_of(e.id)
        runtime = self._runtime(e)
        title = e.name
        if getattr(e, "adhoc", False):
            title += "  · licence unknown"
        elif not e.commercial:
            title += "  · non-commercial"
        if e.large:
            title += "  · large"
        item.setText(0, f"{title}\n{e.description}")
        item.setText(1, self._size_cell(e, self._status_text(e)))
        item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        tip = entry_tooltip(e, state, runtime)
        problem = self._pipeline_problem(e)
        if problem:
            tip += f"\n{problem}"
        for column in range(2):
            item.setToolTip(column, tip)
        self._fill_details(item, e, runtime)

    def _fill_details(self, item: QTreeWidgetItem, e, runtime: str) -> None:
        """The opened row: what it does, its licence (with the link), memory, runtime."""
        expanded = item.isExpanded()
        item.takeChildren()
        rows = [("Does", ", ".join(CAPABILITY_LABELS.get(c, c) for c in e.capabilities) or "—", None)]
        licence = e.licence + ("" if e.commercial else " (non-commercial)")
        rows.append(("Licence", licence + (" ↗" if e.licence_url else ""), e.licence_url or None))
        if e.memory_bytes:
            rows.append(("Memory", f"about {human_bytes(e.memory_bytes)} when loaded"
                         + (" (a large model)" if e.large else ""), None))
        if e.base:
            rows.append(("Applies to", e.base, None))
        problem = self._pipeline_problem(e)
        if problem:
            rows.append(("Note", problem, None))
        if runtime:
            rows.append(("Runs on", runtime, None))
        if e.repo:
            rows.append(("From", e.repo + (f" @ {e.revision[:10]}" if e.revision else ""), None))
        for label, text, url in rows:
            child = QTreeWidgetItem(item)
            child.setFlags(Qt.ItemFlag.ItemIsEnabled)
            child.setFirstColumnSpanned(True)
            child.setText(0, f"{label}: {text}")
            child.setToolTip(0, f"{label}: {text}" + (f"\n{url}\nDouble-click to read it." if url else ""))
            if url:
                child.setData(0, LINK_ROLE, url)
                child.setForeground(0, self.palette().link())
        item.setExpanded(expanded)

    def _pipeline_problem(self, e) -> str | None:
        """Why this installation cannot run the entry's pipeline (FLUX.2 klein on an older
        diffusers), asked once per entry: it reads diffusers' own index of pipelines."""
        if not getattr(e, "pipeline", None):
            return None
        if e.id not in self._problems:
            check = getattr(self._api("catalog"), "pipeline_problem", None)
            try:
                self._problems[e.id] = check(e) if check is not None else None
            except Exception:  # noqa: BLE001 - only a note; the download says what is wrong
                self._problems[e.id] = None
        return self._problems[e.id]

    def _open_link(self, item: QTreeWidgetItem, _column: int) -> None:
        url = item.data(0, LINK_ROLE)
        if url:
            QDesktopServices.openUrl(QUrl(url))

    def current_id(self) -> str | None:
        item = self.tree.currentItem()
        while item is not None and item.parent() is not None:
            item = item.parent()
        return item.data(0, ENTRY_ROLE) if item is not None else None

    def select(self, entry_id: str) -> None:
        if entry_id not in self._items:
            self.set_capability(None)
        self.tree.setCurrentItem(self._items[entry_id])

    def _current_entry(self):
        entry_id = self.current_id()
        if entry_id is None:
            return None
        try:
            return self.entry(entry_id)
        except KeyError:
            return None

    def _update_actions(self) -> None:
        e = self._current_entry()
        active = e is not None and self.downloads.is_active(e.id)
        state = self.state_of(e.id) if e is not None else "absent"
        fetchable = e is not None and e.kind != "builtin" and e.repo is not None
        self.download_button.setEnabled(fetchable and not active and state in ("absent", "partial"))
        self.download_button.setText("Resume" if state == "partial" and not active else "Download")
        self.cancel_button.setEnabled(active)
        self.remove_button.setEnabled(fetchable and not active and state in ("installed", "partial"))
        self.use_button.setEnabled(e is not None and state == "installed" and e.kind in ("pipeline", "builtin", "lora")
                                   and e.id in self._sources)
        self._show_progress(e.id if e is not None else None)

    # ------------------------------------------------------------------ messages

    def show_error(self, message: str, details: str = "") -> None:
        self.message_label.hide()
        self.error_banner.show_error(message, details)

    def show_message(self, text: str) -> None:
        self.error_banner.hide()
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))

    def error_text(self) -> str:
        return self.error_banner.message.text() if not self.error_banner.isHidden() else ""

    def message_text(self) -> str:
        return self.message_label.text() if not self.message_label.isHidden() else ""

    # ------------------------------------------------------------------ download

    def download(self, entry_id: str | None = None) -> bool:
        """Start fetching an entry (the selected one), after its licence is accepted where it
        needs that. False when nothing started (declined, already running, a failure)."""
        e = self.entry(entry_id) if entry_id is not None else self._current_entry()
        if e is None or self.downloads.is_active(e.id):
            return False
        catalog = self._api("catalog")
        try:
            if not catalog.licence_accepted(e):
                if not ask_licence(self, e):
                    self.show_message(f"{e.name} was not downloaded: its licence was not accepted.")
                    return False
                catalog.accept_licence(e)
            self.downloads.start(e)
        except Exception as exc:  # noqa: BLE001 - shown in the dock; the app goes on
            error = as_job_error(exc, f"Downloading {e.name}")
            self.show_error(error.message, error.details)
            return False
        return True

    def cancel(self, entry_id: str | None = None) -> None:
        entry_id = entry_id or self.current_id()
        if entry_id is not None:
            self.downloads.cancel(entry_id)

    def _download_started(self, entry_id: str) -> None:
        e = self.entry(entry_id)
        self.show_message(f"Downloading {e.name}…")
        self._show_entry(e)
        self._update_actions()

    def _download_progress(self, entry_id: str, progress) -> None:
        item = self._items.get(entry_id)
        if item is not None:
            item.setText(1, self._size_cell(self.entry(entry_id), f"{percent(progress.done, progress.total)} %"))
        if self.current_id() == entry_id:
            self._show_progress(entry_id)

    def _show_progress(self, entry_id: str | None) -> None:
        if entry_id is None or not self.downloads.is_active(entry_id):
            self.progress_box.hide()
            return
        self.progress_box.show()
        progress = self.downloads.last_progress(entry_id)
        if progress is None:
            self.total_bar.setValue(0)
            self.total_bar.setFormat("Starting…")
            self.total_label.setText("Asking the Hub what to fetch…")
            self.file_bar.setValue(0)
            self.file_label.setText("")
            return
        self.total_bar.setValue(int(1000 * progress.done / progress.total) if progress.total else 0)
        self.total_bar.setFormat(f"{percent(progress.done, progress.total)} %")
        self.total_label.setText(progress_line(progress))
        _i, _n, f = _current_file(progress)
        self.file_bar.setValue(int(1000 * f.done / f.total) if f is not None and f.total else 0)
        text = file_line(progress)
        if getattr(progress, "stage", "download") == "verify" and f is not None:
            text = f"Checking {f.name} (size and sha256)…"
        self.file_label.setToolTip(files_tooltip(progress))
        self.file_label.setText(self.file_label.fontMetrics().elidedText(
            text, Qt.TextElideMode.ElideRight, max(120, self.file_label.width() or 260)))
        self.file_label.setProperty("full_text", text)

    def progress_text(self) -> str:
        """What the progress rows say (total, then the file), for tests and screenshots."""
        if self.progress_box.isHidden():
            return ""
        return f"{self.total_label.text()}\n{self.file_label.property('full_text') or self.file_label.text()}"

    def _download_finished(self, entry_id: str, _path) -> None:
        e = self.entry(entry_id)
        self.show_message(f"{e.name} is installed"
                          + (": choose it in the Model list, or press Use." if e.kind in ("pipeline", "lora") else "."))
        self._after_change()

    def _download_failed(self, entry_id: str, error) -> None:
        e = self.entry(entry_id)
        if isinstance(error, Cancelled):
            self.show_message(f"Download of {e.name} cancelled; what was fetched is kept, Resume goes on from it.")
        else:
            self.show_error(error.message, error.details)
        self._after_change()

    def _after_change(self) -> None:
        self._update_actions()
        self.refresh_states()
        self.installed_changed.emit()

    # ------------------------------------------------------------------ remove, use

    def remove(self, entry_id: str | None = None) -> bool:
        e = self.entry(entry_id) if entry_id is not None else self._current_entry()
        if e is None or self.downloads.is_active(e.id) or not confirm_remove(self, e):
            return False
        downloads = self._api("downloads")
        source = self._sources.get(e.id)
        task = BackgroundTask(lambda _report: downloads.remove(e), f"Removing {e.name}")
        task.succeeded.connect(guarded(self, lambda freed: self._removed(task, e, source, freed)))
        task.failed.connect(guarded(self, lambda error: self._task_failed(task, error)))
        self._run(task)
        self.remove_button.setEnabled(False)
        return True

    def _removed(self, task: BackgroundTask, e, source: str | None, freed) -> None:
        self._forget(task)
        self.show_message(f"{e.name} removed: {human_bytes(int(freed or 0))} freed.")
        if self.settings.model in ({source, CATALOG_PREFIX + e.id} if e.kind != "lora" else {CATALOG_PREFIX + e.id}):
            self.settings.reset("model")  # the next job uses the default model, not a missing one
        self._sources.pop(e.id, None)
        self._after_change()

    def use(self, entry_id: str | None = None) -> None:
        """Make an installed entry the model jobs run on (a LoRA entry: its base with the LoRA)."""
        e = self.entry(entry_id) if entry_id is not None else self._current_entry()
        if e is None or e.id not in self._sources:
            return
        self.settings.model = self.setting_for(e)

    def setting_for(self, e) -> str:
        """What settings.model holds when this entry is chosen: its folder, or for a LoRA entry
        (a base model and a LoRA, which one path cannot say) "catalog:<id>"."""
        return CATALOG_PREFIX + e.id if e.kind == "lora" else self._sources.get(e.id, "")

    def installed_loras(self) -> list[Any]:
        """Installed LoRA entries (their base models too): each is a model to choose."""
        return [e for e in self.all_entries() if e.kind == "lora" and self._states.get(e.id) == "installed"]

    def model_ref(self, source: str) -> ModelRef | None:
        """The ModelRef a job runs for a source the catalog installed: with the entry's preset,
        and for "catalog:<id>" the LoRA entry's base model with the LoRA. None for other sources.
        ModelMissing when a chosen catalog entry is gone."""
        downloads = self._api("downloads")
        if source.startswith(CATALOG_PREFIX):
            entry_id = source[len(CATALOG_PREFIX):]
            try:
                e = self.entry(entry_id)
            except KeyError:
                raise ModelMissing(f"{entry_id} is not in the model catalog any more: choose another model.") \
                    from None
            return downloads.model_ref(e)
        e = self.installed_sources().get(source)
        if e is not None and e.kind == "pipeline" and e.preset:
            return ModelRef(source, preset=e.preset)
        return None

    # ------------------------------------------------------------------ typed repo id

    def add_repo(self, text: str) -> bool:
        """Add a typed Hub repository id to the list and start its download."""
        repo_id = text.strip()
        if not repo_id:
            self.show_error("Type a Hub repository id first, like stabilityai/sd-turbo.")
            return False
        try:
            e = self._api("catalog").for_repo(repo_id)
        except Exception as exc:  # noqa: BLE001 - a typing mistake is a message, never a crash
            error = as_job_error(exc, f"Adding {repo_id}")
            self.show_error(error.message, error.details)
            return False
        if all(known.id != e.id for known in self.all_entries()):
            self._custom.append(e)
        self._states.setdefault(e.id, "absent")
        self.set_capability(None)
        self._fill()
        self.select(e.id)
        self.repo_edit.clear()
        if self.state_of(e.id) == "installed":
            self.show_message(f"{e.name} is already installed: choose it in the Model list, or press Use.")
            return False
        started = self.download(e.id)
        self.refresh_states()
        return started

    # ------------------------------------------------------------------ import

    def import_model(self, folder: bool = False, path: str | None = None) -> bool:
        path = path or choose_import_path(self, folder)
        if not path:
            return False
        chosen = Path(path)
        try:
            importer = self._api("importer")
        except Exception as exc:  # noqa: BLE001
            error = as_job_error(exc, f"Importing {chosen.name}")
            self.show_error(error.message, error.details)
            return False
        # The importer reports (bytes done, bytes in all) as it copies.
        task = BackgroundTask(lambda report: importer.import_path(
            chosen, on_progress=lambda done, total: report((done, total))), f"Importing {chosen.name}")
        task.progress.connect(guarded(self, lambda value: self.show_message(
            f"Importing {chosen.name}… {percent(*value)} %") if self.error_text() == "" else None))
        task.succeeded.connect(guarded(self, lambda imported: self._imported(task, chosen, imported)))
        task.failed.connect(guarded(self, lambda error: self._task_failed(task, error, changed=False)))
        self._run(task)
        self.show_message(f"Importing {chosen.name}…")
        return True

    def _imported(self, task: BackgroundTask, chosen: Path, imported) -> None:
        self._forget(task)
        name = getattr(imported, "name", None) or chosen.name
        size = getattr(imported, "bytes", 0)
        how = "linked, no extra space" if getattr(imported, "linked", False) else (
            f"{human_bytes(size)} copied" if size else "copied")
        self.show_message(f"{name} imported ({how}): choose it in the Model list.")
        self.installed_changed.emit()

    # ------------------------------------------------------------------ tasks

    def _run(self, task: BackgroundTask) -> None:
        self._tasks.append(task)
        task.start()

    def _forget(self, task: BackgroundTask) -> None:
        self._tasks = [t for t in self._tasks if t is not task]

    def _task_failed(self, task: BackgroundTask, error: JobError, changed: bool = True) -> None:
        self._forget(task)
        self.show_error(error.message, error.details)
        if changed:  # a removal stopped half way: read again what is left
            self._after_change()

    def busy(self) -> bool:
        """A download, import, removal or state reading is in flight."""
        return bool(self.downloads.active() or self._states_task is not None
                    or bool(self._tasks))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._show_progress(self.current_id())


__all__ = [
    "CatalogPanel",
    "ask_licence",
    "choose_import_path",
    "confirm_remove",
    "file_line",
    "human_bytes",
    "human_time_left",
    "progress_line",
]
