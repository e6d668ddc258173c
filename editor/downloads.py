"""Downloads, imports and removals off the GUI thread, reported as Qt signals in the GUI thread.

`inference.models.downloads.Download.run` blocks for as long as a model takes to fetch (minutes,
on a slow line); importing a checkpoint copies and checks gigabytes. Each runs in a
`BackgroundTask` (a QThread) whose signals, emitted from that thread, reach the panel queued to
the GUI thread, so the canvas keeps painting. Progress is passed on at most every
`PROGRESS_INTERVAL` seconds (huggingface_hub reports every chunk it writes) and always last.

The threads have no Qt parent: a panel closed while one runs must not destroy a running QThread
(Qt aborts the process then). Every task is kept in `_RUNNING` until its thread has finished, and
`shutdown_all` (at the application's quit, and in tests) cancels and waits for them.
"""

from __future__ import annotations

import atexit
import errno
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal

from inference.jobs import Cancelled, JobError

PROGRESS_INTERVAL = 0.1

_RUNNING: set[BackgroundTask] = set()
_RUNNING_LOCK = threading.Lock()
_quit_hooked = False


def as_job_error(exc: BaseException, what: str) -> JobError:
    """A failure the dock can show as one line (and details), whatever raised it. `what` says
    what was being done: "Downloading SD-Turbo"."""
    if isinstance(exc, JobError):
        return exc
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return JobError(f"{what} stopped: the disk is full.",
                        f"{exc}\nFree some space (or remove a model) and try again; what was fetched is kept.")
    if isinstance(exc, OSError):
        return JobError(f"{what} failed: {exc.strerror or exc}.", f"{type(exc).__name__}: {exc}")
    return JobError(f"{what} failed: {exc}", f"{type(exc).__name__}: {exc}")


class BackgroundTask(QThread):
    """Runs `work(report)` once on its own thread. `report(value)` sends progress (throttled);
    what `work` returns is `succeeded`'s value; what it raises is `failed`'s, as a JobError
    (Cancelled when it was cancelled). `cancel()` calls the `cancel` given, from any thread."""

    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object)

    def __init__(self, work: Callable[[Callable[[Any], None]], Any], what: str,
                 cancel: Callable[[], None] | None = None):
        super().__init__()
        self._work = work
        self._cancel = cancel
        self.what = what
        self.cancelled = False
        self._last_sent = 0.0
        self._pending: Any = None
        self._has_pending = False
        self.finished.connect(self._forget)

    def start(self, *args) -> None:
        _hook_quit()
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        super().start(*args)

    def cancel(self) -> None:
        self.cancelled = True
        if self._cancel is not None:
            self._cancel()

    def _report(self, value: Any) -> None:
        now = time.monotonic()
        if now - self._last_sent >= PROGRESS_INTERVAL:
            self._last_sent = now
            self._has_pending = False
            self.progress.emit(value)
        else:
            self._pending, self._has_pending = value, True

    def run(self) -> None:
        try:
            result = self._work(self._report)
        except BaseException as exc:  # noqa: BLE001 - every failure reaches the dock as a message
            if self._has_pending:
                self.progress.emit(self._pending)
            error = as_job_error(exc, self.what)
            if self.cancelled and not isinstance(error, Cancelled):
                error = Cancelled(f"{self.what}: cancelled.", error.details)
            self.failed.emit(error)
            return
        if self._has_pending:
            self.progress.emit(self._pending)
        self.succeeded.emit(result)

    def _forget(self) -> None:
        with _RUNNING_LOCK:
            _RUNNING.discard(self)
        self.deleteLater()


def running() -> list[BackgroundTask]:
    """The tasks whose threads still run (a finished one waits for its `finished` to be handled)."""
    with _RUNNING_LOCK:
        return [task for task in _RUNNING if not task.isFinished()]


