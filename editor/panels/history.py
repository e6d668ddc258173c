"""The History panel: every result with its recipe; preview, apply, discard, re-run, copy.

The panel owns the list of entries (the history *is* its data) but changes no document: it
asks, through signals, and the main window does (applying is one undo command there).
Newest results are shown first; `entries()` gives them in the order they were added.

A document file keeps the history as `entry_to_dict(entry)` (the exact recipe, JSON-safe) plus
the result image and thumbnail stored separately; `entry_from_dict(data, image, ...)` rebuilds it.
For `editor.ora` there is `records()` / `load_records(records)` (entries as save_ora/load_ora
dicts, which carry the Job itself, so its input images are saved and Re-run works after reopening).
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image
from PySide6.QtCore import (
    QAbstractListModel,
    QDateTime,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QColor, QFont, QFontMetrics, QGuiApplication, QImage, QKeySequence, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QListView,
    QMenu,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from editor.panels._common import draw_checkerboard
from inference.jobs import BadInput, Job, Result, random_seed
from inference.metadata import format_parameters, recipe_payload

RECIPE_MIME = "application/x-quickbrush-recipe+json"
THUMB = 96  # logical pixels on screen
_THUMB_STORED = 192  # stored pixels: sharp on 2x screens

MODE_LABELS = {"generate": "Generate", "vary": "Vary", "inpaint": "Inpaint", "outpaint": "Outpaint", "edit": "Edit"}

_entry_ids = itertools.count(1)


def make_thumbnail(image: Image.Image, size: int = _THUMB_STORED) -> QImage:
    """A QImage of at most size x size (aspect kept) that owns its pixels."""
    small = image.convert("RGBA")
    small.thumbnail((size, size), Image.Resampling.LANCZOS)
    arr = np.ascontiguousarray(np.asarray(small, dtype=np.uint8))
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGBA8888).copy()


@dataclass(eq=False)
class HistoryEntry:
    """One result in the history: the Result (image + exact recipe), where it goes, its thumbnail.

    `box` is where on the canvas the result goes (ApplyResult's box), or None for the top left.
    `has_inputs` is False for entries loaded from a file without the job's input images: their
    job holds grey placeholders of the recorded sizes, fine for the recipe but not for re-running.
    """

    result: Result
    box: tuple[int, ...] | None = None
    thumbnail: QImage = field(default_factory=QImage)
    created: float = field(default_factory=time.time)
    id: int = field(default_factory=lambda: next(_entry_ids))
    has_inputs: bool = True

    @property
    def job(self) -> Job:
        return self.result.job

    @property
    def image(self) -> Image.Image | None:
        return self.result.image

    @property
    def mode(self) -> str:
        return self.job.kind

    @property
    def mode_label(self) -> str:
        return MODE_LABELS.get(self.mode, self.mode.capitalize())

    @property
    def prompt(self) -> str:
        return self.job.prompt

    @property
    def seed(self) -> int:
        return int(self.job.seed)

    def job_with_new_seed(self, seed: int | None = None, **images: Image.Image) -> Job:
        """The same recipe with a fresh random seed (or `seed`); `image=`/`mask=` replace the inputs."""
        if not self.has_inputs and not images and self.job.needs_image:
            raise BadInput("This result's original image was not kept with the document, so it cannot be re-run as it "
                           "was. Make a new one from the canvas instead.")
        new = random_seed() if seed is None else int(seed)
        while seed is None and new == self.seed:
            new = random_seed()
        return self.job.replace(seed=new, **images)

    def parameters_text(self) -> str:
        """The A1111 "parameters" text of the recipe."""
        size = self.image.size if self.image is not None else None
        return format_parameters(self.job, size=size, model_info=self.result.model_info)

    def recipe(self) -> dict[str, Any]:
        """The exact recipe as stored in PNGs (`inference.metadata.recipe_payload`)."""
        return recipe_payload(self.job, timings=dict(self.result.timings), model_info=dict(self.result.model_info))


# --------------------------------------------------------------------------- serialisation


def entry_to_dict(entry: HistoryEntry) -> dict[str, Any]:
    """A JSON-safe dict of the entry: recipe (job.to_dict(), no pixels), timings, box, time, id."""
    payload = entry.recipe()
    return {
        "id": entry.id,
        "created": entry.created,
        "box": list(entry.box) if entry.box is not None else None,
        "job_id": entry.result.job_id,
        "job": payload["job"],
        "timings": payload.get("timings", {}),
        "model_info": payload.get("model_info", {}),
    }


def entry_to_record(entry: HistoryEntry) -> dict[str, Any]:
    """The entry as `editor.ora.save_ora` takes it: like entry_to_dict, but "job" is the Job itself
    (so its input images are saved too) and "image" the result image."""
    return {
        "id": entry.id,
        "created": entry.created,
        "box": entry.box,
        "image": entry.image,
        "job": entry.job,
        "timings": dict(entry.result.timings),
        "model_info": dict(entry.result.model_info),
    }


def entry_from_dict(data: Mapping[str, Any], image: Image.Image | None = None, thumbnail: QImage | None = None,
                    **inputs: Image.Image | None) -> HistoryEntry:
    """Rebuild an entry from `entry_to_dict` output or an `editor.ora.load_ora` history record.

    "job" is a recipe dict (job.to_dict()) or a Job; the result image is `image` or data["image"].
    The job's input images may come as `job_image=` / `job_mask=`. A recipe whose kind needs
    inputs that are not given gets grey placeholders of the recorded sizes, and `has_inputs`
    False (re-running it then asks for images).
    """
    if image is None and isinstance(data.get("image"), Image.Image):
        image = data["image"]
    has_inputs = True
    if isinstance(data["job"], Job):
        job = data["job"]
        if inputs.get("job_image") is not None or inputs.get("job_mask") is not None:
            job = job.replace(**{k: v for k, v in (("image", inputs.get("job_image")),
                                                   ("mask", inputs.get("job_mask"))) if v is not None})
    else:
        recipe = dict(data["job"])
        job_images = {"image": inputs.get("job_image"), "mask": inputs.get("job_mask")}
        for name, mode, fill in (("image", "RGB", (127, 127, 127)), ("mask", "L", 0)):
            size = recipe.get(f"{name}_size")
            if job_images[name] is None and size:
                job_images[name] = Image.new(mode, (int(size[0]), int(size[1])), fill)
                has_inputs = False
        job = Job.from_dict(recipe, **job_images)
    result = Result(int(data.get("job_id") or 0), job, image=image, timings=dict(data.get("timings") or {}),
                    model_info=dict(data.get("model_info") or {}))
    if thumbnail is None or thumbnail.isNull():
        thumbnail = make_thumbnail(image) if image is not None else QImage()
    box = data.get("box")
    try:
        entry_id = int(data.get("id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        entry_id = next(_entry_ids)
    _bump_ids(entry_id)
    return HistoryEntry(result, tuple(int(v) for v in box) if box is not None else None, thumbnail,
                        _timestamp(data.get("created")), entry_id, has_inputs)


def _timestamp(value: Any) -> float:
    """Seconds since the epoch from a number or ISO text (what a file may hold); now if neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    return time.time()


def _bump_ids(used: int) -> None:
    """Keep new ids above every id loaded from a file."""
    global _entry_ids
    current = next(_entry_ids)
    _entry_ids = itertools.count(max(current, used + 1))


# --------------------------------------------------------------------------- model and view


class HistoryModel(QAbstractListModel):
    """The entries, newest first. Role EntryRole gives the HistoryEntry."""

    EntryRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent=None):
        super().__init__(parent)
        self._entries: list[HistoryEntry] = []  # newest first

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry = self._entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{entry.mode_label} · seed {entry.seed}"
        if role == Qt.ItemDataRole.DecorationRole:
            return entry.thumbnail
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(entry)
        if role == self.EntryRole:
            return entry
        return None

    def entries(self) -> list[HistoryEntry]:
        return list(reversed(self._entries))

    def entry(self, row: int) -> HistoryEntry:
        return self._entries[row]

    def row_of(self, entry: HistoryEntry) -> int:
        for row, candidate in enumerate(self._entries):
            if candidate is entry:
                return row
        return -1

    def add(self, entry: HistoryEntry) -> None:
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._entries.insert(0, entry)
        self.endInsertRows()

    def remove(self, entry: HistoryEntry) -> bool:
        row = self.row_of(entry)
        if row < 0:
            return False
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._entries[row]
        self.endRemoveRows()
        return True

    def clear(self) -> None:
        self.beginResetModel()
        self._entries.clear()
        self.endResetModel()


