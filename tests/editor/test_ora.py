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



# --------------------------------------------------------------------------- what a file may ask for
# A document is a description of memory to allocate. Each limit is checked before anything is
# decoded: these tests make decoding itself fail loudly, so a refusal that comes too late shows.


@pytest.fixture
def no_decoding(monkeypatch):
    """Any PNG decoded from now on fails the test (headers may still be read)."""
    from PIL import ImageFile

    def decode(self, *args, **kwargs):
        raise AssertionError(f"decoded a {self.size} image although the file was to be refused first")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)


def _png_of_size(width: int, height: int) -> bytes:
    """A real PNG of that size that costs almost nothing: one bit a pixel, all black."""
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, "PNG")
    return out.getvalue()


def _layers_xml(width, height, layers) -> str:
    """stack.xml with `layers` given as dicts of attributes, topmost first."""
    body = "".join("<layer " + " ".join(f'{k}="{v}"' for k, v in attrs.items()) + "/>" for attrs in layers)
    return f'<image w="{width}" h="{height}"><stack>{body}</stack></image>'


def test_forty_layers_of_one_huge_png_are_refused_before_decoding(qapp, tmp_path, no_decoding):
    # 40 x 8000 x 8000 RGBA would be 10 GB, from a file of a few kilobytes.
    path = tmp_path / "bomb.ora"
    layers = [{"name": f"L{i}", "src": "data/big.png"} for i in range(40)]
    _write_foreign(path, _layers_xml(100, 100, layers), {"data/big.png": _png_of_size(8000, 8000)})
    assert path.stat().st_size < 100_000
    with pytest.raises(BadInput) as caught:
        load_ora(path)
    message = caught.value.message
    assert "bomb.ora" in message and "too large" in message and "megapixels" in message


def test_one_layer_over_the_image_limit_is_refused_from_its_header(qapp, tmp_path, no_decoding):
    path = tmp_path / "huge.ora"
    _write_foreign(path, _layers_xml(100, 100, [{"name": "Sky", "src": "data/sky.png"}]),
                   {"data/sky.png": _png_of_size(20_000, 20_000)})
    with pytest.raises(BadInput) as caught:
        load_ora(path)
    assert caught.value.message.startswith("The image of the layer “Sky” in huge.ora is too large")
    assert "300 megapixels" in caught.value.message


def test_a_canvas_over_the_image_limit_is_refused(qapp, tmp_path, no_decoding):
    path = tmp_path / "wide.ora"
    _write_foreign(path, _layers_xml(100_000, 100_000, []), {})
    with pytest.raises(BadInput, match="wide.ora is too large: 100000 × 100000 pixels"):
        load_ora(path)


def test_history_images_count_towards_the_budget(doc, history, tmp_path, no_decoding):
    big = _png_of_size(8000, 8000)
    data = _rewrite(_valid_bytes(doc, history, tmp_path),
                    lambda n, b: big if n.startswith("quickbrush/history/") else b)
    # Twenty entries sharing one 64-megapixel image each decode to their own copy.
    def more_entries(name, raw):
        if name != "quickbrush/history.json":
            return raw
        import json
        data = json.loads(raw)
        data["entries"] = data["entries"][:1] * 20
        return json.dumps(data).encode()

    path = tmp_path / "history.ora"
    path.write_bytes(_rewrite(data, more_entries))
    with pytest.raises(BadInput, match="history.ora is too large to open"):
        load_ora(path)


def test_mask_of_the_wrong_size_is_refused_from_its_header(doc, tmp_path, no_decoding):
    data = _rewrite(_valid_bytes(doc, None, tmp_path),
                    lambda n, b: _png_of_size(8000, 8000) if n == "quickbrush/mask.png" else b)
    path = tmp_path / "mask.ora"
    path.write_bytes(data)
    with pytest.raises(BadInput, match="mask.ora is damaged or incomplete: the mask"):
        load_ora(path)


