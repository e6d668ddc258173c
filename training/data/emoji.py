"""The emoji sets: the catalogue (emoji-datasource's groups and skin variants, captioned with
emojibase's CLDR names), CLDR keywords, Fluent's file names, and drawing each set: Noto from the
font, Twemoji from its PNGs, Fluent from its SVGs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

from PIL import Image
import io

from training.data.common import TONES, DataError, Entry, cache_dir, log, slug
from training.data.fetch import PINS, Pin, fetch, read_tar
from training.data.render import NotoRenderer, Rendered, _render_svg

# Fluent's file names come from older CLDR names or Microsoft's own; CLDR label -> slug(s).
FLUENT_ALIASES: dict[str, tuple[str, ...]] = {
    "keycap: #": ("keycap-hashtag",),
    "keycap: *": ("keycap-asterisk",),
    "phoenix": ("phoenix-bird",),
    "black bird": ("blackbird",),
    "red triangle pointed up": ("red-triangle",),
    "enraged face": ("pouting-face",),
    "face with crossed-out eyes": ("knocked-out-face",),
    "smiling face with open hands": ("hugging-face",),
    "stuffed flatbread": ("stuffedbread", "stuffedbread-flat"),
    "people with bunny ears": ("person-with-bunny-ears",),
    "men with bunny ears": ("man-with-bunny-ears",),
    "women with bunny ears": ("woman-with-bunny-ears",),
    "people wrestling": ("person-wrestling",),
    "men wrestling": ("man-wrestling",),
    "women wrestling": ("woman-wrestling",),
    "person: blond hair": ("person-blonde-hair",),
    "man: blond hair": ("man-blonde-hair",),
    "woman: blond hair": ("woman-blonde-hair",),
    "deaf person": ("person-deaf",),
    "deaf man": ("man-deaf",),
    "deaf woman": ("woman-deaf",),
    "merperson": ("person-merpeople",),
    "merman": ("man-merpeople",),
    "mermaid": ("woman-merpeople",),
    "superhero": ("person-superhero",),
    "supervillain": ("person-supervillain",),
    "mage": ("person-mage",),
    "fairy": ("person-fairy",),
    "vampire": ("person-vampire",),
    "elf": ("person-elf",),
    "genie": ("person-genie",),
    "zombie": ("person-zombie",),
}


def _key(hexcode: str) -> str:
    """Emojibase drops FE0F where emoji-datasource keeps it; compare without it."""
    return "-".join(part for part in hexcode.upper().split("-") if part != "FE0F")


def text_of(unified: str) -> str:
    return "".join(chr(int(part, 16)) for part in unified.split("-"))


def _skin_key(key: str) -> str:
    """"1F3FB-1F3FB" (both people light) is the single tone "1F3FB"; mixed tones stay as they are."""
    parts = key.split("-")
    return parts[0] if len(set(parts)) == 1 else key


def _tone_caption(name: str, skin: str) -> str:
    """CLDR's pattern: "thumbs up: medium skin tone", "kiss: woman, man, light skin tone"."""
    tones = ", ".join(f"{TONES[t]} skin tone" for t in skin.split("-"))
    return f"{name}, {tones}" if ":" in name else f"{name}: {tones}"


def catalogue(emoji_json: list[dict], labels_json: list[dict]) -> list[Entry]:
    """Every emoji and skin variant worth drawing, in Unicode's order, captioned with CLDR names.

    Skips the Component category (tone swatches, hair pieces: not pictures of anything on their
    own) and lone regional-indicator letters."""
    labels: dict[str, str] = {}
    for item in labels_json:
        labels[_key(item["hexcode"])] = item["label"]
        for skin in item.get("skins") or ():
            labels[_key(skin["hexcode"])] = skin["label"]
    entries: list[Entry] = []
    for item in sorted(emoji_json, key=lambda e: e.get("sort_order", 0)):
        points = [int(p, 16) for p in item["unified"].split("-")]
        if item["category"] == "Component" or (len(points) == 1 and 0x1F1E6 <= points[0] <= 0x1F1FF):
            continue
        label = labels.get(_key(item["unified"])) or (item.get("name") or "").lower()
        variants = item.get("skin_variations") or {}
        common = dict(group=item["category"], subgroup=item["subcategory"], emoji=item["unified"],
                      label=label, has_variants=bool(variants))
        entries.append(Entry(caption=label.lower(), skin="", unified=item["unified"], image=item["image"], **common))
        for key, variant in variants.items():
            skin = _skin_key(key)
            caption = labels.get(_key(variant["unified"]), "")
            if "skin tone" not in caption:  # emojibase 16 repeats the base name for some (90) variants
                caption = _tone_caption(label, skin)
            entries.append(Entry(caption=caption.lower(), skin=skin, unified=variant["unified"],
                                 image=variant["image"], **common))
    return entries


def _emojibase(folder: Path, pins: Mapping[str, Pin]) -> list[dict]:
    """emojibase-data's English `data.json` (CLDR names and keywords), from the pinned tarball."""
    raw = read_tar(fetch(pins["labels"], folder), lambda n: n == "package/en/data.json")
    try:
        return json.loads(raw["package/en/data.json"])
    except KeyError as error:
        raise DataError(f"a pinned package lacks {error}") from error


