"""Writing files so that nothing is lost: atomic replacement, and no temporary files left behind.

Every save in Quickbrush (documents, PNG and JPEG exports, autosaves) goes through `atomic_write`:
the bytes go to a hidden temporary file beside the target, which is flushed to disk and then
replaces the target in one step. A failure removes the temporary file and leaves the old file
as it was. A process that is killed (power cut, SIGKILL, a crash in a native library) cannot
clean up after itself, so the temporary file's name says who wrote it:

    .<target name>.<pid>-<host>.<random>.tmp

`<pid>` is the writing process and `<host>` eight hex digits naming the machine (a shared folder
may hold temporary files of another computer, whose process ids mean nothing here). A
temporary file is *stale* when its process is gone: no such process, a zombie, or a process
that started after the file was last written (the id was reused). Every atomic write first
removes the stale temporary files of its own target, and `clean_stale_temps` removes those of a
folder or a file (the app calls it at start-up for the folders of its recent files and
autosaves). A live writer's file is never touched, whichever process it is.

Earlier versions named temporary files ``.<target name>.<random>.tmp``, without a process id;
those are removed once nobody has written to them for an hour, as no save takes that long.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import psutil  # the portable way to ask whether a process lives

from inference.jobs import JobError

__all__ = ["SaveError", "atomic_write", "cache_dir", "clean_stale_temps", "data_dir", "temp_path_for"]

DATA_DIR_ENV = "QUICKBRUSH_DATA_DIR"
CACHE_DIR_ENV = "QUICKBRUSH_CACHE_DIR"


def data_dir() -> Path:
    """Quickbrush's data folder (autosaves, what it learnt about this machine); QUICKBRUSH_DATA_DIR
    overrides it (tests never touch the user's). "quickbrush" without an author folder: the same
    folder as inference.models.store.models_dir."""
    from platformdirs import user_data_dir

    override = os.environ.get(DATA_DIR_ENV)
    return Path(override) if override else Path(user_data_dir("quickbrush", appauthor=False))


def cache_dir() -> Path:
    """What can be rebuilt at a cost (converted and compiled models): QUICKBRUSH_CACHE_DIR, else
    the platform's cache folder, which cleaners and backups know to skip."""
    from platformdirs import user_cache_dir

    override = os.environ.get(CACHE_DIR_ENV)
    return Path(override) if override else Path(user_cache_dir("quickbrush", appauthor=False))



class SaveError(JobError):
    """Writing a file failed; the previous file at the path, if any, is untouched."""

    kind = "save_failed"


_SAVE_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "permission denied (the folder may be read-only or belong to someone else)",
    errno.EPERM: "permission denied (the folder may be read-only or belong to someone else)",
    errno.EROFS: "the disk is read-only",
    errno.ENOENT: "the folder does not exist",
    errno.ENOTDIR: "the folder does not exist",
    errno.EISDIR: "a folder already has that name",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EIO: "the disk reported an input/output error",
    errno.EMFILE: "too many files are open",
}


def _save_error(path: Path, error: BaseException) -> SaveError:
    reason = None
    if isinstance(error, MemoryError):
        reason = "there is not enough memory"
    elif isinstance(error, OSError):
        reason = _SAVE_REASONS.get(error.errno)  # type: ignore[arg-type]
        if reason is None and error.strerror:
            reason = error.strerror[0].lower() + error.strerror[1:]
    if reason is None:
        reason = str(error) or type(error).__name__
    return SaveError(f"Could not save {path.name}: {reason}.", f"{path}\n{type(error).__name__}: {error}")


# The machine, as eight hex digits: short enough for any file system's name limit, and the same
# for every process of this machine.
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
_TEMP = re.compile(r"\.(?P<target>.+)\.(?P<pid>[0-9]{1,10})-(?P<host>[0-9a-f]{8})\.[0-9a-f]{8}\.tmp")
_LEGACY_TEMP = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{8}\.tmp")
# Files of the old naming, and files of another machine, are stale once untouched this long:
# their writer cannot be asked, and a save writes continuously, so an hour of silence means dead.
_UNOWNED_AGE_S = 3600.0
# Process start times and file times come from different clocks (psutil derives start times from
# the boot time, rounded to the second on Linux): a process counts as having started after the
# file only beyond this margin.
_CLOCK_SLACK_S = 2.0
# Old-style names are generic enough that another program might use them; in a whole folder only
# those of files Quickbrush writes are removed.
_OUR_SUFFIXES = {".ora", ".png", ".jpg", ".jpeg", ".webp", ".json"}


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    """A fresh temporary file name beside the file `path` resolves to, naming this process."""
    real = Path(os.path.realpath(os.path.abspath(os.fspath(path))))
    return real.with_name(f".{real.name}.{os.getpid()}-{_HOST}.{secrets.token_hex(4)}.tmp")


