"""Pixels: an image fitted into the square every source shares, the Noto font's glyphs, and SVGs
drawn with resvg (cairosvg for the old files resvg refuses)."""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from training.data.common import ALPHA_EDGE, FILL, DataError, Entry

NOTO_PIXELS = 109  # CBDT bitmap fonts only load at their strike size


def fit(image: Image.Image, size: int) -> np.ndarray | None:
    """Crop to the drawn pixels, scale the longer side to FILL of `size`, centre on transparency.

    Straight (not premultiplied) alpha; fully transparent pixels are black so identical inputs
    give identical bytes. Pillow premultiplies RGBA while resampling, so edges get no colour fringe.
    """
    image = image.convert("RGBA")
    alpha = np.asarray(image.getchannel("A"))
    ys, xs = np.nonzero(alpha > ALPHA_EDGE)
    if not len(xs):
        return None
    crop = image.crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    scale = FILL * size / max(crop.size)
    width, height = max(1, round(crop.width * scale)), max(1, round(crop.height * scale))
    crop = crop.resize((width, height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas.paste(crop, ((size - width) // 2, (size - height) // 2))
    pixels = np.array(canvas)
    pixels[pixels[..., 3] == 0, :3] = 0
    return pixels


class NotoRenderer:
    """Draws emoji sequences with the Noto Color Emoji font (its 136 px CBDT bitmaps)."""

    def __init__(self, font_path: Path):
        # Raqm shapes ZWJ sequences, flags and skin tones into one glyph; without it they come out
        # as separate glyphs side by side, which __call__ rejects.
        layout = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
        try:
            self.font = ImageFont.truetype(str(font_path), NOTO_PIXELS, layout_engine=layout)
        except OSError as error:
            raise DataError(f"{font_path} is not a usable Noto Color Emoji font: {error}") from error
        self.advance = self.font.getlength("\U0001F600")

    def __call__(self, text: str) -> Image.Image | None:
        if self.font.getlength(text) > 1.2 * self.advance:
            return None  # the font lacks this sequence and drew its parts one after another
        side = math.ceil(self.advance) + 64
        canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((32, 32), text, font=self.font, embedded_color=True)
        return canvas if canvas.getbbox() else None  # no glyph at all draws nothing


def _render_svg(svg: str, size: int, box: int = 32) -> Image.Image:
    try:
        import resvg_py
    except ImportError as error:
        raise DataError("The Fluent sources need resvg: pip install resvg_py") from error
    # Twice the target size, then fit() scales down: smoother edges than rendering at size.
    # zoom (not width/height) keeps the few 32 x 33 view boxes in proportion. `box`: the set's
    # nominal view box (Fluent 32, icons 24). currentColor, which icons draw with, renders black.
    png = resvg_py.svg_to_bytes(svg_string=svg, zoom=2 * size / box, skip_system_fonts=True)
    return Image.open(io.BytesIO(bytes(png)))


_SVG_TAG = re.compile(r"<svg\b[^>]*>", re.S)
_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0}


def _svg_size(svg: str) -> float | None:
    """The longer side the root element declares, in CSS pixels (width/height, else the viewBox)."""
    tag = _SVG_TAG.search(svg)
    if not tag:
        return None
    sides = []
    for name in ("width", "height"):
        found = re.search(rf'\s{name}\s*=\s*["\']\s*([0-9.]+)\s*([a-z]*)\s*["\']', tag.group(0))
        if found and found.group(2) in _UNITS:
            sides.append(float(found.group(1)) * _UNITS[found.group(2)])
    if len(sides) < 2:
        box = re.search(r'viewBox\s*=\s*["\']\s*[-0-9.]+[\s,]+[-0-9.]+[\s,]+([0-9.]+)[\s,]+([0-9.]+)', tag.group(0))
        sides = [float(box.group(1)), float(box.group(2))] if box else []
    longer = max(sides, default=0.0)
    return longer if longer > 0 else None


def _render_any_svg(svg: str, size: int) -> Image.Image:
    """An SVG of any size, drawn with its longer side about twice `size`: resvg, and cairosvg
    (when installed) for the old files resvg refuses. The declared size sets the zoom, so a
    poster-sized drawing is not rasterised at its full 10,000+ pixels first."""
    declared = _svg_size(svg)

    def drawn(draw: Callable[[float], Image.Image]) -> Image.Image:
        zoom = 2 * size / declared if declared else 1.0
        image = draw(zoom)
        if max(image.size) < 2 * size:  # the declared size was wrong or missing
            image = draw(zoom * 2 * size / max(image.size))
        return image

    try:
        return drawn(lambda zoom: _render_svg(svg, size, box=2 * size / zoom))
    except ValueError:
        try:
            import cairosvg
        except (ImportError, OSError):  # OSError: cairosvg without the cairo library
            cairosvg = None
        if cairosvg is None:
            raise  # resvg's error; the caller counts the file as failed
        return drawn(lambda zoom: Image.open(io.BytesIO(cairosvg.svg2png(bytestring=svg.encode("utf-8"), scale=zoom))))


@dataclass
class Rendered:
    source: str
    entries: list[Entry] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def add(self, entry: Entry, image: Image.Image | None, size: int) -> bool:
        pixels = fit(image, size) if image is not None else None
        if pixels is None:
            return False
        self.entries.append(entry)
        self.images.append(pixels)
        return True