def emoji_tags(folder: Path | None = None, pins: Mapping[str, Pin] | None = None) -> dict[str, tuple[str, ...]]:
    """CLDR keywords of every emoji by its caption, from the pinned emojibase-data (its `tags`):
    "cat face" -> ("animal", "cat", "face", "kitten", "kitty", "pet")."""
    return {item["label"].lower(): tuple(str(t).lower() for t in item.get("tags") or ())
            for item in _emojibase(folder or cache_dir(), PINS if pins is None else pins)}


def keyword_captions(captions: Iterable[str], tags: Mapping[str, Iterable[str]], taken: Iterable[str],
                     most: int = 3) -> dict[str, tuple[str, ...]]:
    """Extra captions that teach the model the words people type ("kitty", "puppy") for emoji that
    CLDR names otherwise ("cat face", "dog face").

    A keyword only names a picture when few emoji share it: "food", "animal" or "face" are tags of
    hundreds and would teach nothing, so a keyword of more than `most` of `captions` is dropped.
    A keyword that is itself a caption in `taken` (every caption of the data set, the held-out
    ones included) is dropped too: that word has its own pictures, and a held-out caption must
    never reach training as text."""
    captions = sorted(set(captions))
    taken = set(taken)
    count = Counter(t for c in captions for t in set(tags.get(c, ())))
    out = {}
    for caption in captions:
        words = tuple(sorted(t for t in set(tags.get(caption, ())) if count[t] <= most and t not in taken and t))
        if words:
            out[caption] = words
    return out


def fluent_names(entry: Entry) -> tuple[str, ...]:
    """File names (without .svg) that could hold this entry in fluentui-emoji, best first."""
    bases = FLUENT_ALIASES.get(entry.label.lower()) or (slug(entry.label),)
    if entry.skin:
        if entry.skin not in TONES:  # Fluent has no mixed-tone pairs
            return ()
        return tuple(f"{b}-{TONES[entry.skin]}" for b in bases)
    if entry.has_variants:
        return tuple(f"{b}-default" for b in bases) + bases
    return bases


def _render_pngs(source: str, entries: list[Entry], files: Mapping[str, bytes], folder: str,
                 size: int) -> Rendered:
    out = Rendered(source)
    missing = 0
    for entry in entries:
        data = files.get(f"{folder}/{entry.image}")
        if data is None or not out.add(entry, Image.open(io.BytesIO(data)), size):
            missing += 1
    out.stats = {"images": len(out.images), "missing": missing}
    return out


def _render_noto(entries: list[Entry], font: Path, size: int) -> Rendered:
    out = Rendered("noto")
    draw = NotoRenderer(font)
    missing = [entry.caption for entry in entries if not out.add(entry, draw(text_of(entry.unified)), size)]
    out.stats = {"images": len(out.images), "missing_glyphs": len(missing), "missing_examples": missing[:10]}
    return out


def _render_fluent(style: str, entries: list[Entry], files: Mapping[str, bytes], size: int) -> Rendered:
    out = Rendered(f"fluent-{style}")
    prefix = f"package/icons/{style}/"
    svgs = {name[len(prefix):-4]: data for name, data in files.items() if name.startswith(prefix)}
    used: set[str] = set()
    bases, matched_bases, flags, failed = 0, 0, 0, 0
    for entry in entries:
        name = next((n for n in fluent_names(entry) if n in svgs), None)
        if not entry.skin:
            bases += 1
            flags += entry.subgroup in ("country-flag", "subdivision-flag")
            matched_bases += name is not None
        if name is None:
            continue
        used.add(name)
        try:
            image = _render_svg(svgs[name].decode("utf-8"), size)
        except ValueError as error:  # resvg could not parse or draw it: one image less, not no data set
            log(f"{out.source}: {name}.svg: {error}")
            failed += 1
            continue
        out.add(entry, image, size)
    out.stats = {
        "images": len(out.images),
        "matched_base_emoji": matched_bases,
        "base_emoji": bases,
        "base_emoji_without_country_flags": bases - flags,
        "svg_files_used": len(used),
        "svg_files": len(svgs),
        "svg_failed": failed,
        "unused_examples": sorted(set(svgs) - used)[:10],
    }
    return out


def emoji_inputs(folder: Path, pins: Mapping[str, Pin], google_images: bool) -> tuple[list[Entry], dict[str, bytes]]:
    """The catalogue, and emoji-datasource-google's files: its emoji.json, and its 64 px images
    when `google_images` (the noto source without a font)."""
    google = read_tar(fetch(pins["google"], folder), lambda n: n == "package/emoji.json"
                      or (google_images and n.startswith("package/img/google/64/")))
    labels = _emojibase(folder, pins)
    try:
        return catalogue(json.loads(google["package/emoji.json"]), labels), google
    except KeyError as error:
        raise DataError(f"a pinned package lacks {error}") from error
