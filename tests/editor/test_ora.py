"""OpenRaster save and load: what a designer notices when saving, reopening, or opening Krita's files."""

from __future__ import annotations

import errno
import io
import os
import zipfile
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from editor import ora
from editor.document import Document, Layer
from editor.ora import load_ora, save_ora
from inference.jobs import BadInput, Generate, Inpaint, LoraRef, MaskOptions, ModelRef
from inference.metadata import SaveError, job_from_recipe, read_recipe


def _rgba(rng, h, w):
    return rng.integers(0, 256, (h, w, 4), dtype=np.uint8)


@pytest.fixture
def doc(qapp) -> Document:
    """Three layers (one offset past the canvas, one at half opacity, one hidden), a mask, a selection."""
    rng = np.random.default_rng(7)
    doc = Document(64, 48)
    doc.layers.append(Layer("Background", _rgba(rng, 48, 64)))
    doc.layers.append(Layer("Result <1> & \"ébauche\"", _rgba(rng, 20, 30), x=-5, y=7, opacity=0.5))
    doc.layers.append(Layer("Hidden", _rgba(rng, 10, 12), x=40, y=30, visible=False))
    doc.set_active_layer(1)
    doc.begin_stroke()
    doc.stroke_to(10, 10, 6, hardness=0.5)
    doc.stroke_to(40, 30, 6, hardness=0.5)
    doc.end_stroke()
    doc.set_selection((-8, 4, 50, 40))
    assert doc.has_mask() and doc.modified
    return doc


@pytest.fixture
def history(doc):
    rng = np.random.default_rng(3)
    first = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), "RGB")
    second = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), "RGB")
    generate = Generate(prompt="a red fox, snow", negative_prompt="blurry", seed=1234, steps=4,
                        guidance=0.0, width=64, height=48, scheduler="euler_a",
                        model=ModelRef("stabilityai/sd-turbo", loras=(LoraRef("style.safetensors", 0.7),),
                                       sha256="ab" * 32))
    inpaint = Inpaint(prompt="a hat\nwith a feather", seed=99, steps=8, strength=0.9,
                      image=doc.composite("RGB"), mask=doc.mask_image(),
                      mask_options=MaskOptions(grow=2, feather=6, crop_padding=None))
    return [
        {"id": "r1", "created": 1_700_000_000.25, "box": (0, 0, 64, 48), "image": first, "job": generate,
         "timings": {"total": 1.5, "denoise": 1.2}, "model_info": {"name": "sd-turbo", "device": "cpu"}},
        {"id": 2, "created": "2025-01-02T03:04:05", "box": None, "image": second, "job": inpaint,
         "timings": {"total": 0.75}, "model_info": {}},
    ]


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- round trip


def test_round_trip_is_exact(doc, history, tmp_path):
    path = tmp_path / "fox.ora"
    save_ora(path, doc, history)
    loaded, entries = load_ora(path)

    assert loaded.size == doc.size
    assert len(loaded.layers) == 3
    for got, want in zip(loaded.layers, doc.layers):
        assert (got.name, got.x, got.y, got.visible, got.opacity) == \
               (want.name, want.x, want.y, want.visible, want.opacity)
        assert got.pixels.dtype == np.uint8
        assert np.array_equal(got.pixels, want.pixels)
    assert loaded.active_layer_index == 1
    assert np.array_equal(loaded.mask, doc.mask)
    assert loaded.selection_box() == (-8, 4, 50, 40)

    assert len(entries) == 2
    for got, want in zip(entries, history):
        assert set(got) == {"id", "created", "box", "image", "job", "timings", "model_info", "target", "applied"}
        assert got["id"] == want["id"]
        assert got["created"] == want["created"]
        assert got["box"] == want["box"]
        assert got["job"] == want["job"]
        assert type(got["job"]) is type(want["job"])
        assert got["timings"] == want["timings"]
        assert got["model_info"] == want["model_info"]
        assert got["image"].mode == want["image"].mode
        assert np.array_equal(np.array(got["image"]), np.array(want["image"]))
    # The inpaint job comes back with its inputs, so "Re-run" uses exactly what ran.
    job = entries[1]["job"]
    assert np.array_equal(np.array(job.image), np.array(history[1]["job"].image))
    assert np.array_equal(np.array(job.mask), np.array(history[1]["job"].mask))


