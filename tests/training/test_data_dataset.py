"""training/data/dataset.py: the dataset file prepare() writes and load() reads, from small tarballs."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from data_fixtures import BUILT_SOURCES as SOURCES
from data_fixtures import pins_of
from training import data

HAVE_RESVG = importlib.util.find_spec("resvg_py") is not None
SIZE = 32
needs_resvg = pytest.mark.skipif(not HAVE_RESVG, reason="needs resvg_py")

def test_images_are_straight_alpha_squares_fitted_and_centred(built):
    images = built.images
    assert images.dtype == np.uint8 and images.shape == (len(built), SIZE, SIZE, 4)
    for image in images:
        alpha = image[..., 3]
        assert alpha[0, 0] == alpha[-1, -1] == 0  # transparent background
        assert (image[alpha == 0, :3] == 0).all()
        ys, xs = np.nonzero(alpha > data.ALPHA_EDGE)
        longer = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
        assert abs(longer - data.FILL * SIZE) <= 1.5
        assert abs((xs.min() + xs.max()) / 2 - (SIZE - 1) / 2) <= 1
        assert abs((ys.min() + ys.max()) / 2 - (SIZE - 1) / 2) <= 1
    assert (images[..., 3] == 255).any(axis=(1, 2)).all()  # an opaque middle, not a faint smear

def test_captions_groups_and_skin_tones(built):
    rows = {(str(s), str(c)): i for i, (s, c) in enumerate(zip(built.source, built.captions))}
    i = rows[("twemoji", "thumbs up: medium skin tone")]
    assert (built.emoji[i], built.skin[i]) == ("1F44D", "1F3FD")
    assert (built.group[i], built.subgroup[i]) == ("People & Body", "hand-fingers-closed")
    i = rows[("twemoji", "grinning face")]
    assert built.skin[i] == "" and built.group[i] == "Smileys & Emotion"
    # no tone labels in the data: CLDR's own pattern, and a doubled tone is one tone
    i = rows[("twemoji", "people holding hands: light skin tone")]
    assert built.skin[i] == "1F3FB"
    assert ("twemoji", "people holding hands: light skin tone, medium-light skin tone") in rows
    assert ("twemoji", "person walking facing right: dark skin tone") in rows
    for source in set(built.source):  # a caption names one picture per source
        captions = built.captions[built.source == source]
        assert len(set(captions)) == len(captions)
    assert "Component" not in set(built.group)
    assert not any("regional indicator" in c for c in built.captions)
    assert set(built.source) == set(SOURCES)
    assert built.meta["settings"]["size"] == SIZE

def test_heldout_is_chosen_by_caption_across_every_source(built):
    train, heldout = set(built.captions[built.train_indices()]), set(built.captions[built.heldout_indices()])
    assert heldout and train and not train & heldout
    for caption in heldout:
        assert set(built.split[built.captions == caption]) == {"heldout"}
    assert all(data.is_heldout(c) for c in heldout)
    # about 10 %, and the same on every run: a hash, not a random state
    many = [f"caption {k}" for k in range(20000)]
    share = sum(map(data.is_heldout, many)) / len(many)
    assert 0.09 < share < 0.11
    assert [data.is_heldout(c) for c in many[:50]] == [data.is_heldout(c) for c in many[:50]]

def test_emoji_only_settings_do_not_depend_on_the_icon_pins():
    """Adding an icon pin (or bumping one) must not make the emoji data set stale."""
    emoji = data._settings(128, data.SOURCES, None, data.PINS)
    assert "tabler" not in emoji["pins"] and "lucide" not in emoji["pins"]
    icons = data._settings(128, ("lucide",), None, data.PINS)
    assert set(icons["pins"]) == {"tabler", "lucide"}  # Lucide borrows Tabler's categories
    assert data.dataset_name(128, data.ALL_SOURCES) == "dataset-128-all.npz"
    assert data.parse_sources("all") == data.ALL_SOURCES
    assert data.parse_sources("twemoji,tabler") == ("twemoji", "tabler")

def test_second_run_does_no_network_io(packages, npm, tmp_path):
    path = data.prepare(tmp_path, size=SIZE, sources=("twemoji",), pins=pins_of(packages))
    stamp = path.stat().st_mtime_ns
    assert len(npm.hits) == 3  # google (catalogue), labels, twitter
    assert data.prepare(tmp_path, size=SIZE, sources=("twemoji",), pins=pins_of(packages)) == path
    assert path.stat().st_mtime_ns == stamp
    # other settings rebuild, still from the cached tarballs
    other = data.prepare(tmp_path, size=24, sources=("twemoji",), pins=pins_of(packages))
    assert other.name == "dataset-24-twemoji.npz" and data.load(other).images.shape[1:] == (24, 24, 4)
    assert len(npm.hits) == 3

def test_limit_spreads_over_the_catalogue(packages, npm, tmp_path):
    path = data.prepare(tmp_path, size=SIZE, sources=("twemoji",), limit=8, pins=pins_of(packages))
    assert path.name == f"dataset-{SIZE}-twemoji-limit8.npz"  # never replaces the full set
    ds = data.load(path)
    assert 4 <= len(ds) <= 8
    assert len(set(ds.group)) >= 2

def test_unknown_source_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown sources"):
        data.prepare(tmp_path, sources=("openmoji",))

def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    assert data.cache_dir() == tmp_path

def test_command_line_prints_a_json_summary(packages, npm, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data.dataset, "PINS", pins_of(packages))  # what prepare() defaults to
    assert data.main(["--size", str(SIZE), "--sources", "twemoji", "--cache-dir", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["per_source"]["twemoji"] == summary["images"] > 0
    assert summary["edit_pairs"]["skin"] > 0 and summary["heldout_captions"] > 0
    assert summary["per_group"]["People & Body"] > 0

def _noto_font() -> Path | None:
    """QUICKBRUSH_NOTO_FONT, else an installed Noto Color Emoji (Debian's fonts-noto-color-emoji)."""
    given = os.environ.get("QUICKBRUSH_NOTO_FONT")
    if given:
        return Path(given)
    if data.SYSTEM_NOTO_FONT.is_file():
        return data.SYSTEM_NOTO_FONT
    if shutil.which("fc-match"):
        found = subprocess.run(["fc-match", "-f", "%{file}", "Noto Color Emoji"], capture_output=True, text=True)
        if "NotoColorEmoji" in found.stdout:
            return Path(found.stdout)
    return None


@pytest.mark.skipif(_noto_font() is None, reason="no Noto Color Emoji font installed")
def test_noto_renders_from_the_font(packages, npm, tmp_path):
    ds = data.load(data.prepare(tmp_path, size=SIZE, sources=("noto",), pins=pins_of(packages),
                                noto_font=_noto_font()))
    captions = set(ds.captions)
    assert {"grinning face", "thumbs up: dark skin tone", "woman technologist"} <= captions
    assert ds.meta["stats"]["noto"]["font"] == "given"
    grin = ds.images[list(ds.captions).index("grinning face")]
    assert grin[SIZE // 2, SIZE // 2, 3] == 255 and grin[0, 0, 3] == 0
