"""What a designer would notice about masks, crops and paste-back: untouched pixels, seams, colour."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from inference.compositing import (
    OBJECT_FILL,
    NoObject,
    crop_region,
    cut_out,
    extend_canvas,
    lay_back,
    mask_bbox,
    match_colors,
    model_size,
    object_window,
    paste_back,
    prepare_mask,
)


def noise(size: tuple[int, int], seed: int, low: int = 0, high: int = 256, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = len(mode)
    arr = rng.integers(low, high, size=(size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(arr, mode)


def ellipse_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    return mask


def rect_mask(size: tuple[int, int], box: tuple[int, int, int, int], value: int = 255) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(value, box)
    return mask


def run_inpaint(source: Image.Image, mask: Image.Image, seed: int, grow=4, feather=8, match=True):
    """The whole round trip the inference code does, with random noise standing in for the model."""
    alpha = prepare_mask(mask, grow, feather)
    box = crop_region(source.size, mask_bbox(alpha), 32, 512)
    generated = noise(model_size(box[2] - box[0], box[3] - box[1], 512), seed)
    return alpha, box, generated, paste_back(source, generated, box, alpha, match=match)


# --------------------------------------------------------------------------- paste-back


@pytest.mark.parametrize("match", [True, False])
def test_pixels_outside_the_mask_are_bit_identical(match):
    source = noise((333, 217), seed=1)
    mask = ellipse_mask(source.size, (100, 60, 190, 150))
    alpha, box, generated, result = run_inpaint(source, mask, seed=2, match=match)

    a = np.asarray(alpha)
    src, out = np.asarray(source), np.asarray(result)
    assert result.size == source.size and result.mode == "RGB"
    assert np.array_equal(out[a == 0], src[a == 0])
    # ... and the masked area really was replaced.
    assert np.mean(out[a == 255] != src[a == 255]) > 0.9


def test_solid_part_of_the_mask_is_exactly_the_generated_image():
    source = noise((333, 217), seed=3)
    mask = rect_mask(source.size, (120, 80, 200, 140))
    alpha, box, generated, result = run_inpaint(source, mask, seed=4, match=False)

    expected = np.asarray(generated.resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS))
    inside = np.asarray(alpha)[box[1] : box[3], box[0] : box[2]] == 255
    got = np.asarray(result)[box[1] : box[3], box[0] : box[2]]
    assert np.array_equal(got[inside], expected[inside])


def test_rgba_source_keeps_its_alpha_channel_and_unmasked_pixels():
    source = noise((201, 157), seed=5, mode="RGBA")
    mask = ellipse_mask(source.size, (40, 30, 120, 100))
    alpha, box, generated, result = run_inpaint(source, mask, seed=6)

    src, out, a = np.asarray(source), np.asarray(result), np.asarray(alpha)
    assert result.mode == "RGBA"
    assert np.array_equal(out[..., 3], src[..., 3])
    assert np.array_equal(out[a == 0], src[a == 0])


def test_empty_mask_changes_nothing():
    source = noise((97, 61), seed=7)
    alpha = prepare_mask(Image.new("L", source.size, 0), grow=8, feather=8)
    assert not np.asarray(alpha).any()
    assert mask_bbox(alpha) is None
    result = paste_back(source, noise((64, 64), seed=8), (0, 0, 97, 61), alpha)
    assert np.array_equal(np.asarray(result), np.asarray(source))


def test_seam_has_no_visible_step():
    """Flat grey source, flat brighter fill: the blend must ramp, not jump."""
    size, feather = (200, 120), 16
    source = Image.new("RGB", size, (100, 100, 100))
    generated = Image.new("RGB", size, (200, 200, 200))
    alpha = prepare_mask(rect_mask(size, (80, 40, 120, 80)), grow=0, feather=feather)
    result = np.asarray(paste_back(source, generated, (0, 0) + size, alpha, match=False)).astype(int)

    row, col = result[60, :, 0], result[:, 100, 0]
    limit = (200 - 100) / feather * 2
    assert np.abs(np.diff(row)).max() <= limit
    assert np.abs(np.diff(col)).max() <= limit
    assert row[100] == 200 and row[0] == 100  # fully generated in the middle, untouched far away


# --------------------------------------------------------------------------- prepare_mask


def test_grown_area_stays_solid_and_feather_ramps_outward():
    size = (160, 120)
    mask = rect_mask(size, (60, 40, 100, 80))
    hard = np.asarray(prepare_mask(mask, grow=6, feather=0))
    soft = np.asarray(prepare_mask(mask, grow=6, feather=12))

    assert (soft[hard == 255] == 255).all()
    assert (soft >= hard).all()
    # Walking outward from the grown edge (column 106 is the first outside), the ramp falls
    # strictly for the full feather width, then stays at zero.
    profile = soft[60, 105:125].astype(int)
    assert profile[0] == 255
    assert (np.diff(profile[:13]) < 0).all()
    assert (profile[1:13] > 0).all()
    assert (profile[13:] == 0).all()
    # Monotone in every direction, not just along one row.
    assert (np.diff(soft[60, 100:].astype(int)) <= 0).all()
    assert (np.diff(soft[:60, 80].astype(int)) >= 0).all()


@pytest.mark.parametrize("feather", [8, 32, 64])
def test_feather_ramp_round_a_disc_is_smooth_without_streaks(feather):
    """A blend over a curved edge must not show fine streaks: the ramp's second differences stay
    near what a smooth ramp of that width has (the octagonal distance alone read 3 to 6 times
    higher, visible as lines across the blend)."""
    mask = Image.new("L", (300, 300), 0)
    ImageDraw.Draw(mask).ellipse((100, 100, 200, 200), fill=255)
    a = np.asarray(prepare_mask(mask, grow=0, feather=feather)).astype(float)
    band = ((a > 0) & (a < 255))[1:-1, 1:-1]
    laplacian = np.abs(4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:])
    slope = 255 / feather
    assert np.percentile(laplacian[band], 99) < 0.5 * slope + 2


def test_feather_zero_is_a_hard_mask_binarised_at_128():
    size = (50, 40)
    mask = rect_mask(size, (5, 5, 20, 20), 200)
    mask.paste(127, (25, 5, 45, 20))  # below the threshold: not part of the mask
    alpha = np.asarray(prepare_mask(mask, grow=0, feather=0))
    assert set(np.unique(alpha)) == {0, 255}
    assert mask_bbox(Image.fromarray(alpha)) == (5, 5, 20, 20)


@pytest.mark.parametrize("grow, expected", [(5, (35, 35, 85, 85)), (-5, (45, 45, 75, 75)), (0, (40, 40, 80, 80))])
def test_grow_moves_the_edge_by_that_many_pixels(grow, expected):
    alpha = prepare_mask(rect_mask((120, 120), (40, 40, 80, 80)), grow=grow, feather=0)
    assert mask_bbox(alpha) == expected


def test_erosion_can_remove_a_thin_stroke_but_not_shrink_from_the_image_border():
    size = (100, 100)
    thin = rect_mask(size, (20, 20, 80, 24))
    assert mask_bbox(prepare_mask(thin, grow=-3, feather=0)) is None
    full = Image.new("L", size, 255)
    assert mask_bbox(prepare_mask(full, grow=-3, feather=0)) == (0, 0, 100, 100)


def test_growth_is_roughly_round():
    size = (61, 61)
    dot = rect_mask(size, (30, 30, 31, 31))
    a = np.asarray(prepare_mask(dot, grow=10, feather=0))
    assert a[30, 40] == 255 and a[30, 41] == 0  # 10 px along the axes
    assert a[36, 36] == 255  # 8.5 px away diagonally
    assert a[39, 39] == 0  # 12.7 px away: a square would include it


def test_mask_mode_and_grey_levels_are_accepted():
    rgb_mask = rect_mask((40, 30), (10, 10, 20, 20)).convert("RGB")
    assert mask_bbox(prepare_mask(rgb_mask, grow=0, feather=0)) == (10, 10, 20, 20)


# --------------------------------------------------------------------------- colour matching


def test_match_colors_removes_a_brightness_shift():
    size = (160, 120)
    source = noise(size, seed=9, low=20, high=200)
    shifted = Image.fromarray((np.asarray(source).astype(int) + 40).astype(np.uint8), "RGB")
    alpha = prepare_mask(rect_mask(size, (50, 40, 110, 80)), grow=0, feather=4)
    before = np.abs(np.asarray(shifted).astype(int) - np.asarray(source)).mean()

    fixed = np.asarray(match_colors(shifted, source, alpha, ring=16)).astype(int)
    a = np.asarray(alpha)
    ring = (a == 0) & (np.asarray(prepare_mask(Image.fromarray(a), grow=16, feather=0)) == 255)
    after = np.abs(fixed - np.asarray(source))
    assert before == pytest.approx(40)
    assert after[ring].mean() < 2
    assert after[a > 0].mean() < 2  # the shift is gone inside too, where it would show


def test_match_colors_fixes_a_tint_and_keeps_contrast_bounded():
    size = (120, 100)
    source = noise(size, seed=10, low=60, high=180)
    tinted = np.asarray(source).astype(float) * [1.0, 0.8, 1.0] + [0, 0, 25]
    generated = Image.fromarray(np.clip(tinted, 0, 255).astype(np.uint8), "RGB")
    alpha = prepare_mask(rect_mask(size, (40, 30, 80, 70)), grow=0, feather=0)
    fixed = np.asarray(match_colors(generated, source, alpha)).astype(float)
    assert np.abs(fixed.mean(axis=(0, 1)) - np.asarray(source).mean(axis=(0, 1))).max() < 2

    # A flat ring in the output must not make the gain explode.
    flat = Image.new("RGB", size, (90, 90, 90))
    flat.paste(noise((40, 40), seed=11), (40, 30))
    out = np.asarray(match_colors(flat, source, alpha)).astype(float)
    assert out[30:70, 40:80].std() <= np.asarray(flat)[30:70, 40:80].std() * 1.5 + 1


def test_match_colors_without_a_ring_returns_the_generated_image():
    size = (64, 48)
    generated, source = noise(size, seed=12), noise(size, seed=13)
    alpha = Image.new("L", size, 255)
    assert np.array_equal(np.asarray(match_colors(generated, source, alpha)), np.asarray(generated))


# --------------------------------------------------------------------------- crops and sizes


def test_crop_contains_mask_and_padding_and_stays_inside():
    image = (1000, 700)
    bbox = (400, 300, 460, 350)
    box = crop_region(image, bbox, padding=32, native=512)
    left, top, right, bottom = box
    assert 0 <= left and 0 <= top and right <= 1000 and bottom <= 700
    assert left <= 400 - 32 and top <= 300 - 32 and right >= 460 + 32 and bottom >= 350 + 32
    assert (right - left) % 8 == 0 and (bottom - top) % 8 == 0
    assert right - left >= 256 and bottom - top >= 256  # a tiny mask still gets context


def test_crop_shifts_at_the_edges_instead_of_shrinking():
    image = (1000, 700)
    middle = crop_region(image, (480, 320, 560, 380), padding=32, native=512)
    for bbox in [(0, 0, 80, 60), (920, 640, 1000, 700), (0, 640, 80, 700)]:
        box = crop_region(image, bbox, padding=32, native=512)
        assert (box[2] - box[0], box[3] - box[1]) == (middle[2] - middle[0], middle[3] - middle[1])
        assert 0 <= box[0] and 0 <= box[1] and box[2] <= 1000 and box[3] <= 700
        assert box[0] <= bbox[0] and box[1] <= bbox[1] and box[2] >= bbox[2] and box[3] >= bbox[3]


def test_crop_of_a_thin_stroke_is_not_a_thin_strip():
    box = crop_region((2000, 1500), (200, 700, 1800, 710), padding=16, native=512)
    w, h = box[2] - box[0], box[3] - box[1]
    assert w >= 1600 + 32 and max(w, h) / min(w, h) <= 2.0 + 1e-9


def test_crop_larger_than_a_small_image_is_the_whole_image():
    assert crop_region((200, 150), (10, 10, 50, 50), padding=32, native=512) == (0, 0, 200, 150)
    assert crop_region((300, 200), None, padding=32, native=512) == (0, 0, 300, 200)
    # Wider than the minimum on one axis only: that axis keeps its own size.
    assert crop_region((300, 200), (10, 10, 50, 50), padding=32, native=512) == (0, 0, 256, 200)


@pytest.mark.parametrize(
    "size", [(512, 512), (513, 513), (333, 217), (8000, 300), (300, 8000), (17, 1000), (1920, 1080), (64, 64)]
)
def test_model_size_keeps_area_and_aspect(size):
    w, h = model_size(*size, native=512)
    assert w % 8 == 0 and h % 8 == 0 and min(w, h) >= 64
    assert w * h == pytest.approx(512 * 512, rel=0.1)
    # Aspect is off by at most the rounding of each side to a multiple of 8.
    ratio = (w / h) / (size[0] / size[1])
    assert abs(math.log(ratio)) <= math.log((min(w, h) + 4) / (min(w, h) - 4)) + 1e-9


@pytest.mark.parametrize("size", [(1, 1), (1000, 1), (1, 1000), (7, 3)])
def test_model_size_survives_degenerate_regions(size):
    w, h = model_size(*size, native=512, multiple=8)
    assert w % 8 == 0 and h % 8 == 0 and min(w, h) >= 64
    assert w * h <= 512 * 512 * 1.1
    assert (w >= h) == (size[0] >= size[1])


def test_model_size_respects_other_native_sizes_and_multiples():
    w, h = model_size(1500, 1000, native=1024, multiple=16)
    assert w % 16 == 0 and h % 16 == 0
    assert w * h == pytest.approx(1024 * 1024, rel=0.1)
    assert w / h == pytest.approx(1.5, rel=0.05)


# --------------------------------------------------------------------------- outpainting


def test_extend_canvas_places_original_exactly_and_masks_only_new_area():
    image = noise((75, 51), seed=14)
    canvas, mask = extend_canvas(image, left=10, top=0, right=33, bottom=7)
    assert canvas.size == mask.size == (75 + 10 + 33, 51 + 7)
    assert canvas.mode == "RGB" and mask.mode == "L"
    assert np.array_equal(np.asarray(canvas)[0:51, 10:85], np.asarray(image))
    m = np.asarray(mask)
    expected = np.full(m.shape, 255, np.uint8)
    expected[0:51, 10:85] = 0
    assert np.array_equal(m, expected)


def test_extend_canvas_prefills_with_the_nearby_colours():
    image = Image.new("RGB", (100, 80), (200, 30, 30))
    image.paste((30, 30, 200), (50, 0, 100, 80))  # red on the left, blue on the right
    canvas, _ = extend_canvas(image, left=64, top=0, right=64, bottom=0)
    arr = np.asarray(canvas).astype(int)
    far_left, far_right = arr[:, :32].mean(axis=(0, 1)), arr[:, -32:].mean(axis=(0, 1))
    assert far_left[0] > 180 and far_left[2] < 50
    assert far_right[2] > 180 and far_right[0] < 50


def test_extend_canvas_rejects_negative_margins_and_allows_none():
    image = noise((20, 10), seed=15)
    with pytest.raises(ValueError):
        extend_canvas(image, -1, 0, 0, 0)
    canvas, mask = extend_canvas(image, 0, 0, 0, 0)
    assert np.array_equal(np.asarray(canvas), np.asarray(image)) and not np.asarray(mask).any()


def test_outpaint_round_trip_keeps_the_original_outside_the_blend_band():
    image = noise((90, 70), seed=16)
    canvas, mask = extend_canvas(image, 0, 0, 40, 0)
    alpha = prepare_mask(mask, grow=0, feather=16)
    box = crop_region(canvas.size, mask_bbox(alpha), 32, 512)
    result = paste_back(canvas, noise((64, 64), seed=17), box, alpha)
    a, out = np.asarray(alpha), np.asarray(result)
    original_region = out[:, :90]
    assert np.array_equal(original_region[a[:, :90] == 0], np.asarray(image)[a[:, :90] == 0])
    assert (a[:, :90 - 16] == 0).all()  # the blend band reaches exactly `feather` pixels in


def test_paste_back_of_a_transparent_fill_blends_alpha_without_fringes():
    # A transparent canvas whose hidden colour is green; the fill is opaque blue in a box.
    source = np.zeros((20, 20, 4), np.uint8)
    source[..., 1] = 255
    generated = np.zeros((20, 20, 4), np.uint8)
    generated[4:16, 4:16] = (0, 0, 255, 255)
    alpha = np.zeros((20, 20), np.uint8)
    alpha[2:18, 2:18] = 255
    alpha[2:18, 2] = 128  # a feathered edge column, over transparent fill pixels
    alpha[10, 10] = 128   # a half-strength mask pixel over opaque fill
    out = np.asarray(paste_back(Image.fromarray(source, "RGBA"), Image.fromarray(generated, "RGBA"),
                                (0, 0, 20, 20), Image.fromarray(alpha, "L")))
    assert out[8, 8].tolist() == [0, 0, 255, 255], "the fill adds opaque pixels where the source had none"
    assert out[10, 10].tolist() == [0, 0, 255, 128], "half mask: half alpha, the fill's colour, no green"
    assert np.array_equal(out[alpha == 0], source[alpha == 0]), "outside the mask nothing changes"
    assert (out[2:18, 2, 3] == 0).all(), "transparent over transparent stays transparent"


def test_paste_back_keeps_the_source_alpha_for_an_opaque_model_output():
    source = np.zeros((8, 8, 4), np.uint8)
    source[..., 3] = 60
    out = paste_back(Image.fromarray(source, "RGBA"), Image.new("RGB", (8, 8), (200, 0, 0)), (0, 0, 8, 8),
                     Image.new("L", (8, 8), 255), match=False)
    assert out.mode == "RGBA" and (np.asarray(out)[..., 3] == 60).all()
    assert (np.asarray(out)[..., 0] == 200).all()


def test_model_size_runs_a_small_native_model_at_its_native_size():
    # The built-in model: 128 px native, sides a multiple of 32. A 128 px image is not doubled.
    assert model_size(128, 128, native=128, multiple=32) == (128, 128)
    assert model_size(64, 64, native=128, multiple=32) == (128, 128)
    w, h = model_size(1000, 1, native=128, multiple=32)
    assert w % 32 == 0 and h == 128 and w * h <= 128 * 128 * 1.1


def test_paste_back_of_a_transparent_fill_never_punches_a_hole():
    source = np.full((10, 10, 4), 255, np.uint8)  # an opaque white layer
    generated = np.zeros((10, 10, 4), np.uint8)   # the model drew nothing...
    generated[:5] = (200, 0, 0, 255)              # ...except a red top half
    out = np.asarray(paste_back(Image.fromarray(source, "RGBA"), Image.fromarray(generated, "RGBA"),
                                (0, 0, 10, 10), Image.new("L", (10, 10), 255)))
    assert (out[..., 3] == 255).all(), "the layer stays opaque"
    assert (out[:5] == (200, 0, 0, 255)).all() and (out[5:] == 255).all()


def _sticker_on(background, transparent: bool) -> Image.Image:
    """A 128 px disc (an emoji) at (320, 192) on a 768x512 document."""
    doc = Image.new("RGBA", (768, 512), (0, 0, 0, 0) if transparent else background)
    ImageDraw.Draw(doc).ellipse((324, 196, 444, 316), fill=(250, 190, 40, 255))
    return doc


@pytest.mark.parametrize("transparent", [False, True], ids=["opaque-white", "transparent"])
def test_object_window_shows_the_whole_object_under_a_mask_at_one_to_one(transparent):
    doc = _sticker_on((255, 255, 255, 255), transparent)
    mouth = (352, 258, 420, 298)  # the lower part of the disc
    box = object_window(doc, mouth, native=128)
    assert box[2] - box[0] == 128 and box[3] - box[1] == 128, "native size: no zoom"
    assert box[0] <= mouth[0] and box[1] <= mouth[1] and box[2] >= mouth[2] and box[3] >= mouth[3]
    assert abs(box[0] - 320) <= 2 and abs(box[1] - 192) <= 2, "centred on the disc, not on the mask"


def test_object_window_falls_back_to_a_crop_for_large_masks_and_small_images():
    doc = _sticker_on((255, 255, 255, 255), False)
    large = (100, 100, 400, 300)
    assert object_window(doc, large, native=128) == crop_region(doc.size, large, 32, 128)
    small = Image.new("RGB", (100, 80), "white")
    assert object_window(small, (10, 10, 20, 20), native=128) == crop_region(small.size, (10, 10, 20, 20), 32, 128)
    # Nothing around the mask but background: centred on the mask, inside the image.
    box = object_window(Image.new("RGB", (768, 512), "white"), (700, 10, 740, 30), native=128)
    assert box == (640, 0, 768, 128)


def test_extend_canvas_keeps_transparency():
    """Outpainting a transparent sticker: the canvas stays RGBA, the sticker exact (alpha too),
    and the new border as transparent as the sticker's own edge (not flattened over grey)."""
    image = Image.new("RGBA", (60, 40), (10, 200, 10, 0))  # a hidden colour must not bleed outward
    ImageDraw.Draw(image).ellipse((20, 12, 40, 28), fill=(220, 30, 30, 255))
    canvas, mask = extend_canvas(image, left=0, top=8, right=30, bottom=0)
    assert canvas.mode == "RGBA" and canvas.size == (90, 48)
    assert np.array_equal(np.asarray(canvas)[8:48, 0:60], np.asarray(image))
    border = np.asarray(canvas)[np.asarray(mask) == 255].astype(int)
    assert np.asarray(canvas)[:, -1, 3].max() <= 8, "far from the sticker the border is transparent"
    tinted = border[border[:, 3] > 0]
    assert (tinted[:, 0] >= tinted[:, 1]).all(), "what colour the blur spreads is the sticker's, never the hidden green"
    opaque = Image.new("RGBA", (30, 30), (40, 90, 200, 255))
    canvas, _ = extend_canvas(opaque, 0, 0, 20, 0)
    assert canvas.mode == "RGBA" and np.asarray(canvas)[:, 30:, 3].min() == 255


