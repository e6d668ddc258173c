"""Reading images a designer hands us, with a clear message when a file is not one."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inference.jobs import BadInput

# A 100-megapixel photo is plausible; a 2-gigapixel "image" is a decompression bomb. The one
# limit for images and documents alike (editor.ora reads it from here).
MAX_PIXELS = 300_000_000
# Pillow refuses only images over *twice* its MAX_IMAGE_PIXELS and merely warns between once and
# twice, so a 24000 x 24000 PNG (576 MP, a few hundred KB on disk) would decode into 2.8 GB.
# Half our limit makes Pillow's own refusal, for every opener in the process, exactly MAX_PIXELS;
# open_image checks the size itself too, in case a library resets Pillow's global.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2

# Pillow's modes for more than 8 bits a channel: 16-bit greyscale PNG and TIFF open as I;16
# (I;16B big-endian, I for 32-bit integer TIFF), 32-bit float TIFF as F.
HIGH_BIT_MODES = ("I", "F")


def check_pixels(width: int, height: int, what: str) -> None:
    """Refuse, before anything is decoded or allocated, an image or canvas over MAX_PIXELS.

    `what` names it for the designer ("photo.png", "the layer “Sky” in art.ora")."""
    if int(width) * int(height) > MAX_PIXELS:
        raise BadInput(
            f"{what} is too large: {int(width)} × {int(height)} pixels. "
            f"Quickbrush opens images of up to {MAX_PIXELS // 1_000_000} megapixels.")


def _too_large(name: str, exc: Exception) -> BadInput:
    """Pillow refused the file before we saw its size (it checks while opening)."""
    return BadInput(f"{name} is too large: over {MAX_PIXELS // 1_000_000} megapixels. "
                    f"Quickbrush opens images of up to {MAX_PIXELS // 1_000_000} megapixels.", str(exc))


def open_image(path: str | os.PathLike) -> Image.Image:
    """Decode the whole file now (so a truncated file fails here, not mid-job), upright, in RGB/RGBA.

    Its size is checked from the header, before any pixel is decoded: a file over MAX_PIXELS is
    refused as too large, whatever Pillow's own limit is set to."""
    path = Path(path)
    name = path.name
    if not path.exists():
        raise BadInput(f"{name} does not exist.", str(path))
    if path.is_dir():
        raise BadInput(f"{name} is a folder, not an image.", str(path))
    try:
        with warnings.catch_warnings():
            # Pillow warns on sizes it still decodes; check_pixels below decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                check_pixels(image.width, image.height, name)
                image.load()
                image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise _too_large(name, exc) from exc
    except UnidentifiedImageError as exc:
        raise BadInput(f"{name} is not an image Quickbrush can read.", str(exc)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, PermissionError):
            raise BadInput(f"{name} cannot be read: permission denied.", str(exc)) from exc
        raise BadInput(f"{name} is damaged or incomplete and cannot be opened.", str(exc)) from exc
    if image.mode.startswith(HIGH_BIT_MODES):
        image = to_8bit(image)
    return image.convert("RGBA" if has_alpha(image) else "RGB")


def to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit or float greyscale image ("I;16", "I;16B", "I", "F") as "L" (or "LA" when its
    PNG marks a grey level transparent), tones kept.

    Pillow's own convert clips these to 0..255 instead of scaling (a 16-bit PNG comes out almost
    all white), so the scale is chosen here: 16-bit data (every I;16 mode, and "I" whose values
    fit 0..65535, as Pillow opens 16-bit TIFF) maps 65535 to 255; float data in 0..1 maps 1 to
    255, in 0..255 stays; anything else (negative or wider integers, HDR floats) is stretched
    from its own minimum to its maximum, the one reading that keeps every tone apart.
    """
    values = np.asarray(image)
    if values.size == 0:
        return Image.new("L", image.size)
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and high <= 65535):
        low, scale = 0.0, 255 / 65535
    elif image.mode == "F" and low >= 0 and high <= 1:
        low, scale = 0.0, 255.0
    elif image.mode == "F" and low >= 0 and high <= 255:
        low, scale = 0.0, 1.0
    else:
        scale = 255 / (high - low) if high > low else 0.0
    # float32 halves the working memory of float64; its 24-bit mantissa is exact for 16-bit data.
    grey = np.nan_to_num((values.astype(np.float32) - np.float32(low)) * np.float32(scale))
    grey = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L")
    key = image.info.get("transparency")
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        grey.putalpha(Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8), "L"))
    return grey


def has_alpha(image: Image.Image) -> bool:
    """Whether the image carries transparency in any of Pillow's ways (an alpha band, or a
    transparent palette entry, grey level or colour as a PNG's tRNS chunk gives them)."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def open_mask(path: str | os.PathLike) -> Image.Image:
    """A mask file as "L": white is the area to change. Transparent PNG masks use their alpha."""
    image = open_image(path)
    if image.mode == "RGBA":
        alpha = image.getchannel("A")
        # A mask painted on a transparent layer: opaque pixels mark the area.
        if alpha.getextrema()[0] < 255:
            return alpha
    return image.convert("L")
