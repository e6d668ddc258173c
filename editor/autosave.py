"""Autosave and crash recovery: work with unsaved changes is kept in the user's data folder.

While a document has unsaved changes, `AutosaveManager` writes it every 30 seconds (the
QUICKBRUSH_AUTOSAVE_SECONDS environment variable changes that, for tests) and right after a
result is applied, to ``<data>/autosave/<uid>.ora``: an ordinary Quickbrush .ora with the
layers, mask, selection and the history with its unapplied results. Beside it, ``<uid>.json``
says whose it is and where it belongs: the .ora the document was saved as, the image it was
opened from, its name, when it was written and the pid (and start time) of the Quickbrush that
owns it.

The snapshot is taken on the GUI thread (`editor.ora.prepare_save` copies what it needs);
compositing, PNG encoding and the atomic writes run on one background thread, which does every
removal too, in the order asked: a removal asked after a write always comes after it. A save,
a document closed or replaced (saved or discarded), and a clean quit remove the autosave; what is
left belongs to a Quickbrush that did not close. At start-up `find_recoverable` lists those whose
owner is gone and that are newer than their file, newest first, and `recover` opens one.

``<data>`` is QUICKBRUSH_DATA_DIR when set (tests, portable installs), else platformdirs' user
data folder, the one the models folder lives in.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import shutil
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from inference import files
from inference.files import process_state
from inference.jobs import BadInput, JobError

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_INTERVAL_S",
    "Autosave",
    "AutosaveManager",
    "autosave_dir",
    "data_dir",
    "find_recoverable",
    "interval_seconds",
    "recover",
]

DATA_DIR_ENV = files.DATA_DIR_ENV
INTERVAL_ENV = "QUICKBRUSH_AUTOSAVE_SECONDS"
DEFAULT_INTERVAL_S = 30.0
# Version of the sidecar; a newer one is left alone (a newer Quickbrush wrote it).
SIDECAR_FORMAT = 1
DAMAGED_DIR = "damaged"
# A process's start time as psutil reads it is rounded (to the second on Linux, from the boot
# time): the same process reads back within this margin.
_START_SLACK_S = 2.0
_SAFE_STEM = re.compile(r"[A-Za-z0-9_-]{1,64}")


def data_dir() -> Path:
    """Quickbrush's data folder (inference.files.data_dir): QUICKBRUSH_DATA_DIR, else the platform's."""
    return files.data_dir()


def autosave_dir() -> Path:
    return data_dir() / "autosave"


def interval_seconds() -> float:
    """Seconds between autosaves: QUICKBRUSH_AUTOSAVE_SECONDS, else 30."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.05 <= value <= 24 * 3600:
        log.warning("%s=%r is not a number of seconds between 0.05 and 86400; using %g",
                    INTERVAL_ENV, raw, DEFAULT_INTERVAL_S)
        return DEFAULT_INTERVAL_S
    return value


def _now() -> float:
    """The wall clock; one function, so tests can order autosaves without sleeping."""
    return time.time()


_OWN_START = process_state(os.getpid()).started


