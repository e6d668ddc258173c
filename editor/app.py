"""The `quickbrush` entry point: the QApplication and its main window.

Until the editor issue lands this is a small window that shows which model the inference core
would use, so a fresh install already opens and proves Qt works on the machine.
"""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

    from inference.models.store import list_models

    app = QApplication.instance() or QApplication(list(argv) if argv is not None else sys.argv)
    app.setApplicationName("Quickbrush")
    app.setOrganizationName("Quickbrush")
    window = QMainWindow()
    window.setWindowTitle("Quickbrush")
    models = [m.name for m in list_models(include_hub_cache=False)]
    text = ("Quickbrush\n\nThe editor is on its way.\n"
            + (f"Installed models: {', '.join(models)}" if models else "No model installed yet.")
            + "\n\nUse quickbrush-cli meanwhile.")
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    window.setCentralWidget(label)
    window.resize(640, 400)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
