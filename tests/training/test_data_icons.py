"""training/data/icons.py: Tabler's and Lucide's catalogues and their drawing, from small tarballs."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from data_fixtures import pins_of, seed_cache
from training import data

HAVE_RESVG = importlib.util.find_spec("resvg_py") is not None
SIZE = 32
needs_resvg = pytest.mark.skipif(not HAVE_RESVG, reason="needs resvg_py")

from data_fixtures import heldout_icon_name


@pytest.fixture(scope="module")
def with_icons(packages, tmp_path_factory):
    """Emoji (one set) and both icon sets in one data set."""
    path = data.prepare(seed_cache(tmp_path_factory.mktemp("cache"), packages), size=SIZE,
                        sources=("twemoji", "tabler", "lucide"), pins=pins_of(packages))
    return data.load(path)


@needs_resvg
def test_icons_are_captioned_by_name_and_labelled_by_tabler_category(with_icons):
    ds = with_icons
    icons = {(str(s), str(c)): str(sub) for s, c, sub in zip(ds.source, ds.captions, ds.subgroup) if s != "twemoji"}
    assert icons[("tabler", "cat icon")] == icons[("tabler", "filled cat icon")] == "icon-animals"
    assert icons[("tabler", "arrow left icon")] == "icon-arrows"
    assert ("tabler", "no category icon") not in icons  # no class for the classifier to learn
    assert icons[("lucide", "cat icon")] == "icon-animals"  # by name
    assert icons[("lucide", "puppy icon")] == "icon-animals"  # by its tag "dog", a Tabler name
    assert ("lucide", "squiggle icon") not in icons and ("lucide", "kitty icon") not in icons
    assert set(ds.group[np.isin(ds.source, ["tabler", "lucide"])]) == {data.ICON_GROUP}
    assert "twemoji" in set(ds.source.tolist())  # emoji and icons in one set

@needs_resvg
def test_icons_render_black_on_transparency(with_icons):
    ds = with_icons
    for image in ds.images[np.isin(ds.source, ["tabler", "lucide"])]:
        ink = image[..., 3] > 200
        assert ink.any() and (image[..., 3] == 0).any()
        assert image[ink][:, :3].max() < 40  # currentColor draws black

@needs_resvg
def test_an_icons_styles_are_held_out_together(with_icons):
    ds = with_icons
    name = data.icon_caption(heldout_icon_name())
    rows = [i for i, c in enumerate(ds.captions) if c in (name, "filled " + name)]
    assert len(rows) == 2 and {str(ds.split[i]) for i in rows} == {"heldout"}
    assert data.icon_caption("arrow-big-up") == "arrow big up icon"
    assert data.icon_caption("cat", filled=True) == "filled cat icon"