def _owner_alive(pid: Any, started: Any) -> bool:
    """Whether the Quickbrush that wrote a sidecar still runs.

    The pid alone cannot say: pids are reused, and in a container or a Flatpak sandbox every run
    of Quickbrush may get the same one, so a crashed run's pid is often this very process's. The
    process with that pid must also have started when the owner did."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    state = process_state(pid)
    if not state.known:
        return True  # cannot tell (access denied): offering another's live work would be worse
    if state.started is None:
        return False
    if not isinstance(started, (int, float)) or isinstance(started, bool):
        return True  # no start time recorded: the pid is all we have
    return abs(state.started - float(started)) <= _START_SLACK_S


def _safe_stem(uid: Any) -> str:
    text = str(uid)
    if _SAFE_STEM.fullmatch(text):
        return text
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def _when(stamp: float) -> str:
    """"today at 14:32", "yesterday at 09:05" or "3 March 2026 at 14:32": for a designer."""
    moment = _dt.datetime.fromtimestamp(stamp)
    today = _dt.date.today()
    clock = moment.strftime("%H:%M")
    if moment.date() == today:
        return f"today at {clock}"
    if moment.date() == today - _dt.timedelta(days=1):
        return f"yesterday at {clock}"
    return f"{moment.day} {moment.strftime('%B %Y')} at {clock}"


# --------------------------------------------------------------------------- what is on disk


@dataclass
class Autosave:
    """One autosaved document left by a Quickbrush that is gone (see `find_recoverable`)."""

    uid: str
    folder: Path
    name: str
    saved: float
    path: str | None = None
    source_path: str | None = None
    pid: int | None = None

    @property
    def ora(self) -> Path:
        return self.folder / f"{self.uid}.ora"

    @property
    def sidecar(self) -> Path:
        return self.folder / f"{self.uid}.json"

    @property
    def when(self) -> str:
        return _when(self.saved)

    @property
    def belongs_to(self) -> str | None:
        """The file the document came from (its .ora, else the image it was opened from)."""
        return self.path or self.source_path

    def load(self) -> tuple[Any, list]:
        """The document as autosaved, with unsaved changes, its original path and source, and
        its history records (for `MainWindow.set_document`). Raises BadInput when it cannot be
        read."""
        from editor.ora import load_ora

        try:
            document, records = load_ora(self.ora)
        except BadInput as error:
            # Moved aside, so it is not offered again at every start.
            raise _set_aside(self.folder, self.uid, self.name, f"{self.ora}\n{error.message}\n{error.details}")
        # load_ora points the document at the autosave; Save must write where it belongs.
        document.path = self.path
        document.source_path = self.source_path
        # Never clean until saved: the changes are not in any file of the designer's.
        document.undo_stack.resetClean()
        return document, records

    def delete(self) -> None:
        """Remove the autosave for good (the designer declined it)."""
        _remove_files(self.folder, self.uid)
        log.info("removed the autosave of %s (%s)", self.name, self.ora)

    def claim(self) -> None:
        """Record this process as the owner, so a Quickbrush started next does not offer it."""
        _write_sidecar(self.sidecar, self._sidecar_data())

    def _sidecar_data(self) -> dict[str, Any]:
        return _sidecar_dict(self.uid, self.name, self.path, self.source_path, self.saved)


def _sidecar_dict(uid: str, name: str, path: str | None, source_path: str | None, saved: float) -> dict[str, Any]:
    from inference.metadata import quickbrush_version

    return {
        "format": SIDECAR_FORMAT,
        "uid": uid,
        "name": name,
        "path": path,
        "source_path": source_path,
        "saved": saved,
        "saved_text": _dt.datetime.fromtimestamp(saved).isoformat(timespec="seconds"),
        "pid": os.getpid(),
        "process_started": _OWN_START,
        "app": f"Quickbrush {quickbrush_version()}",
    }


def _write_sidecar(path: Path, data: dict[str, Any]) -> None:
    from inference.files import atomic_write

    text = json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
    atomic_write(path, lambda handle: handle.write(text))


def _remove_files(folder: Path, stem: str) -> None:
    # The sidecar first: an .ora without one is never offered, a sidecar without its .ora would
    # be reported as damaged.
    for name in (f"{stem}.json", f"{stem}.ora"):
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("could not remove %s: %s", folder / name, error)


@dataclass
class Found:
    """What `find_recoverable` found: documents to offer (newest first) and the autosaves it
    could not read (BadInput each, with a message for the designer; they were moved aside)."""

    autosaves: list[Autosave]
    problems: list[BadInput]


def find_recoverable(folder: str | os.PathLike[str] | None = None) -> Found:
    """Autosaves left by a Quickbrush that is gone, newer than the file they belong to.

    An autosave whose owner still runs (another Quickbrush open now, or this one) is not listed.
    One older than its file (saved elsewhere since) is not listed either, and is kept. A damaged
    one (sidecar unreadable, .ora missing or failing its checksums) is moved to the ``damaged``
    subfolder, so it is reported once, and its problem is returned.
    """
    folder = Path(folder) if folder is not None else autosave_dir()
    found = Found([], [])
    try:
        sidecars = sorted(folder.glob("*.json"))
    except OSError as error:
        log.warning("could not list the autosave folder %s: %s", folder, error)
        return found
    for sidecar in sidecars:
        stem = sidecar.stem
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            continue  # removed meanwhile (its owner saved)
        except (OSError, ValueError) as error:
            found.problems.append(_set_aside(folder, stem, stem, f"{sidecar}: {error}"))
            continue
        if _owner_alive(data.get("pid"), data.get("process_started")):
            log.info("autosave %s belongs to the running Quickbrush %s; not offered", stem, data.get("pid"))
            continue
        if isinstance(data.get("format"), int) and data["format"] > SIDECAR_FORMAT:
            log.info("autosave %s was written by a newer Quickbrush; left alone", stem)
            continue
        item = _parse(folder, stem, data)
        if item is None:
            found.problems.append(_set_aside(folder, stem, str(data.get("name") or stem),
                                             f"{sidecar}: missing or wrong fields\n{data!r}"))
            continue
        problem = _check_ora(item.ora)
        if problem is not None:
            found.problems.append(_set_aside(folder, stem, item.name, f"{item.ora}: {problem}"))
            continue
        original = item.belongs_to
        if original:
            try:
                if os.path.getmtime(original) >= item.saved:
                    log.info("autosave of %s is older than %s; not offered", item.name, original)
                    continue
            except OSError:
                pass  # the file is gone: the autosave is all there is
        found.autosaves.append(item)
    found.autosaves.sort(key=lambda item: item.saved, reverse=True)
    return found


def _parse(folder: Path, stem: str, data: dict[str, Any]) -> Autosave | None:
    saved, name = data.get("saved"), data.get("name")
    if not isinstance(saved, (int, float)) or isinstance(saved, bool) or not isinstance(name, str):
        return None
    if data.get("uid") != stem:
        return None
    paths = [data.get(key) for key in ("path", "source_path")]
    if any(p is not None and not isinstance(p, str) for p in paths):
        return None
    pid = data.get("pid")
    return Autosave(stem, folder, name or "Untitled", float(saved), paths[0] or None, paths[1] or None,
                    pid if isinstance(pid, int) else None)


def _check_ora(path: Path) -> str | None:
    """Why the autosaved .ora cannot be trusted, or None. The checksums of every part are read
    (a truncated or damaged file fails them) without building the document."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                return f"{bad} fails its checksum"
            if "stack.xml" not in zf.namelist():
                return "no stack.xml"
    except FileNotFoundError:
        return "the file is missing"
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def _set_aside(folder: Path, stem: str, name: str, details: str) -> BadInput:
    damaged = folder / DAMAGED_DIR
    moved = []
    try:
        damaged.mkdir(exist_ok=True)
        for suffix in (".ora", ".json"):
            source = folder / f"{stem}{suffix}"
            if source.exists():
                shutil.move(str(source), str(damaged / source.name))
                moved.append(source.name)
    except OSError as error:
        details += f"\ncould not move it aside: {error}"
    log.warning("autosave %s is damaged: %s", stem, details)
    return BadInput(f"An autosave of {name} is damaged and could not be recovered; it was skipped.",
                    f"{details}\nMoved to {damaged}: {', '.join(moved) or 'nothing'}")


