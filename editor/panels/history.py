"""The History panel: shows a document's History; preview, apply, discard, re-run, copy.

The entries belong to `editor.history.History`, the model object a Document owns and saves; this
panel only shows the one it is given (`set_history`) and asks, through signals, for what changes
a document (the main window applies a result as one undo command, through `editor.targets.fit`).
Newest results are shown first.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

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
from PySide6.QtGui import QAction, QColor, QFont, QFontMetrics, QGuiApplication, QKeySequence, QPainter, QPalette, QPen
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

from editor.history import (
    MODE_LABELS,
    History,
    HistoryEntry,
    entry_from_dict,
    entry_to_dict,
    entry_to_record,
    make_thumbnail,
)
from editor.panels._common import draw_checkerboard
from inference.jobs import Result, Target

RECIPE_MIME = "application/x-quickbrush-recipe+json"
THUMB = 96  # logical pixels on screen
REFINE_ON = ("Decode this result again with the model's full decoder: the same picture, sharper, as a new "
             "result that lands where this one does. (What it needs is kept in memory only: results of a "
             "reopened document cannot be refined.)")
REFINE_OFF = ("Refine decodes a Fast decode result (Preferences) again in full. Only results made with Fast "
              "decode in this session can be refined: what it needs is kept in memory, not in saved documents.")

# --------------------------------------------------------------------------- model and view


class HistoryModel(QAbstractListModel):
    """A list-model view of a History, newest first. Role EntryRole gives the HistoryEntry.

    It keeps a mirror of the History's entries only so Qt's insert and remove notifications
    can be given with the rows they concern; the History stays the one owner.
    """

    EntryRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent=None, history: History | None = None):
        super().__init__(parent)
        self._entries: list[HistoryEntry] = []  # newest first
        self._history: History | None = None
        self.set_history(history if history is not None else History(self))

    @property
    def history(self) -> History:
        assert self._history is not None
        return self._history

    def set_history(self, history: History) -> None:
        if self._history is not None:
            for signal, slot in ((self._history.added, self._added), (self._history.removed, self._removed),
                                 (self._history.reset, self._reset), (self._history.changed, self._repaint)):
                try:
                    signal.disconnect(slot)
                except (RuntimeError, TypeError):
                    pass
        self._history = history
        history.added.connect(self._added)
        history.removed.connect(self._removed)
        history.reset.connect(self._reset)
        history.changed.connect(self._repaint)
        self._reset()

    def _repaint(self) -> None:
        """An entry was applied or un-applied: its "applied" mark changes."""
        if self._entries:
            self.dataChanged.emit(self.index(0), self.index(len(self._entries) - 1))

    def _added(self, entry: HistoryEntry) -> None:
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._entries.insert(0, entry)
        self.endInsertRows()

    def _removed(self, entry: HistoryEntry) -> None:
        row = self.row_of(entry)
        if row < 0:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._entries[row]
        self.endRemoveRows()

    def _reset(self) -> None:
        self.beginResetModel()
        self._entries = list(reversed(self.history.entries()))
        self.endResetModel()

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
        return self.history.entries()

    def entry(self, row: int) -> HistoryEntry:
        return self._entries[row]

    def row_of(self, entry: HistoryEntry) -> int:
        for row, candidate in enumerate(self._entries):
            if candidate is entry:
                return row
        return -1


def _tooltip(entry: HistoryEntry) -> str:
    job = entry.job
    when = QDateTime.fromSecsSinceEpoch(int(entry.created)).toString("yyyy-MM-dd HH:mm:ss")
    lines = [f"<b>{entry.mode_label}</b> · {when}"]
    if job.prompt:
        lines.append(_html(job.prompt))
    if job.negative_prompt:
        lines.append(f"<i>Negative:</i> {_html(job.negative_prompt)}")
    lines.append(f"Seed {job.seed}" + (f" · {_steps(job.steps)}" if job.steps else "")
                 + (f" · guidance {job.guidance:g}" if job.guidance is not None else ""))
    if entry.image is not None:
        lines.append(f"{entry.image.width} × {entry.image.height} px")
    if entry.can_refine:
        lines.append("Fast decode (tiny decoder): Refine decodes it in full")
    elif entry.refined:
        lines.append("Refined: a Fast decode result decoded again in full")
    return "<br>".join(lines)


def _steps(count: int) -> str:
    return "1 step" if count == 1 else f"{count} steps"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")


def _details(entry: HistoryEntry, applied: bool = False) -> str:
    parts = ["applied"] if applied else []
    parts.append(f"seed {entry.seed}")
    if entry.job.steps:
        parts.append(_steps(entry.job.steps))
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
        model = index.model()
        applied = isinstance(model, HistoryModel) and model.history.is_applied(entry)
        details = option.fontMetrics.elidedText(_details(entry, applied), Qt.TextElideMode.ElideRight,
                                                text_rect.width())
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
    refine_requested(entry): decode a fast-decoded result again in full (`entry.refine_job()`).
    """

    preview_requested = Signal(object)
    preview_cleared = Signal()
    apply_requested = Signal(object, bool)
    discarded = Signal(object)
    rerun_requested = Signal(object)
    refine_requested = Signal(object)

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
        self.refine_action = QAction("Refine", self)
        self.refine_action.setToolTip(REFINE_OFF)
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
                                    self.refine_action, self.copy_action, self.discard_action)):
            button = QToolButton()
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            button.setMinimumHeight(28)
            buttons.append(button)
        # Apply and As new layer on top (the common pair); the rest below.
        grid.addWidget(buttons[0], 0, 0, 1, 2)
        grid.addWidget(buttons[1], 0, 2, 1, 2)
        grid.addWidget(buttons[2], 1, 0)
        grid.addWidget(buttons[3], 1, 1)
        grid.addWidget(buttons[4], 1, 2)
        grid.addWidget(buttons[5], 1, 3)
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
        self.refine_action.triggered.connect(self._refine_current)
        self.copy_action.triggered.connect(self._copy_current)
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.view.doubleClicked.connect(lambda _index: self._emit_apply(False))
        self.view.customContextMenuRequested.connect(self._context_menu)
        self._update_actions()

    # ------------------------------------------------------------------ public API

    @property
    def history(self) -> History:
        """The History shown (a document's `history`)."""
        return self.model.history

    def set_history(self, history: History) -> None:
        """Show another History (the window's document changed); nothing is selected then."""
        self.model.set_history(history)
        self._update_actions()
        self.preview_cleared.emit()

    def add_result(self, result: Result, box: Sequence[int] | QRect | None = None) -> HistoryEntry | None:
        """Add a finished result to the shown History (failed or cancelled ones are not history:
        returns None). `box` gives a result whose job carries no Target one (tests, scripts)."""
        if not result.ok:
            return None
        if box is not None and result.target is None:
            if isinstance(box, QRect):
                box = (box.x(), box.y(), box.x() + box.width(), box.y() + box.height())
            result = Result(result.job_id, result.job.replace(target=Target(tuple(box))), image=result.image,
                            timings=result.timings, error=result.error, model_info=result.model_info,
                            latents=result.latents)
        entry = self.history.add_result(result)
        self._update_actions()
        return entry

    def add_entry(self, entry: HistoryEntry) -> HistoryEntry:
        """Add an existing entry (e.g. from `entry_from_dict`)."""
        self.history.add(entry)
        self._update_actions()
        return entry

    def entries(self) -> list[HistoryEntry]:
        """Every entry, oldest first (the order they were added)."""
        return self.history.entries()

    def records(self) -> list[dict[str, Any]]:
        """The history as `editor.ora.save_ora(path, document, history=...)` takes it."""
        return self.history.records()

    def load_records(self, records: Sequence[Mapping[str, Any]]) -> list[HistoryEntry]:
        """Replace the history with `records` (from `editor.ora.load_ora` or `entry_to_dict`), oldest first."""
        entries = self.history.load_records(records)
        self._update_actions()
        self.preview_cleared.emit()
        return entries

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
        self.history.discard(entry)
        self.discarded.emit(entry)
        if was_current:
            count = self.model.rowCount()
            if count:
                self.view.setCurrentIndex(self.model.index(min(row, count - 1)))
            # else: the view's current index went away and _current_changed said preview_cleared
        self._update_actions()
        return True

    def clear(self) -> None:
        self.history.clear()
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
        current = self.current()
        has = current is not None
        for action in (self.apply_action, self.apply_layer_action, self.rerun_action, self.copy_action,
                       self.discard_action):
            action.setEnabled(has)
        refinable = has and current.can_refine
        self.refine_action.setEnabled(refinable)
        if refinable:
            self.refine_action.setToolTip(REFINE_ON)
        elif has and current.refined:
            self.refine_action.setToolTip("This result is the refined one: it was decoded in full already.")
        else:
            self.refine_action.setToolTip(REFINE_OFF)

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

    def _refine_current(self) -> None:
        entry = self.current()
        if entry is not None and entry.can_refine:
            self.refine_requested.emit(entry)

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
        menu.addAction(self.refine_action)
        menu.addAction(self.copy_action)
        menu.addSeparator()
        menu.addAction(self.discard_action)
        menu.popup(self.view.viewport().mapToGlobal(pos))


__all__ = ["HistoryPanel", "HistoryEntry", "HistoryModel", "History", "entry_to_dict", "entry_to_record",
           "entry_from_dict", "make_thumbnail", "RECIPE_MIME", "MODE_LABELS"]
