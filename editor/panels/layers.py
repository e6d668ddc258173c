"""The Layers panel: the document's image layers (top first) and the mask.

It shows the Document and changes it only through its commands (so every change is one undo
step): visibility, rename (double-click or F2), opacity (a slider drag is one step), order and
removal. The mask row shows and hides the mask overlay (the canvas owns that: the panel emits
`mask_visibility_changed` and is told back with `set_mask_visible`) and binds the overlay's
opacity to the `mask_opacity` setting.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QKeySequence, QPainter, QPainterPath, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QSlider,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from editor.document import Document, Layer, array_to_qimage
from editor.panels._common import SettingBinding, draw_checkerboard, section_label
from editor.settings import Settings
from editor.theme import icon

THUMB = 36
LayerIdRole = Qt.ItemDataRole.UserRole + 1


def layer_thumbnail(layer: Layer, size: int = THUMB * 2) -> QImage:
    """A small picture of the layer over a checkerboard (cheap even for 4096 px layers)."""
    pixels = layer.pixels
    h, w = pixels.shape[:2]
    step = max(1, max(h, w) // (size * 2))
    small = array_to_qimage(np.ascontiguousarray(pixels[::step, ::step]))
    canvas = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    canvas.fill(Qt.GlobalColor.transparent)
    if small.isNull():
        return canvas
    scaled = small.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    x, y = (size - scaled.width()) // 2, (size - scaled.height()) // 2
    painter = QPainter(canvas)
    draw_checkerboard(painter, QRect(x, y, scaled.width(), scaled.height()), max(4, size // 8))
    painter.drawImage(x, y, scaled)
    painter.end()
    return canvas


EYE = 28  # width of the visibility column


def draw_eye(painter: QPainter, rect: QRect, open_: bool, colour: QColor) -> None:
    """A small eye (open: visible) or a closed, dim eye (hidden), centred in `rect`."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    w, h = 16.0, 10.0
    cx, cy = rect.center().x() + 0.5, rect.center().y() + 0.5
    path = QPainterPath()
    path.moveTo(cx - w / 2, cy)
    path.quadTo(cx, cy - h, cx + w / 2, cy)
    if open_:
        path.quadTo(cx, cy + h, cx - w / 2, cy)
        painter.setPen(QPen(colour, 1.5))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        painter.setBrush(colour)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawEllipse(QPointF(cx, cy), 2.6, 2.6)
    else:
        dim = QColor(colour)
        dim.setAlphaF(0.45)
        closed = QPainterPath()
        closed.moveTo(cx - w / 2, cy - 1)
        closed.quadTo(cx, cy + h / 2 + 1, cx + w / 2, cy - 1)
        painter.setPen(QPen(dim, 1.5))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(closed)
        for dx in (-5.0, 0.0, 5.0):  # lashes
            painter.drawLine(QPointF(cx + dx, cy + 2.5 - abs(dx) * 0.25), QPointF(cx + dx * 1.3, cy + 5.5 - abs(dx) * 0.25))
    painter.restore()


class LayerDelegate(QStyledItemDelegate):
    """Draws the visibility column as an eye (click it to show or hide) before thumbnail and name."""

    def _eye_rect(self, option: QStyleOptionViewItem) -> QRect:
        r = option.rect
        return QRect(r.left(), r.top(), EYE, r.height())

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, widget)
        visible = index.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked.value or \
            index.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        colour = opt.palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        draw_eye(painter, self._eye_rect(opt), visible, colour)
        opt.features &= ~QStyleOptionViewItem.ViewItemFeature.HasCheckIndicator
        opt.rect = opt.rect.adjusted(EYE, 0, 0, 0)
        if not visible:  # a hidden layer's name is dimmed too
            dim = QColor(colour)
            dim.setAlphaF(0.55)
            opt.palette.setColor(QPalette.ColorRole.Text, dim)
            opt.palette.setColor(QPalette.ColorRole.HighlightedText, dim)
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)

    def editorEvent(self, event, model, option, index) -> bool:  # noqa: N802 - Qt's name
        kinds = (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease, QEvent.Type.MouseButtonDblClick)
        if event.type() in kinds and self._eye_rect(option).contains(event.position().toPoint()):
            if event.type() == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton:
                checked = index.data(Qt.ItemDataRole.CheckStateRole) in (Qt.CheckState.Checked,
                                                                        Qt.CheckState.Checked.value)
                model.setData(index, Qt.CheckState.Unchecked if checked else Qt.CheckState.Checked,
                              Qt.ItemDataRole.CheckStateRole)
            return True  # clicks on the eye neither select nor start renaming
        return super().editorEvent(event, model, option, index)

    def updateEditorGeometry(self, editor, option, index) -> None:  # noqa: N802 - Qt's name
        super().updateEditorGeometry(editor, option, index)
        left = option.rect.left() + EYE + THUMB + 8
        geometry = editor.geometry()
        geometry.setLeft(max(geometry.left(), left))
        editor.setGeometry(geometry)


def _percent(value: float) -> int:
    return int(round(float(value) * 100))


