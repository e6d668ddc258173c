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

Saving is atomic: everything goes to a hidden temporary file in the same folder, which is flushed
to disk and then replaces the target in one step; on any failure the temporary file is removed,
the previous file is untouched, and a SaveError with a designer-readable message is raised.
Loading checks everything before building the Document, and raises BadInput for a file that is
damaged, truncated, not OpenRaster, or missing parts.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import os
import re
import struct
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image, UnidentifiedImageError

from editor.document import Document, Layer, pil_to_mask, pil_to_rgba
from inference.jobs import BadInput, Job, JobError
from inference.metadata import SaveError, atomic_write, quickbrush_version, recipe_pnginfo
# The designer-readable wording of OS errors ("the disk is full", "permission denied ...") is
# shared with PNG export, so both say the same thing for the same failure.

__all__ = ["save_ora", "prepare_save", "write_prepared", "PreparedSave", "load_ora", "MIMETYPE",
           "QUICKBRUSH_FORMAT", "THUMBNAIL_SIZE"]

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
# XML and JSON parts larger than this are not a Quickbrush or OpenRaster file we can trust.
_MAX_TEXT_BYTES = 64 * 1024 * 1024
# Largest canvas we agree to allocate (as Pillow's decompression-bomb limit: about 180 Mpx).
_MAX_CANVAS_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


# =========================================================================== saving