def test_saving_marks_clean_and_loading_gives_a_clean_document(doc, tmp_path):
    path = tmp_path / "doc.ora"
    assert doc.modified
    returned = save_ora(path, doc)
    assert not doc.modified
    assert doc.path == str(path) == str(returned)

    loaded, entries = load_ora(path)
    assert entries == []
    assert loaded.path == str(path)
    assert not loaded.modified
    assert loaded.undo_stack.count() == 0
    assert loaded.selection_box() == (-8, 4, 50, 40)


def test_empty_mask_and_no_selection_round_trip(qapp, tmp_path):
    doc = Document.new(20, 10, fill=(1, 2, 3))
    save_ora(tmp_path / "plain.ora", doc, [])
    loaded, entries = load_ora(tmp_path / "plain.ora")
    assert entries == []
    assert not loaded.mask.any() and loaded.mask.shape == (10, 20)
    assert loaded.selection is None
    assert np.array_equal(loaded.layers[0].pixels, doc.layers[0].pixels)
    with zipfile.ZipFile(tmp_path / "plain.ora") as zf:
        assert "quickbrush/mask.png" not in zf.namelist()


# --------------------------------------------------------------------------- valid OpenRaster


def test_file_is_valid_openraster(doc, history, tmp_path):
    path = tmp_path / "valid.ora"
    save_ora(path, doc, history)
    raw = path.read_bytes()
    # What `file` and desktop sniffers look for: "mimetype" stored first, its content right after.
    assert raw[30:38] == b"mimetype" and raw[38:54] == b"image/openraster"
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        first = zf.infolist()[0]
        assert first.filename == "mimetype"
        assert first.compress_type == zipfile.ZIP_STORED
        assert first.extra == b""
        assert zf.read("mimetype") == b"image/openraster"

        root = ET.fromstring(zf.read("stack.xml"))
        assert root.tag == "image"
        assert (root.get("w"), root.get("h")) == ("64", "48")
        assert root.get("version", "").startswith("0.0.")
        layers = root.find("stack").findall("layer")
        assert [layer.get("name") for layer in layers] == [l.name for l in reversed(doc.layers)]  # topmost first
        hidden, half, background = layers
        assert hidden.get("visibility") == "hidden" and (hidden.get("x"), hidden.get("y")) == ("40", "30")
        assert float(half.get("opacity")) == 0.5 and half.get("x") == "-5" and half.get("selected") == "true"
        assert background.get("visibility") == "visible"
        for layer in layers:
            assert layer.get("composite-op") == "svg:src-over"
            with Image.open(io.BytesIO(zf.read(layer.get("src")))) as im:
                assert im.format == "PNG"

        with Image.open(io.BytesIO(zf.read("mergedimage.png"))) as merged:
            assert merged.size == (64, 48)
            assert np.array_equal(np.array(merged.convert("RGBA")), doc.composite_array())
        with Image.open(io.BytesIO(zf.read("Thumbnails/thumbnail.png"))) as thumb:
            assert max(thumb.size) <= 256

        # An extracted history image still carries its recipe.
        for entry in history:
            name = f"quickbrush/history/{entry['id']}.png"
            recipe = read_recipe(io.BytesIO(zf.read(name)))
            images = {k: getattr(entry["job"], k, None) for k in ("image", "mask")}
            assert job_from_recipe(recipe, **images) == entry["job"]


def test_thumbnail_is_at_most_256_pixels(qapp, tmp_path):
    doc = Document.new(600, 300, fill=(10, 200, 30))
    save_ora(tmp_path / "wide.ora", doc)
    with zipfile.ZipFile(tmp_path / "wide.ora") as zf:
        with Image.open(io.BytesIO(zf.read("Thumbnails/thumbnail.png"))) as thumb:
            assert thumb.size == (256, 128)
        with Image.open(io.BytesIO(zf.read("mergedimage.png"))) as merged:
            assert merged.size == (600, 300)


