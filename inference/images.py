"""Reading images a designer hands us, with a clear message when a file is not one."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from inference.jobs import BadInput

# A 100-megapixel photo is plausible; a 2-gigapixel "image" is a decompression bomb. The one
# limit for images and documents alike (editor.ora reads it from here).
MAX_PIXELS = 300_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def check_pixels(width: int, height: int, what: str) -> None:
    """Refuse, before anything is decoded or allocated, an image or canvas over MAX_PIXELS.

    `what` names it for the designer ("photo.png", "the layer “Sky” in art.ora")."""
    if int(width) * int(height) > MAX_PIXELS:
        raise BadInput(
            f"{what} is too large: {int(width)} × {int(height)} pixels. "
            f"Quickbrush opens images of up to {MAX_PIXELS // 1_000_000} megapixels.")


def open_image(path: str | os.PathLike) -> Image.Image:
    """Decode the whole file now (so a truncated file fails here, not mid-job), upright, in RGB/RGBA."""
    path = Path(path)
    name = path.name
    if not path.exists():
        raise BadInput(f"{name} does not exist.", str(path))
    if path.is_dir():
        raise BadInput(f"{name} is a folder, not an image.", str(path))
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except UnidentifiedImageError as exc:
        raise BadInput(f"{name} is not an image Quickbrush can read.", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, PermissionError):
            raise BadInput(f"{name} cannot be read: permission denied.", str(exc)) from exc
        raise BadInput(f"{name} is damaged or incomplete and cannot be opened.", str(exc)) from exc
    return image.convert("RGBA" if has_alpha(image) else "RGB")


def has_alpha(image: Image.Image) -> bool:
    """Whether the image carries transparency in any of Pillow's ways (an alpha band, or a
    palette with a transparent entry)."""
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def open_mask(path: str | os.PathLike) -> Image.Image:
    """A mask file as "L": white is the area to change. Transparent PNG masks use their alpha."""
    image = open_image(path)
    if image.mode == "RGBA":
        alpha = image.getchannel("A")
        # A mask painted on a transparent layer: opaque pixels mark the area.
        if alpha.getextrema()[0] < 255:
            return alpha
    return image.convert("L")
