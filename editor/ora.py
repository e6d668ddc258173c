"""Quickbrush documents as OpenRaster (.ora) files, which Krita, GIMP and MyPaint open too.

The file is a zip laid out as the OpenRaster spec (version 0.0.5) asks:

* ``mimetype``: the first entry, stored uncompressed, holding exactly ``image/openraster``;
* ``stack.xml``: ``<image w h version><stack><layer .../>...</stack></image>``, topmost layer
  first, each with name, src, x, y, opacity, visibility and ``composite-op="svg:src-over"``;
  the active layer carries ``selected="true"`` (the spec's Layer Selection Status extension);
* ``data/layerNNN.png``: each layer's pixels (straight-alpha RGBA, or RGB when fully opaque);
* ``Thumbnails/thumbnail.png`` (at most 256 px a side) and ``mergedimage.png`` (the full
  composite), so file managers and viewers show the picture without compositing.

Quickbrush's own state lives under ``quickbrush/``, which other applications ignore:

* ``quickbrush/document.json``: format number, the selection, the active layer, the mask's file;
* ``quickbrush/mask.png``: the mask, an 8-bit grey PNG the size of the canvas (absent when empty);
* ``quickbrush/history.json``: the History panel's entries (id, created, box, recipe =
  ``job.to_dict()``, timings, model_info, and the files of their images);
* ``quickbrush/history/<id>.png``: each result image, carrying its recipe in PNG text chunks
  (``inference.metadata.recipe_pnginfo``), so a PNG extracted from the .ora still has it;
* ``quickbrush/inputs/<hash>.png``: the input image and mask of jobs that need them (Vary,
  Inpaint, Outpaint, Edit). A recipe records only their sizes, and ``Job.from_dict`` cannot
  rebuild such a job without them, so "Re-run" after reopening would otherwise be impossible
  or a lie. They are named by content, so the variations of one run share one copy.

Why the mask is ``quickbrush/mask.png`` and not a hidden "Quickbrush mask" layer: the mask is
Quickbrush's working state, not artwork. As a layer it would sit in Krita's and GIMP's layer
lists, one click away from being shown, merged or exported as part of the picture; and those
applications re-save it as an ordinary layer (dropping any attribute of ours), so it would come
back to Quickbrush as a grey picture layer. A file under ``quickbrush/`` cannot pollute the image.

A file from another application (no ``quickbrush/`` folder) loads as its layers, with an empty
mask and no history. Nested stacks (groups) are flattened: their offsets add up, their opacity
multiplies and a hidden group hides its layers. Blend modes other than normal are read as normal,
as Quickbrush composites only "over".

Saving is atomic (``inference.files.atomic_write``): everything goes to a hidden temporary file
in the same folder, which is flushed to disk and then replaces the target in one step; on any
failure the temporary file is removed, the previous file is untouched, and a SaveError with a
designer-readable message is raised. A save killed outright leaves a temporary file naming its
process, which the next save of that file (or ``clean_stale_temps`` at start-up) removes. The
GUI thread only takes a snapshot (`prepare_save`: copies of the layers and the mask); compositing
the merged image, the thumbnail and all PNG encoding happen in `write_prepared`, on a thread.

Loading trusts nothing in the file. Every part is read with a bound on its declared and its
actual size; every image's size is read from its PNG header and checked (per image with
``inference.images.check_pixels``, for the whole document against `MAX_DOCUMENT_PIXELS`, and
each layer's place against the canvas) before anything is decoded; the XML may hold no DOCTYPE
or entities; coordinates are finite integers within bounds; stacks are walked without recursion.
Nothing is built until everything has been read and checked, and any failure, whatever the
damage, is a BadInput naming the file.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET
from xml.parsers import expat

import numpy as np
from PIL import Image, UnidentifiedImageError

# _BAND_ROWS: the merged image is composited in the Document's own bands, so that it is the
# Document's composite exactly, whatever composite_band does at a band's edges.
from editor.document import (
    _BAND_ROWS,
    Document,
    Layer,
    composite_band,
    pil_to_mask,
    pil_to_rgba,
)
from inference.files import SaveError, atomic_write
from inference.images import MAX_PIXELS, check_pixels
from inference.jobs import BadInput, Job, JobError
from inference.metadata import quickbrush_version, recipe_pnginfo

__all__ = [
    "MAX_DOCUMENT_PIXELS",
    "MAX_LAYERS",
    "MIMETYPE",
    "QUICKBRUSH_FORMAT",
    "THUMBNAIL_SIZE",
    "PreparedSave",
    "load_ora",
    "prepare_save",
    "save_ora",
    "write_prepared",
]

MIMETYPE = "image/openraster"
ORA_VERSION = "0.0.5"
# Version of the quickbrush/ files; a newer number than this one is refused on load.
QUICKBRUSH_FORMAT = 1
THUMBNAIL_SIZE = 256

_DOCUMENT_JSON = "quickbrush/document.json"
_MASK_PNG = "quickbrush/mask.png"
_HISTORY_JSON = "quickbrush/history.json"
_HISTORY_DIR = "quickbrush/history/"
_INPUTS_DIR = "quickbrush/inputs/"

# zlib level for the PNGs: Pillow's default (6) takes about twice as long for files a few percent
# smaller, and a save (Ctrl+S) should feel instant even on large canvases.
_PNG_LEVEL = 3
_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# ---- what loading accepts. A file is a description of memory to allocate: each limit bounds
# what a few kilobytes of zip may ask for.
# All images of one document together (layers, mask, history and its inputs): about 4 GB as
# RGBA. Forty 8000 x 8000 layers (2,560 Mpx, from a 1 KB file) are refused before decoding.
MAX_DOCUMENT_PIXELS = 1_000_000_000
MAX_LAYERS = 2000
_MAX_HISTORY = 10_000
# Bytes read from the zip in all; an image part may hold no more than twice its largest honest
# PNG encoding (16-bit RGBA, unfiltered, stored) plus text chunks.
_MAX_DOCUMENT_BYTES = 16 * 1024 ** 3
_MAX_PNG_TEXT_BYTES = 64 * 1024 * 1024
# stack.xml of a thousand layers is about 200 KB; history.json about 2 KB an entry.
_MAX_XML_BYTES = 16 * 1024 * 1024
_MAX_JSON_BYTES = 64 * 1024 * 1024
_MAX_SMALL_BYTES = 1024
# Recipes, timings and model info nest a few levels; Python's own JSON writer recurses.
_MAX_JSON_DEPTH = 32
# A side of any image or the canvas; with check_pixels this keeps every array and QImage sane.
_MAX_SIDE = 1 << 18
# Offsets (a layer's, a group's, their sums), the selection and history boxes.
_MAX_COORD = 1 << 21
# A layer may reach past the canvas (Quickbrush keeps the pixels a smaller canvas crops, so
# growing it again brings them back) by this much on every side: the canvas's own larger side,
# and at least this many pixels for small canvases.
_MIN_REACH = 16_384
# Names are for the layers panel: longer ones are cut, so a deep stack of long group names
# cannot grow quadratically into memory.
_MAX_NAME = 200
_MAX_FULL_NAME = 500


# =========================================================================== saving


def save_ora(path: str | os.PathLike[str], document: Document,
             history: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Write `document` (and the History panel's `history`) to `path` as OpenRaster, atomically.

    `history` entries are dicts ``{"id", "created", "box", "image": PIL.Image | None,
    "job": Job, "timings", "model_info", "target", "applied"}``; "id" is a str or int, "created"
    any JSON value (a datetime is written as ISO text), "box" a (left, top, right, bottom) or
    None, "timings" and "model_info" JSON-able mappings, "target" None or a JSON-able mapping
    (``editor.history``'s spec: box, layer index, composite, fit), "applied" None or the entry's
    place among the applied results. None writes no history.

    On success the document is marked saved (clean, ``document.path`` = the absolute path).
    On failure raises SaveError ("Could not save x.ora: the disk is full.") and the file that
    was at `path`, if any, is unchanged. Call from the GUI thread (it reads the document's arrays);
    the window instead calls `prepare_save` there and `write_prepared` on a thread of its own.
    """
    prepared = prepare_save(path, document, history)
    write_prepared(prepared)
    document.mark_saved(str(prepared.target))
    return prepared.target


