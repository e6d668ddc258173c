"""Small helpers the panels share: two-way setting bindings, icons, section labels, the dock scroller."""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QEvent, QObject, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPalette
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QWidget

from editor.settings import Settings



class SettingBinding(QObject):
    """Keeps one widget and one setting equal, both ways, without feedback loops.

    `apply(value)` shows the setting's value in the widget; `read(*signal_args)` turns what the
    widget's `signal` carries into the setting's value (None: leave the setting alone). While
    the widget is being updated from the setting, the widget's own signal is ignored, and
    Settings only emits on real change, so neither side can ping-pong the other.

    The binding is a child QObject of the widget and its slots are its own methods, so Qt drops
    the connection to the (longer-lived) Settings when the widget goes away.
    """

    def __init__(self, settings: Settings, name: str, widget: QWidget, signal: Any,
                 apply: Callable[[Any], None], read: Callable[..., Any] | None = None):
        super().__init__(widget)
        self.settings = settings
        self.name = name
        self._apply = apply
        self._read = read
        self._updating = False
        getattr(settings, f"{name}_changed").connect(self._from_settings)
        signal.connect(self._from_widget)
        self._from_settings(settings.get(name))

    def _from_settings(self, value: Any) -> None:
        self._updating = True
        try:
            self._apply(value)
        finally:
            self._updating = False

    def _from_widget(self, *args: Any) -> None:
        if self._updating:
            return
        value = self._read(*args) if self._read is not None else args[0]
        if value is not None:
            self.settings.set(self.name, value)

    @property
    def updating(self) -> bool:
        """True while the widget is being set from the setting (not by the designer)."""
        return self._updating


def draw_checkerboard(painter: QPainter, rect: QRect, cell: int) -> None:
    """The grey checkerboard image editors show behind transparent pixels."""
    light, dark = QColor(200, 200, 200), QColor(150, 150, 150)
    for cy in range(rect.top(), rect.top() + rect.height(), cell):
        for cx in range(rect.left(), rect.left() + rect.width(), cell):
            colour = light if ((cx - rect.left()) // cell + (cy - rect.top()) // cell) % 2 == 0 else dark
            painter.fillRect(cx, cy, min(cell, rect.left() + rect.width() - cx),
                             min(cell, rect.top() + rect.height() - cy), colour)


def section_label(text: str) -> QLabel:
    """A small bold caption above a group of fields."""
    label = QLabel(text)
    font = QFont(label.font())
    font.setBold(True)
    label.setFont(font)
    return label


class HintLabel(QLabel):
    """Dim, wrapping helper text that follows palette (theme) changes."""

    def __init__(self, text: str = "", parent: QWidget | None = None, wrap: bool = True):
        super().__init__(text, parent)
        self.setWordWrap(wrap)
        self._dim()

    def _dim(self) -> None:
        palette = self.palette()
        colour = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
        if palette.color(QPalette.ColorRole.WindowText) != colour:
            palette.setColor(QPalette.ColorRole.WindowText, colour)
            self.setPalette(palette)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._dim()


class PanelScrollArea(QScrollArea):
    """Holds a dock's panel: the panel fills the dock, and scrolls only below its minimum height.

    QScrollArea's own `widgetResizable` sizes a panel with word-wrapped labels by its preferred
    height-for-width (about 730 px for the Prompt panel), so it scrolled at heights where every
    field would fit. Here the panel gets the viewport's size, never less than its minimum.
    """

    def __init__(self, panel: QWidget, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWidget(panel)
        self.setWidgetResizable(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(panel.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width())
        panel.installEventFilter(self)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return self.widget().sizeHint() if self.widget() else super().sizeHint()

    def _fit(self) -> None:
        panel = self.widget()
        if panel is None:
            return
        width = self.viewport().width()
        height = max(self.viewport().height(), panel.minimumSizeHint().height())
        if panel.size() != QSize(width, height):
            panel.resize(width, height)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self._fit()
        return False
