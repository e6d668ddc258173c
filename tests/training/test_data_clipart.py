"""training/data/clipart.py: Openclipart's captions, classes and drawing."""

from __future__ import annotations

import importlib.util

import pytest

from training import data

HAVE_RESVG = importlib.util.find_spec("resvg_py") is not None
SIZE = 32
needs_resvg = pytest.mark.skipif(not HAVE_RESVG, reason="needs resvg_py")

from training.data import clipart as clipart_module


def test_clipart_captions_come_from_titles_and_classes_from_folders(clipart, monkeypatch):
    monkeypatch.setattr(clipart_module, "CLIPART_MIN_CLASS", 2)
    svgs = {p.relative_to(clipart).as_posix(): p.read_text() for p in clipart.rglob("*.svg")}
    entries = {e.image: e for e in data.clipart_catalogue(svgs)}
    assert entries["animals/mammals/crazy_monkey_shandy_brow_01.svg"].caption == "crazy monkey clip art"
    assert entries["food/fruit/an_apple_01.svg"].caption == "apple clip art"
    assert entries["food/fruit/pear_02.svg"].caption == "pear clip art"
    assert entries["food/fondue_uliphant_01.svg"].caption == "fondue uliphant clip art"
    # five files share one title: it names the collection, so the file names caption them
    assert entries["signs_and_symbols/road/sign_3.svg"].caption == "sign clip art"
    assert entries["food/fruit/pear_02.svg"].subgroup == "clipart-food-fruit"
    assert entries["animals/mammals/crazy_monkey_shandy_brow_01.svg"].subgroup == "clipart-animals"  # one file: too small
    assert not any(p.startswith(("special/", "unsorted/")) for p in entries)
    assert {e.group for e in entries.values()} == {data.CLIPART_GROUP}

@needs_resvg
def test_clipart_renders_and_a_broken_file_costs_one_image(clipart, tmp_path):
    path = data.prepare(tmp_path, size=SIZE, sources=("openclipart",), clipart_dir=clipart)
    ds = data.load(path)
    assert "shapes/broken.svg" not in " ".join(ds.emoji.tolist())
    assert ds.meta["stats"]["openclipart"]["svg_failed"] == 1
    apple = ds.images[list(ds.captions).index("apple clip art")]
    assert apple[SIZE // 2, SIZE // 2, 3] == 255 and apple[SIZE // 2, SIZE // 2, 0] > 150  # the red ellipse, fitted
    assert apple[0, 0, 3] == 0
