"""Between the designer's painted mask and the model, and back again.

A diffusion model regenerates a rectangle at its own resolution and, even where it was told to
keep things, returns pixels that went through a lossy autoencoder. Users notice three things: a
hard or shifted seam, colours that drift, and "untouched" pixels that changed. So:

* the mask is grown and feathered *outward* (`prepare_mask`), so everything the designer
  painted is regenerated in full and the blend happens in a band of context around it;
* the model works on a crop around the mask (`mask_bbox`, `crop_region`) at a size it is good
  at (`model_size`), rather than on a whole 4000-pixel photo squeezed to 512;
* the result is colour-matched to its surroundings (`match_colors`) and pasted back
  (`paste_back`) so that every pixel outside the feathered mask is bit-identical to the source;
* outpainting becomes inpainting on a larger canvas (`extend_canvas`);
* a model that knows whole objects on transparency (the built-in one) edits the object cut out
  of an opaque canvas (`cut_out`), laid back over the untouched background (`lay_back`).

Boxes are (left, top, right, bottom) with right/bottom exclusive, as in Pillow. Nothing here
imports Qt or torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

Box = tuple[int, int, int, int]

# Feather levels are counted in uint8; a wider feather than this adds nothing visible anyway.
MAX_FEATHER = 250
# Crops are widened so the model never sees a strip thinner than this ratio: diffusion models
# degrade badly far from square, and widening a crop only adds context.
MAX_CROP_ASPECT = 2.0
# Below this many ring pixels the colour statistics are noise, not a measurement.
MIN_RING_PIXELS = 16
# How far match_colors may stretch contrast: enough to undo a VAE's drift, not to invent contrast
# from a flat ring.
MAX_GAIN = 1.5


# --------------------------------------------------------------------------- morphology


def _dilate_step(a: np.ndarray, phase: int) -> np.ndarray:
    """One pixel of dilation; alternating a plus and a 3x3 square approximates a disc.

    Pure squares would grow masks into boxes (corners reach 41 % further than edges) and pure
    plusses into diamonds; alternating gives an octagon within ~6 % of a circle. Done with array
    shifts because Pillow's MaxFilter(3) is about 50x slower on a 4096x4096 mask (rank filters
    sort every window), and that matters for a designer waiting on a big canvas. Pixels outside
    the array count as unset.
    """
    out = a.copy()
    out[:, 1:] |= a[:, :-1]
    out[:, :-1] |= a[:, 1:]
    if phase % 2 == 0:  # plus: vertical neighbours of the original
        out[1:] |= a[:-1]
        out[:-1] |= a[1:]
    else:  # square: vertical neighbours of the horizontally grown rows
        rows = out.copy()
        out[1:] |= rows[:-1]
        out[:-1] |= rows[1:]
    return out


def _dilate(a: np.ndarray, steps: int) -> np.ndarray:
    for i in range(steps):
        a = _dilate_step(a, i)
    return a


def _bool_bbox(a: np.ndarray) -> Box | None:
    rows = np.flatnonzero(a.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(a.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _window(a: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The part of the array that morphology of reach `margin` can touch.

    A brush stroke is usually small next to the canvas; working only around it keeps a 4096x4096
    document as quick as a thumbnail.
    """
    box = _bool_bbox(a)
    if box is None:
        return None
    left, top, right, bottom = box
    h, w = a.shape
    return slice(max(0, top - margin), min(h, bottom + margin)), slice(max(0, left - margin), min(w, right + margin))


def _ring(inside: np.ndarray, width: int) -> np.ndarray:
    """Pixels within `width` of `inside` but not in it."""
    out = np.zeros_like(inside)
    win = _window(inside, width + 1)
    if win is None:
        return out
    sub = inside[win]
    out[win] = _dilate(sub, width) & ~sub
    return out


# --------------------------------------------------------------------------- masks


