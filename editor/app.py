"""The `quickbrush` entry point: the QApplication, its theme and the main window."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quickbrush", description="Quickbrush image editor")
    parser.add_argument("file", nargs="?", help="an image or .ora document to open")
    parser.add_argument("--log-file", help="write a diagnostic log (jobs, files, errors) to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, qt_args = build_parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        filename=args.log_file,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from PySide6.QtWidgets import QApplication

    from editor.main_window import MainWindow
    from editor.theme import apply_dark_theme, icon

    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    app.setApplicationName("Quickbrush")
    app.setOrganizationName("Quickbrush")
    app.setWindowIcon(icon("app"))
    apply_dark_theme(app)
    window = MainWindow()
    window.show()
    if args.file:
        window.open_path(args.file)
    logger = logging.getLogger("quickbrush")
    screen = window.screen()
    logger.info("window at %s on a %dx%d screen at %gx", _global_rect(window), screen.availableGeometry().width(),
                screen.availableGeometry().height(), screen.devicePixelRatio())
    logger.info("window shown; canvas at %s", _global_rect(window.canvas))
    return app.exec()


def _global_rect(widget) -> str:
    top_left = widget.mapToGlobal(widget.rect().topLeft())
    return f"{top_left.x()},{top_left.y()} {widget.width()}x{widget.height()}"


if __name__ == "__main__":
    sys.exit(main())