def save_ora(path: str | os.PathLike[str], document: Document,
             history: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Write `document` (and the History panel's `history`) to `path` as OpenRaster, atomically.

    `history` entries are dicts ``{"id", "created", "box", "image": PIL.Image | None,
    "job": Job, "timings", "model_info"}``; "id" is a str or int, "created" any JSON value (a
    datetime is written as ISO text), "box" a (left, top, right, bottom) or None, "timings" and
    "model_info" JSON-able mappings. None writes no history.

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

    def __init__(self, target: Path, parts: "_Parts") -> None:
        self.target = target
        self.parts = parts


def prepare_save(path: str | os.PathLike[str], document: Document,
                 history: Sequence[Mapping[str, Any]] | None = None) -> PreparedSave:
    """The GUI-thread half of saving: read the document into images that own their pixels.
    Raises SaveError when memory runs out; touches no file."""
    target = Path(os.path.abspath(os.fspath(path)))
    # Everything that can fail for reasons other than the disk happens before touching it.
    try:
        parts = _prepare(document, history)
    except SaveError:
        raise
    except MemoryError as error:
        raise SaveError(f"Could not save {target.name}: there is not enough memory.",
                        f"{target}\nMemoryError: {error}") from error
    return PreparedSave(target, parts)


def write_prepared(prepared: PreparedSave) -> Path:
    """The slow half: PNG encoding and the atomic write. Any thread; raises SaveError."""
    atomic_write(prepared.target, lambda handle: _write_zip(handle, prepared.parts))
    return prepared.target


class _Parts:
    """Everything to write, prepared from the document before the temporary file exists."""

    def __init__(self) -> None:
        self.stack_xml = b""
        self.layers: list[tuple[str, Image.Image]] = []
        self.merged: Image.Image | None = None
        self.thumbnail: Image.Image | None = None
        self.document_json = b""
        self.mask: Image.Image | None = None
        self.history_json: bytes | None = None
        # (name, image, pnginfo or None)
        self.history_images: list[tuple[str, Image.Image, Any]] = []
        self.inputs: dict[str, Image.Image] = {}


def _prepare(document: Document, history: Sequence[Mapping[str, Any]] | None) -> _Parts:
    parts = _Parts()
    width, height = document.size

    # Layers, topmost first in stack.xml; the document keeps them bottom first.
    image = ET.Element("image", {"version": ORA_VERSION, "w": str(width), "h": str(height),
                                 "xres": "72", "yres": "72"})
    stack = ET.SubElement(image, "stack")
    count = len(document.layers)
    active = document.active_layer_index
    for index in range(count - 1, -1, -1):
        layer = document.layers[index]
        src = f"data/layer{index:03d}.png"
        attrs = {
            "name": layer.name,
            "src": src,
            "x": str(layer.x),
            "y": str(layer.y),
            "opacity": repr(float(min(1.0, max(0.0, layer.opacity)))),
            "visibility": "visible" if layer.visible else "hidden",
            "composite-op": "svg:src-over",
        }
        if index == active:
            attrs["selected"] = "true"
        ET.SubElement(stack, "layer", attrs)
        parts.layers.append((src, _layer_image(layer)))
    parts.stack_xml = ET.tostring(image, encoding="utf-8", xml_declaration=True)

    merged = document.composite()
    parts.merged = merged
    thumb = merged.copy()
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    parts.thumbnail = thumb

    mask_name = None
    if document.has_mask():
        parts.mask = Image.fromarray(np.array(document.mask, dtype=np.uint8), "L")  # a copy, as for layers
        mask_name = _MASK_PNG
    info = {
        "format": QUICKBRUSH_FORMAT,
        "app": f"Quickbrush {quickbrush_version()}",
        "selection": list(document.selection_box()) if document.selection is not None else None,
        "active_layer": active if 0 <= active < count else None,
        "mask": mask_name,
    }
    parts.document_json = _json_bytes(info)

    if history is not None:
        parts.history_json = _json_bytes({"format": QUICKBRUSH_FORMAT,
                                          "entries": _prepare_history(history, parts)})
    return parts


def _layer_image(layer: Layer) -> Image.Image:
    pixels = np.ascontiguousarray(layer.pixels, dtype=np.uint8)
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        # PNG cannot hold an empty image; one transparent pixel looks the same.
        return Image.new("RGBA", (1, 1), (0, 0, 0, 0))
    if pixels[..., 3].min() == 255:
        # Fully opaque: RGB is a quarter smaller and reads back as RGBA with alpha 255, exactly.
        return Image.fromarray(np.ascontiguousarray(pixels[..., :3]), "RGB")
    return Image.fromarray(pixels.copy(), "RGBA")  # a copy: fromarray would share the layer's memory


def _prepare_history(history: Sequence[Mapping[str, Any]], parts: _Parts) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    used: set[str] = set()
    for number, entry in enumerate(history):
        if not isinstance(entry, Mapping):
            raise TypeError(f"History entry {number} is a {type(entry).__name__}, not a dict.")
        job = entry.get("job")
        if not isinstance(job, Job):
            raise TypeError(f"History entry {number} has no Job (got {type(job).__name__}).")
        entry_id = entry.get("id", number)
        timings = entry.get("timings") or {}
        model_info = entry.get("model_info") or {}
        box = entry.get("box")
        record: dict[str, Any] = {
            "id": entry_id,
            "created": entry.get("created"),
            "box": None if box is None else [int(v) for v in box],
            "recipe": job.to_dict(),
            "timings": dict(timings),
            "model_info": dict(model_info),
            "image": None,
            "inputs": {},
        }
        image = entry.get("image")
        if image is not None:
            stem = str(entry_id)
            if not _SAFE_ID.fullmatch(stem) or stem in used:
                stem = f"entry{number:04d}"
            used.add(stem)
            name = f"{_HISTORY_DIR}{stem}.png"
            image = _png_able(image)
            pnginfo = recipe_pnginfo(job, timings, model_info, size=image.size)
            parts.history_images.append((name, image, pnginfo))
            record["image"] = name
        for key in ("image", "mask"):
            value = getattr(job, key, None)
            if isinstance(value, Image.Image):
                record["inputs"][key] = _add_input(parts, value)
        entries.append(record)
    return entries


def _add_input(parts: _Parts, image: Image.Image) -> str:
    image = _png_able(image)
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    name = f"{_INPUTS_DIR}{digest.hexdigest()[:24]}.png"
    parts.inputs.setdefault(name, image)
    return name


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
            return _plain(tolist())
        except Exception:
            pass
    return str(value)


def _json_bytes(data: Any) -> bytes:
    return json.dumps(_plain(data), ensure_ascii=False, indent=1, allow_nan=False).encode("utf-8")


def _write_zip(handle: Any, parts: _Parts) -> None:
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
        for name, image in parts.layers:
            png(name, image)
        assert parts.thumbnail is not None and parts.merged is not None
        png("Thumbnails/thumbnail.png", parts.thumbnail)
        png("mergedimage.png", parts.merged)
        zf.writestr(info(_DOCUMENT_JSON, zipfile.ZIP_DEFLATED), parts.document_json)
        if parts.mask is not None:
            png(_MASK_PNG, parts.mask)
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
    "image": PIL.Image | None, "job": Job, "timings": dict, "model_info": dict}``; the job is
    rebuilt with ``Job.from_dict`` and its saved input image/mask. A file from another
    application gives its layers, an empty mask and no history.

    Raises BadInput, with a message a designer can act on, for a file that does not exist,
    cannot be read, is damaged or truncated, is not OpenRaster, or misses parts it names.
    Nothing is built until everything has been read and checked.
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
    except (zipfile.BadZipFile, EOFError, struct.error, ValueError) as error:
        raise BadInput(f"{label} is not an OpenRaster (.ora) document, or it is damaged or incomplete.",
                       f"{type(error).__name__}: {error}") from error
    except OSError as error:
        raise BadInput(f"Could not open {label}: {error.strerror or error}.", str(error)) from error
    try:
        with zf:
            state = _read(_Archive(zf, label))
    except BadInput:
        raise
    except MemoryError as error:
        raise BadInput(f"{label} is too large to open with the memory available.", str(error)) from error
    doc, history = _build(state)
    doc.mark_saved(str(target))
    return doc, history


class _Archive:
    """A zip being read, with every failure turned into BadInput naming the file and the part."""

    def __init__(self, zf: zipfile.ZipFile, label: str):
        self.zf = zf
        self.label = label
        self.names = {self.norm(name): name for name in zf.namelist()}

    @staticmethod
    def norm(name: str) -> str:
        name = name.replace("\\", "/")
        while name.startswith("./"):
            name = name[2:]
        return name.lstrip("/")

    def has(self, name: str) -> bool:
        return self.norm(name) in self.names

    def damaged(self, what: str, error: BaseException | str) -> BadInput:
        details = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return BadInput(f"{self.label} is damaged or incomplete: {what} cannot be read.", details)

    def read(self, name: str, what: str, limit: int | None = None) -> bytes:
        key = self.norm(name)
        if key not in self.names:
            raise BadInput(f"{self.label} is incomplete: {what} ({key}) is missing.",
                           f"The file has: {', '.join(sorted(self.names)[:40])}")
        try:
            entry = self.zf.getinfo(self.names[key])
            if limit is not None and entry.file_size > limit:
                raise BadInput(f"{self.label} cannot be opened safely: {what} is unreasonably large.",
                               f"{key}: {entry.file_size} bytes")
            return self.zf.read(entry)
        except BadInput:
            raise
        except RuntimeError as error:  # encrypted entries
            raise BadInput(f"{self.label} cannot be opened: {what} is encrypted.", str(error)) from error
        except NotImplementedError as error:  # compression methods zipfile lacks
            raise BadInput(f"{self.label} uses a kind of compression Quickbrush cannot read.",
                           str(error)) from error
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error, ValueError) as error:
            raise self.damaged(what, error) from error

    def image(self, name: str, what: str) -> Image.Image:
        data = self.read(name, what)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                probe.load()
                image = probe.copy()
        except Image.DecompressionBombError as error:
            raise BadInput(f"{self.label} cannot be opened safely: {what} is too large.", str(error)) from error
        except UnidentifiedImageError as error:
            raise self.damaged(what, "not an image: " + str(error)) from error
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError) as error:
            raise self.damaged(what, error) from error
        return image

    def json(self, name: str, what: str) -> Any:
        data = self.read(name, what, _MAX_TEXT_BYTES)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise self.damaged(what, error) from error


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
    label = archive.label
    not_ora = f"{label} is not an OpenRaster (.ora) document."
    if archive.has("mimetype"):
        kind = archive.read("mimetype", "its type", 1024).decode("utf-8", "replace").strip()
        if kind != MIMETYPE:
            raise BadInput(f"{not_ora} It is a zip file of type “{kind[:80]}”.",
                           f"mimetype: {kind[:200]!r}")
    if not archive.has("stack.xml"):
        raise BadInput(f"{not_ora} It is a zip file without a layer list (stack.xml).",
                       f"The file has: {', '.join(sorted(archive.names)[:40])}")

    state = _State()
    xml = archive.read("stack.xml", "the layer list (stack.xml)", _MAX_TEXT_BYTES)
    try:
        root = ET.fromstring(xml)
    except (ET.ParseError, ValueError) as error:
        raise archive.damaged("the layer list (stack.xml)", error) from error
    if _local(root.tag) != "image":
        raise BadInput(f"{not_ora} Its layer list does not describe an image.", f"root element: {root.tag!r}")
    try:
        state.width = int(root.get("w", ""))
        state.height = int(root.get("h", ""))
    except ValueError as error:
        raise archive.damaged("the image size", error) from error
    if state.width <= 0 or state.height <= 0:
        raise archive.damaged("the image size", f"{state.width}x{state.height}")
    if state.width * state.height > _MAX_CANVAS_PIXELS:
        raise BadInput(f"{label} cannot be opened safely: the image is {state.width}x{state.height} pixels.",
                       f"Quickbrush opens images up to {_MAX_CANVAS_PIXELS} pixels.")
    stacks = [child for child in root if _local(child.tag) == "stack"]
    if not stacks:
        raise archive.damaged("the layer list (stack.xml)", "no <stack> in <image>")

    top_first: list[tuple[str, np.ndarray, int, int, bool, float, bool]] = []
    for element, name, x, y, visible, opacity in _walk(stacks[0], archive, 0, 0, True, 1.0, ""):
        src = element.get("src")
        what = f"the layer “{name}”" if name else "a layer"
        if not src:
            raise archive.damaged(what, "the layer names no image (src)")
        pixels = pil_to_rgba(archive.image(src, f"the image of {what}"))
        selected = element.get("selected", "false").strip().lower() in ("true", "1")
        top_first.append((name, pixels, x, y, visible, opacity, selected))
    for index, (name, pixels, x, y, visible, opacity, selected) in enumerate(reversed(top_first)):
        state.layers.append((name, pixels, x, y, visible, opacity))
        if selected:
            state.selected = index

    if archive.has(_DOCUMENT_JSON):
        _read_document_json(archive, state)
    if archive.has(_HISTORY_JSON):
        state.history = _read_history(archive)
    return state