class PreparedSave:
    """A snapshot of a document ready to be written: `write_prepared` may run on any thread while
    the document goes on changing, because nothing here shares memory with it."""

    def __init__(self, target: Path, snapshot: _Snapshot) -> None:
        self.target = target
        self.snapshot = snapshot


def prepare_save(path: str | os.PathLike[str], document: Document,
                 history: Sequence[Mapping[str, Any]] | None = None) -> PreparedSave:
    """The GUI-thread half of saving: copy what the document holds, and nothing more (no
    compositing, no encoding). Raises SaveError when memory runs out; touches no file."""
    target = Path(os.path.abspath(os.fspath(path)))
    try:
        snapshot = _Snapshot(document, history)
    except MemoryError as error:
        raise SaveError(f"Could not save {target.name}: there is not enough memory.",
                        f"{target}\nMemoryError: {error}") from error
    return PreparedSave(target, snapshot)


def write_prepared(prepared: PreparedSave) -> Path:
    """The slow half: the merged image, the thumbnail, PNG encoding and the atomic write. Any
    thread; raises SaveError."""
    target = prepared.target
    # Everything that can fail for reasons other than the disk happens before touching it.
    try:
        parts = _Parts(prepared.snapshot)
    except MemoryError as error:
        raise SaveError(f"Could not save {target.name}: there is not enough memory.",
                        f"{target}\nMemoryError: {error}") from error
    atomic_write(target, lambda handle: _write_zip(handle, prepared.snapshot, parts))
    return target


class _HistoryItem:
    """One history entry as saved: its JSON record (without the file names) and its images."""

    def __init__(self, number: int, entry: Mapping[str, Any]) -> None:
        if not isinstance(entry, Mapping):
            raise TypeError(f"History entry {number} is a {type(entry).__name__}, not a dict.")
        job = entry.get("job")
        if not isinstance(job, Job):
            raise TypeError(f"History entry {number} has no Job (got {type(job).__name__}).")
        box = entry.get("box")
        self.number = number
        self.id = entry.get("id", number)
        self.job = job
        # Result images and a Job's inputs are never changed in place (a Job is frozen, and the
        # History keeps the images a worker handed it), so sharing them with the thread is safe.
        self.image: Image.Image | None = entry.get("image")
        self.timings = dict(entry.get("timings") or {})
        self.model_info = dict(entry.get("model_info") or {})
        self.record: dict[str, Any] = {
            "id": self.id,
            "created": entry.get("created"),
            "box": None if box is None else [int(v) for v in box],
            "recipe": job.to_dict(),
            "timings": self.timings,
            "model_info": self.model_info,
            "target": _plain(entry.get("target")),
            "applied": entry.get("applied"),
        }


class _Snapshot:
    """What the GUI thread copies out of the document: layers and mask as arrays of their own,
    the facts of the document, the history's records."""

    def __init__(self, document: Document, history: Sequence[Mapping[str, Any]] | None) -> None:
        self.width, self.height = document.size
        # Own copies (a layer's pixels are changed in place by strokes and results); Layer so
        # that composite_band reads them exactly as it reads the document's.
        self.layers = [Layer(layer.name, layer.pixels.copy(), layer.x, layer.y, visible=layer.visible,
                             opacity=layer.opacity) for layer in document.layers]
        self.active = document.active_layer_index
        self.mask = np.array(document.mask, dtype=np.uint8) if document.has_mask() else None
        self.selection = document.selection_box() if document.selection is not None else None
        self.history = None if history is None else [_HistoryItem(n, e) for n, e in enumerate(history)]


