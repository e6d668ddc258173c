"""training/data/edits.py: edit pairs between images of one source."""

from __future__ import annotations

import importlib.util

import pytest

from training import data

HAVE_RESVG = importlib.util.find_spec("resvg_py") is not None
SIZE = 32
needs_resvg = pytest.mark.skipif(not HAVE_RESVG, reason="needs resvg_py")



def test_edit_pairs_stay_within_a_source_and_say_what_changes(built):
    pairs = data.edit_pairs(built)
    by_caption = {(str(s), str(c)): i for i, (s, c) in enumerate(zip(built.source, built.captions))}

    def has(a, b, text, source="twemoji"):
        return (by_caption[(source, a)], by_caption[(source, b)], text) in pairs

    assert has("thumbs up", "thumbs up: dark skin tone", "give it dark skin")
    assert has("thumbs up: light skin tone", "thumbs up: medium-light skin tone", "make the skin darker")
    assert has("thumbs up: medium skin tone", "thumbs up: medium-light skin tone", "make the skin lighter")
    assert has("thumbs up: light skin tone", "thumbs up: dark skin tone", "give it dark skin")
    assert has("man technologist", "woman technologist", "make it a woman")
    assert has("woman technologist: dark skin tone", "man technologist: dark skin tone", "make it a man")
    assert has("red heart", "blue heart", "make it blue")
    assert has("blue circle", "red circle", "make it red")
    assert all(built.source[i] == built.source[j] and i != j for i, j, _ in pairs)
    assert {data.pair_kind(t) for _, _, t in pairs} == {"skin", "gender", "colour"}
    if HAVE_RESVG:
        assert has("thumbs up", "thumbs up: light skin tone", "give it light skin", "fluent-flat")
        assert has("red heart", "blue heart", "make it blue", "fluent-modern")

def test_caption_edits_skip_ambiguous_names():
    assert list(data._caption_edits("kiss: woman, man")) == []
    edits = dict(data._caption_edits("man: red hair"))
    assert edits["woman: red hair"] == "make it a woman"
    assert edits["man: white hair"] == "give it white hair"
    assert dict(data._caption_edits("light blue heart"))["red heart"] == "make it red"
