"""The `quickbrush` entry point: the QApplication, its theme and the main window.

At start-up it also tidies what a killed Quickbrush may have left (the hidden temporary files of
saves that never finished) and offers to recover each document a Quickbrush that did not close
had autosaved (editor.autosave). Dialogs go through the module-level `ask_*` and `confirm_*`
functions, so tests can replace them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("quickbrush")
# Windows opened for recovered documents beyond the first: kept here, or Python would collect them.
_windows: list[Any] = []


def build_parser() -> argparse.ArgumentParser:
    from inference.version import version

    parser = argparse.ArgumentParser(prog="quickbrush", description="Quickbrush image editor")
    parser.add_argument("file", nargs="?", help="an image or .ora document to open")
    parser.add_argument("--version", action="version", version=f"quickbrush {version()}")
    parser.add_argument("--smoke", action="store_true",
                        help="check this installation: generate one image with the built-in model into a "
                        "temporary folder (deleted afterwards), print one line and exit (0 when it worked)")
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
    if args.smoke:
        return smoke(args.verbose)
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
    clean_stale_temps_at_start(window.settings.recent_files)
    if args.file:
        window.open_path(args.file)
    logger = log
    screen = window.screen()
    logger.info("window at %s on a %dx%d screen at %gx", _global_rect(window), screen.availableGeometry().width(),
                screen.availableGeometry().height(), screen.devicePixelRatio())
    logger.info("window shown; canvas at %s", _global_rect(window.canvas))
    offer_recovery(window, new_window=lambda: _new_window(MainWindow))
    return app.exec()


def _new_window(factory: Callable[[], Any]) -> Any:
    window = factory()
    window.show()
    _windows.append(window)
    return window


# --------------------------------------------------------------------------- --smoke


def smoke(verbose: bool = False) -> int:
    """What an installer's smoke test runs: Qt loads (its platform plugin included), the built-in
    model generates one image through the Worker the window uses, and the PNG is written the way
    the app writes files. Everything goes into a temporary folder removed on the way out, so a
    check of a fresh install leaves nothing behind. One line either way; non-zero on failure."""
    import os
    import tempfile
    import threading
    import time

    if sys.platform.startswith("linux") and not any(
            os.environ.get(v) for v in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a build machine or CI runner has no screen
    try:
        from PySide6.QtGui import QImage
        from PySide6.QtWidgets import QApplication

        from inference.jobs import Generate, ModelRef
        from inference.metadata import save_png
        from inference.models.store import BUILTIN
        from inference.version import version
        from inference.worker import Worker

        start = time.perf_counter()
        app = QApplication.instance() or QApplication([sys.argv[0]])
        platform = app.platformName()
        job = Generate(prompt="a red apple", model=ModelRef(source=BUILTIN), seed=1)
        done = threading.Event()
        box: dict[str, Any] = {}
        worker = Worker(on_result=lambda result: (box.setdefault("result", result), done.set()))
        try:
            worker.submit(job)
            if not done.wait(300):
                raise RuntimeError("the built-in model did not finish within 5 minutes")
        finally:
            worker.shutdown(cancel=True, timeout=5)
        result = box["result"]
        if result.cancelled:
            raise RuntimeError("the job was cancelled")
        if result.error is not None:
            raise result.error
        image = result.image.convert("RGBA")
        qimage = QImage(image.tobytes(), image.width, image.height, QImage.Format.Format_RGBA8888)
        if qimage.isNull():
            raise RuntimeError("Qt could not take the generated image")
        with tempfile.TemporaryDirectory(prefix="quickbrush-smoke-") as folder:
            path = Path(folder) / "smoke.png"
            save_png(path, result.image, result.job, timings=dict(result.timings),
                     model_info=dict(result.model_info))
            written = path.stat().st_size
    except BaseException as error:  # one line, whatever failed; -v adds the traceback
        if isinstance(error, KeyboardInterrupt):
            print("quickbrush --smoke: cancelled", file=sys.stderr)
            return 130
        message = " ".join((getattr(error, "message", None) or str(error) or type(error).__name__).split())
        print(f"quickbrush --smoke: failed: {message}", file=sys.stderr)
        if verbose:
            import traceback

            traceback.print_exc()
        return 1
    print(f"quickbrush {version()} smoke test passed: the built-in model generated a "
          f"{result.image.width}x{result.image.height} image in {time.perf_counter() - start:.1f}s "
          f"({written} bytes written and removed; Qt platform {platform})")
    return 0


# --------------------------------------------------------------------------- start-up tidying


def clean_stale_temps_at_start(recent_files: Sequence[str], folder: Path | None = None) -> None:
    """Remove the temporary files of saves that a killed Quickbrush left, in the autosave folder
    and beside the recent files (those of a save still running elsewhere are kept)."""
    from editor.autosave import autosave_dir
    from inference.files import clean_stale_temps

    places = [folder or autosave_dir()]
    for path in recent_files:
        parent = Path(path).parent
        if parent not in places:
            places.append(parent)
    for place in places:
        removed = clean_stale_temps(place)
        if removed:
            log.info("removed %d stale temporary file(s) in %s", len(removed), place)


# --------------------------------------------------------------------------- recovery dialogs (patchable)


def ask_recover(parent: Any, autosave: Any) -> str:
    """Offer one autosaved document: "recover", "discard" or "later" (ask at the next start)."""
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Recover unsaved work")
    box.setText(f"Quickbrush did not close properly. {autosave.name} has unsaved changes, "
                f"autosaved {autosave.when}.")
    where = autosave.belongs_to
    box.setInformativeText(
        "Recover them? The document opens as it was then: layers, mask, selection and history. "
        + (f"Save it to keep the changes in {where}." if autosave.path else
           f"It was opened from {where}; save it to keep the changes." if where else
           "It was never saved; save it to keep it."))
    recover = box.addButton("Recover", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("Discard…", QMessageBox.ButtonRole.DestructiveRole)
    later = box.addButton("Not now", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(recover)
    box.setEscapeButton(later)
    box.exec()
    clicked = box.clickedButton()
    return "recover" if clicked is recover else "discard" if clicked is discard else "later"


def confirm_discard_autosave(parent: Any, autosave: Any) -> bool:
    """Ask before an autosave is deleted; True means delete it."""
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Discard unsaved work")
    box.setText(f"Discard the unsaved changes to {autosave.name} from {autosave.when}?")
    box.setInformativeText("They are deleted for good and cannot be recovered afterwards.")
    delete = box.addButton("Discard changes", QMessageBox.ButtonRole.DestructiveRole)
    keep = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(keep)
    box.setEscapeButton(keep)
    box.exec()
    return box.clickedButton() is delete


def offer_recovery(window: Any, new_window: Callable[[], Any] | None = None,
                   folder: Path | None = None) -> list[Any]:
    """Offer each document a Quickbrush that did not close autosaved, newest first; return
    the recovered documents. The first opens in `window` while that holds nothing yet (no
    file, no changes), the others in windows from `new_window`. A damaged autosave is
    skipped, its message shown in the window's banner."""
    from editor.autosave import find_recoverable, recover
    from inference.jobs import JobError

    found = find_recoverable(folder)
    problems = list(found.problems)
    recovered = []
    for autosave in found.autosaves:
        log.info("recovery offered for %s, autosaved %s (%s)", autosave.name, autosave.when, autosave.ora)
        while True:
            choice = ask_recover(window, autosave)
            if choice != "discard" or confirm_discard_autosave(window, autosave):
                break
        if choice == "later":
            log.info("recovery of %s left for later", autosave.name)
            continue
        if choice == "discard":
            autosave.delete()
            continue
        target = window if _is_empty(window) else (new_window() if new_window else None)
        if target is None:
            log.info("no window for %s; left for the next start", autosave.name)
            continue
        try:
            recovered.append(recover(autosave, target))
        except JobError as error:
            problems.append(error)
            continue
        target.canvas.fit()
    if len(problems) == 1:
        window.show_error(problems[0].message, problems[0].details)
    elif problems:
        window.show_error(f"{len(problems)} autosaved documents are damaged and could not be recovered; "
                          "they were skipped.", "\n\n".join(f"{p.message}\n{p.details}" for p in problems))
    return recovered


def _is_empty(window: Any) -> bool:
    document = window.document
    return not (document.needs_saving or document.path or getattr(document, "source_path", None))


def _global_rect(widget) -> str:
    top_left = widget.mapToGlobal(widget.rect().topLeft())
    return f"{top_left.x()},{top_left.y()} {widget.width()}x{widget.height()}"


if __name__ == "__main__":
    sys.exit(main())
