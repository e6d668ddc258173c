"""training/data/emoji.py: Fluent's file names, CLDR keywords, emojibase tags."""

from __future__ import annotations

import importlib.util
import json

import pytest

from training import data
from training.data import Pin

HAVE_RESVG = importlib.util.find_spec("resvg_py") is not None
SIZE = 32
needs_resvg = pytest.mark.skipif(not HAVE_RESVG, reason="needs resvg_py")

from data_fixtures import integrity_of, tgz


@needs_resvg
def test_fluent_svgs_are_matched_by_cldr_name(built):
    flat = built.captions[built.source == "fluent-flat"]
    assert {"grinning face", "red heart", "thumbs up", "thumbs up: dark skin tone", "man technologist"} <= set(flat)
    assert "vehicle 03" not in set(flat)  # no file, no image
    stats = built.meta["stats"]["fluent-flat"]
    assert stats["svg_files_used"] == 11 and stats["svg_files"] == 13

def test_fluent_names():
    assert data.slug("A button (blood type)") == "a-button-blood-type"
    assert data.slug("1st place medal") == "1st-place-medal"
    assert data.slug("man\u2019s shoe") == "mans-shoe"
    assert data.slug("piñata") == "pinata"
    entry = data.Entry(caption="keycap: #", group="Symbols", subgroup="keycap", emoji="0023-FE0F-20E3", skin="",
                       unified="0023-FE0F-20E3", image="", label="keycap: #", has_variants=False)
    assert data.fluent_names(entry) == ("keycap-hashtag",)

def test_emoji_tags_are_read_from_the_pinned_emojibase_data(npm, tmp_path):
    labels = [{"hexcode": "1F431", "label": "Cat face", "tags": ["Cat", "kitty", "pet"]},
              {"hexcode": "1F600", "label": "grinning face"}]
    blob = tgz({"package/en/data.json": json.dumps(labels).encode()})
    pin = Pin("emojibase-data", "0.0.2", integrity_of(blob))
    (tmp_path / "npm").mkdir()
    (tmp_path / "npm" / pin.filename).write_bytes(blob)  # cached: no download
    assert data.emoji_tags(tmp_path, {"labels": pin}) == {"cat face": ("cat", "kitty", "pet"), "grinning face": ()}
    assert npm.hits == []

def test_keyword_captions_keep_distinctive_words_and_never_a_caption():
    tags = {"cat face": ("animal", "face", "kitty", "kitten", "cat"), "cat": ("animal", "kitten", "cats"),
            "dog face": ("animal", "face", "puppy"), "grinning face": ("face", "happy"),
            "kiwi fruit": ("kiwi", "fruit")}
    captions = ["cat face", "cat", "dog face", "grinning face", "cat face"]
    # "happy" is a held-out caption elsewhere in the data set: it must never reach training as text.
    out = data.keyword_captions(captions, tags, taken=[*captions, "happy"], most=2)
    # "animal" and "face" name three emoji each (more than `most`); "cat" has pictures of its own.
    assert out == {"cat face": ("kitten", "kitty"), "cat": ("cats", "kitten"), "dog face": ("puppy",)}
    assert "kiwi fruit" not in out  # not a training caption