# --------------------------------------------------------------------------- whole objects


def apple_on(canvas_size=(300, 200), colour=(255, 255, 255), box=(120, 60, 180, 140), highlight=True):
    """A red 'apple' (60 x 80 ellipse, with a highlight close to white) on an opaque canvas."""
    image = Image.new("RGB", canvas_size, colour)
    draw = ImageDraw.Draw(image)
    draw.ellipse(box, fill=(210, 30, 40))
    if highlight:
        draw.ellipse((box[0] + 12, box[1] + 12, box[0] + 22, box[1] + 24), fill=(250, 250, 248))
    return image


def test_cut_out_frames_the_object_on_transparency_as_the_model_learnt_objects():
    cut = cut_out(apple_on(), native=128)
    frame = np.asarray(cut.frame)
    assert cut.frame.size == (128, 128) and cut.frame.mode == "RGBA"
    ys, xs = np.nonzero(frame[..., 3] > 128)
    assert abs((ys.max() - ys.min() + 1) - OBJECT_FILL * 128) <= 2, "the longer side fills 90 % of the frame"
    assert abs((xs.min() + xs.max()) / 2 - 63.5) <= 1.5 and abs((ys.min() + ys.max()) / 2 - 63.5) <= 1.5
    assert frame[0, 0, 3] == 0 and frame[64, 2, 3] == 0, "the white canvas around it is gone"
    assert frame[37, 50, 3] == 255, "a highlight inside the object is part of it, not a hole"
    assert cut.background == (255, 255, 255, 255)
    left, top, right, bottom = cut.box
    assert right - left == bottom - top and left < 120 and right > 180 and top < 60 and bottom > 140


