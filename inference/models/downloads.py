"""Downloading catalog models into the Hugging Face cache: progress, cancel, resume, verification.

Everything goes through huggingface_hub's own pieces (its endpoint, cache folder, offline switch,
token and HTTP client, so HF_ENDPOINT, HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE, HF_TOKEN and
proxies behave as everywhere else), and files land in the cache's usual layout
(`models--owner--name/blobs/<etag>`, `snapshots/<commit>/<path>`), so diffusers, the CLI and
`huggingface-cli scan-cache` see them.

Why not `hf_hub_download`: in huggingface_hub 2.x it writes each file to a temporary name unique
to the call and deletes it on any failure, and it retries a dropped stream only from its last
10 MB chunk; a cancelled or killed download of a 5 GB UNet would start again from zero. Here the
partial file is `blobs/<etag>.incomplete` (the name older huggingface_hub versions resumed from),
kept on cancel, drop or crash, and continued with an HTTP Range request by the next attempt, in
this process or the next.

Every file is checked against the Hub's metadata (model info with files_metadata: size, and the
LFS sha256 for weights, the git blob id for small files) before it is moved into the cache; a
mismatch deletes it and raises Corrupt. What was checked is recorded in
`inference.files.data_dir()/downloads.json` (size and mtime per file), so `state` answers
"installed" without hashing gigabytes, and only for files that were checked.

xet: real Hub repositories are stored in xet, but the Hub still serves every file over plain
HTTP (resolve redirects to its bridge, which honours Range), so this module never needs hf_xet;
it gives up xet's chunk de-duplication for a resumable, verifiable stream.

No torch, diffusers or Qt here.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from inference.jobs import (
    BadInput,
    Cancelled,
    JobError,
    LoraRef,
    ModelMissing,
    ModelRef,
    NetworkUnavailable,
)
from inference.models.catalog import Entry, licence_accepted, pipeline_problem, requires

__all__ = [
    "Corrupt", "DiskFull", "Download", "FileProgress", "LicenceRequired", "Progress", "human_bytes",
    "installed_path", "lora_source", "model_ref", "model_source", "remove", "state",
]

RECORDS_FILE = "downloads.json"
ATTEMPTS = 3  # tries of one file in a row that bring no new byte, before giving up
PROGRESS_EVERY_S = 0.1
SPEED_WINDOW_S = 3.0
WEIGHT_FORMATS = (".safetensors",)
PICKLE_FORMATS = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
# For a typed repository (no file list): what a diffusers folder or a LoRA repository needs.
ADHOC_KEEP = ("*.json", "*.txt", "*.model", "*.safetensors")
ADHOC_SKIP = ("*non_ema*", "*.ema.*", ".gitattributes", "README.md")


class DiskFull(JobError):
    """Not enough free space for the download; nothing was fetched."""

    kind = "disk_full"

    def __init__(self, message: str, details: str = "", needed: int = 0, free: int = 0):
        super().__init__(message, details)
        self.needed = needed
        self.free = free


class Corrupt(BadInput):
    """A downloaded file disagrees with the Hub's size or sha256; it was deleted, not installed."""

    kind = "corrupt"


class LicenceRequired(JobError):
    """The model's licence must be accepted (catalog.accept_licence) before the first download."""

    kind = "licence_required"


@dataclass
class FileProgress:
    name: str
    done: int
    total: int


@dataclass
class Progress:
    entry_id: str
    files: list[FileProgress]
    done: int
    total: int
    bytes_per_s: float
    seconds_left: float | None
    current: str | None
    stage: str = "download"  # addition: "download" | "verify" | "done"