def _set_declared_size(data: bytes, name: str, size: int) -> bytes:
    """The zip `data` with the uncompressed size the central directory declares for `name` changed
    (what a zip bomb does: the data inflates to far more than the file holds)."""
    import struct

    data = bytearray(data)
    entry = data.find(b"PK\x01\x02" + data[data.find(b"PK\x01\x02") + 4:][:0])
    while entry != -1:
        name_len = struct.unpack_from("<H", data, entry + 28)[0]
        if data[entry + 46:entry + 46 + name_len] == name.encode():
            struct.pack_into("<I", data, entry + 24, size)
            return bytes(data)
        entry = data.find(b"PK\x01\x02", entry + 4)
    raise AssertionError(name)


def test_a_huge_part_is_refused_without_being_read(qapp, tmp_path, monkeypatch):
    png = _png_of_size(4, 4)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), b"image/openraster")
        zf.writestr("stack.xml", _layers_xml(4, 4, [{"name": "Ink", "src": "data/ink.png"}]))
        zf.writestr("data/ink.png", png, compress_type=zipfile.ZIP_DEFLATED)
    path = tmp_path / "bomb.ora"
    path.write_bytes(_set_declared_size(buffer.getvalue(), "data/ink.png", 3 << 30))  # 3 GiB

    asked = []
    real_read = zipfile.ZipExtFile.read

    def read(self, n=-1):
        asked.append(n)
        return real_read(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    with pytest.raises(BadInput) as caught:
        load_ora(path)
    assert "bomb.ora cannot be opened safely" in caught.value.message
    assert "unreasonably large" in caught.value.message
    assert -1 not in asked and all(n is not None and n < 1 << 27 for n in asked)


def test_a_layer_list_over_its_size_is_refused(qapp, tmp_path):
    path = tmp_path / "long.ora"
    comment = "<!-- " + "x" * (17 << 20) + " -->"
    _write_foreign(path, _layers_xml(4, 4, []).replace("<stack>", "<stack>" + comment), {})
    with pytest.raises(BadInput, match="long.ora cannot be opened safely: the layer list"):
        load_ora(path)


def test_two_thousand_nested_stacks_open(qapp, tmp_path):
    depth = 2000
    stack = "".join(f'<stack name="g{i}" x="1">' for i in range(depth))
    stack += '<layer name="Deep" src="data/a.png" x="1" y="2"/>' + "</stack>" * depth
    path = tmp_path / "deep.ora"
    _write_foreign(path, f'<image w="8" h="8"><stack>{stack}</stack></image>',
                   {"data/a.png": _png_bytes(np.full((2, 2, 4), 200, np.uint8))})
    doc, _ = load_ora(path)
    (layer,) = doc.layers
    assert (layer.x, layer.y) == (depth + 1, 2)
    assert layer.name.startswith("g0 / g1 / ") and len(layer.name) <= 500


@pytest.mark.parametrize("offset", ["1e300", "-1e300", "nan", "inf", "1e9", "99999999999999999999", "12px", ""])
def test_impossible_offsets_are_refused(qapp, tmp_path, offset):
    path = tmp_path / "far.ora"
    _write_foreign(path, _layers_xml(8, 8, [{"name": "Ink", "src": "data/a.png", "x": offset}]),
                   {"data/a.png": _png_bytes(np.zeros((2, 2, 4), np.uint8))})
    with pytest.raises(BadInput) as caught:
        load_ora(path)
    message = caught.value.message
    assert message.startswith("far.ora is damaged") and "“Ink”" in message and "\n" not in message


def test_whole_offsets_written_as_decimals_are_read(qapp, tmp_path):
    path = tmp_path / "decimal.ora"
    _write_foreign(path, _layers_xml(8, 8, [{"name": "Ink", "src": "data/a.png", "x": "3.0", "y": " -2 "}]),
                   {"data/a.png": _png_bytes(np.zeros((2, 2, 4), np.uint8))})
    (layer,) = load_ora(path)[0].layers
    assert (layer.x, layer.y) == (3, -2)


def test_a_layer_far_beyond_the_canvas_is_refused(qapp, tmp_path, no_decoding):
    path = tmp_path / "away.ora"
    _write_foreign(path, _layers_xml(64, 64, [{"name": "Lost", "src": "data/a.png", "x": "1000000"}]),
                   {"data/a.png": _png_of_size(8, 8)})
    with pytest.raises(BadInput, match="away.ora cannot be opened safely: the layer “Lost”.*reaches far beyond"):
        load_ora(path)


def test_a_layer_kept_past_a_cropped_canvas_still_opens(qapp, tmp_path):
    # Quickbrush keeps the pixels a smaller canvas crops: a 3000 px layer on a 100 px canvas.
    doc = Document(100, 100)
    doc.layers.append(Layer("Wide", np.full((10, 3000, 4), 9, np.uint8), x=-1450, y=0))
    save_ora(tmp_path / "cropped.ora", doc)
    (layer,) = load_ora(tmp_path / "cropped.ora")[0].layers
    assert (layer.x, layer.width) == (-1450, 3000)


XML_ATTACKS = {
    "doctype": '<!DOCTYPE image [<!ENTITY n "Ink">]><image w="4" h="4"><stack>'
               '<layer name="&n;" src="data/a.png"/></stack></image>',
    "billion laughs": '<!DOCTYPE lolz [<!ENTITY lol "lol">'
                      + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
                      + ']><image w="4" h="4"><stack><layer name="&lol9;" src="data/a.png"/></stack></image>',
    "external entity": '<!DOCTYPE image [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                       '<image w="4" h="4"><stack><layer name="&x;" src="data/a.png"/></stack></image>',
}


@pytest.mark.parametrize("kind", sorted(XML_ATTACKS))
def test_xml_with_a_doctype_or_entities_is_refused(qapp, tmp_path, kind):
    path = tmp_path / "entities.ora"
    _write_foreign(path, XML_ATTACKS[kind], {"data/a.png": _png_bytes(np.zeros((2, 2, 4), np.uint8))})
    with pytest.raises(BadInput) as caught:
        load_ora(path)
    assert caught.value.message.startswith("entities.ora cannot be opened safely")
    assert "DOCTYPE" in caught.value.message


@pytest.mark.parametrize("src", ["../../x.png", "data/../../x.png", "/../x.png", "..\\x.png"])
def test_parts_outside_the_document_are_refused(qapp, tmp_path, src):
    path = tmp_path / "climb.ora"
    png = _png_bytes(np.zeros((2, 2, 4), np.uint8))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _write_foreign(path, _layers_xml(4, 4, [{"name": "Ink", "src": src}]), {src: png, "x.png": png})
    with pytest.raises(BadInput, match="climb.ora is damaged: the image of the layer “Ink” points outside"):
        load_ora(path)


def test_a_part_named_twice_is_refused(qapp, tmp_path):
    import warnings
    path = tmp_path / "twice.ora"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is asked to write
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("mimetype", b"image/openraster")
            zf.writestr("stack.xml", _layers_xml(4, 4, [{"name": "Ink", "src": "data/a.png"}]))
            zf.writestr("data/a.png", _png_bytes(np.zeros((2, 2, 4), np.uint8)))
            zf.writestr("./data/a.png", _png_bytes(np.full((2, 2, 4), 255, np.uint8)))
    with pytest.raises(BadInput, match="twice.ora is damaged: it holds 2 parts named data/a.png"):
        load_ora(path)


def _with_json(doc, history, tmp_path, name, change):
    import json

    def rewrite(entry, raw):
        if entry != name:
            return raw
        value = change(json.loads(raw))
        return value if isinstance(value, bytes) else json.dumps(value).encode()

    path = tmp_path / "settings.ora"
    path.write_bytes(_rewrite(_valid_bytes(doc, history, tmp_path), rewrite))
    return path


def json_nested(depth: int):
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


BAD_JSON = {
    "huge selection": ("quickbrush/document.json", lambda d: {**d, "selection": [0, 0, 1e400, 5]}),
    "selection of text": ("quickbrush/document.json", lambda d: {**d, "selection": "abcd"}),
    "inverted selection": ("quickbrush/document.json", lambda d: {**d, "selection": [10, 10, 0, 0]}),
    "mask as a number": ("quickbrush/document.json", lambda d: {**d, "mask": 5}),
    "mask outside": ("quickbrush/document.json", lambda d: {**d, "mask": "../mask.png"}),
    "not an object": ("quickbrush/document.json", lambda d: [1, 2, 3]),
    "deep nesting": ("quickbrush/history.json", lambda d: b"[" * 100_000 + b"]" * 100_000),
    "deep model info": ("quickbrush/history.json", lambda d: {**d, "entries": [
        {**d["entries"][0], "model_info": json_nested(900)}]}),
    "NaN": ("quickbrush/history.json", lambda d: b'{"format": NaN, "entries": []}'),
    "huge box": ("quickbrush/history.json",
                 lambda d: {**d, "entries": [{**d["entries"][0], "box": [0, 0, 1e400, 1]}]}),
    "box of three": ("quickbrush/history.json",
                     lambda d: {**d, "entries": [{**d["entries"][0], "box": [0, 0, 1]}]}),
    "entries not a list": ("quickbrush/history.json", lambda d: {**d, "entries": {"a": 1}}),
    "recipe of nonsense": ("quickbrush/history.json",
                           lambda d: {**d, "entries": [{**d["entries"][0], "recipe": {"kind": [], "seed": {}}}]}),
    "image as a list": ("quickbrush/history.json",
                        lambda d: {**d, "entries": [{**d["entries"][0], "image": ["a"]}]}),
    "inputs as a list": ("quickbrush/history.json",
                         lambda d: {**d, "entries": [{**d["entries"][0], "inputs": ["a"]}]}),
}


@pytest.mark.parametrize("kind", sorted(BAD_JSON))
def test_wrong_json_is_bad_input(doc, history, tmp_path, kind):
    name, change = BAD_JSON[kind]
    path = _with_json(doc, history, tmp_path, name, change)
    with pytest.raises(BadInput) as caught:
        load_ora(path)
    assert "settings.ora" in caught.value.message and "\n" not in caught.value.message


def test_history_values_the_panel_cannot_show_are_dropped(doc, history, tmp_path):
    def change(data):
        first = data["entries"][0]
        first.update(created=1e300, id={"a": 1}, timings={"total": "slow", "denoise": 1.5})
        return data

    path = _with_json(doc, history, tmp_path, "quickbrush/history.json", change)
    entries = load_ora(path)[1]
    assert entries[0]["created"] is None
    assert entries[0]["id"] == 0
    assert entries[0]["timings"] == {"denoise": 1.5}


def test_targets_and_applied_order_round_trip(doc, history, tmp_path):
    history[0]["target"] = {"box": [0, 0, 64, 48], "layer": 1, "composite": "replace", "fit": "stretch"}
    history[0]["applied"] = 0
    save_ora(tmp_path / "t.ora", doc, history)
    entries = load_ora(tmp_path / "t.ora")[1]
    assert entries[0]["target"] == history[0]["target"] and entries[0]["applied"] == 0
    assert entries[1]["target"] is None and entries[1]["applied"] is None


# --------------------------------------------------------------------------- saving off the GUI thread


def test_prepare_save_only_copies_and_the_thread_does_the_work(doc, history, tmp_path, monkeypatch):
    import threading

    from editor import document as document_module

    calls: list[tuple[str, str]] = []

    def spy(owner, name):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            calls.append((name, threading.current_thread().name))
            return real(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapper)

    spy(Document, "_composite_band")
    spy(Document, "composite")
    if hasattr(ora, "composite_band"):
        spy(ora, "composite_band")
    spy(Image.Image, "save")
    spy(Image.Image, "thumbnail")

    prepared = ora.prepare_save(tmp_path / "threaded.ora", doc, history)
    assert calls == [], f"the GUI thread composited or encoded: {calls}"

    worker = threading.Thread(target=ora.write_prepared, args=(prepared,), name="quickbrush-save")
    worker.start()
    worker.join()
    names = {name for name, _thread in calls}
    assert {"save", "thumbnail"} <= names and names & {"composite_band", "_composite_band"}
    assert {thread for _name, thread in calls} == {"quickbrush-save"}
    assert document_module.composite_band  # the Document and the save share it


@pytest.mark.parametrize("opaque", [False, True])
def test_merged_image_is_the_documents_composite(doc, tmp_path, opaque):
    if opaque:
        doc.layers[0].pixels[..., 3] = 255
    save_ora(tmp_path / "merged.ora", doc)
    want = doc.composite()
    with zipfile.ZipFile(tmp_path / "merged.ora") as zf, Image.open(io.BytesIO(zf.read("mergedimage.png"))) as merged:
        assert merged.mode == want.mode == ("RGB" if opaque else "RGBA")
        assert merged.tobytes() == want.tobytes()


def test_the_file_holds_the_document_as_it_was_when_prepared(doc, history, tmp_path):
    before_layers = [(l.name, l.pixels.copy(), l.x, l.y, l.visible, l.opacity) for l in doc.layers]
    before_mask = doc.mask.copy()
    before_merged = doc.composite()
    prepared = ora.prepare_save(tmp_path / "snap.ora", doc, history)

    # The designer goes on working while the save runs.
    doc.layers[0].pixels[:] = 0
    doc.layers[1].opacity = 1.0
    doc.layers[1].name = "Renamed"
    doc.layers.append(Layer("New", np.zeros((4, 4, 4), np.uint8)))
    doc.mask[:] = 255
    doc.set_selection((0, 0, 5, 5))
    history.clear()

    ora.write_prepared(prepared)
    loaded, entries = load_ora(tmp_path / "snap.ora")
    assert [(l.name, l.x, l.y, l.visible, l.opacity) for l in loaded.layers] == \
           [(n, x, y, v, o) for n, _p, x, y, v, o in before_layers]
    for got, (_n, pixels, *_rest) in zip(loaded.layers, before_layers):
        assert np.array_equal(got.pixels, pixels)
    assert np.array_equal(loaded.mask, before_mask)
    assert loaded.selection_box() == (-8, 4, 50, 40)
    assert len(entries) == 2
    with zipfile.ZipFile(tmp_path / "snap.ora") as zf, Image.open(io.BytesIO(zf.read("mergedimage.png"))) as merged:
        assert merged.tobytes() == before_merged.tobytes()


# --------------------------------------------------------------------------- a save killed outright

_KILLED_SAVE = """
import os, sys, time
import numpy as np
from editor import ora
from editor.document import Document, Layer

doc = Document(512, 512)
doc.layers.append(Layer("Noise", np.random.default_rng(0).integers(0, 256, (512, 512, 4), dtype=np.uint8)))
real, calls = ora._save_png, []

def stalls(image, out, pnginfo=None):
    real(image, out, pnginfo)
    calls.append(1)
    if len(calls) == 2:  # the layer and the thumbnail are in the temp file, the rest is not
        out.flush()
        print("writing", flush=True)
        time.sleep(120)

ora._save_png = stalls
ora.save_ora(sys.argv[1], doc)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_save_killed_midway_keeps_the_old_file_and_leaves_nothing_after_the_next(doc, tmp_path):
    import signal
    import subprocess
    import sys

    from watchdog import watchdog

    path = tmp_path / "work.ora"
    save_ora(path, doc)
    before = path.read_bytes()

    child = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(path)], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    try:
        with watchdog("the saving process reporting", 60):
            assert child.stdout.readline().strip() == "writing"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()

    assert path.read_bytes() == before
    assert len(_files(tmp_path)) == 2  # the file and the killed save's temp
    loaded, _ = load_ora(path)
    assert np.array_equal(loaded.layers[0].pixels, doc.layers[0].pixels)

    doc.clear_mask()
    save_ora(path, doc)
    assert _files(tmp_path) == ["work.ora"]
    assert not load_ora(path)[0].mask.any()


# --------------------------------------------------------------------------- fuzzing the loader
# Whatever the bytes, load_ora gives a Document or raises BadInput: never another exception, never
# a MemoryError or RecursionError. About 30 s in all on a laptop's CPU.

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                       HealthCheck.too_slow, HealthCheck.data_too_large])


def _loads_or_refuses(path) -> None:
    try:
        doc, history = load_ora(path)
    except BadInput as error:
        assert error.message and "\n" not in error.message
        assert "Traceback" not in error.message
    else:
        assert isinstance(doc, Document) and isinstance(history, list)


@pytest.fixture(scope="module")
def small_ora(tmp_path_factory, qapp) -> bytes:
    """A small real document with everything in it: layers, mask, selection, history, inputs."""
    rng = np.random.default_rng(5)
    doc = Document(16, 12)
    doc.layers.append(Layer("Paper", _rgba(rng, 12, 16)))
    doc.layers.append(Layer("Ink", _rgba(rng, 5, 6), x=-2, y=3, opacity=0.5))
    doc.mask[2:6, 3:9] = 255
    doc.set_selection((1, 1, 10, 8))
    inpaint = Inpaint(prompt="hat", seed=1, steps=2, image=doc.composite("RGB"), mask=doc.mask_image())
    entries = [{"id": "r1", "created": 1.0, "box": (0, 0, 16, 12), "job": inpaint,
                "image": Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), "RGB")}]
    path = tmp_path_factory.mktemp("fuzz") / "small.ora"
    save_ora(path, doc, entries)
    return path.read_bytes()


def _mutate(data: st.DataObject, raw: bytearray, positions: st.SearchStrategy[int]) -> bytearray:
    for _ in range(data.draw(st.integers(1, 6), label="mutations")):
        kind = data.draw(st.sampled_from(["set", "delete", "insert", "truncate"]), label="kind")
        at = data.draw(positions, label="at") % max(1, len(raw))
        if kind == "set" and raw:
            raw[at] = data.draw(st.integers(0, 255), label="byte")
        elif kind == "delete" and raw:
            del raw[at:at + data.draw(st.integers(1, 64), label="length")]
        elif kind == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=64), label="inserted")
        elif kind == "truncate":
            del raw[at:]
    return raw


@settings(_FUZZ, max_examples=500)
@given(data=st.data())
def test_fuzz_mutated_bytes_of_a_real_document(small_ora, tmp_path, data):
    if data.draw(st.booleans(), label="inside a part"):
        # A part's own bytes changed and the zip rebuilt around them, CRCs right: what the
        # parsers of stack.xml, the JSON files and the PNGs see.
        with zipfile.ZipFile(io.BytesIO(small_ora)) as zf:
            names = zf.namelist()
        chosen = data.draw(st.sampled_from(names), label="part")
        def change(name, content):
            if name != chosen:
                return content
            return bytes(_mutate(data, bytearray(content), st.integers(0, max(0, len(content) - 1))))
        raw = _rewrite(small_ora, change)
    else:
        # The zip's own structures: headers, the central directory, the start of parts.
        central = small_ora.rfind(b"PK\x01\x02")
        positions = st.one_of(st.integers(0, len(small_ora) - 1),
                              st.integers(max(0, central - 300), len(small_ora) - 1),
                              st.integers(0, min(400, len(small_ora) - 1)))
        raw = bytes(_mutate(data, bytearray(small_ora), positions))
    path = tmp_path / "mutated.ora"
    path.write_bytes(raw)
    _loads_or_refuses(path)


_PNGS = {"data/a.png": _png_bytes(np.full((3, 4, 4), 90, np.uint8)),
         "data/b.png": _png_bytes(np.full((6, 2, 3), 30, np.uint8))}
_NUMBERS = st.one_of(st.integers(-10 ** 12, 10 ** 12).map(str),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr),
                     st.sampled_from(["", " 3 ", "1e300", "-0", "0x10", "1_0", "٣", "12.5", "nan"]))
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_ATTRIBUTE = st.one_of(
    st.tuples(st.sampled_from(["x", "y", "w", "h", "opacity"]), _NUMBERS),
    st.tuples(st.just("src"), st.one_of(st.sampled_from(sorted(_PNGS) + ["../data/a.png", "./data/a.png",
                                                                          "/data/b.png", "data\\a.png",
                                                                          "mimetype", "stack.xml", ""]), _TEXT)),
    st.tuples(st.sampled_from(["name", "visibility", "selected", "composite-op"]),
              st.one_of(_TEXT, st.sampled_from(["hidden", "visible", "true"]))),
)


def _element(tag, attrs, children=()):
    element = ET.Element(tag, dict(attrs))
    element.extend(children)
    return element


_ELEMENTS = st.recursive(
    st.builds(_element, st.sampled_from(["layer", "layer", "text", "filter"]), st.lists(_ATTRIBUTE, max_size=6)),
    lambda children: st.builds(_element, st.sampled_from(["stack", "stack", "layer"]),
                               st.lists(_ATTRIBUTE, max_size=6), st.lists(children, max_size=5)),
    max_leaves=25,
)


def _clean_xml_text(text: str) -> str:
    # XML 1.0 cannot carry most control characters at all; ElementTree would write them anyway.
    return "".join(c for c in text if c in "\t\n\r" or ord(c) >= 0x20 and c not in "\ufffe\uffff")


# The canvas's own size stays small (a legal 300-megapixel canvas would only make the run slow).
_CANVAS = st.lists(st.tuples(st.sampled_from(["w", "h"]),
                             st.one_of(st.integers(-3, 40).map(str),
                                       st.sampled_from(["", "1e300", "nan", "-inf", "8.0", "9" * 30, "0x8"]))),
                   max_size=2)


@settings(_FUZZ, max_examples=250)
@given(stack=_ELEMENTS, size=_CANVAS, nest=st.integers(0, 3))
def test_fuzz_random_layer_lists(qapp, tmp_path, stack, size, nest):
    root = _element("image", [("w", "8"), ("h", "8")] + size)
    holder = root
    for _ in range(nest):  # a few wrapping stacks around the random tree
        holder = ET.SubElement(holder, "stack")
    holder.append(stack if stack.tag == "stack" else _element("stack", [], [stack]))
    for element in root.iter():
        for key, value in list(element.attrib.items()):
            element.attrib[key] = _clean_xml_text(value)
    path = tmp_path / "random.ora"
    _write_foreign(path, ET.tostring(root, encoding="unicode"), _PNGS)
    _loads_or_refuses(path)


_MEMBER_NAMES = st.one_of(
    st.sampled_from(["data/a.png", "./data/a.png", "data//a.png", "/data/a.png", "../data/a.png", "data\\a.png",
                     "stack.xml", "mimetype", "quickbrush/document.json", "quickbrush/history.json",
                     "quickbrush/mask.png", "data/", ".."]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=30),
)
_MEMBER_DATA = st.one_of(
    st.sampled_from(list(_PNGS.values()) + [b"", b"{}", b'{"format": 1, "mask": "data/a.png"}',
                                             b'{"format": 1, "entries": [{"recipe": {}}]}', b"image/openraster"]),
    st.binary(max_size=300),
    st.integers(0, 200_000).map(lambda n: b"\0" * n),
)


@settings(_FUZZ, max_examples=300)
@given(members=st.lists(st.tuples(_MEMBER_NAMES, _MEMBER_DATA, st.booleans()), max_size=8),
       srcs=st.lists(_MEMBER_NAMES, min_size=1, max_size=4))
def test_fuzz_random_zip_members(qapp, tmp_path, members, srcs):
    import warnings

    layers = "".join(f'<layer name="L{i}" src="{_xml_attr(src)}"/>' for i, src in enumerate(srcs))
    path = tmp_path / "members.ora"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names, on purpose
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("mimetype", b"image/openraster")
            zf.writestr("stack.xml", f'<image w="6" h="6"><stack>{layers}</stack></image>')
            for name, data, deflate in members:
                zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED)
    _loads_or_refuses(path)


def _xml_attr(text: str) -> str:
    from xml.sax.saxutils import quoteattr

    return quoteattr(_clean_xml_text(text))[1:-1]