def test_cut_out_of_a_transparent_layer_frames_the_drawn_pixels():
    layer = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    ImageDraw.Draw(layer).ellipse((300, 20, 340, 60), fill=(30, 200, 30, 255))
    layer.putpixel((5, 390), (0, 0, 0, 6))  # a faint shadow pixel is not what the object spans
    cut = cut_out(layer, native=32)
    assert cut.background == (0, 0, 0, 0)
    left, top, right, bottom = cut.box
    assert 290 < left < 300 and 340 < right < 350 and 10 < top < 20 and 60 < bottom < 70


@pytest.mark.parametrize("image, reason", [
    (Image.new("RGB", (200, 100), (240, 240, 230)), "plain"),
    (Image.new("RGBA", (64, 64), (255, 0, 0, 0)), "transparent"),
    (noise((200, 150), seed=3), "busy"),
])
def test_cut_out_says_why_there_is_no_object(image, reason):
    with pytest.raises(NoObject) as caught:
        cut_out(image, native=128)
    assert caught.value.reason == reason


def test_lay_back_replaces_the_object_and_leaves_everything_else_byte_identical():
    source = apple_on(colour=(200, 220, 240))
    cut = cut_out(source, native=128)
    frame = np.asarray(cut.frame).copy()
    frame[..., :3] = np.where(frame[..., 3:] > 0, (40, 200, 60), 0)  # "make it green"
    result = lay_back(source, cut, Image.fromarray(frame, "RGBA"))
    assert result.mode == "RGB" and result.size == source.size
    before, after = np.asarray(source).astype(int), np.asarray(result).astype(int)
    red = (before[..., 0] > 150) & (before[..., 1] < 100)
    assert not ((after[..., 0] > 150) & (after[..., 1] < 100)).any(), "no red is left of the old object"
    assert (after[red][:, 1] > 150).mean() > 0.95, "the green object lies where the red one was"
    left, top, right, bottom = cut.box
    outside = np.ones(red.shape, bool)
    outside[max(0, top):bottom, max(0, left):right] = False
    assert np.array_equal(after[outside], before[outside])


def test_lay_back_of_nothing_leaves_the_plain_background():
    """An object edited away entirely (a fully transparent result): the canvas is plain again,
    the old object's anti-aliased rim included."""
    source = apple_on(colour=(200, 220, 240))
    cut = cut_out(source, native=128)
    result = lay_back(source, cut, Image.new("RGBA", (128, 128), (0, 0, 0, 0)))
    assert np.array_equal(np.asarray(result), np.asarray(Image.new("RGB", source.size, (200, 220, 240))))


def test_lay_back_keeps_a_transparent_layer_transparent():
    layer = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    ImageDraw.Draw(layer).ellipse((20, 30, 60, 70), fill=(30, 200, 30, 255))
    cut = cut_out(layer, native=32)
    result = lay_back(layer, cut, cut.frame)
    assert result.mode == "RGBA"
    alpha = np.asarray(result)[..., 3]
    assert alpha[0, 0] == 0 and alpha[99, 99] == 0 and alpha[50, 40] == 255