class _Parts:
    """What the snapshot becomes on the writing thread, before the temporary file exists."""

    def __init__(self, snapshot: _Snapshot) -> None:
        self.merged = _composite(snapshot.layers, snapshot.width, snapshot.height)
        thumb = self.merged.copy()
        thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS, reducing_gap=3.0)
        self.thumbnail = thumb
        self.stack_xml = _stack_xml(snapshot)
        count = len(snapshot.layers)
        self.document_json = _json_bytes({
            "format": QUICKBRUSH_FORMAT,
            "app": f"Quickbrush {quickbrush_version()}",
            "selection": list(snapshot.selection) if snapshot.selection is not None else None,
            "active_layer": snapshot.active if 0 <= snapshot.active < count else None,
            "mask": _MASK_PNG if snapshot.mask is not None else None,
        })
        self.history_json: bytes | None = None
        # (name, image, pnginfo or None)
        self.history_images: list[tuple[str, Image.Image, Any]] = []
        self.inputs: dict[str, Image.Image] = {}
        self._stems: set[str] = set()
        if snapshot.history is not None:
            entries = [self._history_record(item) for item in snapshot.history]
            self.history_json = _json_bytes({"format": QUICKBRUSH_FORMAT, "entries": entries})

    def _history_record(self, item: _HistoryItem) -> dict[str, Any]:
        record = dict(item.record, image=None, inputs={})
        if item.image is not None:
            stem = str(item.id)
            if not _SAFE_ID.fullmatch(stem) or stem in self._stems:
                stem = f"entry{item.number:04d}"
            self._stems.add(stem)
            name = f"{_HISTORY_DIR}{stem}.png"
            image = _png_able(item.image)
            pnginfo = recipe_pnginfo(item.job, item.timings, item.model_info, size=image.size)
            self.history_images.append((name, image, pnginfo))
            record["image"] = name
        for key in ("image", "mask"):
            value = getattr(item.job, key, None)
            if isinstance(value, Image.Image):
                record["inputs"][key] = self._add_input(value)
        return record

    def _add_input(self, image: Image.Image) -> str:
        image = _png_able(image)
        digest = hashlib.sha256()
        digest.update(f"{image.mode}:{image.width}x{image.height}:".encode())
        digest.update(image.tobytes())
        name = f"{_INPUTS_DIR}{digest.hexdigest()[:24]}.png"
        self.inputs.setdefault(name, image)
        return name


def _composite(layers: Sequence[Layer], width: int, height: int) -> Image.Image:
    """What `Document.composite()` gives for these layers: the same bands, the same code."""
    out = np.empty((height, width, 4), np.uint8)
    for y0 in range(0, height, _BAND_ROWS):
        y1 = min(height, y0 + _BAND_ROWS)
        out[y0:y1] = composite_band(layers, (0, y0, width, y1))
    if out.size == 0 or out[..., 3].min() == 255:
        return Image.fromarray(np.ascontiguousarray(out[..., :3]), "RGB")
    return Image.fromarray(out, "RGBA")


def _stack_xml(snapshot: _Snapshot) -> bytes:
    """Layers, topmost first in stack.xml; the document keeps them bottom first."""
    image = ET.Element("image", {"version": ORA_VERSION, "w": str(snapshot.width), "h": str(snapshot.height),
                                 "xres": "72", "yres": "72"})
    stack = ET.SubElement(image, "stack")
    for index in range(len(snapshot.layers) - 1, -1, -1):
        layer = snapshot.layers[index]
        attrs = {
            "name": layer.name,
            "src": _layer_src(index),
            "x": str(layer.x),
            "y": str(layer.y),
            "opacity": repr(float(min(1.0, max(0.0, layer.opacity)))),
            "visibility": "visible" if layer.visible else "hidden",
            "composite-op": "svg:src-over",
        }
        if index == snapshot.active:
            attrs["selected"] = "true"
        ET.SubElement(stack, "layer", attrs)
    return ET.tostring(image, encoding="utf-8", xml_declaration=True)


def _layer_src(index: int) -> str:
    return f"data/layer{index:03d}.png"


def _layer_image(pixels: np.ndarray) -> Image.Image:
    """A snapshot's layer pixels as the image to encode (sharing the snapshot's memory)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        # PNG cannot hold an empty image; one transparent pixel looks the same.
        return Image.new("RGBA", (1, 1), (0, 0, 0, 0))
    if pixels[..., 3].min() == 255:
        # Fully opaque: RGB is a quarter smaller and reads back as RGBA with alpha 255, exactly.
        return Image.fromarray(np.ascontiguousarray(pixels[..., :3]), "RGB")
    return Image.fromarray(pixels, "RGBA")


def _png_able(image: Image.Image) -> Image.Image:
    if image.mode in _PNG_MODES:
        return image
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")


def _plain(value: Any) -> Any:
    """JSON data: non-finite floats become null, tuples lists, datetimes ISO text, others str."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [_plain(v) for v in sorted(value, key=repr)]
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        try:
            listed = tolist()
        except (TypeError, ValueError):  # a tolist that is not numpy's
            return str(value)
        return _plain(listed)
    return str(value)


def _json_bytes(data: Any) -> bytes:
    return json.dumps(_plain(data), ensure_ascii=False, indent=1, allow_nan=False).encode("utf-8")