def human_bytes(n: float) -> str:
    """Sizes as a designer reads them (decimal units, like file managers and the Hub)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


# --------------------------------------------------------------------------- the Hub's settings
# Read at call time from huggingface_hub.constants (which reads the environment at import), so a
# test or an app that redirects them after import is followed.


def _constants():
    from huggingface_hub import constants

    return constants


def _cache() -> Path:
    return Path(_constants().HF_HUB_CACHE)


def _offline() -> bool:
    return bool(_constants().HF_HUB_OFFLINE)


def _repo_folder(repo: str) -> Path:
    return _cache() / ("models--" + repo.replace("/", "--"))


# --------------------------------------------------------------------------- records of checked files

_records_lock = threading.RLock()


def _records_path() -> Path:
    from inference.files import data_dir

    return data_dir() / RECORDS_FILE


def _read_records() -> dict:
    from inference.files import read_json_object

    return read_json_object(_records_path())


def _write_records(data: dict) -> None:
    from inference.files import atomic_write

    path = _records_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(data, indent=1, sort_keys=True).encode("utf-8")
    atomic_write(path, lambda handle: handle.write(payload))


def _record_key(e: Entry) -> str:
    # One cache can be shared by several HF_HOMEs' worth of settings; records are per cache.
    return f"{_cache()}|{e.id}|{e.repo}"


def _record(e: Entry) -> dict | None:
    with _records_lock:
        record = _read_records().get(_record_key(e))
    if not isinstance(record, dict):
        return None
    if e.revision is not None and record.get("revision") != e.revision:
        return None  # the catalog moved to another commit: that one is not installed
    return record


def _put_record(e: Entry, record: dict | None) -> None:
    with _records_lock:
        data = _read_records()
        if record is None:
            data.pop(_record_key(e), None)
        else:
            data[_record_key(e)] = record
        _write_records(data)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()  # follows the snapshot's symlink to the blob
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _own_state(e: Entry) -> str:
    record = _record(e)
    if record is not None and record.get("complete"):
        folder = Path(record["snapshot"])
        files = record.get("files", {})
        ok = all(_stat(folder / name) == (info["size"], info["mtime_ns"]) for name, info in files.items())
        covered = all(any(fnmatch.fnmatchcase(name, pattern) for name in files) for pattern in e.files)
        if ok and covered and files:
            return "installed"
    if record is not None:
        # A download that started: partial while any of its files or parts is on disk.
        kept = [Path(b) for b in record.get("blobs", [])] + [Path(b + ".incomplete") for b in record.get("blobs", [])]
        kept += [Path(record["snapshot"]) / n for n in record.get("files", {})]
        if any(os.path.lexists(p) for p in kept):
            return "partial"
    folder = _repo_folder(e.repo)
    blobs = folder / "blobs"
    if blobs.is_dir() and any(blobs.iterdir()):
        # Files of this repository are in the cache (an interrupted download, or another tool's)
        # but were never checked here: not installed until a download checks them.
        if not e.files:
            return "partial"
        with _records_lock:
            # Files another entry downloaded (the two LCM-LoRA entries share one) are not ours.
            claimed = {str(Path(r["snapshot"]) / n) for r in _read_records().values()
                       if isinstance(r, dict) and r.get("snapshot") for n in r.get("files", {})}
        snapshots = folder / "snapshots"
        for snapshot in (snapshots.iterdir() if snapshots.is_dir() else ()):
            names = [p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*")
                     if p.is_file() and str(p) not in claimed]
            if any(fnmatch.fnmatchcase(n, pattern) for n in names for pattern in e.files):
                return "partial"
        if any(p.name.endswith(".incomplete") for p in blobs.iterdir()):
            return "partial"
    return "absent"


def state(e: Entry) -> str:
    """"installed" (every file present and checked, and its base model too), "partial" (some files
    or a resumable part are on disk) or "absent"."""
    if e.kind == "builtin":
        from inference.models.store import builtin_dir, is_model_folder

        return "installed" if is_model_folder(builtin_dir()) else "absent"
    own = _own_state(e)
    if own == "installed" and any(_own_state(b) != "installed" for b in requires(e)[:-1]):
        return "partial"
    return own


def installed_path(e: Entry) -> Path | None:
    """The checked snapshot folder of an installed entry (a LoRA's: the folder holding its file)."""
    if e.kind == "builtin":
        from inference.models.store import builtin_dir

        return builtin_dir() if state(e) == "installed" else None
    if _own_state(e) != "installed":
        return None
    return Path(_record(e)["snapshot"])


def lora_source(e: Entry) -> str:
    """The LoRA file of an installed LoRA entry (what goes into LoraRef.source)."""
    folder = installed_path(e)
    if e.kind != "lora" or folder is None:
        raise ModelMissing(f"{e.name} is not downloaded yet.")
    names = sorted(_record(e)["files"])
    weights = [n for n in names if n.endswith(WEIGHT_FORMATS)] or names
    return str(folder / weights[0])


def model_source(e: Entry) -> str:
    """What goes into ModelRef.source for an installed entry: "builtin", the snapshot folder of a
    model (a tiny decoder's folder), or for a LoRA its base model's folder."""
    if e.kind == "builtin":
        return "builtin"
    if e.kind == "lora":
        return model_source(requires(e)[-2])
    folder = installed_path(e)
    if folder is None:
        raise ModelMissing(f"{e.name} is not downloaded yet.", "Download it from the Model dock or with "
                           f"quickbrush-cli models download {e.id}.")
    if e.kind == "pipeline" and not (folder / "model_index.json").exists():
        # A typed repository holding one checkpoint (or a LoRA) rather than a diffusers folder.
        weights = sorted(folder.glob("*.safetensors"))
        if len(weights) == 1:
            return str(weights[0])
    return str(folder)


def model_ref(e: Entry) -> ModelRef:
    """A ModelRef that runs an installed entry: its folder, or its base with the LoRA applied, with
    the entry's preset."""
    if e.kind == "decoder":
        raise BadInput(f"{e.name} is a tiny decoder; it is used with other models, not on its own.")
    loras = tuple(LoraRef(lora_source(x)) for x in requires(e) if x.kind == "lora")
    return ModelRef(source=model_source(e), loras=loras, preset=e.preset)


# --------------------------------------------------------------------------- remove


def remove(e: Entry) -> int:
    """Delete what this entry downloaded (its checked files and any partial ones) that no other
    entry uses; returns the bytes given back. A LoRA's base model stays."""
    if e.kind == "builtin":
        raise BadInput("The built-in model is part of Quickbrush and cannot be removed.")
    reclaimed = 0
    with _records_lock:
        records = _read_records()
        mine = records.get(_record_key(e)) or {}
        others = [r for k, r in records.items() if k != _record_key(e) and isinstance(r, dict)]
        used_elsewhere = {str(Path(r["snapshot"]) / n) for r in others for n in r.get("files", {})}
        used_blobs = {os.path.realpath(p) for p in used_elsewhere}
        used_blobs |= {b for r in others for b in r.get("blobs", [])}
        folder = _repo_folder(e.repo)
        snapshot = Path(mine["snapshot"]) if mine.get("snapshot") else None
        names = set(mine.get("files", {})) | set(mine.get("planned", []))
        # Blobs that other revisions' snapshots (or files another tool put in ours) point at stay.
        mine_pointers = {str(snapshot / n) for n in names} if snapshot is not None else set()
        for link in (folder / "snapshots").rglob("*") if (folder / "snapshots").is_dir() else ():
            if link.is_symlink() and str(link) not in mine_pointers:
                used_blobs.add(os.path.realpath(link))
        blobs = set(mine.get("blobs", []))
        if snapshot is not None:
            for name in names:
                pointer = snapshot / name
                if str(pointer) in used_elsewhere:
                    continue
                real = os.path.realpath(pointer)
                if os.path.lexists(pointer):
                    if real != str(pointer) and real not in used_blobs:
                        blobs.add(real)
                    if not os.path.islink(pointer):
                        reclaimed += _size(pointer)
                    pointer.unlink()
        for blob in blobs:
            for path in (Path(blob), Path(blob + ".incomplete")):
                if str(path) in used_blobs or not path.exists():
                    continue
                reclaimed += _size(path)
                path.unlink()
        if not mine:
            # Nothing recorded (another tool's download, or a crash before the first record):
            # the repository's leftover parts are ours to clean.
            for part in (folder / "blobs").glob("*.incomplete") if (folder / "blobs").is_dir() else ():
                reclaimed += _size(part)
                part.unlink()
        _unlink_decoder_link(e)
        records.pop(_record_key(e), None)
        _write_records(records)
        _prune(folder)
    return reclaimed


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _prune(folder: Path) -> None:
    """Remove emptied folders; the whole repository folder once it holds no file."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
    left = [p for p in folder.rglob("*") if p.is_file() or p.is_symlink()]
    if all(p.parent.name == "refs" or p.parent.parent.name == "refs" for p in left):
        shutil.rmtree(folder, ignore_errors=True)


def _decoder_link(e: Entry) -> Path:
    from inference.models.store import models_dir

    return models_dir() / e.id


def _link_decoder(e: Entry, snapshot: Path) -> None:
    """The tiny decoders are looked for in the models folder (diffusers_backend.tiny_decoder_places):
    point `models/<id>` at the snapshot, unless the designer put something there."""
    link = _decoder_link(e)
    if os.path.lexists(link):
        if not link.is_symlink():
            return
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(snapshot, target_is_directory=True)
    except OSError:  # no symlinks (Windows without developer mode): a copy, 10 MB
        shutil.copytree(snapshot, link)


def _unlink_decoder_link(e: Entry) -> None:
    if e.kind != "decoder":
        return
    link = _decoder_link(e)
    if link.is_symlink():
        link.unlink()


# --------------------------------------------------------------------------- the download


@dataclass
class _File:
    entry: Entry
    name: str  # path in the repository
    size: int
    sha256: str | None  # LFS files
    blob_id: str  # git object id (what the Hub's ETag is for non-LFS files)
    shown: str  # the name in Progress
    done: int = 0

    @property
    def etag(self) -> str:
        return self.sha256 or self.blob_id


@dataclass
class _Plan:
    entry: Entry
    commit: str
    files: list[_File] = field(default_factory=list)


class Download:
    """One entry's download (with its base model's, for a LoRA). `run` blocks: call it on a worker
    thread; `cancel` from any thread."""

    def __init__(self, e: Entry, on_progress: Callable[[Progress], None] | None = None):
        self.entry = e
        self.on_progress = on_progress
        self._cancelled = threading.Event()
        self._files: list[_File] = []
        self._samples: list[tuple[float, int]] = []  # (time, bytes fetched this run) for the speed
        self._fetched = 0
        self._last_report = 0.0
        self._socket_lock = threading.Lock()
        self._socket = None

    def cancel(self) -> None:
        self._cancelled.set()
        # A read waiting on a silent server would only notice at its timeout: shut the socket
        # under it (closing the response from another thread does not wake a blocked recv).
        with self._socket_lock:
            sock, self._socket = self._socket, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def _check_cancel(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled("Download cancelled. What was fetched is kept, so the next download "
                            "continues from there.")

    # ------------------------------------------------------------------ run

    def run(self) -> Path:
        e = self.entry
        if e.kind == "builtin":
            path = installed_path(e)
            if path is None:
                raise ModelMissing("The built-in model is not installed in this copy of Quickbrush.")
            return path
        chain = [x for x in requires(e) if _own_state(x) != "installed"]
        if not chain:
            return installed_path(e)
        for x in chain:
            problem = pipeline_problem(x)
            if problem:  # before fetching gigabytes this installation could not run
                raise ModelMissing(problem, f"{x.repo} needs diffusers' {x.pipeline}.")
            if not licence_accepted(x):
                raise LicenceRequired(f"{x.name} is under the {x.licence}, which must be accepted before "
                                      "it is downloaded.", f"Read it at {x.licence_url}.")
        if _offline():
            raise NetworkUnavailable(f"{e.name} is not downloaded yet, and Quickbrush is offline.",
                                     "HF_HUB_OFFLINE is set. Unset it to download models.")
        self._check_cancel()
        plans = [self._plan(x) for x in chain]
        self._files = [f for p in plans for f in p.files]
        self._check_space(plans)
        self._report(force=True)
        for plan in plans:
            self._fetch(plan)
        self._report(force=True, stage="done")
        return installed_path(e)

    # ------------------------------------------------------------------ what to fetch

    def _plan(self, e: Entry) -> _Plan:
        from huggingface_hub import HfApi

        constants = _constants()
        try:
            info = HfApi(endpoint=constants.ENDPOINT).model_info(
                e.repo, revision=e.revision_or_main, files_metadata=True, timeout=constants.HF_HUB_ETAG_TIMEOUT)
        except Exception as exc:  # sorted into the designer's words
            raise _hub_error(exc, e) from exc
        siblings = {s.rfilename: s for s in info.siblings or []}
        names = _choose(e, sorted(siblings))
        plan = _Plan(e, info.sha)
        shown_prefix = "" if e.id == self.entry.id else f"{e.id}: "
        for name in names:
            s = siblings[name]
            if s.size is None or s.blob_id is None:
                raise ModelMissing(f"The Hub gave no size for {name} of {e.name}, so it cannot be checked.",
                                   f"{e.repo}@{info.sha}: {s!r}")
            plan.files.append(_File(e, name, int(s.size), s.lfs.sha256 if s.lfs else None, s.blob_id,
                                    shown_prefix + name))
        folder = _repo_folder(e.repo)
        for f in plan.files:
            f.done = _size(folder / "blobs" / f.etag) or _size(_partial(folder, f))
        return plan

    def _check_space(self, plans: list[_Plan]) -> None:
        needed = sum(max(f.size - f.done, 0) for f in self._files)
        where = _cache()
        probe = where
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        # Some room to spare: the disk is shared with everything else the designer does.
        margin = min(500_000_000, needed // 10)
        if needed + margin > free:
            raise DiskFull(
                f"Not enough disk space for {self.entry.name}: it needs {human_bytes(needed)} and "
                f"{human_bytes(free)} is free.",
                f"Models are stored in {where} (set HF_HOME to use another disk). Free some space, or "
                "remove models you no longer use.", needed=needed, free=free)

    # ------------------------------------------------------------------ fetching

    def _fetch(self, plan: _Plan) -> None:
        e = plan.entry
        folder = _repo_folder(e.repo)
        snapshot = folder / "snapshots" / plan.commit
        blobs = [str(folder / "blobs" / f.etag) for f in plan.files]
        # Recorded before the first byte, so remove() finds the parts of a download that died.
        _put_record(e, {"repo": e.repo, "revision": plan.commit, "complete": False, "snapshot": str(snapshot),
                        "files": {}, "planned": [f.name for f in plan.files], "blobs": blobs})
        for f in plan.files:
            self._check_cancel()
            blob = folder / "blobs" / f.etag
            pointer = snapshot / f.name
            digest = None
            if not blob.exists() and not (pointer.is_file() and not pointer.is_symlink()):
                with self._file_lock(blob):
                    if not blob.exists():  # another download of the same file may have finished it
                        digest = self._download(plan, f, blob)
            self._verify(f, blob if blob.exists() else pointer, digest)
        # The snapshot folder appears only once every file is checked: a half-downloaded model
        # never looks like a model folder to anything that scans the cache.
        checked: dict[str, dict] = {}
        for f in plan.files:
            pointer = snapshot / f.name
            _place(folder / "blobs" / f.etag, pointer)
            size, mtime = _stat(pointer)
            checked[f.name] = {"size": size, "mtime_ns": mtime, "sha256": f.sha256, "blob_id": f.blob_id}
        if e.revision is None:
            refs = folder / "refs" / "main"
            refs.parent.mkdir(parents=True, exist_ok=True)
            refs.write_text(plan.commit)
        _put_record(e, {"repo": e.repo, "revision": plan.commit, "complete": True, "snapshot": str(snapshot),
                        "files": checked, "blobs": blobs})
        if e.kind == "decoder":
            _link_decoder(e, snapshot)

    def _download(self, plan: _Plan, f: _File, blob: Path):
        """Fetch `f` into its blob, resuming its partial file; returns the hash of what was written
        (computed as it arrives, so a 5 GB file is not read again to check it)."""
        import httpx2
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import (
            build_hf_headers,
            get_session,
            hf_raise_for_status,
        )

        constants = _constants()
        part = _partial(blob.parent.parent, f)
        part.parent.mkdir(parents=True, exist_ok=True)
        url = hf_hub_url(plan.entry.repo, f.name, revision=plan.commit, endpoint=constants.ENDPOINT)
        timeout = float(constants.HF_HUB_DOWNLOAD_TIMEOUT)
        failures = 0
        digest, hashed = None, -1
        while True:
            self._check_cancel()
            have = _size(part)
            if have > f.size:  # more than the file holds: not the same file, start again
                part.unlink()
                have = 0
            f.done = have
            if hashed != have:
                digest, hashed = self._hash(f, part, have), have
            if have == f.size:
                break
            headers = build_hf_headers()
            headers["Accept-Encoding"] = "identity"  # sizes and ranges count the file's own bytes
            if have:
                headers["Range"] = f"bytes={have}-"
            progressed = False
            try:
                with get_session().stream("GET", url, headers=headers, timeout=timeout,
                                          follow_redirects=True) as response:
                    if response.status_code == 416:
                        part.unlink(missing_ok=True)
                        continue
                    hf_raise_for_status(response)
                    with self._socket_lock:
                        stream = response.extensions.get("network_stream")
                        self._socket = stream.get_extra_info("socket") if stream is not None else None
                    self._check_cancel()
                    mode = "ab" if have and response.status_code == 206 else "wb"
                    if mode == "wb":
                        f.done = 0
                        digest, hashed = _hasher(f), 0
                    with open(part, mode) as out:
                        for chunk in response.iter_raw():
                            out.write(chunk)
                            digest.update(chunk)
                            hashed += len(chunk)
                            f.done += len(chunk)
                            self._fetched += len(chunk)
                            progressed = True
                            self._report(current=f.shown)
                            self._check_cancel()
                    if f.done < f.size:
                        raise httpx2.RemoteProtocolError("the connection ended before the file did")
            except httpx2.TransportError as exc:
                self._check_cancel()
                failures = 0 if progressed else failures + 1
                if failures >= ATTEMPTS:
                    raise _network_error(exc, plan.entry, f, timeout) from exc
                self._pause(0.2 * failures)
                continue
            except JobError:
                raise
            except OSError as exc:
                self._check_cancel()
                raise _disk_error(exc, plan.entry, part) from exc
            except Exception as exc:  # HTTP errors, in the designer's words
                raise _hub_error(exc, plan.entry) from exc
            finally:
                with self._socket_lock:
                    self._socket = None
            if f.done >= f.size:
                break
        os.replace(part, blob)
        return digest if hashed == f.size else None

    def _hash(self, f: _File, path: Path, length: int):
        """The hash of the first `length` bytes of `path` (a partial file being resumed)."""
        digest = _hasher(f)
        if length:
            self._report(force=True, current=f.shown, stage="verify")
            with open(path, "rb") as handle:
                left = length
                while left and (block := handle.read(min(8 << 20, left))):
                    digest.update(block)
                    left -= len(block)
                    self._check_cancel()
                    self._report(current=f.shown, stage="verify")
        return digest

    @contextmanager
    def _file_lock(self, blob: Path):
        """One writer per partial file, across threads and processes (the two LCM-LoRA entries
        share a file; the CLI and the app may download the same model)."""
        from filelock import FileLock, Timeout

        # Where huggingface_hub keeps its own locks, so its downloads and ours exclude each other.
        path = _cache() / ".locks" / blob.parent.parent.name / f"{blob.name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        while True:
            try:
                lock.acquire(timeout=0.2)
                break
            except Timeout:
                self._check_cancel()
        try:
            yield
        finally:
            lock.release()  # the lock file stays: removing it races with a waiting process

    def _pause(self, seconds: float) -> None:
        if self._cancelled.wait(seconds):
            self._check_cancel()

    def _verify(self, f: _File, path: Path, digest=None) -> None:
        """Check `path` against the Hub's size and hash (`digest`: already computed while it
        downloaded); a mismatch deletes it and raises Corrupt."""
        self._report(force=True, current=f.shown, stage="verify")
        size = _size(path)
        if digest is None or size != f.size:
            digest = hashlib.sha256() if f.sha256 else hashlib.sha1(b"blob %d\0" % size)
            with open(path, "rb") as handle:
                while block := handle.read(8 << 20):
                    digest.update(block)
                    self._check_cancel()
                    self._report(current=f.shown, stage="verify")
        expected = f.sha256 or f.blob_id
        if size != f.size or digest.hexdigest() != expected:
            path.unlink(missing_ok=True)
            f.done = 0
            raise Corrupt(
                f"{f.name} of {f.entry.name} arrived damaged, so it was not installed.",
                f"Expected {f.size} bytes with {'sha256' if f.sha256 else 'git blob id'} {expected}; got "
                f"{size} bytes with {digest.hexdigest()}. The damaged file was deleted: download again. "
                "If it happens again, a proxy or the copy on the Hub may be damaged.")

    # ------------------------------------------------------------------ progress

    def _report(self, force: bool = False, current: str | None = None, stage: str = "download") -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_report < PROGRESS_EVERY_S:
            return
        self._last_report = now
        self._samples.append((now, self._fetched))
        while len(self._samples) > 2 and now - self._samples[0][0] > SPEED_WINDOW_S:
            self._samples.pop(0)
        t0, b0 = self._samples[0]
        speed = (self._fetched - b0) / (now - t0) if now > t0 else 0.0
        total = sum(f.size for f in self._files)
        done = sum(min(f.done, f.size) for f in self._files)
        left = (total - done) / speed if speed > 0 else (0.0 if done >= total else None)
        self.on_progress(Progress(self.entry.id, [FileProgress(f.shown, min(f.done, f.size), f.size)
                                                  for f in self._files],
                                  done, total, speed, left, current, stage))


def _hasher(f: _File):
    # LFS files are checked by sha256; small files by their git blob id, which hashes a header
    # naming the size first (the Hub's size: a file of another size fails the size check anyway).
    return hashlib.sha256() if f.sha256 else hashlib.sha1(b"blob %d\0" % f.size)


def _partial(repo_folder: Path, f: _File) -> Path:
    return repo_folder / "blobs" / f"{f.etag}.incomplete"


def _place(blob: Path, pointer: Path) -> None:
    """Point the snapshot's file at its blob, as huggingface_hub does: a relative symlink, or where
    symlinks are not allowed, the file itself moved into the snapshot."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        return  # already moved into the snapshot (no symlinks here)
    relative = os.path.relpath(blob, pointer.parent)
    if os.path.islink(pointer) and os.readlink(pointer) == relative:
        return
    if os.path.lexists(pointer):
        pointer.unlink()
    try:
        os.symlink(relative, pointer)
    except OSError:
        os.replace(blob, pointer)


