"""A corpus of bad, hostile and borderline inputs, each with the outcome a designer expects.

    python tests/bad_inputs.py OUTDIR      # writes every case's file under OUTDIR

One function per family (`images`, `masks`, `documents`, `recipes`, `models`, `jobs`) returns its
`Case`s. A case names its file (relative to the corpus folder) and how to write it, the entry
point it goes through (`route`), and what should happen there: `Works` (with a check of what the
result looks like) or `Fails` (the error kind, words the one-line message must hold, and whether
it must name the file). `tests/test_bad_input_corpus.py` runs every case through its entry
point, through the editor's window (`gui`) for file cases, and a few through the CLI (`cli`).

Files are made with the libraries that read them (Pillow, zipfile, safetensors, torch, json),
and with struct and zlib where a file must lie about itself (a PNG header declaring 100000 x
100000 pixels, a 3 GiB zip entry in 3 MB). Nothing is downloaded.

Expectations follow issue 16 ("Nothing lost, nothing wrong") as a designer reads it: an image
opens with its tones and its first frame, or a file is refused with one line that names it and
says what is wrong ("too large", "missing", "newer Quickbrush"); a recipe's wrong numbers and
types are refused by name ("guidance", "steps"); a model that is not there says so, and a
pickle is never unpickled. HSV is the one Pillow mode no format stores, so it has no case.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from inference.jobs import BadInput, JobError, ModelMissing

# --------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Works:
    """The input is accepted. `check(result)` asserts what the designer sees (route-specific
    result: a PIL image, a (Document, history) pair, a Job or None, a Result)."""

    what: str
    check: Callable[[Any], None] | None = None


@dataclass(frozen=True)
class Fails:
    """The input is refused with `kind` and a designer-readable one-line message.

    needles: words the message holds (case-insensitive), e.g. "too large", "guidance".
    names_file: the message names the case's file or folder.
    absent: words the message (and its details) must not hold ("network", a secret's content).
    after: called with the case's path once every route ran (e.g. "the pickle ran no code").
    before_work: for jobs that reach the engine, no denoising step may have run.
    """

    kind: type[JobError]
    needles: tuple[str, ...] = ()
    names_file: bool = True
    absent: tuple[str, ...] = ()
    after: Callable[[Path], None] | None = None
    before_work: bool = True


Outcome = Works | Fails


@dataclass(frozen=True)
class Case:
    """One input. `path` is relative to the corpus folder (None for job parameters); `make`
    writes it there. `gui` is what `MainWindow.open_path` should do with the file (None: no
    file to open); `cli` what `quickbrush-cli rerun FILE [cli_args]` should do (None: not run)."""

    id: str
    route: str  # "image" | "mask" | "document" | "recipe" | "model" | "job"
    expect: Outcome
    about: str
    path: Path | None = None
    make: Callable[[Path], None] | None = None
    gui: Outcome | None = None
    cli: Fails | None = None
    cli_args: tuple[str, ...] = ()
    # route "job": the job's to_dict()-style parameters; route "model": {"as": "model" | "lora"}
    data: dict[str, Any] = field(default_factory=dict)
    # images the job or recipe needs, by size: {"image": (w, h), "mask": (w, h[, box or None])}
    images: dict[str, tuple] = field(default_factory=dict)
    engine: bool = False  # route "job": also run it on the built-in model through a Worker


# --------------------------------------------------------------------------- messages

# A Python exception class named in a message ("ValueError", "UnpicklingError", "[Errno 2]").
_EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:Error|Exception|Warning)\b"
                             r"|\b(?:BadZipFile|StopIteration|KeyboardInterrupt|SystemExit|Errno)\b")
# What repr() leaves behind: objects, paths, dicts, escaped bytes.
_REPR_NOISE = ("<PIL.", "<class ", " object at 0x", "PosixPath(", "WindowsPath(", "{'", "\\x", "b'\\")
MAX_MESSAGE = 400  # a message quoting a 1 MB input back is no message


def unreadable(message: Any) -> list[str]:
    """What keeps `message` from being one line a designer understands (empty: nothing does)."""
    if not isinstance(message, str) or not message.strip():
        return ["the message is empty"]
    problems = []
    if "\n" in message.strip() or "\r" in message:
        problems.append("it is more than one line")
    if "Traceback" in message:
        problems.append("it holds a traceback")
    named = _EXCEPTION_NAME.findall(message)
    if named:
        problems.append(f"it names Python exceptions ({', '.join(sorted(set(named)))})")
    if re.search(r"\bNone\b", message):
        problems.append('it says "None"')
    noise = [bit for bit in _REPR_NOISE if bit in message]
    if noise:
        problems.append(f"it holds repr noise ({', '.join(noise)})")
    if len(message) > MAX_MESSAGE:
        problems.append(f"it is {len(message)} characters long")
    return problems


def designer_readable(message: Any) -> bool:
    """One line, not empty, no traceback, no exception class names, no "None", no repr noise."""
    return not unreadable(message)


# --------------------------------------------------------------------------- checks


def _close(got: Any, want: Any, tol: int) -> bool:
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    return len(got) >= len(want) and all(abs(int(g) - int(w)) <= tol for g, w in zip(got, want))


def image_is(size: tuple[int, int] | None = None, modes: tuple[str, ...] = ("RGB", "RGBA"),
             pixels: dict[tuple[int, int], tuple] | None = None, tol: int = 0,
             grey: tuple[int, int] | None = None,
             alpha: dict[tuple[int, int], int] | None = None) -> Callable[[Any], None]:
    """An opened image: its size, one of `modes`, and pixel values ((x, y) -> value in the image's
    own mode, within `tol`). `grey=(x, y)`: that pixel is neutral grey (channels within 12).
    `alpha`: (x, y) -> opacity, for pixels whose colour does not matter (fully transparent)."""

    def check(image: Image.Image) -> None:
        assert isinstance(image, Image.Image), f"expected an image, got {type(image).__name__}"
        if size is not None:
            assert image.size == size, f"size {image.size}, expected {size}"
        assert image.mode in modes, f"mode {image.mode}, expected one of {modes}"
        for xy, want in (pixels or {}).items():
            got = image.getpixel(xy)
            assert _close(got, want, tol), f"pixel {xy} is {got}, expected {want} (±{tol})"
        for xy, want in (alpha or {}).items():
            got = image.convert("RGBA").getpixel(xy)[3]
            assert got == want, f"pixel {xy} has opacity {got}, expected {want}"
        if grey is not None:
            r, g, b = image.convert("RGB").getpixel(grey)
            assert max(r, g, b) - min(r, g, b) <= 12, f"pixel {grey} is ({r}, {g}, {b}), not grey"

    return check


def document_is(size: tuple[int, int], layers: int | None = None,
                layer_xy: tuple[int, int] | None = None,
                pixel: tuple[tuple[int, int], tuple] | None = None) -> Callable[[Any], None]:
    """A loaded (Document, history): canvas size, layer count, the top layer's offset, and one
    composite pixel ((x, y), RGBA)."""

    def check(loaded: Any) -> None:
        document, _history = loaded
        assert tuple(document.size) == size, f"canvas {document.size}, expected {size}"
        if layers is not None:
            assert len(document.layers) == layers, f"{len(document.layers)} layers, expected {layers}"
        if layer_xy is not None:
            top = document.layers[-1]
            assert (top.x, top.y) == layer_xy, f"layer at ({top.x}, {top.y}), expected {layer_xy}"
        if pixel is not None:
            (x, y), want = pixel
            got = tuple(int(v) for v in document.composite_array()[y, x])
            assert _close(got, want, 0), f"composite pixel ({x}, {y}) is {got}, expected {want}"

    return check


def job_is(**fields: Any) -> Callable[[Any], None]:
    """A Job rebuilt from a recipe (or built from parameters) with these field values; a str
    value ending in "..." only has to start the field; "mask_options.grow" reaches into a part."""

    def check(job: Any) -> None:
        assert job is not None, "no job came back"
        for name, want in fields.items():
            got = job
            for part in name.split("."):
                got = getattr(got, part)
            if isinstance(want, str) and want.endswith("..."):
                assert isinstance(got, str) and got.startswith(want[:-3]), f"{name} is {str(got)[:80]!r}"
            else:
                assert got == want, f"{name} is {got!r}, expected {want!r}"

    return check


def is_none(result: Any) -> None:
    assert result is None, f"expected no recipe, got {str(result)[:200]}"


def result_is(size: tuple[int, int], unchanged: tuple[int, int] | None = None,
              source: tuple | None = None) -> Callable[[Any], None]:
    """A Result that worked: its image's size, and a pixel far from the mask kept as `source`."""

    def check(result: Any) -> None:
        assert result.ok, f"the job failed: {getattr(result.error, 'message', result.error)}"
        assert result.image.size == size, f"result is {result.image.size}, expected {size}"
        if unchanged is not None:
            got = result.image.convert("RGB").getpixel(unchanged)
            assert got == source, f"pixel {unchanged} outside the mask became {got}, was {source}"

    return check


def _mask_check(size: tuple[int, int], inside: tuple[int, int], outside: tuple[int, int],
                inside_value: int = 255, tol: int = 0) -> Callable[[Any], None]:
    return image_is(size, modes=("L",), pixels={inside: inside_value, outside: 0}, tol=tol)


def never_unpickled(path: Path) -> None:
    marker = path.parent / "UNPICKLED"
    assert not marker.exists(), "the .ckpt's pickle ran code while being checked"


# --------------------------------------------------------------------------- writers


def _save(image: Image.Image, fmt: str, **params: Any) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        image.save(path, fmt, **params)

    return make


def _write(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(data() if callable(data) else data)

    return make


def _halves(mode: str, size: tuple[int, int], left: Any, right: Any) -> Image.Image:
    """An image whose left half is `left` and right half `right`: a tone or colour on each side."""
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def _noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def _encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_raw(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None,
            chunks: tuple[bytes, ...] = ()) -> bytes:
    """A PNG assembled chunk by chunk, so the header can say anything (sizes Pillow would never
    write, 16-bit RGB). `rows` is the filtered scanline data (None: no IDAT at all)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    out = PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + b"".join(chunks)
    if rows is not None:
        out += png_chunk(b"IDAT", zlib.compress(rows, 9))
    return out + png_chunk(b"IEND", b"")


def _rows16(width: int, height: int, pixel: bytes) -> bytes:
    """Scanlines (filter 0) of a 16-bit image: each pixel big-endian, `pixel` its bytes."""
    return (b"\x00" + pixel * width) * height


def _deflate_repeated(prefix: bytes, chunk: bytes, count: int, suffix: bytes,
                      crc: int | None = None) -> tuple[bytes, int, int]:
    """Raw deflate of prefix + chunk * count + suffix, with its CRC-32 and size, in a few ms.

    Why not zlib.compress: 3 GiB takes about 9 s. After a full flush deflate keeps no history, so
    the block one chunk compresses to can be repeated as is (zip bombs are built this way). Pass
    `crc` when it is known: computing it still reads every byte."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.compress(suffix) + compressor.flush(zlib.Z_FINISH)
    if crc is None:
        crc = zlib.crc32(prefix)
        for _ in range(count):
            crc = zlib.crc32(chunk, crc)
        crc = zlib.crc32(suffix, crc)
    return head + block * count + tail, crc & 0xFFFFFFFF, len(prefix) + len(chunk) * count + len(suffix)


# The zip bomb's layer entry: a sound 64 x 48 PNG, then 3 GiB of zero bytes. Its CRC-32 was computed
# once with zlib.crc32 (reading 3 GiB takes seconds), so a reader that inflates the whole entry finds
# a sound zip, only a huge one. BOMB_PREFIX_CRC guards the constant: change the PNG, recompute both.
BOMB_PREFIX_CRC = 0x9883F422
BOMB_CRC = 0xA90ABAF5


def _zlib_repeated(chunk: bytes, count: int) -> bytes:
    """The same as a zlib stream (header, deflate, Adler-32), as a PNG's IDAT holds it."""
    payload, _crc, _size = _deflate_repeated(b"", chunk, count, b"")
    adler = 1
    for _ in range(count):
        adler = zlib.adler32(chunk, adler)
    return b"\x78\xda" + payload + struct.pack(">I", adler & 0xFFFFFFFF)


def raw_zip(entries: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip from already-compressed entries: (name, payload, method, crc, uncompressed size).

    Why by hand: zipfile can only compress what it is given, and a bomb's point is a payload
    whose uncompressed size nobody should hold in memory. Sizes stay under 4 GiB (no zip64)."""
    out, central = bytearray(), bytearray()
    for name, payload, method, crc, size in entries:
        encoded = name.encode("utf-8")
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(payload), size,
                           len(encoded), 0) + encoded + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(payload),
                               size, len(encoded), 0, 0, 0, 0, 0o644 << 16, offset) + encoded
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(out), 0)
    return bytes(out + central + end)


def _stored(name: str, data: bytes) -> tuple[str, bytes, int, int, int]:
    return name, data, zipfile.ZIP_STORED, zlib.crc32(data) & 0xFFFFFFFF, len(data)


# --------------------------------------------------------------------------- images


def _image_case(name: str, make: Callable[[Path], None], expect: Outcome, about: str) -> Case:
    return Case(f"image/{name}", "image", expect, about, Path("images") / name, make, gui=expect)


def images() -> list[Case]:
    """Images through `inference.images.open_image`: every Pillow mode a format stores, animation,
    damage, lies in the header, absurd shapes, wrong extensions."""
    size = (40, 30)
    right = (30, 10)  # a pixel in the right half
    left = (5, 10)
    cases: list[Case] = []

    def mode(name: str, image: Image.Image, fmt: str, expect: Outcome, about: str, **params: Any) -> None:
        cases.append(_image_case(name, _save(image, fmt, **params), expect, about))

    mode("mode-1.png", _halves("1", size, 0, 1), "PNG",
         Works("black and white", image_is(size, ("RGB",), {left: (0, 0, 0), right: (255, 255, 255)})),
         "1-bit black and white")
    mode("mode-L.png", _halves("L", size, 77, 200), "PNG",
         Works("its greys", image_is(size, ("RGB",), {left: (77, 77, 77), right: (200, 200, 200)})),
         "8-bit greyscale")
    la = Image.merge("LA", (_halves("L", size, 77, 200), _halves("L", size, 128, 255)))
    mode("mode-LA.png", la, "PNG",
         Works("grey with its transparency", image_is(size, ("RGBA",), {left: (77, 77, 77, 128),
                                                                       right: (200, 200, 200, 255)})),
         "greyscale with alpha")
    palette = _halves("P", size, 0, 1)
    palette.putpalette([255, 0, 0, 0, 0, 255])
    mode("mode-P.png", palette, "PNG",
         Works("its palette colours", image_is(size, ("RGB",), {left: (255, 0, 0), right: (0, 0, 255)})),
         "palette, no transparency")
    see_through = Works("the transparent entry is transparent",
                        image_is(size, ("RGBA",), {right: (0, 0, 255, 255)}, alpha={left: 0}))
    mode("mode-P-transparent.png", palette, "PNG", see_through, "palette with a transparent entry (tRNS)",
         transparency=0)
    mode("mode-P-transparent.gif", palette, "GIF", see_through, "GIF palette with a transparent entry",
         transparency=0)
    mode("mode-RGB.png", _halves("RGB", size, (10, 120, 230), (250, 200, 0)), "PNG",
         Works("its colours", image_is(size, ("RGB",), {left: (10, 120, 230), right: (250, 200, 0)})),
         "plain RGB (control)")
    mode("mode-RGBA.png", _halves("RGBA", size, (10, 120, 230, 100), (250, 200, 0, 255)), "PNG",
         Works("colours and transparency", image_is(size, ("RGBA",), {left: (10, 120, 230, 100)})),
         "RGBA")
    mode("mode-RGBA.webp", _halves("RGBA", size, (10, 120, 230, 100), (250, 200, 0, 255)), "WEBP",
         Works("colours and transparency", image_is(size, ("RGBA",), {left: (10, 120, 230, 100)}, tol=2)),
         "lossless WebP with alpha", lossless=True)
    mode("mode-CMYK.jpg", Image.new("CMYK", size, (0, 255, 255, 0)), "JPEG",
         Works("red, as printed", image_is(size, ("RGB",), {left: (255, 0, 0)}, tol=40)),
         "CMYK JPEG", quality=95)
    mode("mode-CMYK.tif", Image.new("CMYK", size, (0, 255, 255, 0)), "TIFF",
         Works("red, as printed", image_is(size, ("RGB",), {left: (255, 0, 0)}, tol=2)), "CMYK TIFF")
    mode("mode-YCbCr.tif", Image.new("YCbCr", size, (128, 128, 128)), "TIFF",
         Works("mid grey", image_is(size, ("RGB",), {left: (128, 128, 128)}, tol=3)), "YCbCr TIFF")
    mode("mode-YCbCr.jpg", Image.new("YCbCr", size, (128, 128, 128)), "JPEG",
         Works("mid grey", image_is(size, ("RGB",), {left: (128, 128, 128)}, tol=4)), "JPEG written from YCbCr")
    # 16 bits a channel: 0x2020 and 0xC0C0 are 32 and 192 in 8 bits; the tones must survive.
    tones = {left: (32, 32, 32), right: (192, 192, 192)}
    deep = np.full((size[1], size[0]), 0x2020, np.uint16)
    deep[:, size[0] // 2:] = 0xC0C0
    mode("mode-I16.png", Image.fromarray(deep), "PNG",
         Works("its greys, not white", image_is(size, ("RGB",), tones, tol=2)), "16-bit greyscale PNG")
    mode("mode-I16.tif", Image.fromarray(deep), "TIFF",
         Works("its greys, not white", image_is(size, ("RGB",), tones, tol=2)), "16-bit greyscale TIFF (I;16)")
    mode("mode-I16B.tif", Image.fromarray(deep.astype(">u2")), "TIFF",
         Works("its greys, not white", image_is(size, ("RGB",), tones, tol=2)),
         "16-bit big-endian greyscale TIFF (I;16B)")
    mode("mode-I.tif", Image.fromarray(deep.astype(np.int32)), "TIFF",
         Works("opens as an RGB image", image_is(size, ("RGB",))), "32-bit integer greyscale")
    floats = np.full((size[1], size[0]), 0.25, np.float32)
    floats[:, size[0] // 2:] = 0.75
    mode("mode-F.tif", Image.fromarray(floats), "TIFF",
         Works("opens as an RGB image", image_is(size, ("RGB",))), "32-bit float greyscale")
    mode("mode-LAB.tif", Image.new("LAB", size, (128, 128, 128)), "TIFF",
         Works("a neutral grey", image_is(size, ("RGB",), grey=left)), "CIE L*a*b* TIFF")
    pa = palette.convert("PA")
    pa.putalpha(128)
    mode("mode-PA.tif", pa, "TIFF",
         Works("palette colours, half transparent", image_is(size, ("RGBA",), {left: (255, 0, 0, 128)})),
         "palette with alpha (PA) TIFF")
    mode("mode-RGB.bmp", Image.new("RGB", size, (10, 120, 230)), "BMP",
         Works("its colour", image_is(size, ("RGB",), {left: (10, 120, 230)})), "BMP")

    for name, depth_colour, pixel, modes, want, about in (
        ("rgb-16bit.png", 2, b"\x80\x80\x40\x40\xc0\xc0", ("RGB",), (128, 64, 192), "16-bit RGB"),
        ("rgba-16bit.png", 6, b"\x80\x80\x40\x40\xc0\xc0\x80\x80", ("RGBA",), (128, 64, 192, 128),
         "16-bit RGBA"),
        ("la-16bit.png", 4, b"\x80\x80\xff\xff", ("RGBA",), (128, 128, 128, 255), "16-bit grey with alpha"),
    ):
        data = png_raw(size[0], size[1], 16, depth_colour, _rows16(size[0], size[1], pixel))
        cases.append(_image_case(name, _write(data), Works("its tones", image_is(size, modes, {left: want},
                                                                                 tol=2)), about))

    frames = [Image.new("RGB", (24, 24), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    first_red = Works("its first frame (red)", image_is((24, 24), pixels={(12, 12): (255, 0, 0)}, tol=3))
    for name, fmt, params in (("animated.gif", "GIF", {}), ("animated.png", "PNG", {}),
                              ("animated.webp", "WEBP", {"lossless": True})):
        cases.append(_image_case(name, _save(frames[0], fmt, save_all=True, append_images=frames[1:],
                                             duration=100, loop=0, **params), first_red,
                                 f"animated {fmt}: three frames, red first"))
    pages = [Image.new("RGB", (20, 10), (255, 0, 0)), Image.new("RGB", (10, 20), (0, 0, 255))]
    cases.append(_image_case("two-pages.tif", _save(pages[0], "TIFF", save_all=True, append_images=pages[1:]),
                             Works("its first page", image_is((20, 10), pixels={(5, 5): (255, 0, 0)})),
                             "multi-page TIFF"))

    rotated = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    cases.append(_image_case("exif-rotated.jpg", _save(rotated, "JPEG", exif=exif),
                             Works("upright (30 x 40)", image_is((30, 40))), "JPEG with EXIF orientation 6"))

    png = _encoded(_noise((64, 64)), "PNG")
    jpeg = _encoded(_noise((64, 64)), "JPEG", quality=90)
    broken = Fails(BadInput)
    cases += [
        _image_case("zero-byte.png", _write(b""), broken, "an empty file"),
        _image_case("truncated.png", _write(png[: len(png) * 3 // 5]), broken, "a PNG cut at 60 %"),
        _image_case("truncated.jpg", _write(jpeg[: len(jpeg) // 2]), broken, "a JPEG cut in half"),
        _image_case("bad-crc.png", _write(png[:60] + bytes([png[60] ^ 0xFF]) + png[61:]), broken,
                    "one flipped byte in the pixel data (its checksum no longer matches)"),
        _image_case("ihdr-only.png", _write(png_raw(64, 64, 8, 2, None)), broken, "a header, no pixel data"),
        _image_case("declared-0x0.png", _write(png_raw(0, 0, 8, 2, b"\x00")), broken, "a header saying 0 x 0"),
        _image_case("declared-100000x100000.png", _write(png_raw(100_000, 100_000, 8, 2, b"\x00" * 64)),
                    Fails(BadInput, ("too large",)), "a 300-byte PNG whose header says 100000 x 100000"),
        _image_case("declared-24000x24000.png", _write(png_raw(24_000, 24_000, 8, 2, b"\x00" * 64)),
                    Fails(BadInput, ("too large",)),
                    "576 megapixels: over the limit, under twice it (where Pillow only warns)"),
        _image_case("text.png", _write(b"hello, this is not an image\n"), broken, "text with a .png name"),
        _image_case("drawing.svg", _write(b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>'),
                    broken, "an SVG (Quickbrush reads raster images)"),
        _image_case("zip.png", _write(_encoded_zip({"mimetype": b"image/openraster"})), broken,
                    "a zip with a .png name"),
        _image_case("jpeg-named.png", _write(jpeg), Works("opens: the content decides", image_is((64, 64))),
                    "a JPEG with a .png name"),
        _image_case("png-named.jpg", _write(png), Works("opens: the content decides", image_is((64, 64))),
                    "a PNG with a .jpg name"),
        _image_case("1x20000.png", _save(Image.new("RGB", (1, 20000), (9, 9, 9)), "PNG"),
                    Works("opens at 1 x 20000", image_is((1, 20000))), "absurd aspect ratio, tall"),
        _image_case("20000x1.png", _save(Image.new("RGB", (20000, 1), (9, 9, 9)), "PNG"),
                    Works("opens at 20000 x 1", image_is((20000, 1))), "absurd aspect ratio, wide"),
        _image_case("1x1.png", _save(Image.new("RGBA", (1, 1), (1, 2, 3, 4)), "PNG"),
                    Works("one pixel", image_is((1, 1), pixels={(0, 0): (1, 2, 3, 4)})), "a single pixel"),
        _image_case("a-folder.png", lambda path: path.mkdir(), broken, "a folder named like an image"),
        _image_case("does-not-exist.png", None, broken, "a path with nothing there"),
    ]
    return cases


def _encoded_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


# --------------------------------------------------------------------------- masks


def masks() -> list[Case]:
    """Masks through `inference.images.open_mask` (white: change): every way a designer paints
    one, and one of another size than its image (refused when the Inpaint job is built)."""
    size = (32, 24)
    inside, outside = (16, 12), (1, 1)

    def painted(mode: str, background: Any, ink: Any) -> Image.Image:
        image = Image.new(mode, size, background)
        image.paste(ink, (8, 6, 24, 18))
        return image

    def case(name: str, make: Callable[[Path], None] | None, expect: Outcome, about: str,
             gui: Outcome | None = None, images: dict[str, tuple] | None = None) -> Case:
        return Case(f"mask/{name}", "mask", expect, about, Path("masks") / name, make,
                    gui=gui if gui is not None else Works("opens as a picture"), images=images or {})

    painted_check = Works("white where painted", _mask_check(size, inside, outside))
    deep = np.zeros((size[1], size[0]), np.uint16)
    deep[6:18, 8:24] = 0x8080
    transparent_p = painted("P", 0, 1)
    transparent_p.putpalette([0, 0, 0, 255, 255, 255])
    return [
        case("L.png", _save(painted("L", 0, 255), "PNG"), painted_check, "white on black, greyscale"),
        case("RGB.png", _save(painted("RGB", (0, 0, 0), (255, 255, 255)), "PNG"), painted_check,
             "white on black, RGB"),
        case("1bit.png", _save(painted("1", 0, 1), "PNG"), painted_check, "1-bit"),
        case("on-transparency.png", _save(painted("RGBA", (0, 0, 0, 0), (255, 0, 0, 255)), "PNG"),
             painted_check, "red strokes on a transparent layer: the opaque part is the mask"),
        case("P-transparent.png", _save(transparent_p, "PNG", transparency=0), painted_check,
             "palette, transparent background"),
        case("16bit-grey.png", _save(Image.fromarray(deep), "PNG"),
             Works("half strength where painted", _mask_check(size, inside, outside, 128, tol=2)),
             "16-bit grey at half strength: stays half, not white"),
        case("other-size.png", _save(painted("L", 0, 255), "PNG"),
             Fails(BadInput, ("mask", "size"), names_file=False),
             "a 32 x 24 mask for a 48 x 48 image (refused when the job is built)",
             images={"image": (48, 48)}),
        case("zero-byte.png", _write(b""), Fails(BadInput), "an empty mask file", gui=Fails(BadInput)),
        case("truncated.png", _write(_encoded(painted("L", 0, 255), "PNG")[:40]), Fails(BadInput),
             "a mask file cut short", gui=Fails(BadInput)),
    ]


# --------------------------------------------------------------------------- documents (.ora)

ORA_MIMETYPE = b"image/openraster"


def _stack(layers: str, w: int = 64, h: int = 48, doctype: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}<image version="0.0.5" w="{w}" h="{h}">'
            f"<stack>{layers}</stack></image>").encode()


def _layer(src: str = "data/layer000.png", x: str = "0", y: str = "0", name: str = "Paint") -> str:
    return f'<layer name="{name}" src="{src}" x="{x}" y="{y}" opacity="1.0" visibility="visible"/>'


def _layer_png(size: tuple[int, int] = (64, 48), colour: tuple = (200, 40, 40, 255)) -> bytes:
    return _encoded(Image.new("RGBA", size, colour), "PNG")


def ora(stack_xml: bytes | None, files: dict[str, bytes] | None = None,
        mimetype: bytes | None = ORA_MIMETYPE) -> bytes:
    """An OpenRaster zip as the spec lays it out: mimetype first and stored, then stack.xml and
    the other parts (`files`: name -> bytes; a layer PNG at data/layer000.png by default)."""
    files = {"data/layer000.png": _layer_png()} if files is None else files
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        if mimetype is not None:
            zf.writestr(zipfile.ZipInfo("mimetype"), mimetype, compress_type=zipfile.ZIP_STORED)
        if stack_xml is not None:
            zf.writestr("stack.xml", stack_xml)
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def _quickbrush_files(document: dict[str, Any], extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    return {"data/layer000.png": _layer_png(), "quickbrush/document.json": json.dumps(document).encode(),
            **(extra or {})}


def _billion_laughs() -> str:
    lines = ['<!DOCTYPE image [', ' <!ENTITY lol "lol">']
    for level in range(1, 10):
        lines.append(f' <!ENTITY lol{level} "' + f"&lol{level - 1 if level > 1 else ''};" * 10 + '">')
    return "\n".join(lines).replace("&lol0;", "&lol;") + "\n]>\n"


def _with_outside_file(data: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(data)
        _save(Image.new("RGB", (64, 48), (0, 255, 0)), "PNG")(path.parent.parent / "outside.png")

    return make


def _with_secret(path: Path) -> None:
    secret = path.parent / "secret.txt"
    secret.write_text("TOP-SECRET-42")
    doctype = f'<!DOCTYPE image [<!ENTITY xxe SYSTEM "{secret.resolve().as_uri()}">]>\n'
    path.write_bytes(ora(_stack('<layer name="&xxe;" src="data/layer000.png"/>', doctype=doctype)))


def _zip_bomb(path: Path) -> None:
    """A layer image whose PNG header says 64 x 48 and whose zip entry inflates to 3 GiB, in 3 MB."""
    png = png_raw(64, 48, 8, 2, (b"\x00" * (1 + 64 * 3)) * 48)
    assert zlib.crc32(png) == BOMB_PREFIX_CRC, "the bomb's PNG changed: recompute BOMB_CRC"
    payload, crc, size = _deflate_repeated(png, bytes(1 << 20), 3072, b"", crc=BOMB_CRC)
    path.write_bytes(raw_zip([_stored("mimetype", ORA_MIMETYPE), _stored("stack.xml", _stack(_layer())),
                              ("data/layer000.png", payload, zipfile.ZIP_DEFLATED, crc, size)]))


def _size_lie(path: Path) -> None:
    """An entry whose header says 1000 bytes but whose data inflates to 256 MiB."""
    payload, crc, _size = _deflate_repeated(b"", bytes(1 << 20), 256, b"")
    path.write_bytes(raw_zip([_stored("mimetype", ORA_MIMETYPE), _stored("stack.xml", _stack(_layer())),
                              ("data/layer000.png", payload, zipfile.ZIP_DEFLATED, crc, 1000)]))


def _huge_stack_xml(path: Path) -> None:
    """A stack.xml of 100 MB (spaces between the tags), in 100 KB."""
    prefix, suffix = _stack(_layer()).split(b"<stack>")
    payload, crc, size = _deflate_repeated(prefix + b"<stack>", b" " * (1 << 20), 100, suffix)
    path.write_bytes(raw_zip([_stored("mimetype", ORA_MIMETYPE),
                              ("stack.xml", payload, zipfile.ZIP_DEFLATED, crc, size),
                              _stored("data/layer000.png", _layer_png())]))


def _forty_big_layers(path: Path) -> None:
    """40 layers naming one 8000 x 8000 PNG: 60 KB on disk, 10 GB once every layer is decoded."""
    big = png_raw(8000, 8000, 8, 0, None, (png_chunk(b"IDAT", _zlib_repeated(b"\x00" * 8001 * 80, 100)),))
    layers = "".join(_layer("data/big.png", name=f"Copy {k}") for k in range(40))
    path.write_bytes(ora(_stack(layers), {"data/big.png": big}))


def documents() -> list[Case]:
    """OpenRaster documents through `editor.ora.load_ora`: damage, zip bombs, traversal names,
    entity expansion, absurd sizes, offsets and nesting, Quickbrush's own parts broken."""
    red = ((10, 10), (200, 40, 40, 255))

    def case(name: str, make: Callable[[Path], None], expect: Outcome, about: str) -> Case:
        return Case(f"document/{name}", "document", expect, about, Path("documents") / name, make, gui=expect)

    def data(blob: bytes) -> Callable[[Path], None]:
        return _write(blob)

    nested = "".join('<stack x="1" y="0">' for _ in range(50)) + _layer(name="Deep") + "</stack>" * 50
    too_nested = "".join("<stack>" for _ in range(2000)) + _layer() + "</stack>" * 2000
    minimal = ora(_stack(_layer()))
    broken = Fails(BadInput)
    return [
        case("minimal.ora", data(minimal), Works("one red layer, 64 x 48", document_is((64, 48), 1, pixel=red)),
             "a plain OpenRaster file as Krita writes it (control)"),
        case("nested-50.ora", data(ora(_stack(nested, doctype=""), {"data/layer000.png": _layer_png((8, 8))})),
             Works("the layer, offset by its 50 groups", document_is((64, 48), 1, layer_xy=(50, 0))),
             "50 nested groups, each 1 px to the right"),
        case("nested-2000.ora", data(ora(_stack(too_nested))),
             Works("its one layer (no crash on the depth)", document_is((64, 48), 1, pixel=red)),
             "2000 nested groups (crashed with a RecursionError)"),
        case("offset-1e300.ora", data(ora(_stack(_layer(x="1e300")))), broken, 'a layer at x="1e300"'),
        case("offset-nan.ora", data(ora(_stack(_layer(x="nan")))), broken, 'a layer at x="nan"'),
        case("offset-12.0.ora", data(ora(_stack(_layer(x="12.0")))),
             Works("the layer at x = 12", document_is((64, 48), 1, layer_xy=(12, 0))),
             'x="12.0", as some writers put it'),
        case("zero-byte.ora", data(b""), broken, "an empty file"),
        case("truncated.ora", data(minimal[: len(minimal) // 2]), broken, "an .ora cut in half"),
        case("png-named.ora", data(_layer_png()), Fails(BadInput, ("OpenRaster",)), "a PNG with an .ora name"),
        case("no-stack.ora", data(ora(None)), Fails(BadInput, ("OpenRaster",)), "a zip without stack.xml"),
        case("wrong-mimetype.ora", data(ora(_stack(_layer()), mimetype=b"application/epub+zip")),
             Fails(BadInput, ("OpenRaster",)), "another zip format's mimetype"),
        case("malformed-xml.ora", data(ora(_stack(_layer())[:-20])), broken, "stack.xml cut mid-tag"),
        case("entity-expansion.ora", data(ora(_stack('<layer name="&lol9;" src="data/layer000.png"/>',
                                                     doctype=_billion_laughs()))), broken,
             "stack.xml with a billion-laughs entity (3 GB once expanded)"),
        case("external-entity.ora", _with_secret, Fails(BadInput, absent=("TOP-SECRET",)),
             "stack.xml naming a file on disk as an external entity"),
        case("traversal-entry.ora", data(ora(_stack(_layer("../../evil.png")),
                                             {"../../evil.png": _layer_png()})), broken,
             'a layer stored in the zip as "../../evil.png": a name pointing out of the document'),
        case("src-outside.ora", _with_outside_file(ora(_stack(_layer("../outside.png")), {})), broken,
             "a layer naming ../outside.png, which is on disk beside the corpus (never read), not in the zip"),
        case("zip-bomb-3gib.ora", _zip_bomb, Fails(BadInput, ("large",)),
             "a 3 MB zip whose layer entry inflates to 3 GiB"),
        case("size-lie.ora", _size_lie, broken, "an entry declaring 1000 bytes that inflates to 256 MiB"),
        case("stack-xml-100mb.ora", _huge_stack_xml, Fails(BadInput, ("large",)), "a 100 MB stack.xml"),
        case("forty-big-layers.ora", _forty_big_layers, broken,
             "40 layers naming one 8000 x 8000 PNG on a 64 x 48 canvas (10 GB decoded)"),
        case("canvas-100000x100000.ora", data(ora(_stack(_layer(), 100_000, 100_000))),
             Fails(BadInput, ("too large",)), "a canvas of 10 gigapixels"),
        case("canvas-0x48.ora", data(ora(_stack(_layer(), 0, 48))), broken, "a canvas 0 px wide"),
        case("canvas-abc.ora", data(ora(_stack(_layer()).replace(b'w="64"', b'w="abc"'))), broken,
             'a canvas w="abc"'),
        case("layer-declared-huge.ora", data(ora(_stack(_layer()),
                                                 {"data/layer000.png": png_raw(100_000, 100_000, 8, 2, b"\0")})),
             Fails(BadInput, ("too large",)), "a layer PNG whose header says 100000 x 100000"),
        case("layer-missing.ora", data(ora(_stack(_layer("data/gone.png")))), Fails(BadInput, ("missing",)),
             "a layer naming an image the zip does not hold"),
        case("layer-not-png.ora", data(ora(_stack(_layer()), {"data/layer000.png": b"not a picture"})), broken,
             "a layer image that is text"),
        case("document-json-malformed.ora",
             data(ora(_stack(_layer()), {"data/layer000.png": _layer_png(), "quickbrush/document.json": b"{"})),
             broken, "Quickbrush's own settings part is not JSON"),
        case("newer-format.ora", data(ora(_stack(_layer()), _quickbrush_files({"format": 99}))),
             Fails(BadInput, ("newer",)), "saved by a newer Quickbrush"),
        case("mask-other-size.ora",
             data(ora(_stack(_layer()), _quickbrush_files({"format": 1, "mask": "quickbrush/mask.png"},
                                                          {"quickbrush/mask.png": _encoded(Image.new("L", (10, 10)),
                                                                                           "PNG")}))),
             Fails(BadInput, ("mask",)), "a 10 x 10 mask for a 64 x 48 canvas"),
    ]


# --------------------------------------------------------------------------- recipes


def recipe_job(**changes: Any) -> dict[str, Any]:
    """A generate job as `Job.to_dict` writes it, with `changes`."""
    job = {"kind": "generate", "prompt": "red apple", "negative_prompt": "",
           "model": {"source": "builtin", "loras": [], "config": None, "preset": None, "sha256": None},
           "seed": 7, "steps": 4, "guidance": 0.5, "width": 128, "height": 128, "device": None, "dtype": None,
           "scheduler": None}
    job.update(changes)
    return job


def _recipe_png(parameters: str | None = None, recipe: str | None = None) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        info = PngImagePlugin.PngInfo()
        if parameters is not None:
            info.add_text("parameters", parameters)
        if recipe is not None:
            info.add_itxt("quickbrush", recipe)
        Image.new("RGB", (32, 32), (200, 40, 40)).save(path, "PNG", pnginfo=info)

    return make


def _cut(make: Callable[[Path], None], tail: int) -> Callable[[Path], None]:
    def cut(path: Path) -> None:
        make(path)
        path.write_bytes(path.read_bytes()[:-tail])

    return cut


def _payload(job: Any, **extra: Any) -> str:
    # json.dumps writes NaN and Infinity as JavaScript does, as a careless writer would.
    return json.dumps({"format": 1, "job": job, **extra})


def _exif_jpeg(text: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
        Image.new("RGB", (32, 32), (200, 40, 40)).save(path, "JPEG", exif=exif)

    return make


A1111 = "red apple\nNegative prompt: blurry\nSteps: 4, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x512"


def recipes() -> list[Case]:
    """Recipes through `inference.metadata.read_recipe` and `job_from_recipe`: AUTOMATIC1111 text
    with absurd values, Quickbrush JSON with wrong types and numbers, and damage. The pictures
    themselves are sound, so the editor opens every one of them."""
    one_line = ("a red apple on a wooden table in soft light " * 23_000)[:1_000_000]

    def case(name: str, make: Callable[[Path], None] | None, expect: Outcome, about: str,
             gui: Outcome | None = None, cli: Fails | None = None, cli_args: tuple[str, ...] = (),
             images: dict[str, tuple] | None = None) -> Case:
        return Case(f"recipe/{name}", "recipe", expect, about, Path("recipes") / name, make,
                    gui=gui or Works("opens as a picture"), cli=cli, cli_args=cli_args, images=images or {})

    def field_error(*needles: str) -> Fails:
        return Fails(BadInput, needles, names_file=False)

    return [
        case("quickbrush.png", _recipe_png(A1111, _payload(recipe_job())),
             Works("the exact job", job_is(kind="generate", prompt="red apple", steps=4, seed=7, guidance=0.5)),
             "a sound Quickbrush recipe (control)"),
        case("a1111.png", _recipe_png(A1111),
             Works("a best-effort job", job_is(kind="generate", prompt="red apple", steps=4, seed=123,
                                              guidance=7.0, width=512, height=512)),
             "an AUTOMATIC1111 parameters text only"),
        case("a1111-exif.jpg", _exif_jpeg(A1111), Works("a best-effort job", job_is(steps=4, seed=123)),
             "AUTOMATIC1111 parameters in a JPEG's EXIF UserComment"),
        case("a1111-cfg-nan.png", _recipe_png(A1111.replace("CFG scale: 7", "CFG scale: nan")),
             Works("the model's own guidance", job_is(guidance=None, steps=4)), "CFG scale: nan"),
        case("a1111-cfg-inf.png", _recipe_png(A1111.replace("CFG scale: 7", "CFG scale: inf")),
             Works("the model's own guidance", job_is(guidance=None, steps=4)), "CFG scale: inf"),
        case("a1111-steps-1e9.png", _recipe_png(A1111.replace("Steps: 4", "Steps: 1000000000")),
             Works("the model's own steps", job_is(steps=None, seed=123)), "Steps: 1000000000"),
        case("a1111-size-huge.png", _recipe_png(A1111.replace("512x512", "100000x100000")),
             Works("the model's own size", job_is(width=None, height=None)), "Size: 100000x100000"),
        case("a1111-one-line-1mb.png", _recipe_png(one_line), Fails(BadInput, ("too long",)),
             "a parameters text that is one 1 MB line (the quadratic parse took days): refused at once",
             cli=Fails(JobError, ("too long",)), cli_args=("-m", "no-such-model")),
        case("a1111-params-then-1mb.png", _recipe_png("red apple\nSteps: 4, Seed: 9, CFG scale: 2, " + one_line),
             Fails(BadInput, ("too long",)), "a sound parameters line followed by 1 MB without a colon"),
        case("a1111-long-prompt.png", _recipe_png("a red apple, " * 4_000 + "\nSteps: 4, Seed: 9, CFG scale: 2"),
             Works("its settings", job_is(prompt="a red apple...", steps=4, seed=9, guidance=2.0)),
             "a 52 KB prompt: long, but within what real tools write"),
        case("no-recipe.png", _recipe_png(), Works("no recipe", is_none), "a picture without any text chunk"),
        case("guidance-abc.png", _recipe_png(recipe=_payload(recipe_job(guidance="abc"))),
             field_error("guidance"), '"guidance": "abc"', cli=field_error("guidance")),
        case("guidance-nan.png", _recipe_png(recipe=_payload(recipe_job(guidance=math.nan))),
             field_error("guidance"), '"guidance": NaN', cli=field_error("guidance")),
        case("guidance-inf.png", _recipe_png(recipe=_payload(recipe_job(guidance=math.inf))),
             field_error("guidance"), '"guidance": Infinity'),
        case("steps-string.png", _recipe_png(recipe=_payload(recipe_job(steps="4"))), field_error("steps"),
             '"steps": "4"'),
        case("steps-0.png", _recipe_png(recipe=_payload(recipe_job(steps=0))), field_error("steps"), '"steps": 0'),
        case("steps-1e9.png", _recipe_png(recipe=_payload(recipe_job(steps=10**9))), field_error("steps"),
             '"steps": 1000000000'),
        case("seed-2e40.png", _recipe_png(recipe=_payload(recipe_job(seed=2**40))), field_error("seed"),
             '"seed": 2**40'),
        case("width-wide.png", _recipe_png(recipe=_payload(recipe_job(width="wide"))), field_error("width"),
             '"width": "wide"'),
        case("kind-unknown.png", _recipe_png(recipe=_payload(recipe_job(kind="explode"))), field_error(),
             '"kind": "explode"'),
        case("model-string.png", _recipe_png(recipe=_payload(recipe_job(model="builtin"))), field_error(),
             '"model": "builtin" (a string, not an object)'),
        case("vary-strength-nan.png",
             _recipe_png(recipe=_payload(recipe_job(kind="vary", strength=math.nan, image_size=[32, 32]))),
             field_error("strength"), 'a vary recipe with "strength": NaN', images={"image": (32, 32)}),
        case("inpaint-mask-option-unknown.png",
             _recipe_png(recipe=_payload(recipe_job(kind="inpaint", strength=1.0, image_size=[32, 32],
                                                    mask_size=[32, 32], mask_options={"grow": 2, "bogus": 1}))),
             Works("the job, the unknown option skipped", job_is(kind="inpaint", **{"mask_options.grow": 2})),
             "an inpaint recipe with a mask option this version does not know (a newer Quickbrush's)",
             images={"image": (32, 32), "mask": (32, 32)}),
        case("format-99.png", _recipe_png(recipe=_payload(recipe_job()).replace('"format": 1', '"format": 99')),
             field_error("newer"), "a recipe from a newer Quickbrush"),
        case("json-malformed.png", _recipe_png(recipe="{not json"), Fails(BadInput),
             "a damaged recipe and no parameters to fall back on"),
        case("json-malformed-with-a1111.png", _recipe_png(A1111, "{not json"),
             Works("the parameters text instead", job_is(steps=4, seed=123)),
             "a damaged recipe beside a sound parameters text"),
        case("json-nested-100000.png", _recipe_png(recipe="[" * 100_000 + "]" * 100_000), Fails(BadInput),
             "a recipe of 100000 nested lists"),
        case("zero-byte.png", _write(b""), Fails(BadInput), "an empty file", gui=Fails(BadInput),
             cli=Fails(BadInput)),
        case("truncated.png", _cut(_recipe_png(A1111), 30), Fails(BadInput), "a recipe PNG cut short",
             gui=Fails(BadInput)),
    ]


# --------------------------------------------------------------------------- models


def _safetensors(tensors: dict[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save

    return save(tensors)


_UNET_KEY = "model.diffusion_model.input_blocks.0.0.weight"


def _pickle_ckpt(path: Path) -> None:
    """A checkpoint whose pickle would create UNPICKLED beside it if anyone unpickled it."""
    import torch

    class Trap:
        def __reduce__(self):
            return (open, (str(path.parent / "UNPICKLED"), "w"))

    torch.save({"state_dict": {_UNET_KEY: Trap()}}, path)


def models() -> list[Case]:
    """Model files and folders through a Worker running a one-step Generate on them (LoRAs on the
    tiny test model). The editor's Open treats each as a file that is not a picture."""
    checkpoint = _safetensors({_UNET_KEY: np.zeros((8, 4, 3, 3), np.float32)})
    not_a_picture = Fails(BadInput)

    def case(name: str, make: Callable[[Path], None] | None, expect: Outcome, about: str,
             use: str = "model") -> Case:
        return Case(f"model/{name}", "model", expect, about, Path("models") / name, make,
                    gui=None if use == "builtin" else not_a_picture, data={"as": use})

    def folder(files: dict[str, bytes]) -> Callable[[Path], None]:
        def make(path: Path) -> None:
            path.mkdir()
            for name, data in files.items():
                (path / name).parent.mkdir(parents=True, exist_ok=True)
                (path / name).write_bytes(data)

        return make

    index = json.dumps({"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
                        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
                        "text_encoder": ["transformers", "CLIPTextModel"],
                        "tokenizer": ["transformers", "CLIPTokenizer"],
                        "scheduler": ["diffusers", "PNDMScheduler"]}).encode()
    damaged = Fails(BadInput)
    return [
        case("builtin", None, Works("a 128 px image", result_is((128, 128))),
             "the shipped built-in model (control)", use="builtin"),
        case("truncated.safetensors", _write(checkpoint[: len(checkpoint) // 2]), damaged,
             "a checkpoint cut in half"),
        case("zero-byte.safetensors", _write(b""), damaged, "an empty checkpoint"),
        case("header-2e60.safetensors", _write(struct.pack("<Q", 2**60) + b"{}"), damaged,
             "a header that claims to be 2**60 bytes long"),
        case("header-garbage.safetensors", _write(struct.pack("<Q", 16) + b"not json at all!"), damaged,
             "a header that is not JSON"),
        case("lora-as-model.safetensors",
             _write(_safetensors({"lora_unet_down_blocks_0.lora_down.weight": np.zeros((4, 8), np.float32)})),
             Fails(BadInput, ("LoRA",)), "a LoRA chosen as the model"),
        case("not-sd.safetensors", _write(_safetensors({"encoder.weight": np.zeros((4, 4), np.float32)})),
             Fails(BadInput), "tensors of something that is not Stable Diffusion"),
        case("pickle.ckpt", _pickle_ckpt, Fails(BadInput, after=never_unpickled),
             "a pickle checkpoint whose unpickling would run code: refused, never unpickled"),
        case("text.ckpt", _write(b"this is not a checkpoint\n"), damaged, "text with a .ckpt name"),
        case("weights.bin", _write(checkpoint), Fails(BadInput, ("safetensors",)),
             "a checkpoint with another extension"),
        case("empty-folder", lambda path: path.mkdir(), Fails(ModelMissing), "an empty folder"),
        case("no-unet", folder({"model_index.json": index}), Fails(ModelMissing, ("UNet",)),
             "a diffusers folder: model_index.json, but no unet"),
        case("index-malformed", folder({"model_index.json": b"{"}), Fails(ModelMissing),
             "a folder whose model_index.json is not JSON"),
        case("builtin-no-weights", folder({"quickbrush_builtin.json": b'{"size": 128}'}), Fails(ModelMissing),
             "a built-in model folder with its settings but none of its networks"),
        case("does-not-exist", None, Fails(ModelMissing, ("not found",)), "a model path with nothing there"),
        case("missing-style.safetensors", None, Fails(BadInput, ("not found",), absent=("network", "download")),
             "a LoRA path with nothing there (not a download to wait for)", use="lora"),
    ]


# --------------------------------------------------------------------------- job parameters


def jobs() -> list[Case]:
    """Job parameters through the Job constructors and `Job.from_dict`; the size cases also run on
    the built-in model, where they must fail before any denoising step, or work."""

    def case(name: str, data: dict[str, Any], expect: Outcome, about: str,
             images: dict[str, tuple] | None = None, engine: bool = False) -> Case:
        return Case(f"job/{name}", "job", expect, about, data=data, images=images or {}, engine=engine)

    def refused(*needles: str) -> Fails:
        return Fails(BadInput, needles, names_file=False)

    generate = {"kind": "generate", "prompt": "red apple", "seed": 1}
    vary = {"kind": "vary", "prompt": "red apple", "seed": 1}
    edit = {"kind": "edit", "prompt": "make it green", "seed": 1}
    inpaint = {"kind": "inpaint", "prompt": "red apple", "seed": 1}
    outpaint = {"kind": "outpaint", "prompt": "a beach", "seed": 1}
    square = {"image": (64, 64)}
    return [
        case("generate", {**generate, "steps": 2}, Works("a 128 px image", result_is((128, 128))),
             "a sound generate job (control)", engine=True),
        case("guidance-abc", {**generate, "guidance": "abc"}, refused("guidance"), 'guidance "abc"'),
        case("guidance-nan", {**generate, "guidance": math.nan}, refused("guidance"), "guidance NaN"),
        case("guidance-inf", {**generate, "guidance": math.inf}, refused("guidance"), "guidance inf"),
        case("guidance-minus-inf", {**generate, "guidance": -math.inf}, refused("guidance"), "guidance -inf"),
        case("steps-0", {**generate, "steps": 0}, refused("steps"), "steps 0"),
        case("steps-1e9", {**generate, "steps": 10**9}, refused("steps"), "steps 10**9"),
        case("steps-string", {**generate, "steps": "4"}, refused("steps"), 'steps "4"'),
        case("steps-true", {**generate, "steps": True}, refused("steps"), "steps True"),
        case("seed-2e32", {**generate, "seed": 2**32}, refused("seed"), "seed 2**32"),
        case("seed-string", {**generate, "seed": "7"}, refused("seed"), 'seed "7"'),
        case("width-12", {**generate, "width": 12}, refused("width"), "width 12"),
        case("width-string", {**generate, "width": "512"}, refused("width"), 'width "512"'),
        case("height-1e9", {**generate, "height": 10**9}, refused("height"), "height 10**9"),
        case("lora-scale-nan", {**generate, "model": {"source": "builtin", "loras": [{"source": "style.safetensors",
                                                                                     "scale": math.nan}]}},
             refused(), "a LoRA at scale NaN"),
        case("kind-unknown", {"kind": "explode", "prompt": "x"}, refused(), 'kind "explode" (from_dict only)'),
        case("vary-strength-0", {**vary, "strength": 0.0}, refused("strength"), "strength 0", square),
        case("vary-strength-nan", {**vary, "strength": math.nan}, refused("strength"), "strength NaN", square),
        case("vary-strength-string", {**vary, "strength": "0.5"}, refused("strength"), 'strength "0.5"', square),
        case("edit-image-guidance-nan", {**edit, "image_guidance": math.nan}, refused("guidance"),
             "image guidance NaN", square),
        case("edit-image-guidance-inf", {**edit, "image_guidance": math.inf}, refused("guidance"),
             "image guidance inf", square),
        case("outpaint-right-1e9", {**outpaint, "right": 10**9}, refused(), "outpaint by 10**9 px", square),
        case("outpaint-left-negative", {**outpaint, "left": -5}, refused(), "outpaint by -5 px", square),
        case("outpaint-nothing", {**outpaint}, refused(), "outpaint with every margin 0", square),
        case("outpaint-left-string", {**outpaint, "left": "5"}, refused(), 'outpaint left "5"', square),
        case("inpaint-feather-nan", {**inpaint, "mask_options": {"grow": 4, "feather": math.nan}}, refused(),
             "mask feather NaN", {"image": (64, 64), "mask": (64, 64)}),
        case("inpaint-empty-mask", {**inpaint, "steps": 2}, Fails(BadInput, ("mask",), names_file=False),
             "an inpaint with nothing painted", {"image": (64, 64), "mask": (64, 64, None)}, engine=True),
        # The model sees a resize or a crop at its own size, so a document's size limits no job.
        case("vary-12x12", {**vary, "steps": 2}, Works("a 12 x 12 variation", result_is((12, 12))),
             "a 12 x 12 icon to vary (it ran every step, then failed on a width nobody set)",
             {"image": (12, 12)}, engine=True),
        case("vary-9000x300", {**vary, "steps": 2}, Works("a 9000 x 300 variation", result_is((9000, 300))),
             "a 9000 x 300 banner to vary: over 8192 px a side, which only asked sizes are held to",
             {"image": (9000, 300)}, engine=True),
        case("edit-1x20000", {**edit, "steps": 2}, Works("a 1 x 20000 edit", result_is((1, 20000))),
             "a 1 x 20000 strip to edit, an object in its middle", {"image": (1, 20000)}, engine=True),
        case("vary-0x0", {**vary, "steps": 2}, refused("empty"), "an empty image to vary: refused before any step",
             {"image": (0, 0)}, engine=True),
        case("inpaint-9000x9000", {**inpaint, "steps": 2},
             Works("inpainted around the mask, 9000 x 9000, the rest kept",
                   result_is((9000, 9000), unchanged=(10, 10), source=(200, 200, 200))),
             "a small mask on a 9000 x 9000 photo: the model sees the crop, the photo keeps its size",
             {"image": (9000, 9000), "mask": (9000, 9000, (4480, 4480, 4520, 4520))}, engine=True),
    ]


# --------------------------------------------------------------------------- the corpus

FAMILIES = (images, masks, documents, recipes, models, jobs)


def cases() -> list[Case]:
    """Every case, without writing anything (for pytest's parametrization)."""
    every = [case for family in FAMILIES for case in family()]
    ids = [case.id for case in every]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return every


def build(outdir: str | Path, selection: list[Case] | None = None) -> list[Case]:
    """Write every case's file under `outdir`; returns the cases."""
    root = Path(outdir)
    chosen = cases() if selection is None else selection
    for case in chosen:
        if case.path is None or case.make is None:
            continue
        target = root / case.path
        target.parent.mkdir(parents=True, exist_ok=True)
        case.make(target)
    return chosen


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tests/bad_inputs.py OUTDIR", file=sys.stderr)
        return 2
    written = build(argv[1])
    for case in written:
        outcome = case.expect
        said = (f"works: {outcome.what}" if isinstance(outcome, Works)
                else f"fails: {outcome.kind.__name__}" + (f" ({', '.join(outcome.needles)})" if outcome.needles else ""))
        print(f"{case.id:<45} {said}")
    print(f"{len(written)} cases in {argv[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
