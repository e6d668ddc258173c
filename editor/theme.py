"""The look: a dark Fusion palette suited to judging colours, and the SVG icons from assets/."""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from inference.assets import icons_dir

ICONS = icons_dir()

ACCENT = "#ff3c64"
BANNER_STYLE = (
    "QFrame#errorBanner { background: #5a1f2a; border: 1px solid #a33a4f; border-radius: 4px; }"
    "QFrame#errorBanner QLabel { color: #ffe6ea; }"
)


@cache
def icon(name: str) -> QIcon:
    """An icon from assets/icons; an empty icon (not an error) when the file is missing."""
    path = ICONS / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def apply_dark_theme(app: QApplication) -> None:
    # Neutral greys: a tinted UI would shift how designers perceive the image's colours.
    app.setStyle("Fusion")
    palette = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#2b2b2b",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#202020",
        QPalette.ColorRole.AlternateBase: "#272727",
        QPalette.ColorRole.ToolTipBase: "#3a3a3a",
        QPalette.ColorRole.ToolTipText: "#f0f0f0",
        QPalette.ColorRole.PlaceholderText: "#8a8a8a",
        QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#353535",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#ff7a93",
        QPalette.ColorRole.Mid: "#3f3f3f",
        QPalette.ColorRole.Dark: "#1c1c1c",
        QPalette.ColorRole.Light: "#4a4a4a",
    }
    for role, value in colors.items():
        palette.setColor(role, QColor(value))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#777777"))
    app.setPalette(palette)
    app.setStyleSheet(BANNER_STYLE)