def _local(tag: Any) -> str:
    tag = str(tag)
    return tag.rsplit("}", 1)[-1]


def _walk(stack: ET.Element, archive: _Archive, x0: int, y0: int, visible0: bool, opacity0: float,
          prefix: str) -> Iterator[tuple[ET.Element, str, int, int, bool, float]]:
    """Layers of a stack, topmost first, with group offsets, visibility and opacity folded in."""
    for child in stack:
        tag = _local(child.tag)
        if tag not in ("layer", "stack"):
            continue  # text, annotations, extensions: nothing to show
        name = child.get("name", "")
        try:
            x = x0 + _int(child.get("x", "0"))
            y = y0 + _int(child.get("y", "0"))
            opacity = float(child.get("opacity", "1"))
        except ValueError as error:
            raise archive.damaged(f"the layer “{name}”" if name else "a layer", error) from error
        if not math.isfinite(opacity):
            opacity = 1.0
        opacity = opacity0 * min(1.0, max(0.0, opacity))
        visible = visible0 and child.get("visibility", "visible").strip().lower() != "hidden"
        if tag == "stack":
            yield from _walk(child, archive, x, y, visible, opacity, f"{prefix}{name} / " if name else prefix)
        else:
            yield child, prefix + name, x, y, visible, opacity