def _write_zip(handle: Any, snapshot: _Snapshot, parts: _Parts) -> None:
    stamp = time.localtime()[:6]

    def info(name: str, compress: int) -> zipfile.ZipInfo:
        entry = zipfile.ZipInfo(name, date_time=stamp)
        entry.compress_type = compress
        entry.external_attr = 0o644 << 16
        return entry

    def png(name: str, image: Image.Image, pnginfo: Any = None) -> None:
        # PNG data is already compressed: store it, so nothing is compressed twice.
        with zf.open(info(name, zipfile.ZIP_STORED), "w") as out:
            _save_png(image, out, pnginfo)

    with zipfile.ZipFile(handle, "w", allowZip64=True) as zf:
        # The spec: "mimetype" first, uncompressed, no extra field, so `file` can sniff it.
        zf.writestr(info("mimetype", zipfile.ZIP_STORED), MIMETYPE.encode("ascii"))
        zf.writestr(info("stack.xml", zipfile.ZIP_DEFLATED), parts.stack_xml)
        for index in range(len(snapshot.layers) - 1, -1, -1):
            # One layer's image at a time, made just before it is encoded.
            png(_layer_src(index), _layer_image(snapshot.layers[index].pixels))
        png("Thumbnails/thumbnail.png", parts.thumbnail)
        png("mergedimage.png", parts.merged)
        zf.writestr(info(_DOCUMENT_JSON, zipfile.ZIP_DEFLATED), parts.document_json)
        if snapshot.mask is not None:
            png(_MASK_PNG, Image.fromarray(snapshot.mask, "L"))
        if parts.history_json is not None:
            zf.writestr(info(_HISTORY_JSON, zipfile.ZIP_DEFLATED), parts.history_json)
        for name, image, pnginfo in parts.history_images:
            png(name, image, pnginfo)
        for name, image in parts.inputs.items():
            png(name, image)


def _save_png(image: Image.Image, out: Any, pnginfo: Any = None) -> None:
    kwargs: dict[str, Any] = {"format": "PNG", "compress_level": _PNG_LEVEL}
    if pnginfo is not None:
        kwargs["pnginfo"] = pnginfo
    image.save(out, **kwargs)


# =========================================================================== loading


def load_ora(path: str | os.PathLike[str]) -> tuple[Document, list[dict[str, Any]]]:
    """Read an OpenRaster file: the Document (clean, ``path`` set) and the history entries.

    History entries have the shape `save_ora` takes: ``{"id", "created", "box": tuple | None,
    "image": PIL.Image | None, "job": Job, "timings": dict, "model_info": dict, "target": dict |
    None, "applied": int | None}``; the job is
    rebuilt with ``Job.from_dict`` and its saved input image/mask. A file from another
    application gives its layers, an empty mask and no history.

    Raises BadInput, with a message a designer can act on, for a file that does not exist,
    cannot be read, is damaged or truncated, is not OpenRaster, misses parts it names, or asks
    for more than Quickbrush agrees to allocate. Nothing is built until everything has been
    read and checked; no other exception comes out, whatever the file holds.
    """
    target = Path(os.path.abspath(os.fspath(path)))
    label = target.name or str(target)
    try:
        zf = zipfile.ZipFile(target)
    except FileNotFoundError as error:
        raise BadInput(f"Could not open {label}: the file does not exist.", str(error)) from error
    except IsADirectoryError as error:
        raise BadInput(f"Could not open {label}: it is a folder, not a document.", str(error)) from error
    except PermissionError as error:
        raise BadInput(f"Could not open {label}: permission denied.", str(error)) from error
    except OSError as error:
        raise BadInput(f"Could not open {label}: {error.strerror or error}.", str(error)) from error
    except Exception as error:  # BadZipFile, struct.error, ValueError, NotImplementedError, ...
        raise _not_ora(label, error) from error
    try:
        with zf:
            state = _read(_Archive(zf, label))
        doc, history = _build(state)
    except BadInput:
        raise
    except MemoryError as error:
        raise BadInput(f"{label} is too large to open with the memory available.", str(error)) from error
    except Exception as error:
        # A file can be damaged in more ways than there are checks above; whatever slipped
        # through is still a damaged file, never a crash.
        raise BadInput(f"{label} is damaged or incomplete and cannot be opened.",
                       f"{type(error).__name__}: {error}"[:2000]) from error
    doc.mark_saved(str(target))
    return doc, history


def _not_ora(label: str, error: BaseException) -> BadInput:
    return BadInput(f"{label} is not an OpenRaster (.ora) document, or it is damaged or incomplete.",
                    f"{type(error).__name__}: {error}")