class LayersPanel(QWidget):
    """Layers of a Document, top first, plus the mask row.

    mask_visibility_changed(bool): the designer showed or hid the mask overlay.
    """

    mask_visibility_changed = Signal(bool)

    def __init__(self, document: Document | None, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("LayersPanel")
        self.settings = settings
        self.document: Document | None = None
        self._updating = False
        self._dragging = False
        self._thumbs: dict[int, QIcon] = {}
        self._thumb_timer = QTimer(self)
        self._thumb_timer.setSingleShot(True)
        self._thumb_timer.setInterval(150)
        self._thumb_timer.timeout.connect(self._refresh_thumbnails)
        self._build()
        self.set_document(document)

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)

        self.list = QListWidget()
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setItemDelegate(LayerDelegate(self.list))
        self.list.setSpacing(1)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                  | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setToolTip("Click the eye to show or hide a layer; double-click a name to rename it.")
        self.list.setMinimumHeight(3 * (THUMB + 8))
        layout.addWidget(self.list, 1)

        opacity_row = QHBoxLayout()
        opacity_row.setSpacing(8)
        self.opacity_label = QLabel("Opacity")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setPageStep(10)
        self.opacity_slider.setToolTip("Opacity of the selected layer")
        self.opacity_value = QLabel("100 %")
        self.opacity_value.setMinimumWidth(self.opacity_value.fontMetrics().horizontalAdvance("100 %") + 4)
        self.opacity_value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.opacity_label.setBuddy(self.opacity_slider)
        opacity_row.addWidget(self.opacity_label)
        opacity_row.addWidget(self.opacity_slider, 1)
        opacity_row.addWidget(self.opacity_value)
        layout.addLayout(opacity_row)

        style = self.style()
        self.up_button = self._tool_button("Up", "Move the layer up",
                                           style.standardIcon(QStyle.StandardPixmap.SP_ArrowUp))
        self.down_button = self._tool_button("Down", "Move the layer down",
                                             style.standardIcon(QStyle.StandardPixmap.SP_ArrowDown))
        self.remove_button = self._tool_button("Remove", "Remove the layer (undo brings it back)",
                                               style.standardIcon(QStyle.StandardPixmap.SP_TrashIcon))
        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        for button in (self.up_button, self.down_button, self.remove_button):
            buttons.addWidget(button, 1)
        layout.addLayout(buttons)

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        layout.addSpacing(2)
        layout.addWidget(line)

        layout.addWidget(section_label("Mask"))
        mask_row = QHBoxLayout()
        mask_row.setSpacing(8)
        self.mask_check = QCheckBox("Show")
        self.mask_check.setIcon(icon("mask"))
        self.mask_check.setChecked(True)
        self.mask_check.setToolTip(f"Show the mask overlay ({QKeySequence('H').toString()})")
        self.mask_opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.mask_opacity_slider.setRange(5, 100)
        self.mask_opacity_slider.setPageStep(10)
        self.mask_opacity_slider.setToolTip("Opacity of the mask overlay")
        self.mask_opacity_value = QLabel("50 %")
        self.mask_opacity_value.setMinimumWidth(self.opacity_value.minimumWidth())
        self.mask_opacity_value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        mask_row.addWidget(self.mask_check)
        mask_row.addWidget(self.mask_opacity_slider, 1)
        mask_row.addWidget(self.mask_opacity_value)
        layout.addLayout(mask_row)

        self.list.currentRowChanged.connect(self._row_changed)
        self.list.itemChanged.connect(self._item_changed)
        self.opacity_slider.valueChanged.connect(self._opacity_changed)
        self.opacity_slider.sliderPressed.connect(self._drag_started)
        self.opacity_slider.sliderReleased.connect(self._drag_ended)
        self.up_button.clicked.connect(lambda: self._move(+1))
        self.down_button.clicked.connect(lambda: self._move(-1))
        self.remove_button.clicked.connect(self._remove)
        self.mask_check.toggled.connect(self.mask_visibility_changed)
        self._mask_binding = SettingBinding(self.settings, "mask_opacity", self.mask_opacity_slider,
                                            self.mask_opacity_slider.valueChanged, self._show_mask_opacity,
                                            lambda v: v / 100.0)

    @staticmethod
    def _tool_button(text: str, tip: str, qicon: QIcon) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setIcon(qicon)
        button.setToolTip(tip)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        button.setMinimumHeight(28)
        return button

    def _show_mask_opacity(self, value: float) -> None:
        self.mask_opacity_slider.setValue(_percent(value))
        self.mask_opacity_value.setText(f"{_percent(value)} %")

    # ------------------------------------------------------------------ public API

    def set_document(self, document: Document | None) -> None:
        """Show another document (None: none)."""
        old = self.document
        if old is not None:
            for signal, slot in self._connections(old):
                try:
                    signal.disconnect(slot)
                except (RuntimeError, TypeError):
                    pass
        self.document = document
        self._thumbs.clear()
        if document is not None:
            for signal, slot in self._connections(document):
                signal.connect(slot)
        self.refresh()

    def _connections(self, document: Document):
        return ((document.layers_changed, self.refresh), (document.changed, self._pixels_changed))

    def set_mask_visible(self, visible: bool) -> None:
        """The canvas says whether the mask shows (no signal back)."""
        self.mask_check.blockSignals(True)
        self.mask_check.setChecked(bool(visible))
        self.mask_check.blockSignals(False)

    def mask_visible(self) -> bool:
        return self.mask_check.isChecked()

    def layer_at_row(self, row: int) -> Layer | None:
        doc = self.document
        if doc is None or not 0 <= row < len(doc.layers):
            return None
        return doc.layers[len(doc.layers) - 1 - row]

    def row_of(self, layer: Layer | int) -> int:
        doc = self.document
        index = doc.layer_index(layer)
        return len(doc.layers) - 1 - index

    def refresh(self) -> None:
        """Show the document's layers as they are now."""
        doc = self.document
        self._updating = True
        try:
            layers = list(reversed(doc.layers)) if doc is not None else []
            ids = [self.list.item(row).data(LayerIdRole) for row in range(self.list.count())]
            if ids != [layer.id for layer in layers]:
                self.list.clear()
                for layer in layers:
                    item = QListWidgetItem()
                    item.setData(LayerIdRole, layer.id)
                    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                                  | Qt.ItemFlag.ItemIsEditable)
                    item.setSizeHint(QSize(0, THUMB + 8))
                    self.list.addItem(item)
            for row, layer in enumerate(layers):
                item = self.list.item(row)
                if item.text() != layer.name:
                    item.setText(layer.name)
                state = Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked
                if item.checkState() != state:
                    item.setCheckState(state)
                item.setToolTip(f"{layer.name}: {layer.width} × {layer.height} px at ({layer.x}, {layer.y}), "
                                f"opacity {_percent(layer.opacity)} %{'' if layer.visible else ', hidden'}")
                qicon = self._thumbs.get(layer.id)
                if qicon is None:
                    qicon = self._thumbs[layer.id] = QIcon(QPixmap.fromImage(layer_thumbnail(layer)))
                    item.setIcon(qicon)
                elif item.icon().cacheKey() != qicon.cacheKey():
                    item.setIcon(qicon)
            active = doc.active_layer if doc is not None else None
            row = self.row_of(active) if active is not None else -1
            if self.list.currentRow() != row:
                self.list.setCurrentRow(row)
            if active is not None and not self._dragging:
                self.opacity_slider.setValue(_percent(active.opacity))
            self.opacity_value.setText(f"{_percent(active.opacity)} %" if active is not None else "")
            n = len(layers)
            self.opacity_slider.setEnabled(active is not None)
            self.up_button.setEnabled(active is not None and row > 0)
            self.down_button.setEnabled(active is not None and 0 <= row < n - 1)
            self.remove_button.setEnabled(active is not None and n > 1)
        finally:
            self._updating = False

    # ------------------------------------------------------------------ designer actions

    def _row_changed(self, row: int) -> None:
        if self._updating or self.document is None:
            return
        layer = self.layer_at_row(row)
        if layer is not None:
            self.document.set_active_layer(layer)  # view state, not an undo step

    def _item_changed(self, item: QListWidgetItem) -> None:
        if self._updating or self.document is None:
            return
        layer = self.layer_at_row(self.list.row(item))
        if layer is None:
            return
        visible = item.checkState() == Qt.CheckState.Checked
        if visible != layer.visible:
            self.document.set_layer_visible(layer, visible)
        name = item.text().strip()
        if name and name != layer.name:
            self.document.rename_layer(layer, name)
        elif not name:
            self.refresh()  # an empty name is not a name: put the old one back

    def _drag_started(self) -> None:
        self._dragging = True
        self._drag_fresh = True

    def _drag_ended(self) -> None:
        self._dragging = False
        self.refresh()

    def _opacity_changed(self, value: int) -> None:
        self.opacity_value.setText(f"{value} %")
        if self._updating or self.document is None:
            return
        layer = self.document.active_layer
        if layer is None:
            return
        # A drag is one undo step: its first change starts a new command, the rest merge into it.
        merge = True
        if self._dragging and getattr(self, "_drag_fresh", False):
            merge = False
            self._drag_fresh = False
        self.document.set_layer_opacity(layer, value / 100.0, merge=merge)

    def _move(self, delta: int) -> None:
        """delta +1: up (towards the top of the list, a higher index in the document)."""
        doc = self.document
        layer = doc.active_layer if doc is not None else None
        if layer is None:
            return
        index = doc.layer_index(layer) + delta
        if 0 <= index < len(doc.layers):
            doc.move_layer(layer, index)

    def _remove(self) -> None:
        doc = self.document
        layer = doc.active_layer if doc is not None else None
        if layer is not None and len(doc.layers) > 1:
            doc.remove_layer(layer)

    def _pixels_changed(self, *_args) -> None:
        """Layer pixels changed (a result applied, an undo): redraw thumbnails soon, once."""
        self._thumb_timer.start()

    def _refresh_thumbnails(self) -> None:
        self._thumbs.clear()
        self.refresh()


__all__ = ["LayersPanel", "layer_thumbnail"]