def _int(text: str) -> int:
    """An integer attribute; some writers put "12.0"."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not math.isfinite(value):
            raise
        return int(round(value))


def _check_format(archive: _Archive, data: Any, what: str) -> None:
    if not isinstance(data, dict):
        raise archive.damaged(what, f"expected an object, got {type(data).__name__}")
    version = data.get("format")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise archive.damaged(what, f"format: {version!r}")
    if version > QUICKBRUSH_FORMAT:
        raise BadInput(f"{archive.label} was saved by a newer Quickbrush; update Quickbrush to open it.",
                       f"{what}: format {version}; this version reads format {QUICKBRUSH_FORMAT}.")


def _read_document_json(archive: _Archive, state: _State) -> None:
    what = "the Quickbrush document settings"
    data = archive.json(_DOCUMENT_JSON, what)
    _check_format(archive, data, what)
    selection = data.get("selection")
    if selection is not None:
        try:
            left, top, right, bottom = (int(v) for v in selection)
        except (TypeError, ValueError) as error:
            raise archive.damaged("the selection", error) from error
        if right > left and bottom > top:
            state.selection = (left, top, right, bottom)
    active = data.get("active_layer")
    if isinstance(active, int) and not isinstance(active, bool) and 0 <= active < len(state.layers):
        state.active = active
    mask_name = data.get("mask")
    if mask_name:
        mask = pil_to_mask(archive.image(str(mask_name), "the mask"))
        if mask.shape != (state.height, state.width):
            raise archive.damaged("the mask", f"the mask is {mask.shape[1]}x{mask.shape[0]}, "
                                              f"the image {state.width}x{state.height}")
        state.mask = mask


def _read_history(archive: _Archive) -> list[dict[str, Any]]:
    what = "the history"
    data = archive.json(_HISTORY_JSON, what)
    _check_format(archive, data, what)
    records = data.get("entries")
    if not isinstance(records, list):
        raise archive.damaged(what, "no list of entries")
    inputs: dict[str, Image.Image] = {}  # shared inputs are read once
    history: list[dict[str, Any]] = []
    for number, record in enumerate(records, 1):
        item = f"history entry {number}"
        if not isinstance(record, dict) or not isinstance(record.get("recipe"), dict):
            raise archive.damaged(item, "no recipe")
        images: dict[str, Image.Image] = {}
        refs = record.get("inputs") or {}
        if not isinstance(refs, dict):
            raise archive.damaged(item, "bad inputs")
        for key, ref in refs.items():
            if key not in ("image", "mask") or not ref:
                continue
            ref = str(ref)
            if ref not in inputs:
                inputs[ref] = archive.image(ref, f"the input {key} of {item}")
            images[key] = inputs[ref]
        try:
            job = Job.from_dict(record["recipe"], **images)
        except JobError as error:
            raise BadInput(f"{archive.label} is damaged: the recipe of {item} cannot be used ({error.message})",
                           error.details) from error
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            raise archive.damaged(f"the recipe of {item}", error) from error
        box = record.get("box")
        if box is not None:
            try:
                box = tuple(int(v) for v in box)
            except (TypeError, ValueError) as error:
                raise archive.damaged(f"the place of {item}", error) from error
        image_name = record.get("image")
        image = archive.image(str(image_name), f"the image of {item}") if image_name else None
        timings = record.get("timings") or {}
        model_info = record.get("model_info") or {}
        if not isinstance(timings, dict) or not isinstance(model_info, dict):
            raise archive.damaged(item, "bad timings or model info")
        history.append({
            "id": record.get("id", number - 1),
            "created": record.get("created"),
            "box": box,
            "image": image,
            "job": job,
            "timings": timings,
            "model_info": model_info,
        })
    return history


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