def _choose(e: Entry, names: list[str]) -> list[str]:
    """The repository files an entry needs: its patterns, each matching at least one file; for a
    typed repository, one format of everything a diffusers folder or a LoRA needs."""
    if e.files:
        chosen, missing = [], []
        for pattern in e.files:
            found = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not found:
                missing.append(pattern)
            chosen += [n for n in found if n not in chosen]
        if missing:
            raise ModelMissing(f"{e.repo} on the Hub no longer has the files {e.name} needs.",
                               f"Missing: {', '.join(missing)}. Quickbrush's catalog needs updating.")
        return chosen
    keep = [n for n in names if any(fnmatch.fnmatchcase(n.rsplit("/", 1)[-1], p) for p in ADHOC_KEEP)
            and not any(fnmatch.fnmatchcase(n, p) for p in ADHOC_SKIP)]
    if "model_index.json" in names:
        # A diffusers folder: the components' files, not the single-file checkpoints beside them.
        keep = [n for n in keep if "/" in n or n.endswith(".json")]
    # One precision: the plain files, or the fp16 ones where a component has only those.
    plain = {n for n in keep if ".fp16." not in n}
    keep = [n for n in keep if ".fp16." not in n or n.replace(".fp16.", ".") not in plain]
    if not any(n.endswith(WEIGHT_FORMATS) for n in keep):
        pickles = [n for n in names if n.endswith(PICKLE_FORMATS)]
        if pickles:
            raise BadInput(f"{e.repo} has only pickle files ({pickles[0]}…), which can run code when loaded, "
                           "so Quickbrush does not download them.",
                           "Ask for a .safetensors version, or download it yourself and import it with "
                           "--allow-pickle, which converts it safely.")
        raise ModelMissing(f"{e.repo} has no model files Quickbrush can use.",
                           f"Its files: {', '.join(names[:20])}")
    return keep


