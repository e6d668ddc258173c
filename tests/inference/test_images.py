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
