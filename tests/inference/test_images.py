"""User images are decoded by Pillow's real decoders; bad files give a clear BadInput."""

import numpy as np
import pytest
from PIL import Image

from inference.images import open_image, open_mask
from inference.jobs import BadInput


def test_reads_common_formats_as_rgb(tmp_path):
    source = Image.fromarray((np.random.RandomState(0).rand(30, 40, 3) * 255).astype("uint8"))
    for ext in ("png", "jpg", "webp", "bmp", "tiff"):
        path = tmp_path / f"img.{ext}"
        source.save(path)
        image = open_image(path)
        assert image.mode == "RGB" and image.size == (40, 30)


def test_keeps_transparency(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGBA", (8, 8), (255, 0, 0, 100)).save(path)
    assert open_image(path).mode == "RGBA"


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    Image.new("RGB", (40, 20), "white").save(path, exif=exif)
    assert open_image(path).size == (20, 40)


@pytest.mark.parametrize("content, words", [
    (b"", "not an image"),
    (b"hello, not an image", "not an image"),
])
def test_not_an_image(tmp_path, content, words):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(BadInput, match=words):
        open_image(path)


def test_truncated_file_is_reported_as_damaged(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray((np.random.RandomState(0).rand(200, 200, 3) * 255).astype("uint8")).save(path)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(BadInput, match="photo.jpg is damaged or incomplete"):
        open_image(path)


def test_missing_and_folder(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        open_image(tmp_path / "gone.png")
    with pytest.raises(BadInput, match="is a folder"):
        open_image(tmp_path)


def test_mask_from_grey_or_from_alpha(tmp_path):
    grey = tmp_path / "grey.png"
    Image.new("L", (10, 10), 200).save(grey)
    assert open_mask(grey).getpixel((0, 0)) == 200
    painted = tmp_path / "painted.png"
    layer = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (2, 2, 5, 5))
    layer.save(painted)
    mask = open_mask(painted)
    assert mask.mode == "L" and mask.getpixel((3, 3)) == 255 and mask.getpixel((8, 8)) == 0


# --------------------------------------------------------------------------- high bit depth


def _ramp16(width=256, height=8):
    """Every 16-bit level band from black to white, left to right."""
    return np.tile(np.linspace(0, 65535, width).round().astype(np.uint16), (height, 1))


@pytest.mark.parametrize("mode, ext", [("I;16", "png"), ("I;16B", "tiff"), ("I", "tiff"), ("F", "tiff")])
def test_high_bit_depth_greyscale_keeps_its_tones(tmp_path, mode, ext):
    """A 16-bit greyscale PNG (and 16-bit or float TIFF) is scaled to 8 bits, not clipped to white."""
    ramp = _ramp16()
    if mode == "I;16":
        image = Image.fromarray(ramp)
    elif mode == "I;16B":
        image = Image.frombytes("I;16B", ramp.shape[::-1], ramp.astype(">u2").tobytes())
    elif mode == "I":
        image = Image.fromarray(ramp.astype(np.int32))
    else:
        image = Image.fromarray((ramp / 65535).astype(np.float32))
    path = tmp_path / f"grey16.{ext}"
    image.save(path)
    assert Image.open(path).mode == mode, "the file really is high bit depth"
    out = open_image(path)
    assert out.mode == "RGB"
    expected = ramp / 257
    assert np.abs(np.asarray(out)[..., 0] - expected).max() <= 1, "each level lands on its 8-bit tone"
    assert np.asarray(out).std() > 60, "not one flat colour"


def test_a_transparent_grey_level_in_a_16_bit_png_stays_transparent(tmp_path):
    ramp = _ramp16()
    path = tmp_path / "keyed.png"
    Image.fromarray(ramp).save(path, transparency=0)
    out = open_image(path)
    assert out.mode == "RGBA"
    alpha = np.asarray(out)[..., 3]
    assert np.all(alpha[:, 0] == 0) and np.all(alpha[:, 1:] == 255)


@pytest.mark.parametrize("mode, key", [("L", 0), ("RGB", (0, 0, 0))])
def test_a_transparent_colour_in_an_8_bit_png_stays_transparent(tmp_path, mode, key):
    image = Image.new(mode, (6, 6), key)
    image.paste(200 if mode == "L" else (200, 30, 30), (2, 2, 4, 4))
    path = tmp_path / "keyed.png"
    image.save(path, transparency=key)
    out = open_image(path)
    assert out.mode == "RGBA"
    assert out.getpixel((0, 0))[3] == 0 and out.getpixel((3, 3))[3] == 255


# --------------------------------------------------------------------------- too large


def _png_claiming(tmp_path, width, height, name="huge.png"):
    """A real PNG written by Pillow whose header then claims width x height pixels (its few
    bytes of data would decode, if anyone tried, as a damaged file)."""
    import struct
    import zlib

    path = tmp_path / name
    Image.new("L", (1, 1), 0).save(path)
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("side", [24000, 40000])  # between once and twice the limit, and above
@pytest.mark.parametrize("opener", [open_image, open_mask])
def test_an_image_over_the_limit_is_refused_as_too_large_before_decoding(tmp_path, side, opener):
    path = _png_claiming(tmp_path, side, side)
    with pytest.raises(BadInput, match=r"huge\.png is too large") as caught:
        opener(path)
    assert "damaged" not in caught.value.message
    assert "300 megapixels" in caught.value.message


def test_every_pillow_opener_refuses_above_the_one_limit(tmp_path):
    """Pillow's own refusal (editor.ora and the recipe reader call Image.open directly) is
    exactly MAX_PIXELS, not twice it."""
    import warnings

    from inference import images

    over = _png_claiming(tmp_path, 17321, 17321, "over.png")  # 300,017,041 pixels
    under = _png_claiming(tmp_path, 17320, 17320, "under.png")  # 299,982,400
    assert 17321 ** 2 > images.MAX_PIXELS >= 17320 ** 2
    with pytest.raises(Image.DecompressionBombError):
        Image.open(over)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        assert Image.open(under).size == (17320, 17320)


def test_the_limit_is_checked_even_when_pillow_s_is_lifted(tmp_path, monkeypatch):
    """Some libraries set Image.MAX_IMAGE_PIXELS = None; open_image still keeps the one limit."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = _png_claiming(tmp_path, 24000, 24000)
    with pytest.raises(BadInput, match="too large"):
        open_image(path)


def test_an_image_at_the_limit_opens(tmp_path, monkeypatch):
    from inference import images

    monkeypatch.setattr(images, "MAX_PIXELS", 100 * 60)
    Image.new("RGB", (100, 60), "white").save(tmp_path / "fits.png")
    assert open_image(tmp_path / "fits.png").size == (100, 60)
    Image.new("RGB", (101, 60), "white").save(tmp_path / "over.png")
    with pytest.raises(BadInput, match=r"over\.png is too large: 101 × 60 pixels"):
        open_image(tmp_path / "over.png")
