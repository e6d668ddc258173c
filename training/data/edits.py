"""Edit pairs: images of one source that differ by one instruction (skin tone, man/woman, colour)."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING, Iterator

from training.data.common import _TONE_ORDER, TONES

if TYPE_CHECKING:
    from training.data.dataset import Dataset

_COLOURS = ("light blue", "red", "orange", "yellow", "green", "blue", "purple", "brown", "black", "white",
            "grey", "pink")
_COLOUR_RE = re.compile(r"\b(" + "|".join(_COLOURS) + r")\b")  # "light blue" first: it contains "blue"
_GENDER_RE = re.compile(r"\b(man|woman)\b")


def _caption_edits(caption: str) -> Iterator[tuple[str, str]]:
    """(other caption, instruction) for the gender and colour twins a caption might have."""
    genders = list(_GENDER_RE.finditer(caption))
    if len(genders) == 1:  # "kiss: woman, man" has two: swapping one is not "make it a man"
        match = genders[0]
        other = "woman" if match.group(1) == "man" else "man"
        yield caption[: match.start()] + other + caption[match.end():], f"make it a {other}"
    colours = list(_COLOUR_RE.finditer(caption))
    if len(colours) == 1:
        match = colours[0]
        hair = caption[match.end():].startswith(" hair")
        for colour in _COLOURS:
            if colour != match.group(1):
                text = f"give it {colour} hair" if hair else f"make it {colour}"
                yield caption[: match.start()] + colour + caption[match.end():], text


def edit_pairs(ds: Dataset) -> list[tuple[int, int, str]]:
    """(source index, target index, instruction) between images of the same source.

    Skin tones ("give it medium skin", one step: "make the skin darker" / "lighter"), gender
    twins ("man technologist" -> "make it a woman") and colour families ("red heart" ->
    "make it blue"). Pairs may cross the train/held-out split; filter on ds.split as needed.
    """
    pairs: list[tuple[int, int, str]] = []
    tones: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    by_caption: dict[str, dict[str, int]] = defaultdict(dict)
    for i, (source, emoji, skin, caption) in enumerate(zip(ds.source, ds.emoji, ds.skin, ds.captions)):
        if skin == "" or skin in TONES:
            tones[(str(source), str(emoji))].setdefault(str(skin), i)
        by_caption[str(source)].setdefault(str(caption), i)
    for variants in tones.values():
        present = [t for t in _TONE_ORDER if t in variants]
        if "" in variants:
            pairs += [(variants[""], variants[t], f"give it {TONES[t]} skin") for t in present]
        for a in present:
            for b in present:
                step = _TONE_ORDER.index(b) - _TONE_ORDER.index(a)
                if step:
                    text = {1: "make the skin darker", -1: "make the skin lighter"}.get(
                        step, f"give it {TONES[b]} skin")
                    pairs.append((variants[a], variants[b], text))
    for index in by_caption.values():
        for caption, i in index.items():
            for other, text in _caption_edits(caption):
                j = index.get(other)
                if j is not None:
                    pairs.append((i, j, text))
    return pairs


def pair_kind(instruction: str) -> str:
    if "skin" in instruction:
        return "skin"
    if instruction in ("make it a man", "make it a woman"):
        return "gender"
    return "colour"