def read_json_object(path: Path) -> dict:
    """The JSON object stored at `path`, or {} where the file is missing, unreadable, not JSON or
    not an object: what Quickbrush's small record files (licences, downloads, runtime choices)
    read as "nothing recorded yet"."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def atomic_write(path: str | os.PathLike[str], write: Callable[[Any], Any]) -> Path:
    """Call `write(binary_file)` on a hidden temporary file beside `path`, then swap it in.

    The temp file is flushed to disk and replaces the target in one step, keeping the old file's
    permissions (and a symlink at `path`: the file it points to is replaced). Any failure
    removes the temp file, leaves the old file untouched and raises SaveError naming `path` in
    words a designer understands. Stale temporary files of the same target (from a save that
    was killed) are removed first.
    """
    target = Path(os.path.abspath(os.fspath(path)))
    real = Path(os.path.realpath(target))
    _remove_stale(real.parent, real.name)
    temp = temp_path_for(real)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as error:
        raise _save_error(target, error) from error
    try:
        with os.fdopen(fd, "w+b") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        try:  # keep the permissions of the file being replaced
            os.chmod(temp, os.stat(real).st_mode & 0o7777)
        except OSError:
            pass
        os.replace(temp, real)
    except BaseException as error:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(error, (KeyboardInterrupt, SystemExit, SaveError)):
            raise
        raise _save_error(target, error) from error
    _fsync_dir(real.parent)
    return target


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_stale_temps(folder_or_file: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed saves left behind, and say which.

    Given a folder: those of every file in it (not in subfolders). Given a file (whether or not
    it exists): those of that file, beside the file a symlink points to, as `atomic_write` puts
    them. Temporary files of a save still running are kept. Never raises: a folder that cannot
    be read or a file that cannot be removed is skipped (start-up must not fail over it).
    """
    try:
        given = Path(os.path.abspath(os.fspath(folder_or_file)))
        if given.is_dir():
            return _remove_stale(given, None)
        real = Path(os.path.realpath(given))
        return _remove_stale(real.parent, real.name)
    except (OSError, ValueError):  # ValueError: a path with a NUL byte
        return []


def _remove_stale(folder: Path, target_name: str | None) -> list[Path]:
    """Remove the stale temporary files in `folder`, of `target_name` only unless it is None."""
    removed: list[Path] = []
    now = time.time()
    try:
        entries = os.scandir(folder)
    except OSError:
        return removed
    with entries:
        for entry in entries:
            name = entry.name
            if not (name.startswith(".") and name.endswith(".tmp")):
                continue
            try:
                if _is_stale(entry, target_name, now):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except OSError:  # gone meanwhile, or not ours to remove: leave it
                continue
    return removed


def _is_stale(entry: os.DirEntry[str], target_name: str | None, now: float) -> bool:
    match = _TEMP.fullmatch(entry.name)
    if match is not None:
        if target_name is not None and match["target"] != target_name:
            return False
        if not entry.is_file(follow_symlinks=False):
            return False
        written = entry.stat(follow_symlinks=False).st_mtime
        if match["host"] != _HOST:
            return now - written > _UNOWNED_AGE_S
        return not _writer_alive(int(match["pid"]), written)
    match = _LEGACY_TEMP.fullmatch(entry.name)
    if match is None:
        return False
    if target_name is None:
        if Path(match["target"]).suffix.lower() not in _OUR_SUFFIXES:
            return False
    elif match["target"] != target_name:
        return False
    if not entry.is_file(follow_symlinks=False):
        return False
    return now - entry.stat(follow_symlinks=False).st_mtime > _UNOWNED_AGE_S


class ProcessState(NamedTuple):
    """What can be told of a process id: `known` False when the system will not say (access
    denied); `started` its start time (psutil's create_time), None when no such process runs
    (gone, or a zombie)."""

    known: bool
    started: float | None


def process_state(pid: int) -> ProcessState:
    """Whether `pid` runs and since when: the owner checks of temp files and of autosaves."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return ProcessState(True, None)
        return ProcessState(True, process.create_time())
    except psutil.NoSuchProcess:
        return ProcessState(True, None)
    except (psutil.Error, OSError, ValueError, OverflowError):
        return ProcessState(False, None)


def _writer_alive(pid: int, written: float) -> bool:
    """Whether process `pid` may still be writing a file last written at `written`."""
    # No shortcut for this process's own id: in a container every run may get the same id, and a
    # file an earlier run left is stale all the same (this process started after it was written).
    state = process_state(pid)
    if not state.known:
        return True  # cannot tell (access denied): keeping a file is safer than losing one
    return state.started is not None and state.started <= written + _CLOCK_SLACK_S