# --------------------------------------------------------------------------- other applications' files


def _png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def _write_foreign(path, stack_xml: str, files: dict[str, bytes], mimetype: bytes | None = b"image/openraster"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        if mimetype is not None:
            zf.writestr(zipfile.ZipInfo("mimetype"), mimetype, compress_type=zipfile.ZIP_STORED)
        zf.writestr("stack.xml", stack_xml)
        for name, data in files.items():
            zf.writestr(name, data)


def test_file_from_another_application_loads_as_layers(qapp, tmp_path):
    rng = np.random.default_rng(1)
    paper = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    ink = _rgba(rng, 8, 9)
    sketch = _rgba(rng, 5, 6)
    stack = """<?xml version='1.0' encoding='UTF-8'?>
<image w="50" h="40" version="0.0.3" xres="300" yres="300">
  <stack name="root">
    <stack name="Group" x="2" y="3" opacity="0.5" visibility="visible">
      <layer name="Ink" src="data/ink.png" x="1" y="1" opacity="1.000" visibility="visible" composite-op="svg:multiply"/>
    </stack>
    <layer name="Sketch" src="./data/sketch.png" x="-3" y="4" visibility="hidden" selected="true"/>
    <layer name="Paper" src="data/paper.png"/>
  </stack>
</image>"""
    path = tmp_path / "krita.ora"
    _write_foreign(path, stack, {"data/paper.png": _png_bytes(paper), "data/ink.png": _png_bytes(ink),
                                 "data/sketch.png": _png_bytes(sketch)})

    doc, history = load_ora(path)
    assert history == []
    assert doc.size == (50, 40)
    assert [layer.name for layer in doc.layers] == ["Paper", "Sketch", "Group / Ink"]  # bottom first
    paper_layer, sketch_layer, ink_layer = doc.layers
    assert np.array_equal(paper_layer.pixels[..., :3], paper) and (paper_layer.pixels[..., 3] == 255).all()
    assert (sketch_layer.x, sketch_layer.y, sketch_layer.visible) == (-3, 4, False)
    assert np.array_equal(sketch_layer.pixels, sketch)
    assert (ink_layer.x, ink_layer.y, ink_layer.opacity, ink_layer.visible) == (3, 4, 0.5, True)
    assert np.array_equal(ink_layer.pixels, ink)
    assert doc.active_layer_index == 1  # the layer the other app had selected
    assert not doc.mask.any() and doc.mask.shape == (40, 50)
    assert doc.selection is None
    assert not doc.modified and doc.path == str(path)


# --------------------------------------------------------------------------- atomic save


def test_failed_replace_keeps_previous_file(doc, tmp_path, monkeypatch):
    path = tmp_path / "keep.ora"
    save_ora(path, doc)
    before = path.read_bytes()
    doc.clear_mask()
    assert doc.modified

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ora.os, "replace", full)
    with pytest.raises(SaveError) as caught:
        save_ora(path, doc)
    assert "disk is full" in str(caught.value)
    assert "keep.ora" in str(caught.value)
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["keep.ora"]
    assert doc.modified  # still unsaved


def test_failure_mid_write_keeps_previous_file(doc, history, tmp_path, monkeypatch):
    path = tmp_path / "keep.ora"
    save_ora(path, doc, history)
    before = path.read_bytes()

    real = ora._save_png
    calls = []

    def fills_up(image, out, pnginfo=None):
        calls.append(1)
        if len(calls) == 3:
            out.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(image, out, pnginfo)

    monkeypatch.setattr(ora, "_save_png", fills_up)
    with pytest.raises(SaveError, match="disk is full"):
        save_ora(path, doc, history)
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["keep.ora"]