def _tooltip(entry: HistoryEntry) -> str:
    job = entry.job
    when = QDateTime.fromSecsSinceEpoch(int(entry.created)).toString("yyyy-MM-dd HH:mm:ss")
    lines = [f"<b>{entry.mode_label}</b> · {when}"]
    if job.prompt:
        lines.append(_html(job.prompt))
    if job.negative_prompt:
        lines.append(f"<i>Negative:</i> {_html(job.negative_prompt)}")
    lines.append(f"Seed {job.seed}" + (f" · {job.steps} steps" if job.steps else "")
                 + (f" · guidance {job.guidance:g}" if job.guidance is not None else ""))
    if entry.image is not None:
        lines.append(f"{entry.image.width} × {entry.image.height} px")
    return "<br>".join(lines)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")


def _details(entry: HistoryEntry) -> str:
    parts = [f"seed {entry.seed}"]
    if entry.job.steps:
        parts.append(f"{entry.job.steps} steps")
    total = entry.result.timings.get("total") if entry.result.timings else None
    if total:
        parts.append(f"{total:.1f} s")
    return " · ".join(parts)


class HistoryDelegate(QStyledItemDelegate):
    """Thumbnail on the left; mode and time, the prompt (elided), seed and timing on the right."""

    PAD = 6

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        return QSize(max(200, option.rect.width()), THUMB + 2 * self.PAD)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        entry: HistoryEntry | None = index.data(HistoryModel.EntryRole)
        if entry is None:
            return
        painter.save()
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        opt.icon = type(opt.icon)()
        opt.features &= ~QStyleOptionViewItem.ViewItemFeature.HasDecoration
        style = opt.widget.style() if opt.widget is not None else None
        if style is not None:
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, opt.widget)

        rect = option.rect.adjusted(self.PAD, self.PAD, -self.PAD, -self.PAD)
        thumb_rect = QRect(rect.left(), rect.top(), THUMB, THUMB)
        palette = option.palette
        painter.fillRect(thumb_rect, palette.color(QPalette.ColorRole.Base).darker(115))
        if not entry.thumbnail.isNull():
            size = entry.thumbnail.size().scaled(thumb_rect.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(QPoint(0, 0), size)
            target.moveCenter(thumb_rect.center())
            if entry.thumbnail.hasAlphaChannel():  # an opaque one covers it; a transparent one shows it
                draw_checkerboard(painter, target, 8)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(target, entry.thumbnail)
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
        painter.drawRect(thumb_rect.adjusted(0, 0, -1, -1))

        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        text_colour = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        dim = QColor(text_colour)
        dim.setAlphaF(0.65)
        text_rect = QRect(thumb_rect.right() + 10, rect.top(), rect.right() - thumb_rect.right() - 10, rect.height())
        if text_rect.width() <= 10:
            painter.restore()
            return
        base = QFont(option.font)
        bold = QFont(base)
        bold.setBold(True)
        line = option.fontMetrics.lineSpacing()

        # Mode (bold) and, where there is room for both, the time on the right.
        when = QDateTime.fromSecsSinceEpoch(int(entry.created)).toString("HH:mm")
        time_width = option.fontMetrics.horizontalAdvance(when)
        title_width = QFontMetrics(bold).horizontalAdvance(entry.mode_label)
        if title_width + 8 + time_width <= text_rect.width():
            painter.setFont(base)
            painter.setPen(dim)
            painter.drawText(QRect(text_rect.right() - time_width, text_rect.top(), time_width, line),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, when)
        painter.setFont(bold)
        painter.setPen(text_colour)
        title = QFontMetrics(bold).elidedText(entry.mode_label, Qt.TextElideMode.ElideRight, text_rect.width())
        painter.drawText(QRect(text_rect.left(), text_rect.top(), text_rect.width(), line),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, title)

        # The prompt: up to three lines, the last one elided.
        painter.setFont(base)
        prompt = " ".join(entry.prompt.split()) or "(no prompt)"
        top = text_rect.top() + line + 4
        max_lines = max(1, (text_rect.bottom() - top - line) // line)
        for text in _wrap(prompt, option.fontMetrics, text_rect.width(), max_lines):
            painter.drawText(QRect(text_rect.left(), top, text_rect.width(), line),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
            top += line
        painter.setPen(dim)
        details = option.fontMetrics.elidedText(_details(entry), Qt.TextElideMode.ElideRight, text_rect.width())
        painter.drawText(QRect(text_rect.left(), text_rect.bottom() - line + 1, text_rect.width(), line),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, details)
        painter.restore()


def _wrap(text: str, metrics, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to `max_lines`, the last line elided."""
    words = text.split(" ")
    lines: list[str] = []
    current = ""
    while words and len(lines) < max_lines - 1:
        candidate = (current + " " + words[0]).strip()
        if metrics.horizontalAdvance(candidate) <= width or not current:
            current = candidate
            words.pop(0)
            if metrics.horizontalAdvance(current) > width:  # one word longer than the line
                lines.append(metrics.elidedText(current, Qt.TextElideMode.ElideRight, width))
                current = ""
        else:
            lines.append(current)
            current = ""
    rest = " ".join(([current] if current else []) + words)
    if rest:
        lines.append(metrics.elidedText(rest, Qt.TextElideMode.ElideRight, width))
    return lines


class _HistoryView(QListView):
    """The list, with a hint painted over it while it is empty."""

    EMPTY_TEXT = "Results appear here.\nPaint a mask, describe it, and press Generate (Ctrl+Enter)."

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().paintEvent(event)
        if self.model() is not None and self.model().rowCount() == 0:
            painter = QPainter(self.viewport())
            colour = self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
            painter.setPen(colour)
            painter.drawText(self.viewport().rect().adjusted(16, 16, -16, -16),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.EMPTY_TEXT)


# --------------------------------------------------------------------------- the panel


class HistoryPanel(QWidget):
    """Results with their recipes. Signals carry the HistoryEntry.

    preview_requested(entry): the designer selected an entry; show it on the canvas.
    preview_cleared(): no entry is selected any more; stop previewing.
    apply_requested(entry, as_new_layer): put it on the document.
    discarded(entry): it was removed from the history.
    rerun_requested(entry): run its recipe again with a new seed (`entry.job_with_new_seed()`).
    """

    preview_requested = Signal(object)
    preview_cleared = Signal()
    apply_requested = Signal(object, bool)
    discarded = Signal(object)
    rerun_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("HistoryPanel")
        self.model = HistoryModel(self)
        self.view = _HistoryView()
        self.view.setModel(self.model)
        self.view.setItemDelegate(HistoryDelegate(self.view))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setUniformItemSizes(True)
        self.view.setSpacing(1)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.setMinimumHeight(THUMB + 24)

        self.apply_action = QAction("Apply", self)
        self.apply_action.setToolTip("Apply to the active layer (Enter)")
        self.apply_layer_action = QAction("As new layer", self)
        self.apply_layer_action.setToolTip("Apply as a new layer above the active one")
        self.rerun_action = QAction("Re-run", self)
        self.rerun_action.setToolTip("Run the same recipe again with a new seed")
        self.copy_action = QAction("Copy recipe", self)
        self.copy_action.setToolTip("Copy the recipe: A1111 parameters as text, exact JSON for Quickbrush")
        self.discard_action = QAction("Discard", self)
        self.discard_action.setToolTip("Remove from the history (Delete)")
        for action, keys in ((self.apply_action, ("Return", "Enter")), (self.discard_action, ("Delete", "Backspace"))):
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.view.addAction(action)

        grid = QGridLayout()
        grid.setSpacing(6)
        buttons = []
        for i, action in enumerate((self.apply_action, self.apply_layer_action, self.rerun_action,
                                    self.copy_action, self.discard_action)):
            button = QToolButton()
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            button.setMinimumHeight(28)
            buttons.append(button)
        # Apply and As new layer on top (the common pair); the rest below.
        grid.addWidget(buttons[0], 0, 0, 1, 3)
        grid.addWidget(buttons[1], 0, 3, 1, 3)
        grid.addWidget(buttons[2], 1, 0, 1, 2)
        grid.addWidget(buttons[3], 1, 2, 1, 2)
        grid.addWidget(buttons[4], 1, 4, 1, 2)
        self.buttons = buttons

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        layout.addWidget(self.view, 1)
        layout.addLayout(grid)

        self.apply_action.triggered.connect(lambda: self._emit_apply(False))
        self.apply_layer_action.triggered.connect(lambda: self._emit_apply(True))
        self.discard_action.triggered.connect(self._discard_current)
        self.rerun_action.triggered.connect(self._rerun_current)
        self.copy_action.triggered.connect(self._copy_current)
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.view.doubleClicked.connect(lambda _index: self._emit_apply(False))
        self.view.customContextMenuRequested.connect(self._context_menu)
        self._update_actions()

    # ------------------------------------------------------------------ public API

    def add_result(self, result: Result, box: Sequence[int] | QRect | None = None) -> HistoryEntry | None:
        """Add a finished result (failed or cancelled ones are not history: returns None)."""
        if not result.ok:
            return None
        if isinstance(box, QRect):
            box = (box.x(), box.y(), box.x() + box.width(), box.y() + box.height())
        entry = HistoryEntry(result, tuple(int(v) for v in box) if box is not None else None,
                             make_thumbnail(result.image))
        self.add_entry(entry)
        return entry

    def add_entry(self, entry: HistoryEntry) -> HistoryEntry:
        """Add an existing entry (e.g. from `entry_from_dict` when a document loads)."""
        self.model.add(entry)
        self._update_actions()
        return entry

    def entries(self) -> list[HistoryEntry]:
        """Every entry, oldest first (the order they were added)."""
        return self.model.entries()

    def records(self) -> list[dict[str, Any]]:
        """The history as `editor.ora.save_ora(path, document, history=...)` takes it."""
        return [entry_to_record(entry) for entry in self.entries()]

    def load_records(self, records: Sequence[Mapping[str, Any]]) -> list[HistoryEntry]:
        """Replace the history with `records` (from `editor.ora.load_ora` or `entry_to_dict`), oldest first."""
        self.clear()
        return [self.add_entry(entry_from_dict(record)) for record in records]

    def current(self) -> HistoryEntry | None:
        index = self.view.currentIndex()
        if not index.isValid() or not self.view.selectionModel().isSelected(index):
            return None
        return self.model.entry(index.row())

    def select(self, entry: HistoryEntry | None) -> None:
        """Select `entry` (None: nothing), which previews it."""
        if entry is None:
            self.view.selectionModel().clear()
            self._current_changed(QModelIndex(), QModelIndex())
            return
        row = self.model.row_of(entry)
        if row >= 0:
            self.view.setCurrentIndex(self.model.index(row))

    def discard(self, entry: HistoryEntry) -> bool:
        """Remove `entry`; the next one (if any) becomes the selected, previewed one."""
        row = self.model.row_of(entry)
        if row < 0:
            return False
        was_current = self.view.currentIndex().row() == row
        self.model.remove(entry)
        self.discarded.emit(entry)
        if was_current:
            count = self.model.rowCount()
            if count:
                self.view.setCurrentIndex(self.model.index(min(row, count - 1)))
            # else: the view's current index went away and _current_changed said preview_cleared
        self._update_actions()
        return True

    def clear(self) -> None:
        self.model.clear()
        self._update_actions()
        self.preview_cleared.emit()

    def copy_recipe(self, entry: HistoryEntry) -> QMimeData:
        """Put the recipe on the clipboard: A1111 parameters as text, the exact JSON as RECIPE_MIME."""
        mime = QMimeData()
        mime.setText(entry.parameters_text())
        mime.setData(RECIPE_MIME, json.dumps(entry.recipe(), ensure_ascii=False, indent=1).encode("utf-8"))
        QGuiApplication.clipboard().setMimeData(mime)
        return mime

    # ------------------------------------------------------------------ internals

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._update_actions()
        if current.isValid():
            self.preview_requested.emit(self.model.entry(current.row()))
        else:
            self.preview_cleared.emit()

    def _update_actions(self) -> None:
        has = self.current() is not None
        for action in (self.apply_action, self.apply_layer_action, self.rerun_action, self.copy_action,
                       self.discard_action):
            action.setEnabled(has)

    def _emit_apply(self, as_new_layer: bool) -> None:
        entry = self.current()
        if entry is not None:
            self.apply_requested.emit(entry, as_new_layer)

    def _discard_current(self) -> None:
        entry = self.current()
        if entry is not None:
            self.discard(entry)

    def _rerun_current(self) -> None:
        entry = self.current()
        if entry is not None:
            self.rerun_requested.emit(entry)

    def _copy_current(self) -> None:
        entry = self.current()
        if entry is not None:
            self.copy_recipe(entry)

    def _context_menu(self, pos: QPoint) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        self.view.setCurrentIndex(index)
        menu = QMenu(self)
        menu.addAction(self.apply_action)
        menu.addAction(self.apply_layer_action)
        menu.addSeparator()
        menu.addAction(self.rerun_action)
        menu.addAction(self.copy_action)
        menu.addSeparator()
        menu.addAction(self.discard_action)
        menu.popup(self.view.viewport().mapToGlobal(pos))


__all__ = ["HistoryPanel", "HistoryEntry", "HistoryModel", "entry_to_dict", "entry_to_record", "entry_from_dict",
           "make_thumbnail", "RECIPE_MIME"]