def _hub_error(exc: BaseException, e: Entry) -> JobError:
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, JobError):
        return exc
    if isinstance(exc, GatedRepoError):
        return ModelMissing(f"{e.repo} asks you to accept its terms on the Hugging Face website first.",
                            f"Accept them at https://huggingface.co/{e.repo}, then log in here with "
                            f"`hf auth login` (or set HF_TOKEN). {exc}")
    if isinstance(exc, RepositoryNotFoundError):
        return ModelMissing(f"There is no model {e.repo} on the Hugging Face Hub (or it is private).",
                            f"Check the spelling; a private model needs a token (HF_TOKEN). {exc}")
    if isinstance(exc, RevisionNotFoundError):
        return ModelMissing(f"{e.repo} on the Hub no longer has the version {e.name} needs.",
                            f"Revision {e.revision_or_main} was not found. {exc}")
    if isinstance(exc, OfflineModeIsEnabled):
        return NetworkUnavailable(f"{e.name} is not downloaded yet, and Quickbrush is offline.", str(exc))
    if isinstance(exc, httpx2.TimeoutException):
        return NetworkUnavailable("The Hugging Face Hub did not answer in time; check the connection and "
                                  "try again.", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, httpx2.TransportError):
        return NetworkUnavailable("Could not reach the Hugging Face Hub; check the connection (or the proxy) "
                                  "and try again.", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, HfHubHTTPError):
        status = getattr(exc.response, "status_code", "?")
        return NetworkUnavailable(f"The Hugging Face Hub refused the download (error {status}); try again "
                                  "later.", str(exc))
    return ModelMissing(f"Could not download {e.name}.", f"{type(exc).__name__}: {exc}")


def _disk_error(exc: OSError, e: Entry, part: Path) -> JobError:
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = shutil.disk_usage(part.parent).free if part.parent.exists() else 0
        return DiskFull(f"The disk filled up while downloading {e.name}.",
                        f"What was fetched is kept in {part.parent}; free some space and download again "
                        f"to continue. {exc}", needed=0, free=free)
    return JobError(f"Could not save {e.name}: {exc.strerror or exc}.", f"{part}: {exc!r}")


def _network_error(exc: BaseException, e: Entry, f: _File, timeout: float) -> NetworkUnavailable:
    import httpx2

    kept = f"{human_bytes(f.done)} of {human_bytes(f.size)} is kept; downloading again continues from there."
    if isinstance(exc, httpx2.TimeoutException):
        return NetworkUnavailable(f"The download of {e.name} stalled: the server sent nothing for "
                                  f"{timeout:g} seconds.",
                                  f"{f.name}: {kept} (HF_HUB_DOWNLOAD_TIMEOUT sets how long to wait.) {exc!r}")
    return NetworkUnavailable(f"The download of {e.name} was interrupted: the connection kept dropping.",
                              f"{f.name}: {kept} {exc!r}")
