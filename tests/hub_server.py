"""A real HTTP server that plays the Hugging Face Hub for tests, on 127.0.0.1 and a free port.

It serves model repositories (folders on disk, e.g. a tiny model from tests/tiny_models.py)
through the endpoints huggingface_hub calls, so downloads go through the real client code over
real sockets with HF_ENDPOINT pointed at `server.url`:

  GET  /api/models/{repo}[/revision/{rev}]           model info (sha, siblings; ?blobs=true adds
                                                      size, blobId and lfs sha256)
  GET  /api/models/{repo}/tree/{rev}[/{path}]         the file listing (recursive=true)
  POST /api/models/{repo}/paths-info/{rev}            metadata of some paths
  HEAD/GET /{repo}/resolve/{rev}/{path}               the file, with X-Repo-Commit, ETag,
                                                      X-Linked-Etag/-Size for LFS files, Range

Weights (.safetensors, .bin, .ckpt, .pt, .onnx) are LFS files, as on the Hub: their ETag is the
sha256 of the content; other files' is their git blob id. No xet header is ever sent, so
huggingface_hub (and hf_xet, when installed) falls back to plain HTTP.

Faults a test switches on (each applies to file bodies, i.e. GET .../resolve/...):
  slow(bytes_per_s)   throttle every body
  drop_after(n)       close the connection after n bytes of the next body longer than n, once
  corrupt(filename)   serve that file with one byte changed (the metadata stays right)
  stall()             send the headers, then nothing, until reset() or stop
  reset()             all faults off
`served` counts the body bytes sent per file and `requests` logs (method, path, Range header).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx", ".msgpack", ".h5")
CHUNK = 16 * 1024


def git_blob_id(data: bytes) -> str:
    """The git object id the Hub reports (and uses as ETag) for a non-LFS file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class RepoFile:
    path: str
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def blob_id(self) -> str:
        return git_blob_id(self.data)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id

    def info(self) -> dict:
        item = {"type": "file", "path": self.path, "size": len(self.data), "oid": self.blob_id}
        if self.lfs:
            item["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": 134}
        return item


@dataclass
class Repo:
    repo_id: str
    commits: dict[str, dict[str, RepoFile]] = field(default_factory=dict)  # sha -> files
    main: str | None = None