def test_failure_before_first_save_leaves_nothing(doc, tmp_path, monkeypatch):
    monkeypatch.setattr(ora.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(SaveError, match="input/output error"):
        save_ora(tmp_path / "new.ora", doc)
    assert _files(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name != "posix", reason="POSIX symlinks")
def test_saving_through_a_symlink_keeps_the_link(doc, tmp_path):
    real = tmp_path / "real.ora"
    save_ora(real, doc)
    link = tmp_path / "link.ora"
    link.symlink_to(real)
    doc.clear_mask()
    save_ora(link, doc)
    assert link.is_symlink()
    assert not load_ora(real)[0].mask.any()
    assert doc.path == str(link)


def test_save_into_missing_folder_says_so(doc, tmp_path):
    with pytest.raises(SaveError, match="folder does not exist"):
        save_ora(tmp_path / "nope" / "x.ora", doc)


# --------------------------------------------------------------------------- damaged files


def _valid_bytes(doc, history, tmp_path) -> bytes:
    path = tmp_path / "source.ora"
    save_ora(path, doc, history)
    return path.read_bytes()


def _rewrite(data: bytes, change) -> bytes:
    """A copy of the zip `data` with entries changed by `change(name, bytes) -> bytes | None`."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            new = change(info.filename, src.read(info))
            if new is not None:
                dst.writestr(info, new)
    return out.getvalue()


def _flip_last_png_byte(data: bytes) -> bytes:
    """Damage the stored PNG of the bottom layer inside the zip (so the zip's CRC no longer matches)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo("data/layer000.png")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = bytearray(data)
    damaged[start + info.compress_size // 2] ^= 0xFF
    return bytes(damaged)


CORRUPTIONS = {
    "empty": lambda data: b"",
    "garbage": lambda data: b"this is not a zip file at all" * 10,
    "truncated": lambda data: data[: len(data) // 2],
    "a png": lambda data: _png_bytes(np.zeros((4, 4, 3), np.uint8)),
    "other zip": lambda data: _rewrite(data, lambda n, b: None if n in ("stack.xml", "mimetype") else b),
    "epub": lambda data: _rewrite(data, lambda n, b: b"application/epub+zip" if n == "mimetype" else b),
    "bad xml": lambda data: _rewrite(data, lambda n, b: b[: len(b) // 2] if n == "stack.xml" else b),
    "not an image": lambda data: _rewrite(data, lambda n, b: b.replace(b"<image", b"<picture")
                                          .replace(b"</image>", b"</picture>") if n == "stack.xml" else b),
    "missing layer": lambda data: _rewrite(data, lambda n, b: None if n == "data/layer001.png" else b),
    "layer not a png": lambda data: _rewrite(data, lambda n, b: b"nope" if n == "data/layer001.png" else b),
    "layer crc": _flip_last_png_byte,
    "bad history json": lambda data: _rewrite(data, lambda n, b: b"{not json" if n == "quickbrush/history.json" else b),
    "missing history image": lambda data: _rewrite(data, lambda n, b: None if n == "quickbrush/history/r1.png" else b),
    "missing mask": lambda data: _rewrite(data, lambda n, b: None if n == "quickbrush/mask.png" else b),
    "newer format": lambda data: _rewrite(data, lambda n, b: b.replace(b'"format": 1', b'"format": 99')
                                          if n == "quickbrush/document.json" else b),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_damaged_files_raise_bad_input(doc, history, tmp_path, kind):
    data = CORRUPTIONS[kind](_valid_bytes(doc, history, tmp_path))
    path = tmp_path / "damaged.ora"
    path.write_bytes(data)
    with pytest.raises(BadInput) as caught:
        load_ora(path)
    message = str(caught.value)
    assert "damaged.ora" in message
    assert "\n" not in message  # one line for the banner; the rest goes to details
    if kind == "newer format":
        assert "newer Quickbrush" in message


def test_missing_file_raises_bad_input(qapp, tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_ora(tmp_path / "ghost.ora")
    with pytest.raises(BadInput, match="folder"):
        load_ora(tmp_path)