def _shown(text: str, limit: int = 80) -> str:
    """A name from the file, short and on one line, for a message."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Image:
    """An image part, known by its PNG header and not decoded yet."""

    def __init__(self, key: str, what: str, info: zipfile.ZipInfo, size: tuple[int, int]) -> None:
        self.key = key
        self.what = what
        self.info = info
        self.size = size


class _Archive:
    """A zip being read, with every failure turned into BadInput naming the file and the part,
    and every read counted against the document's budget of bytes."""

    def __init__(self, zf: zipfile.ZipFile, label: str):
        self.zf = zf
        self.label = label
        # Normalised name -> every member with that name (more than one is refused when read).
        self.members: dict[str, list[zipfile.ZipInfo]] = {}
        for info in zf.infolist():
            key = self._normal(info.filename)
            if key is not None:
                self.members.setdefault(key, []).append(info)
        self.bytes_read = 0

    @staticmethod
    def _normal(name: str) -> str | None:
        """A member name without "./", doubled or leading slashes; None if it climbs out (..)."""
        parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
        if not parts or ".." in parts or "\0" in name:
            return None
        return "/".join(parts)

    def key(self, name: Any, what: str) -> str:
        """The member a reference in the file names, or BadInput if it can name none of ours."""
        if not isinstance(name, str) or not name.strip():
            raise self.damaged(what, f"its part is named by {name!r}"[:200])
        key = self._normal(name)
        if key is None or len(name) > 1024 or re.match(r"[A-Za-z]:", key):
            raise BadInput(f"{self.label} is damaged: {what} points outside the document (“{_shown(name)}”).",
                           f"part name: {name[:300]!r}")
        return key

    def has(self, name: str) -> bool:
        return self._normal(name) in self.members

    def damaged(self, what: str, error: BaseException | str) -> BadInput:
        details = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return BadInput(f"{self.label} is damaged or incomplete: {what} cannot be read.", details[:2000])

    def too_large(self, what: str, details: str) -> BadInput:
        return BadInput(f"{self.label} cannot be opened safely: {what} is unreasonably large.", details)

    def entry(self, key: str, what: str) -> zipfile.ZipInfo:
        found = self.members.get(key)
        if not found:
            raise BadInput(f"{self.label} is incomplete: {what} ({_shown(key)}) is missing.",
                           f"The file has: {', '.join(sorted(self.members)[:40])}")
        if len(found) > 1:
            # Which copy counts would depend on the program reading it: refuse to guess.
            raise BadInput(f"{self.label} is damaged: it holds {len(found)} parts named {_shown(key)}.",
                           "A zip member name appears more than once.")
        return found[0]

    def spend(self, info: zipfile.ZipInfo, what: str) -> None:
        self.bytes_read += info.file_size
        if self.bytes_read > _MAX_DOCUMENT_BYTES:
            raise BadInput(f"{self.label} is too large to open: its parts hold more than "
                           f"{_MAX_DOCUMENT_BYTES // 1024 ** 3} GB.", f"while reading {what}: {self.bytes_read} bytes")

    def _failure(self, what: str, error: BaseException) -> BadInput:
        if isinstance(error, RuntimeError) and "encrypted" in str(error).lower():
            return BadInput(f"{self.label} cannot be opened: {what} is encrypted.", str(error))
        if isinstance(error, NotImplementedError):  # compression methods zipfile lacks
            return BadInput(f"{self.label} uses a kind of compression Quickbrush cannot read.", str(error))
        return self.damaged(what, error)

    def read(self, name: str, what: str, limit: int) -> bytes:
        """A whole part, at most `limit` bytes by its declaration and by what is actually read."""
        key = self.key(name, what)
        info = self.entry(key, what)
        if info.file_size > limit:
            raise self.too_large(what, f"{key}: {info.file_size} bytes declared, at most {limit} read")
        self.spend(info, what)
        try:
            with self.zf.open(info) as handle:
                # Reading past the declared size reaches the end, where zipfile checks the CRC.
                data = handle.read(limit + 1)
        except Exception as error:
            raise self._failure(what, error) from error
        if len(data) > limit:
            raise self.too_large(what, f"{key}: more than {limit} bytes")
        return data

    def text(self, name: str, what: str, limit: int) -> str:
        data = self.read(name, what, limit)
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise self.damaged(what, error) from error

    def json(self, name: str, what: str) -> Any:
        text = self.text(name, what, _MAX_JSON_BYTES)
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError) as error:  # RecursionError: [[[[...]]]] nested deep
            raise self.damaged(what, error) from error
        if _depth(data) > _MAX_JSON_DEPTH:
            # Loaded, it would be saved again: deep enough data breaks whatever walks it recursively.
            raise self.damaged(what, f"nested more than {_MAX_JSON_DEPTH} levels deep")
        return data

    def header(self, name: Any, what: str) -> _Image:
        """An image part's size from its PNG header, without decoding it; checked on its own."""
        key = self.key(name, what)
        info = self.entry(key, what)
        try:
            with self.zf.open(info) as handle, Image.open(_Bounded(handle, _MAX_PNG_TEXT_BYTES),
                                                          formats=["PNG"]) as image:
                width, height = image.size
        except Image.DecompressionBombError as error:
            # Pillow's own limit is MAX_PIXELS (inference.images sets it): the same refusal in
            # the same words as check_pixels, without the size Pillow does not hand back.
            limit = MAX_PIXELS // 1_000_000
            raise BadInput(f"{what[0].upper()}{what[1:]} in {self.label} is too large: over {limit} megapixels. "
                           f"Quickbrush opens images of up to {limit} megapixels.", str(error)) from error
        except UnidentifiedImageError as error:
            raise self.damaged(what, "not a PNG image: " + str(error)) from error
        except Exception as error:
            raise self._failure(what, error) from error
        if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
            raise self.too_large(what, f"{key}: {width}x{height} pixels")
        check_pixels(width, height, f"{what[0].upper()}{what[1:]} in {self.label}")
        # An honest PNG of this size is at most its raw 16-bit RGBA rows, stored, plus text.
        limit = 2 * height * (1 + width * 8) + _MAX_PNG_TEXT_BYTES
        if info.file_size > limit:
            raise self.too_large(what, f"{key}: {info.file_size} bytes for {width}x{height} pixels")
        return _Image(key, what, info, (width, height))

    def decode(self, part: _Image) -> Image.Image:
        """The image of a part whose header was checked, decoded in full, its CRC verified."""
        self.spend(part.info, part.what)
        try:
            with self.zf.open(part.info) as handle:
                image = Image.open(handle, formats=["PNG"])
                if image.size != part.size:  # pragma: no cover - the same bytes read twice
                    raise ValueError(f"the image is {image.size}, its header said {part.size}")
                image.load()
                # The rest of the part (after the pixels) is read too: at its end zipfile checks
                # the CRC, so damaged bytes are an error rather than wrong pixels.
                while handle.read(1 << 20):
                    pass
        except Image.DecompressionBombError as error:
            raise self.too_large(part.what, str(error)) from error
        except UnidentifiedImageError as error:
            raise self.damaged(part.what, "not a PNG image: " + str(error)) from error
        except MemoryError:
            raise
        except Exception as error:
            raise self._failure(part.what, error) from error
        return image


class _Bounded:
    """A part's stream that gives at most `limit` bytes from its start. Pillow reads a PNG's header
    through it: chunks before the pixels (text, private chunks) could otherwise make reading the
    size alone decompress gigabytes. Pillow needs only read, seek and tell."""

    def __init__(self, raw: Any, limit: int) -> None:
        self.raw = raw
        self.limit = limit

    def read(self, size: int | None = -1) -> bytes:
        left = self.limit - self.raw.tell()
        if left <= 0:
            raise ValueError(f"the image header is longer than {self.limit} bytes")
        return self.raw.read(left if size is None or size < 0 else min(size, left))

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self.raw.seek(offset, whence)
        if position > self.limit:
            raise ValueError(f"the image header is longer than {self.limit} bytes")
        return position

    def tell(self) -> int:
        return self.raw.tell()