class HubServer:
    """The server and its repositories; start() runs it in a daemon thread."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.served: dict[str, int] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        self._bytes_per_s: float | None = None
        self._drop_after: int | None = None
        self._corrupt: set[str] = set()
        self._stalled = threading.Event()
        self._released = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ set-up

    def start(self) -> HubServer:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="hub-server",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add_repo(self, repo_id: str, folder: str | Path | dict[str, bytes]) -> str:
        """Serve `folder` (every file under it; or {path: bytes}) as a new commit on the main
        branch of `repo_id`; returns the commit's 40-hex id."""
        if isinstance(folder, dict):
            contents = dict(folder)
        else:
            root = Path(folder)
            contents = {p.relative_to(root).as_posix(): p.read_bytes()
                        for p in sorted(root.rglob("*")) if p.is_file()}
        files = {path: RepoFile(path, data, path.lower().endswith(LFS_SUFFIXES)) for path, data in contents.items()}
        digest = hashlib.sha1(repo_id.encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + files[path].etag.encode())
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo(repo_id))
            digest.update(str(len(repo.commits)).encode())
            sha = digest.hexdigest()
            repo.commits[sha] = files
            repo.main = sha
        return sha

    def file(self, repo_id: str, path: str, revision: str | None = None) -> RepoFile:
        repo = self.repos[repo_id]
        return repo.commits[revision or repo.main][path]

    # ------------------------------------------------------------------ faults

    def slow(self, bytes_per_s: float | None) -> None:
        self._bytes_per_s = bytes_per_s

    def drop_after(self, n_bytes: int | None) -> None:
        self._drop_after = n_bytes

    def corrupt(self, filename: str) -> None:
        self._corrupt.add(filename)

    def stall(self) -> None:
        self._released.clear()
        self._stalled.set()

    def reset(self) -> None:
        self._bytes_per_s = None
        self._drop_after = None
        self._corrupt.clear()
        self._stalled.clear()
        self._released.set()

    # ------------------------------------------------------------------ lookups

    def _resolve(self, repo_id: str, revision: str) -> tuple[Repo | None, str | None]:
        repo = self.repos.get(repo_id)
        if repo is None:
            return None, None
        if revision == "main":
            return repo, repo.main
        return repo, revision if revision in repo.commits else None


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # a client hanging up is no error here


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass  # tests read hub.requests, not stderr

    # ------------------------------------------------------------------ replies

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, data, status: int = 200, head: bool = False) -> None:
        self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json"}, head)

    def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
        # huggingface_hub turns X-Error-Code into RepositoryNotFoundError, RevisionNotFoundError...
        self._send(status, json.dumps({"error": message}).encode(),
                   {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}, head)

    # ------------------------------------------------------------------ routing

    def do_HEAD(self):
        self._route("HEAD")

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        self.hub.requests.append((method, path, self.headers.get("Range")))
        try:
            if path.startswith("/api/models/"):
                self._api(method, path[len("/api/models/"):], query)
                return
            match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if match and method in ("HEAD", "GET"):
                self._resolve_file(method, *match.groups())
                return
            self._error(404, "EntryNotFound", f"No route for {path}", head=method == "HEAD")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a cancelled download): nothing to answer

    def _api(self, method: str, rest: str, query: dict) -> None:
        match = re.fullmatch(r"([^/]+/[^/]+)(?:/(revision|tree|paths-info)/([^/]+)(?:/(.*))?)?", rest)
        if not match:
            self._error(404, "RepoNotFound", "Repository not found")
            return
        repo_id, what, revision, sub = match.groups()
        repo, sha = self.hub._resolve(repo_id, revision or "main")
        if repo is None:
            self._error(401, "RepoNotFound", "Repository not found", head=method == "HEAD")
            return
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=method == "HEAD")
            return
        files = repo.commits[sha]
        if what in (None, "revision"):
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            siblings = []
            for f in files.values():
                item = {"rfilename": f.path}
                if blobs:
                    item.update(size=len(f.data), blobId=f.blob_id)
                    if f.lfs:
                        item["lfs"] = {"sha256": f.sha256, "size": len(f.data), "pointerSize": 134}
                siblings.append(item)
            self._json({"_id": sha[:24], "id": repo_id, "modelId": repo_id, "sha": sha, "private": False,
                        "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
                        "library_name": "diffusers", "siblings": siblings,
                        "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z"},
                       head=method == "HEAD")
        elif what == "tree":
            prefix = (sub or "").strip("/")
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            items, folders = [], set()
            for f in files.values():
                if prefix and not f.path.startswith(prefix + "/"):
                    continue
                rel = f.path[len(prefix) + 1:] if prefix else f.path
                if "/" in rel and not recursive:
                    folders.add((prefix + "/" if prefix else "") + rel.split("/")[0])
                    continue
                if recursive:
                    bits = f.path.split("/")[:-1]
                    for i in range(len(prefix.split("/")) if prefix else 0, len(bits)):
                        folders.add("/".join(bits[: i + 1]))
                items.append(f.info())
            items += [{"type": "directory", "path": p, "oid": hashlib.sha1(p.encode()).hexdigest()}
                      for p in sorted(folders)]
            self._json(items)
        else:  # paths-info
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            wanted = form.get("paths", [])
            self._json([files[p].info() for p in wanted if p in files])

    def _resolve_file(self, method: str, repo_id: str, revision: str, filename: str) -> None:
        head = method == "HEAD"
        hub = self.hub
        repo, sha = hub._resolve(repo_id, revision)
        if repo is None:
            self._error(401, "RepoNotFound", "Repository not found", head)
            return
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
            return
        f = repo.commits[sha].get(filename)
        if f is None:
            self._error(404, "EntryNotFound", f"{filename} does not exist on {revision}", head)
            return
        data = f.data
        if filename in hub._corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:] if data else data
        headers = {"X-Repo-Commit": sha, "ETag": f'"{f.etag}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if f.lfs:
            headers["X-Linked-Etag"] = f'"{f.sha256}"'
            headers["X-Linked-Size"] = len(f.data)
        start = 0
        status = 200
        wanted = self.headers.get("Range")
        if wanted and not head:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
            if match:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(data) - 1
                if start >= len(data):
                    self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
                data = data[start:end + 1]
                status = 206
                headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{len(f.data)}"
        if head:
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, str(value))
            self.send_header("Content-Length", str(len(f.data)))
            self.end_headers()
            return
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self._body(filename, data)

    def _body(self, filename: str, data: bytes) -> None:
        hub = self.hub
        with hub._lock:
            # Consumed by the first body long enough to be cut (small config files pass).
            drop = hub._drop_after
            if drop is not None and len(data) > drop:
                hub._drop_after = None
            else:
                drop = None
        if hub._stalled.is_set():
            self.wfile.flush()
            hub._released.wait(60)
            self.close_connection = True
            return
        sent = 0
        rate = hub._bytes_per_s
        size = max(256, min(CHUNK, int(rate / 50))) if rate else CHUNK  # ~50 writes a second when slow
        while sent < len(data):
            chunk = data[sent:sent + size]
            if drop is not None and sent + len(chunk) >= drop:
                chunk = chunk[: max(drop - sent, 0)]
                self.wfile.write(chunk)
                self._count(filename, len(chunk))
                self.wfile.flush()
                self.close_connection = True
                # Close the socket under the client's feet: the body ends short of Content-Length.
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(chunk)
            self._count(filename, len(chunk))
            sent += len(chunk)
            rate = hub._bytes_per_s
            if rate:
                self.wfile.flush()
                time.sleep(len(chunk) / rate)
            if hub._stalled.is_set():
                self.wfile.flush()
                hub._released.wait(60)
                self.close_connection = True
                return

    def _count(self, filename: str, n: int) -> None:
        with self.hub._lock:
            self.hub.served[filename] = self.hub.served.get(filename, 0) + n