def shutdown_all(timeout_ms: int = 30000) -> None:
    """Cancel every task and wait for its thread (a download stops within a chunk; partial
    files stay for a later resume)."""
    for task in running():
        task.cancel()
    for task in running():
        task.wait(timeout_ms)


def _hook_quit() -> None:
    global _quit_hooked
    app = QCoreApplication.instance()
    if not _quit_hooked:
        if app is not None:
            app.aboutToQuit.connect(shutdown_all)
        # Also at interpreter exit (tests, scripts that never quit an app): a QThread destroyed
        # while it runs aborts the process.
        atexit.register(shutdown_all, 5000)
        _quit_hooked = True


def guarded(owner: QObject, slot: Callable[..., Any]) -> Callable[..., Any]:
    """`slot`, called only while `owner` (a QObject) still exists: a task outlives a dock closed
    while it ran, and its last signals must not reach a deleted widget."""
    from shiboken6 import Shiboken

    def call(*args):
        if Shiboken.isValid(owner):
            slot(*args)

    return call


def _real_downloads():
    from inference.models import downloads

    return downloads


class DownloadManager(QObject):
    """The catalog's downloads by entry id: at most one per entry, several at once.

    Signals carry the entry id: `progress(id, downloads.Progress)`, `finished(id, Path)` (the
    installed snapshot folder), `failed(id, JobError)` (Cancelled for a cancelled one)."""

    started = Signal(str)
    progress = Signal(str, object)
    finished = Signal(str, object)
    failed = Signal(str, object)

    def __init__(self, parent: QObject | None = None, downloads_api: Callable[[], Any] | None = None):
        super().__init__(parent)
        # The module with Download (inference.models.downloads unless a test gives another).
        self._downloads_api = downloads_api or _real_downloads
        self._tasks: dict[str, BackgroundTask] = {}
        self._last: dict[str, Any] = {}

    def start(self, entry) -> BackgroundTask | None:
        """Start fetching a catalog entry (None when it is already being fetched)."""
        if entry.id in self._tasks:
            return None
        downloads = self._downloads_api()
        holder: dict[str, Any] = {}

        def work(report):
            download = downloads.Download(entry, on_progress=report)
            holder["download"] = download
            if task.cancelled:  # cancelled before the thread got here
                download.cancel()
            return download.run()

        def cancel():
            download = holder.get("download")
            if download is not None:
                download.cancel()

        task = BackgroundTask(work, f"Downloading {entry.name}", cancel)
        task.progress.connect(guarded(self, lambda value, i=entry.id: self._on_progress(i, value)))
        task.succeeded.connect(guarded(self, lambda value, i=entry.id: self._on_done(i, value)))
        task.failed.connect(guarded(self, lambda error, i=entry.id: self._on_failed(i, error)))
        self._tasks[entry.id] = task
        self._last.pop(entry.id, None)
        task.start()
        self.started.emit(entry.id)
        return task

    def cancel(self, entry_id: str) -> None:
        task = self._tasks.get(entry_id)
        if task is not None:
            task.cancel()

    def is_active(self, entry_id: str) -> bool:
        return entry_id in self._tasks

    def active(self) -> list[str]:
        return list(self._tasks)

    def last_progress(self, entry_id: str):
        """The last Progress of the entry's download in flight (None before the first)."""
        return self._last.get(entry_id)

    def _on_progress(self, entry_id: str, value) -> None:
        if entry_id in self._tasks:
            self._last[entry_id] = value
            self.progress.emit(entry_id, value)

    def _on_done(self, entry_id: str, path) -> None:
        self._tasks.pop(entry_id, None)
        self._last.pop(entry_id, None)
        self.finished.emit(entry_id, path)

    def _on_failed(self, entry_id: str, error) -> None:
        self._tasks.pop(entry_id, None)
        self._last.pop(entry_id, None)
        self.failed.emit(entry_id, error)


__all__ = ["BackgroundTask", "DownloadManager", "as_job_error", "running", "shutdown_all"]
