"""The small build before and after training/data.py became a package: the same fixtures and
pins must give the same arrays, byte for byte.

The digests were recorded with the single-file training/data.py (commit ffe1437), before any of
the split: every array of the dataset file but `meta` (which holds build times, and since the
split the versions). The pixels depend on Pillow's and resvg's drawing, so a new Pillow or resvg_py
may change them: then check the images by eye and record new digests, saying why in the commit.
Recorded with Pillow 13.0.0 and resvg_py 0.5.0; the font case with Debian 12's
fonts-noto-color-emoji 2.042-0+deb12u1 (its font's sha256 below).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from data_fixtures import clipart_tree, pins_of, seed_cache
from training import data

NOTO_FONT_SHA256 = "e5899ed38b8ed83e08bd3ac5de09791e9d19d288333a796de1d35ad17396f1ec"

EXPECTED = {
    'npm_and_clipart': {
        'captions': 'a4d1ca36c397542ef75b87f702c08a96e0eb3e7133e1ae431c4e5bf4a3aca17f',
        'emoji': '602ab15afdf75872fdc63d981715a959e1c9ded465b917e81622e5c18211224d',
        'group': 'ad7f903e9ce513e8b982bc9307d509f4259b10fcf18e3b30ef398fe37048b1a6',
        'images': '15b8ed504632dfd316883f59c1ac0e4067269e7477aa8e3921cbe89321f63dfd',
        'skin': '2fe79aad06ab69b32b3b199465ffbb46b6b2f268314ff06fdf163c2e1b5a8647',
        'source': '6cf3b8f46579e1363fac3afdcd39b62f1668fbbb8a582dcc409308302df698af',
        'split': 'a684f4c24fc64d22a1814347b9186a0c3fcd37af64a41e29352e7ff9dd8d969d',
        'subgroup': '78588df9ee0f97db8f9b0538964be0ded3d6f94a5c8cec170259b1972a337881',
    },
    'noto_font': {
        'captions': 'b1484c0836f4211c706e432f5be378d8374680dc520f5d66a98f83db110db229',
        'emoji': '1fba89d9aebf0016d005e49a061a06a1ede669b051e322f14d9b3084040fcbda',
        'group': 'ffb5dd5cc38c22b0ee9f110e92a0f2547e5305c454924685ae60ad755ca6a90f',
        'images': '0599ff1fb8689a2280098f57f0dcb94f2136e513a120025b168a0eb5005a34a6',
        'skin': 'f8bd41338d2e471de8ccab54e60f1e86b2c9f0349e6462c9a25b06c3e661d761',
        'source': 'df53e947a0f47304b6b8406a3a003a72d6497185afdd1962f84047a80afbb066',
        'split': 'a3453f992b7fec22ca7397854c1ad5ec2480b72fa2ae1e0b252f9a3191b644b7',
        'subgroup': 'f9eeecc17045d018e87ac0cf9dd19536051a4c1edd10f7a0708a0b583c152269',
    },
    'noto_png': {
        'captions': 'daf3b272af8bbf5519ed02eff727388870a1c398ebc7f0c7e7297574631d0df1',
        'emoji': '5b053b3fe31f7d6e4d0221146acfc987d2b6144fe03b9130dbb7c21570549573',
        'group': 'ce9a9d685fb119dc8c50b84ebfc85c1934f234b05452aadd16b4dfcb9c60ceb0',
        'images': '6e2d60851e63f4968896c317141bcf2545766a0a40566e5a4807163fc6bec39b',
        'skin': '70093f7ba881364f9ec1c7ca447d73a798449b001af041a0a5aa26856a8542a9',
        'source': '5e4b6060d3e5f0488379c0f9fe8ff0567f60a813a733f4ab10bf5f0ce5684413',
        'split': '6aaa28d09787d74398934ba6cba35410f9980859a8041bb9ffd04ade3592b88f',
        'subgroup': '2a410f210ccccf4775c1dafce04373a8902615b2281c5883ed70f0d543b22744',
    },
}

needs_resvg = pytest.mark.skipif(importlib.util.find_spec("resvg_py") is None, reason="needs resvg_py")


def _digests(path: Path) -> dict[str, str]:
    with np.load(path, allow_pickle=False) as arrays:
        return {name: hashlib.sha256(np.ascontiguousarray(arrays[name]).tobytes()).hexdigest()
                for name in sorted(arrays.files) if name != "meta"}


def _cache(tmp_path_factory, packages) -> Path:
    return seed_cache(tmp_path_factory.mktemp("cache"), packages)


@needs_resvg
def test_npm_sources_and_clip_art_give_the_same_arrays(packages, tmp_path_factory):
    path = data.prepare(_cache(tmp_path_factory, packages), size=32,
                        sources=("twemoji", "fluent-flat", "fluent-modern", "tabler", "lucide", "openclipart"),
                        pins=pins_of(packages), clipart_dir=clipart_tree(tmp_path_factory.mktemp("openclipart")))
    assert _digests(path) == EXPECTED["npm_and_clipart"]


def _debian_font() -> Path | None:
    font = data.SYSTEM_NOTO_FONT
    if font.is_file() and hashlib.sha256(font.read_bytes()).hexdigest() == NOTO_FONT_SHA256:
        return font
    return None


@pytest.mark.skipif(_debian_font() is None, reason="needs Debian 12's Noto Color Emoji font installed")
def test_noto_from_the_font_gives_the_same_arrays(packages, tmp_path_factory):
    path = data.prepare(_cache(tmp_path_factory, packages), size=32, sources=("noto",), pins=pins_of(packages),
                        noto_font=_debian_font())
    assert _digests(path) == EXPECTED["noto_font"]


def test_noto_without_a_font_gives_the_same_arrays(packages, tmp_path_factory, no_debian):
    """Before the split this happened whenever no font was found; now only with allow_other_versions."""
    path = data.prepare(_cache(tmp_path_factory, packages), size=32, sources=("noto",), pins=pins_of(packages),
                        allow_other_versions=True)
    assert _digests(path) == EXPECTED["noto_png"]