def recover(autosave: Autosave, window: Any) -> Any:
    """Open `autosave` in `window` (a MainWindow): its layers, mask, selection and history, with
    unsaved changes and its original path. The window's manager takes the autosave over, so it
    stays on disk until the document is saved or discarded. Raises BadInput when unreadable."""
    document, records = autosave.load()
    autosave.claim()
    window.autosave.adopt(document, autosave)
    window.set_document(document, records)
    layers = len(document.layers)
    log.info("recovered %s from %s: %d layer%s, mask box %s, selection %s, %d history entr%s",
             autosave.name, autosave.ora, layers, "" if layers == 1 else "s", document.mask_bbox(),
             document.selection_box(), len(records), "y" if len(records) == 1 else "ies")
    return document


# --------------------------------------------------------------------------- the manager


class AutosaveManager(QObject):
    """Autosaves one window's document while it has unsaved changes; see the module docstring.

    With a `window` (a MainWindow) it follows `window.document_changed`, saves on
    `window.result_applied` and shows failures in `window.show_error`; without one, call `watch`.

    Signals (GUI thread):
      saved(str): an autosave is on disk (the .ora's path).
      removed(str): the autosave with this uid was removed.
      failed(str, str): an autosave could not be written (message for the designer, details).
    """

    saved = Signal(str)
    removed = Signal(str)
    failed = Signal(str, str)
    # From the file thread: (stem, target path, error or None). Queued to the GUI thread.
    _written = Signal(str, str, object)
    _deleted = Signal(str)

    def __init__(self, window: Any = None, *, folder: str | os.PathLike[str] | None = None,
                 interval_s: float | None = None):
        super().__init__(window)
        self.folder = Path(folder) if folder is not None else autosave_dir()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quickbrush-autosave")
        self._document: Any = None
        self._stem: str | None = None
        self._on_disk = False  # whether files for _stem may exist (written, or adopted)
        self._dirty = False
        self._in_flight = 0
        self._again = False
        self._failing = False
        self._closed = False
        self._adopted: list[tuple[Any, Autosave]] = []
        self._connections: list[tuple[Any, Any]] = []
        self._written.connect(self._on_written)
        self._deleted.connect(self.removed)
        self._timer = QTimer(self)
        self._timer.setInterval(max(1, round(1000 * (interval_seconds() if interval_s is None else interval_s))))
        self._timer.timeout.connect(self.tick)
        self._timer.start()
        if window is not None:
            window.document_changed.connect(self.watch)
            window.result_applied.connect(self.save_now)
            self.failed.connect(window.show_error)
            self.watch(window.document)

    @property
    def interval_ms(self) -> int:
        return self._timer.interval()

    @property
    def document(self) -> Any:
        return self._document

    @property
    def writing(self) -> bool:
        """Whether an autosave is being written now."""
        return self._in_flight > 0

    @property
    def path(self) -> Path | None:
        """Where the current document is autosaved (whether or not it is written yet)."""
        return None if self._stem is None else self.folder / f"{self._stem}.ora"

    # ------------------------------------------------------------------ following documents

    def adopt(self, document: Any, autosave: Autosave) -> None:
        """`document` was recovered from `autosave`: when it is watched, keep saving there."""
        self._adopted.append((document, autosave))

    def watch(self, document: Any) -> None:
        """Follow `document` from now on. The previous one was saved, discarded or replaced:
        its autosave goes."""
        if document is self._document or self._closed:
            return
        self._remove_current()
        self._disconnect()
        self._document = document
        self._dirty = False
        self._on_disk = False
        self._stem = None
        if document is None:
            return
        for i, (candidate, autosave) in enumerate(self._adopted):
            if candidate is document:
                del self._adopted[i]
                self._stem = autosave.uid
                self._on_disk = True  # the autosave already holds exactly this state
                break
        else:
            self._stem = _safe_stem(document.uid)
            self._dirty = bool(document.needs_saving)  # arrived with changes: save them too
        undo = document.undo_stack
        connections = [(getattr(document, name), self._mark_dirty) for name in
                       ("changed", "mask_changed", "layers_changed", "selection_changed", "size_changed")]
        connections += [(undo.indexChanged, self._mark_dirty), (document.history.changed, self._mark_dirty),
                        (document.needs_saving_changed, self._needs_saving_changed)]
        for signal, slot in connections:
            signal.connect(slot)
        self._connections = connections

    def _disconnect(self) -> None:
        for signal, slot in self._connections:
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):  # the document is already deleted
                pass
        self._connections = []

    def _mark_dirty(self, *_args: Any) -> None:
        self._dirty = True

    def _needs_saving_changed(self, needs: bool) -> None:
        if not needs:  # saved, or undone back to the saved state: the file has it all
            self._remove_current()

    # ------------------------------------------------------------------ saving

    def tick(self) -> None:
        """The timer's slot: write the document if it has unsaved changes not autosaved yet."""
        document = self._document
        if self._closed or document is None or not self._dirty or not document.needs_saving:
            return
        if getattr(document, "stroking", False):
            return  # mid-stroke; the stroke's end marks the document changed again
        if self._in_flight:
            self._again = True  # one write at a time; this one follows when it ends
            return
        self._snapshot_and_write()

    def save_now(self) -> None:
        """Autosave right away (after a result was applied), not at the next tick."""
        self.tick()

    def _snapshot_and_write(self) -> None:
        from editor.ora import prepare_save

        document, stem = self._document, self._stem
        assert stem is not None
        target = self.folder / f"{stem}.ora"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            prepared = prepare_save(target, document, document.history_records())
        except OSError as error:
            self._report(JobError(f"Could not autosave {document.display_name}: the autosave folder "
                                  f"cannot be created.", f"{self.folder}\n{error}"))
            return
        except JobError as error:
            self._report(self._worded(error, document.display_name, target))
            return
        sidecar = _sidecar_dict(stem, document.display_name, document.path,
                                getattr(document, "source_path", None), _now())
        self._dirty = False
        self._in_flight += 1
        self._on_disk = True
        self._executor.submit(self._write, stem, prepared, sidecar, document.display_name)

    def _write(self, stem: str, prepared: Any, sidecar: dict[str, Any], name: str) -> None:
        """On the file thread: the slow half of the .ora, then its sidecar."""
        from editor.ora import write_prepared

        error: JobError | None = None
        try:
            write_prepared(prepared)
            _write_sidecar(self.folder / f"{stem}.json", sidecar)
        except JobError as exc:
            error = self._worded(exc, name, prepared.target)
        except Exception as exc:  # reported in the banner, never lost in a thread
            log.exception("autosave failed")
            error = JobError(f"Could not autosave {name}. Save it yourself (Ctrl+S) to keep your changes safe.",
                             f"{prepared.target}\n{type(exc).__name__}: {exc}")
        try:
            self._written.emit(stem, str(prepared.target), error)
        except RuntimeError:  # the manager is gone (the window closed without shutdown)
            pass

    @staticmethod
    def _worded(error: JobError, name: str, target: Path) -> JobError:
        # The error names the autosave's file (a uid); the designer knows the document's name.
        prefix = f"Could not save {Path(target).name}: "
        reason = error.message[len(prefix):].rstrip(".") if error.message.startswith(prefix) else None
        message = (f"Could not autosave {name}: {reason}." if reason else f"Could not autosave {name}.")
        return JobError(f"{message} Save it yourself (Ctrl+S) to keep your changes safe.",
                        f"{error.message}\n{error.details}".strip())

    def _on_written(self, stem: str, target: str, error: JobError | None) -> None:
        self._in_flight -= 1
        if error is not None:
            if stem == self._stem:
                self._dirty = True  # try again at the next tick
            self._report(error)
        else:
            self._failing = False
            log.info("autosaved %s to %s", self._document.display_name if stem == self._stem else stem, target)
            self.saved.emit(target)
        if self._again:
            self._again = False
            self.tick()

    def _report(self, error: JobError) -> None:
        log.warning("autosave failed: %s (%s)", error.message, error.details)
        if self._failing:
            return  # said once; every 30 s would bury the banner
        self._failing = True
        self.failed.emit(error.message, error.details)

    # ------------------------------------------------------------------ removing

    def _remove_current(self) -> None:
        stem = self._stem
        if stem is None or not self._on_disk:
            return
        self._on_disk = False
        self._dirty = bool(self._document is not None and self._document.needs_saving)
        self._executor.submit(self._delete, stem)

    def _delete(self, stem: str) -> None:
        _remove_files(self.folder, stem)
        log.info("removed autosave %s", stem)
        try:
            self._deleted.emit(stem)
        except RuntimeError:
            pass

    def discard(self) -> None:
        """The current document's changes were given up: remove its autosave."""
        self._remove_current()

    def shutdown(self, remove: bool = True) -> None:
        """Stop autosaving and wait for the file thread (window closing). `remove`: the document
        was saved or discarded, so its autosave goes; False keeps it for recovery."""
        if self._closed:
            return
        self._timer.stop()
        if remove:
            self._remove_current()
        self._disconnect()
        self._closed = True
        self._executor.shutdown(wait=True)

    def wait(self) -> None:
        """Block until the file thread has done what was asked so far (tests)."""
        if not self._closed:
            self._executor.submit(lambda: None).result()