def prepare_mask(mask: Image.Image, grow: int, feather: int) -> Image.Image:
    """Turn a painted mask into the blend alpha: grown region solid, soft ramp outside it.

    The ramp lies *outside* the grown region so that every painted pixel is fully regenerated:
    a ramp centred on the edge would leave half-old, half-new ghosts where the designer asked for
    change. The model should be told to regenerate every pixel with alpha > 0, so the band it
    blends in is generated content, not a stretched guess.

    `mask` is "L" (white = change; other modes are converted) and is binarised at 128 so that
    anti-aliased brush edges give a stable shape. `grow` dilates (negative erodes; the image
    border never erodes a mask that touches it). `feather` is the ramp width in pixels (0 is a
    hard edge), shaped with smoothstep so neither end of the ramp shows a visible band.
    """
    arr = np.asarray(mask.convert("L")) >= 128
    feather = max(0, min(int(feather), MAX_FEATHER))
    grow = int(grow)
    out = np.zeros(arr.shape, np.uint8)
    # Reach of all the morphology below; beyond it nothing can change.
    win = _window(arr, abs(grow) + feather + 1)
    if win is None:
        return Image.fromarray(out, "L")
    sub = arr[win]
    if grow > 0:
        sub = _dilate(sub, grow)
    elif grow < 0:
        sub = ~_dilate(~sub, -grow)
    if feather == 0:
        out[win] = sub.view(np.uint8) * 255
        return Image.fromarray(out, "L")
    # Count how many of the successive one-pixel dilations cover each pixel: the grown region
    # gets feather + 1, a pixel k steps out gets feather + 1 - k, far pixels 0. That count is a
    # (octagonal) distance, computed with cheap whole-array steps instead of a distance transform.
    count = sub.view(np.uint8).copy()
    cur = sub
    for i in range(feather):
        cur = _dilate_step(cur, i)
        count += cur.view(np.uint8)
    t = np.arange(feather + 2, dtype=np.float64) / (feather + 1)
    lut = np.rint(255.0 * t * t * (3.0 - 2.0 * t))
    lut[1:] = np.maximum(lut[1:], 1.0)  # the ramp reaches all `feather` pixels, however faintly
    ramp = lut.astype(np.uint8)[count]
    # The octagonal distance grows by one or two pixels per step depending on direction, which
    # leaves fine streaks along diagonal edges that show in a blend; a 5x5 box blur evens them
    # out. Solid stays solid and the ramp keeps its reach.
    radius = min(2, feather // 4)
    if radius:
        blurred = np.array(Image.fromarray(ramp, "L").filter(ImageFilter.BoxBlur(radius)))
        blurred[count == 0] = 0
        blurred[(count > 0) & (blurred == 0)] = 1
        blurred[sub] = 255
        ramp = blurred
    out[win] = ramp
    return Image.fromarray(out, "L")


def mask_bbox(alpha: Image.Image) -> Box | None:
    """Bounding box of the pixels the result may change, or None when nothing may change.

    Taken on the *feathered* alpha, so the crop holds the whole blend band.
    """
    return alpha.convert("L").getbbox()


# --------------------------------------------------------------------------- sizes


def model_size(width: int, height: int, native: int, multiple: int = 8) -> tuple[int, int]:
    """Size to run the model at for a width x height region: its native area, same shape.

    Diffusion models are trained at about native x native pixels; far below that they lose
    detail, far above it they repeat subjects, so the region is scaled (up or down) to that area.
    Sides are multiples of `multiple` (the autoencoder's downsampling) and at least
    `8 * multiple`, so there is a latent worth denoising, but never more than `native`: the
    built-in model (native 128, multiple 32) would otherwise run every job at 256 px, where what
    it draws at the size it learnt comes out twice too small for the image around it. Only when
    keeping the aspect ratio would push the short side under that minimum (a 1000x1 strip) is
    the long side shortened, keeping the area rather than asking the model for a 64x64000 image.
    """
    if width <= 0 or height <= 0 or native <= 0 or multiple <= 0:
        raise ValueError(f"model_size needs positive sizes, got {width}x{height}, native {native}, multiple {multiple}")
    min_side = max(multiple, min(8 * multiple, native // multiple * multiple))
    area = float(native) * native
    long_side, short_side = max(width, height), min(width, height)
    aspect = long_side / short_side
    short = math.sqrt(area / aspect)
    long = short * aspect
    if short < min_side:
        short = min_side
        long = min(min_side * aspect, area / min_side)

    def snap(value: float) -> int:
        return max(min_side, int(round(value / multiple)) * multiple)

    long_px, short_px = snap(long), snap(short)
    return (long_px, short_px) if width >= height else (short_px, long_px)


def crop_region(
    image_size: tuple[int, int], bbox: Box | None, padding: int, native: int, multiple: int = 8
) -> Box:
    """The rectangle of the image the model should see to fill `bbox`.

    Like diffusers' `padding_mask_crop`: the mask's box plus `padding` pixels of context on each
    side, because the model can only match what it can see. It is then grown (never shrunk) to
    at least native/2 on each side, so a tiny touch-up still has surroundings and is not blown up
    twenty-fold; to at most MAX_CROP_ASPECT, because a thin strip is a shape the model handles
    badly while extra context costs nothing; and to multiples of `multiple` so the model's
    rescale is the same on both axes. It is centred on the mask and, where it would cross the
    image edge, shifted back inside rather than cut, so the crop keeps its size and context.
    Only a crop larger than the image is clamped to the image.
    """
    img_w, img_h = image_size
    if img_w <= 0 or img_h <= 0:
        raise ValueError(f"crop_region needs a non-empty image, got {img_w}x{img_h}")
    if bbox is None:
        return 0, 0, img_w, img_h
    left, top, right, bottom = (int(v) for v in bbox)
    left, top = max(0, min(left, img_w)), max(0, min(top, img_h))
    right, bottom = max(left, min(right, img_w)), max(top, min(bottom, img_h))
    padding = max(0, int(padding))
    min_side = max(1, native // 2)

    w = max(right - left + 2 * padding, min_side, 1)
    h = max(bottom - top + 2 * padding, min_side, 1)
    if w > h * MAX_CROP_ASPECT:
        h = math.ceil(w / MAX_CROP_ASPECT)
    elif h > w * MAX_CROP_ASPECT:
        w = math.ceil(h / MAX_CROP_ASPECT)
    w = min(math.ceil(w / multiple) * multiple, img_w)
    h = min(math.ceil(h / multiple) * multiple, img_h)

    # Centred on the mask (floor keeps bbox + padding inside for either parity), then shifted in.
    x0 = min(max((left + right - w) // 2, 0), img_w - w)
    y0 = min(max((top + bottom - h) // 2, 0), img_h - h)
    return x0, y0, x0 + w, y0 + h


CONTENT_TOLERANCE = 24  # levels an opaque pixel must differ from the background to count as content


def object_window(image: Image.Image, bbox: Box, native: int, padding: int = 32) -> Box:
    """The crop a model that draws whole objects at `native` px (the built-in one: emoji, icons
    and clip art, each filling its 128 px frame) should inpaint `bbox` in.

    crop_region zooms in on the mask, which suits an SD model and photos; the built-in model
    shown the lower half of a face at twice its size draws blotches, and shown the whole face
    at the size it learnt redraws the mouth cleanly. So: a native x native window at 1:1 that
    holds the mask and is centred, as far as it can be, on the content around it (pixels that
    are not transparent, or on an opaque image not the background colour of its edges). A mask
    larger than `native` (or an image smaller) falls back to crop_region with `padding`.
    """
    img_w, img_h = image.size
    left, top, right, bottom = (int(v) for v in bbox)
    if right - left > native or bottom - top > native or img_w < native or img_h < native:
        return crop_region(image.size, bbox, padding, native)
    # Window origins that keep the mask inside the window and the window inside the image.
    x_lo, x_hi = max(0, right - native), min(left, img_w - native)
    y_lo, y_hi = max(0, bottom - native), min(top, img_h - native)
    region = (x_lo, y_lo, x_hi + native, y_hi + native)  # all that any such window shows
    weight = _content(np.asarray(image.crop(region).convert("RGBA")))
    if weight.sum() > 0:
        ys, xs = np.nonzero(weight)
        cx, cy = region[0] + xs.mean() + 0.5, region[1] + ys.mean() + 0.5
    else:
        cx, cy = (left + right) / 2, (top + bottom) / 2
    x0 = int(min(max(round(cx - native / 2), x_lo), x_hi))
    y0 = int(min(max(round(cy - native / 2), y_lo), y_hi))
    return x0, y0, x0 + native, y0 + native


def _content(rgba: np.ndarray) -> np.ndarray:
    """Where the pixels are something rather than background: alpha where the image has
    transparency, else a clear difference from the median colour of its edge."""
    alpha = rgba[..., 3]
    if alpha.min() < 255:
        return alpha > 0
    return _off_background(rgba[..., :3], _edge_colour(rgba[..., :3]))


def _edge_pixels(rgb: np.ndarray) -> np.ndarray:
    return np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])


def _edge_colour(rgb: np.ndarray) -> np.ndarray:
    """The background colour of an opaque picture: the median colour along its edges."""
    return np.median(_edge_pixels(rgb), axis=0)


def _off_background(rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Pixels more than CONTENT_TOLERANCE levels from `background` in some channel; one channel
    at a time, so a large canvas needs two bytes a pixel of scratch, not six."""
    out = np.zeros(rgb.shape[:2], bool)
    for channel in range(3):
        out |= np.abs(rgb[..., channel].astype(np.int16) - int(round(float(background[channel])))) > CONTENT_TOLERANCE
    return out


# --------------------------------------------------------------------------- whole objects


# How the built-in model saw every object it learnt (training/data/render.py `fit`): cropped to the
# pixels with alpha above ALPHA_EDGE, the longer side scaled to OBJECT_FILL of its square frame,
# centred on transparency.
OBJECT_FILL = 0.9
ALPHA_EDGE = 8
# An opaque picture whose edge is more than this share off its own median colour has no plain
# background (a photo, a pattern): there is no object to cut out of it.
MAX_BUSY_EDGE = 0.25
# The anti-aliased rim of an object on an opaque background is within CONTENT_TOLERANCE of the
# background, so not found as content; clearing this many pixels beyond it removes the rim too.
RIM = 2


class NoObject(ValueError):
    """cut_out found no object: `reason` is "transparent" (nothing drawn), "plain" (one colour)
    or "busy" (no plain background to tell an object from)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Cutout:
    """An object cut out of a picture, framed for a model that draws whole objects.

    frame: native x native RGBA, the object on transparency as the model learnt objects.
    box: the square the frame covers on the picture (it may reach past the picture's edges).
    clear_box, clear: the picture's pixels that were the object (a bool array the size of
        clear_box), cleared to `background` before the edited object is laid back.
    background: the RGBA colour around the object ((0, 0, 0, 0) on transparency).
    """

    frame: Image.Image
    box: Box
    clear_box: Box
    clear: np.ndarray = field(repr=False)
    background: tuple[int, int, int, int]


def cut_out(image: Image.Image, native: int) -> Cutout:
    """The object in `image`, on transparency, at `native` px, and where it came from.

    The built-in model learnt emoji, icons and clip art on transparency, each filling its
    128 px frame; handed an opaque canvas (a new document is opaque white, and so is every
    photo) it sees one big white object and returns junk. So the object is found (the drawn
    pixels where the image has transparency; else the pixels off the background colour of its
    edges, with whatever they enclose, such as a white highlight on an apple) and framed as in
    training. lay_back puts the model's result back in its place. Raises NoObject where there
    is none: nothing drawn, one plain colour, or no plain background (a busy photo).
    """
    rgba = np.asarray(image.convert("RGBA"))
    if rgba.size == 0:
        raise NoObject("transparent")
    alpha = rgba[..., 3]
    if alpha.min() < 255:
        drawn = alpha > ALPHA_EDGE
        if not drawn.any():
            raise NoObject("transparent")
        clear = alpha > 0
        background = (0, 0, 0, 0)
        cut = rgba
    else:
        rgb = rgba[..., :3]
        edge = _edge_pixels(rgb)
        edge_colour = np.median(edge, axis=0)
        if (np.abs(edge.astype(np.int16) - edge_colour).max(-1) > CONTENT_TOLERANCE).mean() > MAX_BUSY_EDGE:
            raise NoObject("busy")
        drawn = _off_background(rgb, edge_colour)
        if not drawn.any():
            raise NoObject("plain")
        drawn = _fill_enclosed(drawn)
        clear = _grow(drawn, RIM)
        around = _ring(clear, 4)
        local = np.median(rgb[around], axis=0) if around.any() else edge_colour
        background = (*(int(round(float(v))) for v in local), 255)
        cut = rgba.copy()
        cut[~drawn] = 0
    left, top, right, bottom = _bool_bbox(drawn)
    side = max(1, math.ceil(max(right - left, bottom - top) / OBJECT_FILL))
    x0, y0 = (left + right - side) // 2, (top + bottom - side) // 2
    box = (x0, y0, x0 + side, y0 + side)
    # Pillow fills the part of a crop past the image with zeros: transparent, as the frame wants.
    frame = Image.fromarray(cut, "RGBA").crop(box).resize((native, native), Image.Resampling.LANCZOS)
    clear_box = _bool_bbox(clear)
    cl, ct, cr, cb = clear_box
    return Cutout(frame, box, clear_box, clear[ct:cb, cl:cr].copy(), background)


def lay_back(source: Image.Image, cut: Cutout, edited: Image.Image) -> Image.Image:
    """`source` with the object of `cut` replaced by `edited` (the model's RGBA result for
    cut.frame): the old object cleared to the background around it, the new one laid over at
    the frame's place and size. Every other pixel is byte-identical to the source: outside the
    old object, wherever the new one is fully transparent. Keeps the source's mode (RGB or
    RGBA; other modes come back as RGBA when they carry transparency, else RGB)."""
    mode = source.mode if source.mode in ("RGB", "RGBA") else (
        "RGBA" if "A" in source.getbands() or "transparency" in source.info else "RGB")
    out = np.array(source.convert("RGBA"))
    cl, ct, cr, cb = cut.clear_box
    out[ct:cb, cl:cr][cut.clear] = cut.background
    x0, y0, x1, y1 = cut.box
    height, width = out.shape[:2]
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if ix0 < ix1 and iy0 < iy1:
        fill = edited.convert("RGBA").resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS)
        g = np.asarray(fill.crop((ix0 - x0, iy0 - y0, ix1 - x0, iy1 - y0)), dtype=np.float32) / 255.0
        below = out[iy0:iy1, ix0:ix1]
        b = below.astype(np.float32) / 255.0
        g_a, b_a = g[..., 3:], b[..., 3:]
        a = g_a + b_a * (1.0 - g_a)
        rgb = (g[..., :3] * g_a + b[..., :3] * b_a * (1.0 - g_a)) / np.maximum(a, 1e-6)
        over = np.clip(np.rint(np.concatenate([rgb, a], -1) * 255.0), 0, 255).astype(np.uint8)
        # Where the new object is not, float arithmetic is not trusted to give the bytes back.
        out[iy0:iy1, ix0:ix1] = np.where(g_a > 0, over, below)
    result = Image.fromarray(out, "RGBA")
    return result if mode == "RGBA" else result.convert("RGB")


def _grow(a: np.ndarray, steps: int) -> np.ndarray:
    out = np.zeros_like(a)
    win = _window(a, steps + 1)
    if win is not None:
        out[win] = _dilate(a[win], steps)
    return out


def _fill_enclosed(a: np.ndarray) -> np.ndarray:
    """`a` plus every pixel it encloses in all four directions (set pixels to its left, right,
    above and below): the holes of an object, such as a highlight near the background colour.

    Not a true flood fill (scipy is no dependency, and Pillow's floodfill is a Python loop, far
    too slow on a large canvas): a notch open only diagonally is filled too, which only hands
    the model a little background as part of the object."""
    win = _window(a, 0)
    out = a.copy()
    if win is None:
        return out
    sub = a[win]
    enclosed = (np.logical_or.accumulate(sub, axis=1) & np.logical_or.accumulate(sub[:, ::-1], axis=1)[:, ::-1]
                & np.logical_or.accumulate(sub, axis=0) & np.logical_or.accumulate(sub[::-1], axis=0)[::-1])
    out[win] = sub | enclosed
    return out


# --------------------------------------------------------------------------- colour and paste-back


def match_colors(generated: Image.Image, source: Image.Image, alpha: Image.Image, ring: int = 16) -> Image.Image:
    """Undo the colour and brightness drift of the model's output, measured where it should agree.

    Just outside the alpha region the source is known and was not meant to change, but the model
    (through its autoencoder) returns it slightly brighter, darker or tinted; pasted back, that
    drift shows as a patch. Per RGB channel, the generated image gets the gain and offset that
    give its ring pixels the source's mean and standard deviation. The gain is clamped to
    [1/MAX_GAIN, MAX_GAIN] and left at 1 when the ring is flat, so a featureless ring cannot
    crush or blow up the contrast of what was generated. With no usable ring (the mask covers
    everything) `generated` is returned unchanged.
    """
    if generated.size != source.size or alpha.size != source.size:
        raise ValueError(
            f"match_colors needs equal sizes, got generated {generated.size}, source {source.size}, alpha {alpha.size}"
        )
    inside = np.asarray(alpha.convert("L")) > 0
    near = _ring(inside, max(1, int(ring)))
    if np.count_nonzero(near) < MIN_RING_PIXELS:
        return generated
    gen = np.asarray(generated.convert("RGB"), dtype=np.float32)
    src = np.asarray(source.convert("RGB"), dtype=np.float32)
    g_ring, s_ring = gen[near].astype(np.float64), src[near].astype(np.float64)
    g_mean, s_mean = g_ring.mean(axis=0), s_ring.mean(axis=0)
    g_std, s_std = g_ring.std(axis=0), s_ring.std(axis=0)
    gain = np.where(g_std > 1.0, s_std / np.maximum(g_std, 1e-6), 1.0)
    gain = np.clip(gain, 1.0 / MAX_GAIN, MAX_GAIN)
    out = (gen - g_mean.astype(np.float32)) * gain.astype(np.float32) + s_mean.astype(np.float32)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


def paste_back(
    source: Image.Image, generated: Image.Image, box: Box, alpha: Image.Image, match: bool = True
) -> Image.Image:
    """Put the model's output for crop `box` back into the full image.

    The promise to the designer is that pixels outside the mask do not change, not even by one
    level; so after blending, every pixel where alpha is 0 is copied from `source` explicitly
    rather than trusted to come out of float arithmetic (or a resize, or colour matching)
    unchanged. Inside, `generated` (resized to the box with LANCZOS, optionally colour-matched)
    is alpha-blended over the source and rounded. Alpha outside `box` has no generated pixels
    behind it and keeps the source; `box` should contain `mask_bbox(alpha)`.

    RGB and RGBA sources keep their mode, RGBA keeping its alpha channel from the source; other
    modes are converted to RGB (RGBA if they carry transparency) first and returned that way.
    An RGBA `generated` over an RGBA source (the built-in model, which draws transparency) is
    laid over the source and blended with its alpha, premultiplied, so a fill can add opaque
    pixels to a transparent layer and never makes an opaque one transparent; it is not
    colour-matched (that corrects an SD VAE's drift, and transparent ring pixels have no colour).
    """
    if alpha.size != source.size:
        raise ValueError(f"The mask is {alpha.size} but the image is {source.size}; they must be the same size.")
    left, top, right, bottom = (int(v) for v in box)
    if not (0 <= left < right <= source.width and 0 <= top < bottom <= source.height):
        raise ValueError(f"Crop box {box} is not inside the {source.width}x{source.height} image.")
    if source.mode not in ("RGB", "RGBA"):
        has_alpha = "A" in source.getbands() or "transparency" in source.info
        source = source.convert("RGBA" if has_alpha else "RGB")

    src_full = np.asarray(source)
    src_rgb = src_full[..., :3]
    a_full = np.asarray(alpha.convert("L"))

    size = (right - left, bottom - top)
    rgba_fill = generated.mode == "RGBA" and source.mode == "RGBA"
    gen = generated if rgba_fill else generated.convert("RGB")
    if gen.size != size:
        gen = gen.resize(size, Image.Resampling.LANCZOS)
    if rgba_fill:
        return _paste_back_rgba(src_full, gen, (left, top, right, bottom), a_full)
    src_crop = src_rgb[top:bottom, left:right]
    a_crop = a_full[top:bottom, left:right]
    if match:
        gen = match_colors(gen, Image.fromarray(src_crop, "RGB"), Image.fromarray(a_crop, "L"))

    a = a_crop.astype(np.float32)[..., None] / 255.0
    blended = np.asarray(gen, dtype=np.float32) * a + src_crop.astype(np.float32) * (1.0 - a)
    out = src_full.copy()
    out[top:bottom, left:right, :3] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    keep = (a_full == 0)[..., None]
    out = np.where(keep, src_full, out)
    if source.mode == "RGBA":
        out[..., 3] = src_full[..., 3]
    return Image.fromarray(out, source.mode)


def _paste_back_rgba(src_full: np.ndarray, generated: Image.Image, box: Box, a_full: np.ndarray) -> Image.Image:
    """paste_back for an RGBA fill (already the size of `box`) over an RGBA source: the fill laid over the source (where the
    model drew nothing the source shows, so a fill adds to a layer and never punches a hole in
    it), then blended in by the mask, premultiplied (a transparent pixel's colour counts for
    nothing); outside the mask untouched."""
    left, top, right, bottom = box
    g = np.asarray(generated, dtype=np.float32) / 255.0
    s = src_full[top:bottom, left:right].astype(np.float32) / 255.0
    m = a_full[top:bottom, left:right].astype(np.float32)[..., None] / 255.0
    g_a, s_a = g[..., 3:], s[..., 3:]
    over_a = g_a + s_a * (1.0 - g_a)
    over_rgb_p = g[..., :3] * g_a + s[..., :3] * s_a * (1.0 - g_a)  # premultiplied
    alpha = over_a * m + s_a * (1.0 - m)
    rgb = (over_rgb_p * m + s[..., :3] * s_a * (1.0 - m)) / np.maximum(alpha, 1e-6)
    blended = np.concatenate([rgb, alpha], -1)
    out = src_full.copy()
    out[top:bottom, left:right] = np.clip(np.rint(blended * 255.0), 0, 255).astype(np.uint8)
    out = np.where((a_full == 0)[..., None], src_full, out)
    return Image.fromarray(out, "RGBA")


# --------------------------------------------------------------------------- outpainting


def extend_canvas(image: Image.Image, left: int, top: int, right: int, bottom: int) -> tuple[Image.Image, Image.Image]:
    """A larger canvas for outpainting, plus the mask of its new area.

    The new border is not left black or grey: diffusion at moderate strength keeps the overall
    colours it starts from, so a black border yields dark, disconnected fill. Edge pixels are
    replicated outward (the right colours in the right places) and heavily blurred (so the model
    is not handed streaks to continue); the original is then put back exactly at (left, top).
    The mask is 255 on the new area and 0 on the original, ready for `prepare_mask`. An image
    with transparency comes back RGBA, its own pixels (alpha included) exact; others RGB.
    """
    margins = (int(left), int(top), int(right), int(bottom))
    if min(margins) < 0:
        raise ValueError(f"Outpaint margins cannot be negative, got {margins}.")
    left, top, right, bottom = margins
    # A transparent image stays transparent (the built-in model draws on transparency): RGBA is
    # replicated and blurred premultiplied ("RGBa"), so a transparent pixel's colour bleeds nowhere.
    keep_alpha = image.mode == "RGBA" or ("A" in image.getbands() or "transparency" in image.info)
    mode, work_mode = ("RGBA", "RGBa") if keep_alpha else ("RGB", "RGB")
    base = image.convert(mode)
    w, h = base.size
    size = (w + left + right, h + top + bottom)
    mask = Image.new("L", size, 255)
    mask.paste(0, (left, top, left + w, top + h))
    if max(margins) == 0:
        return base.copy(), mask
    padded = np.pad(np.asarray(base.convert(work_mode)), ((top, bottom), (left, right), (0, 0)), mode="edge")
    radius = min(128.0, max(4.0, max(margins) / 2.0))
    canvas = Image.fromarray(padded, work_mode).filter(ImageFilter.GaussianBlur(radius)).convert(mode)
    canvas.paste(base, (left, top))
    return canvas, mask