def _depth(data: Any) -> int:
    """How deeply JSON data nests (iteratively: the data may be deeper than the call stack)."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        value, level = todo.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, level)
            todo.extend((item, level + 1) for item in value)
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse_xml(data: bytes, archive: _Archive, what: str) -> ET.Element:
    """stack.xml as an element tree, refusing a DOCTYPE and entity declarations.

    ElementTree's parser cannot be told to refuse them (defusedxml is not a dependency); expat,
    which it wraps, can: the handlers below raise, and the tree is built from expat's events.
    Text content is dropped, as OpenRaster keeps everything in attributes.
    """
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def refuse(*_args: Any) -> None:
        raise BadInput(f"{archive.label} cannot be opened safely: {what} declares a DOCTYPE or entities, "
                       "which OpenRaster files never need.", "DOCTYPE or ENTITY in the XML")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    try:
        parser.Parse(data, True)
        return builder.close()
    except BadInput:
        raise
    except Exception as error:  # ExpatError, unknown encodings (LookupError), ...
        raise archive.damaged(what, error) from error


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _number(text: Any, what: str, archive: _Archive, low: int, high: int) -> int:
    """An integer attribute (some writers put "12.0"): finite, whole after rounding, within bounds."""
    text = str(text).strip()
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or abs(number) > 2 * max(abs(low), abs(high)):
            raise BadInput(f"{archive.label} is damaged: {what} is not a usable number (“{_shown(text, 40)}”).",
                           f"{what} = {text[:200]!r}") from None
        value = round(number)
    if not low <= value <= high:
        raise BadInput(f"{archive.label} is damaged: {what} is out of range ({_shown(text, 40)}).",
                       f"{what} = {value}; accepted: {low} to {high}")
    return value


class _LayerRef:
    """A layer of stack.xml, its group's offsets, visibility and opacity folded in."""

    def __init__(self, name: str, src: Any, x: int, y: int, visible: bool, opacity: float, selected: bool):
        self.name = name
        self.src = src
        self.x = x
        self.y = y
        self.visible = visible
        self.opacity = opacity
        self.selected = selected
        self.part: _Image | None = None


def _walk(stack: ET.Element, archive: _Archive) -> list[_LayerRef]:
    """Layers of a stack, topmost first. Iterative: a file may nest thousands of stacks, and a
    recursive walk would hit Python's recursion limit."""
    found: list[_LayerRef] = []
    # (children not visited yet, x, y, visible, opacity, name prefix) of each open stack
    todo = [(iter(stack), 0, 0, True, 1.0, "")]
    while todo:
        children, x0, y0, visible0, opacity0, prefix = todo[-1]
        child = next(children, None)
        if child is None:
            todo.pop()
            continue
        tag = _local(child.tag)
        if tag not in ("layer", "stack"):
            continue  # text, annotations, extensions: nothing to show
        name = " ".join(child.get("name", "").split())[:_MAX_NAME]
        full = (prefix + name)[:_MAX_FULL_NAME]
        what = f"the layer “{_shown(full)}”" if full else ("a group" if tag == "stack" else "a layer")
        x = x0 + _number(child.get("x", "0"), f"the position of {what}", archive, -_MAX_COORD, _MAX_COORD)
        y = y0 + _number(child.get("y", "0"), f"the position of {what}", archive, -_MAX_COORD, _MAX_COORD)
        if abs(x) > _MAX_COORD or abs(y) > _MAX_COORD:
            raise BadInput(f"{archive.label} is damaged: {what} lies impossibly far away ({x}, {y}).",
                           f"group offsets add up to {x}, {y}")
        try:
            opacity = float(child.get("opacity", "1"))
        except ValueError as error:
            raise archive.damaged(f"the opacity of {what}", error) from error
        if not math.isfinite(opacity):
            opacity = 1.0
        opacity = opacity0 * min(1.0, max(0.0, opacity))
        visible = visible0 and child.get("visibility", "visible").strip().lower() != "hidden"
        if tag == "stack":
            todo.append((iter(child), x, y, visible, opacity, (full + " / ")[:_MAX_FULL_NAME] if name else prefix))
            continue
        selected = child.get("selected", "false").strip().lower() in ("true", "1")
        found.append(_LayerRef(full, child.get("src"), x, y, visible, opacity, selected))
        if len(found) > MAX_LAYERS:
            raise BadInput(f"{archive.label} has more than {MAX_LAYERS} layers; Quickbrush opens documents "
                           f"of up to {MAX_LAYERS} layers.", f"stopped counting at {len(found)}")
    return found


class _HistoryRef:
    """A history record, checked, its images known by their headers."""

    def __init__(self) -> None:
        self.id: Any = None
        self.created: Any = None
        self.box: tuple[int, int, int, int] | None = None
        self.recipe: dict[str, Any] = {}
        self.timings: dict[str, Any] = {}
        self.model_info: dict[str, Any] = {}
        self.target: dict[str, Any] | None = None
        self.applied: int | None = None
        self.image_name: Any = None
        self.input_names: dict[str, Any] = {}
        # Filled in by _read once the headers are read.
        self.image: _Image | None = None
        self.inputs: dict[str, _Image] = {}
        self.item = ""


class _State:
    def __init__(self) -> None:
        self.width = 0
        self.height = 0
        # bottom first, as Document keeps them: (name, pixels, x, y, visible, opacity)
        self.layers: list[tuple[str, np.ndarray, int, int, bool, float]] = []
        self.selected: int | None = None
        self.active: int | None = None
        self.mask: np.ndarray | None = None
        self.selection: tuple[int, int, int, int] | None = None
        self.history: list[dict[str, Any]] = []


def _read(archive: _Archive) -> _State:
    """Everything in the file, read and checked: first the descriptions and every image's header
    (so the budget is known before a single pixel is decoded), then the pixels."""
    label = archive.label
    not_ora = f"{label} is not an OpenRaster (.ora) document."
    if archive.has("mimetype"):
        kind = archive.read("mimetype", "its type", _MAX_SMALL_BYTES).decode("utf-8", "replace").strip()
        if kind != MIMETYPE:
            raise BadInput(f"{not_ora} It is a zip file of type “{_shown(kind)}”.", f"mimetype: {kind[:200]!r}")
    if not archive.has("stack.xml"):
        raise BadInput(f"{not_ora} It is a zip file without a layer list (stack.xml).",
                       f"The file has: {', '.join(sorted(archive.members)[:40])}")

    state = _State()
    what = "the layer list (stack.xml)"
    root = _parse_xml(archive.read("stack.xml", what, _MAX_XML_BYTES), archive, what)
    if _local(root.tag) != "image":
        raise BadInput(f"{not_ora} Its layer list does not describe an image.", f"root element: {root.tag!r}"[:300])
    state.width = _number(root.get("w", ""), "the image width", archive, 1, _MAX_SIDE)
    state.height = _number(root.get("h", ""), "the image height", archive, 1, _MAX_SIDE)
    check_pixels(state.width, state.height, label)
    stacks = [child for child in root if _local(child.tag) == "stack"]
    if not stacks:
        raise archive.damaged(what, "no <stack> in <image>")
    layers = _walk(stacks[0], archive)

    mask_part: _Image | None = None
    if archive.has(_DOCUMENT_JSON):
        mask_name = _read_document_json(archive, state, len(layers))
        if mask_name is not None:
            mask_part = archive.header(mask_name, "the mask")
            if mask_part.size != (state.width, state.height):
                raise archive.damaged("the mask", f"the mask is {mask_part.size[0]}x{mask_part.size[1]}, "
                                                  f"the image {state.width}x{state.height}")
    records = _read_history(archive) if archive.has(_HISTORY_JSON) else []

    # Every image's header, then the budget, before decoding.
    parts: dict[str, _Image] = {}  # a part named twice is decoded once (history inputs are shared)

    def header(name: Any, what: str) -> _Image:
        key = archive.key(name, what)
        if key not in parts:
            parts[key] = archive.header(name, what)
        return parts[key]

    reach = max(state.width, state.height, _MIN_REACH)
    pixels = state.width * state.height  # the Document's mask, stored in the file or not
    for layer in layers:
        what = f"the layer “{_shown(layer.name)}”" if layer.name else "a layer"
        if layer.src is None:
            raise archive.damaged(what, "the layer names no image (src)")
        # Not shared with other layers: each becomes pixels of its own.
        part = archive.header(layer.src, f"the image of {what}")
        width, height = part.size
        if (layer.x < -reach or layer.y < -reach or layer.x + width > state.width + reach
                or layer.y + height > state.height + reach):
            raise BadInput(f"{label} cannot be opened safely: {what} ({width}×{height} pixels at {layer.x}, "
                           f"{layer.y}) reaches far beyond the {state.width}×{state.height} image.",
                           f"a layer may reach {reach} pixels past the canvas")
        layer.part = part
        pixels += width * height
    for record in records:
        for key, name in record.input_names.items():
            record.inputs[key] = header(name, f"the input {key} of {record.item}")
        if record.image_name is not None:
            record.image = archive.header(record.image_name, f"the image of {record.item}")
            pixels += record.image.size[0] * record.image.size[1]
    pixels += sum(part.size[0] * part.size[1] for part in parts.values())
    if pixels > MAX_DOCUMENT_PIXELS:
        raise BadInput(f"{label} is too large to open: its layers, mask and history hold "
                       f"{pixels // 1_000_000:,} megapixels; Quickbrush opens documents of up to "
                       f"{MAX_DOCUMENT_PIXELS // 1_000_000:,} megapixels in all.",
                       f"{len(layers)} layers, {len(records)} history entries, {pixels} pixels")

    # The pixels.
    top_first = []
    for layer in layers:
        assert layer.part is not None
        image = archive.decode(layer.part)
        top_first.append((layer, _converted(archive, layer.part, image, pil_to_rgba)))
        del image
    for index, (layer, array) in enumerate(reversed(top_first)):
        state.layers.append((layer.name, array, layer.x, layer.y, layer.visible, layer.opacity))
        if layer.selected:
            state.selected = index
    if mask_part is not None:
        state.mask = _converted(archive, mask_part, archive.decode(mask_part), pil_to_mask)
    decoded: dict[str, Image.Image] = {}
    for record in records:
        images = {}
        for key, part in record.inputs.items():
            if part.key not in decoded:
                decoded[part.key] = archive.decode(part)
            images[key] = decoded[part.key]
        state.history.append(_history_entry(archive, record, images))
    return state


def _converted(archive: _Archive, part: _Image, image: Image.Image, convert: Any) -> np.ndarray:
    try:
        return convert(image)
    except MemoryError:
        raise
    except Exception as error:  # a PNG mode Pillow decodes but cannot convert
        raise archive.damaged(part.what, error) from error


def _check_format(archive: _Archive, data: Any, what: str) -> None:
    if not isinstance(data, dict):
        raise archive.damaged(what, f"expected an object, got {type(data).__name__}")
    version = data.get("format")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise archive.damaged(what, f"format: {version!r}"[:200])
    if version > QUICKBRUSH_FORMAT:
        raise BadInput(f"{archive.label} was saved by a newer Quickbrush; update Quickbrush to open it.",
                       f"{what}: format {version}; this version reads format {QUICKBRUSH_FORMAT}.")


def _box(archive: _Archive, value: Any, what: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) from JSON: four whole numbers within bounds, not inverted."""
    if not isinstance(value, list) or len(value) != 4:
        raise archive.damaged(what, f"expected four numbers, got {value!r}"[:200])
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise archive.damaged(what, f"{item!r} is not a number"[:200])
        numbers.append(_number(repr(item), what, archive, -_MAX_COORD, _MAX_COORD))
    left, top, right, bottom = numbers
    if right < left or bottom < top:
        raise archive.damaged(what, f"inverted box {numbers}")
    return left, top, right, bottom


def _read_document_json(archive: _Archive, state: _State, layer_count: int) -> Any:
    """The settings into `state`; gives the mask's part name (or None)."""
    what = "the Quickbrush document settings"
    data = archive.json(_DOCUMENT_JSON, what)
    _check_format(archive, data, what)
    selection = data.get("selection")
    if selection is not None:
        left, top, right, bottom = _box(archive, selection, "the selection")
        if right > left and bottom > top:
            state.selection = (left, top, right, bottom)
    active = data.get("active_layer")
    if isinstance(active, int) and not isinstance(active, bool) and 0 <= active < layer_count:
        state.active = active
    mask_name = data.get("mask")
    if mask_name is None or mask_name == "":
        return None
    if not isinstance(mask_name, str):
        raise archive.damaged("the mask", f"mask: {mask_name!r}"[:200])
    return mask_name


def _read_history(archive: _Archive) -> list[_HistoryRef]:
    what = "the history"
    data = archive.json(_HISTORY_JSON, what)
    _check_format(archive, data, what)
    records = data.get("entries")
    if not isinstance(records, list):
        raise archive.damaged(what, "no list of entries")
    if len(records) > _MAX_HISTORY:
        raise BadInput(f"{archive.label} has {len(records):,} history entries; Quickbrush opens documents "
                       f"with up to {_MAX_HISTORY:,}.", "quickbrush/history.json")
    history: list[_HistoryRef] = []
    for number, record in enumerate(records, 1):
        ref = _HistoryRef()
        ref.item = item = f"history entry {number}"
        if not isinstance(record, dict) or not isinstance(record.get("recipe"), dict):
            raise archive.damaged(item, "no recipe")
        ref.recipe = record["recipe"]
        inputs = record.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise archive.damaged(item, "bad inputs")
        for key, name in inputs.items():
            if key in ("image", "mask") and name:
                ref.input_names[key] = name
        box = record.get("box")
        ref.box = None if box is None else _box(archive, box, f"the place of {item}")
        image_name = record.get("image")
        if image_name:
            ref.image_name = image_name
        entry_id = record.get("id", number - 1)
        if isinstance(entry_id, bool) or not (
                (isinstance(entry_id, str) and len(entry_id) <= 200)
                or (isinstance(entry_id, int) and abs(entry_id) < 2 ** 53)):
            entry_id = number - 1
        ref.id = entry_id
        created = record.get("created")
        # What the History panel can show: seconds since 1970 within a sane range, or ISO text.
        if isinstance(created, bool) or not (
                (isinstance(created, (int, float)) and 0 <= created < 1e11)
                or (isinstance(created, str) and len(created) <= 64)):
            created = None
        ref.created = created
        timings = record.get("timings") or {}
        model_info = record.get("model_info") or {}
        if not isinstance(timings, dict) or not isinstance(model_info, dict):
            raise archive.damaged(item, "bad timings or model info")
        # Timings are seconds: anything else could only break the panel that shows them.
        ref.timings = {str(k): v for k, v in timings.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        ref.model_info = model_info
        ref.target = _target(archive, record.get("target"), item)
        applied = record.get("applied")
        if isinstance(applied, int) and not isinstance(applied, bool) and 0 <= applied <= _MAX_HISTORY:
            ref.applied = applied
        history.append(ref)
    return history


def _target(archive: _Archive, value: Any, item: str) -> dict[str, Any] | None:
    """Where an entry's result lands (editor.history's spec), its known fields checked; other
    fields are kept for whoever wrote them."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise archive.damaged(f"the place of {item}", f"target: {value!r}"[:200])
    target = dict(value)
    if target.get("box") is not None:
        target["box"] = list(_box(archive, target["box"], f"the place of {item}"))
    layer = target.get("layer")
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < MAX_LAYERS):
        target["layer"] = None  # the active layer, as for a target that names none
    for key in ("composite", "fit"):
        if key in target and not (isinstance(target[key], str) and len(target[key]) <= 32):
            del target[key]  # editor.targets falls back to the job kind's own
    return target


def _history_entry(archive: _Archive, ref: _HistoryRef, images: dict[str, Image.Image]) -> dict[str, Any]:
    try:
        job = Job.from_dict(ref.recipe, **images)
    except JobError as error:
        raise BadInput(f"{archive.label} is damaged: the recipe of {ref.item} cannot be used ({error.message})",
                       error.details) from error
    except MemoryError:
        raise
    except Exception as error:
        raise archive.damaged(f"the recipe of {ref.item}", error) from error
    image = archive.decode(ref.image) if ref.image is not None else None
    return {
        "id": ref.id,
        "created": ref.created,
        "box": ref.box,
        "image": image,
        "job": job,
        "timings": ref.timings,
        "model_info": ref.model_info,
        "target": ref.target,
        "applied": ref.applied,
    }


def _build(state: _State) -> tuple[Document, list[dict[str, Any]]]:
    """The Document, from state that has been read and checked in full."""
    doc = Document(state.width, state.height)
    for name, pixels, x, y, visible, opacity in state.layers:
        doc.layers.append(Layer(name, pixels, x, y, visible=visible, opacity=opacity))
    if doc.layers:
        active = state.active if state.active is not None else state.selected
        doc.set_active_layer(active if active is not None else len(doc.layers) - 1)
    if state.mask is not None:
        doc.mask = state.mask
    if state.selection is not None:
        doc.set_selection(state.selection)
        doc.undo_stack.clear()  # the loaded state is where undo starts
    return doc, state.history
