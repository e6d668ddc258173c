"""What every part of the training-data pipeline shares: the source names and their domains,
the catalogue entry every source's images are described by, the held-out rule, the cache folder
and the error kind."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

DATA_ENV = "QUICKBRUSH_DATA"

SOURCES = ("noto", "twemoji", "fluent-flat", "fluent-modern")  # the emoji sets: the default data set
ICON_SOURCES = ("tabler", "lucide")  # black line icons, captioned "<name> icon"
CLIPART_SOURCES = ("openclipart",)  # public-domain clip art, captioned "<title> clip art"
ALL_SOURCES = SOURCES + ICON_SOURCES + CLIPART_SOURCES
ICON_GROUP = "Icons"
CLIPART_GROUP = "Clip art"
DOMAINS = {"emoji": SOURCES, "icons": ICON_SOURCES, "clipart": CLIPART_SOURCES}


def domain_of_source(source: str) -> str:
    return next(name for name, members in DOMAINS.items() if source in members)


def domain_of_group(group: str) -> str:
    return {ICON_GROUP: "icons", CLIPART_GROUP: "clipart"}.get(group, "emoji")


def sources_of(config: Mapping) -> tuple[str, ...]:
    """The data sources a model or run config says it was trained on (older ones: the emoji sets)."""
    return tuple(config.get("data_sources") or SOURCES)


FILL = 0.9  # the emoji's longer side, as a fraction of the square
ALPHA_EDGE = 8  # alpha at or below this does not count towards an emoji's bounding box (soft shadows)
HELDOUT_FRACTION = 0.10
HELDOUT_SALT = "quickbrush-heldout-v1"

# Fitzpatrick modifiers, lightest first; the names are CLDR's.
TONES = {"1F3FB": "light", "1F3FC": "medium-light", "1F3FD": "medium", "1F3FE": "medium-dark", "1F3FF": "dark"}
_TONE_ORDER = list(TONES)


class DataError(RuntimeError):
    """A download, a checksum or an input that is not what the pin says."""


@dataclass(frozen=True)
class Entry:
    """One emoji as it appears in every source: a base emoji or one of its skin-tone variants."""

    caption: str
    group: str
    subgroup: str
    emoji: str  # the base emoji's unified id, e.g. "1F44D"
    skin: str  # "" or the tone ("1F3FD"), or two tones for mixed-tone pairs ("1F3FB-1F3FC")
    unified: str  # this variant's code points, e.g. "1F44D-1F3FD"
    image: str  # file name in the emoji-datasource image folders
    label: str  # the base emoji's CLDR name (for Fluent's file names)
    has_variants: bool  # whether the base emoji has skin tones (Fluent then names its base "-default")
    holdout: str = ""  # what decides the train/held-out split when not the caption (an icon's styles go together)

    @property
    def split(self) -> str:
        return "heldout" if is_heldout(self.holdout or self.caption) else "train"


def is_heldout(caption: str, fraction: float = HELDOUT_FRACTION) -> bool:
    """A fixed, content-addressed choice: the same caption is held out on every machine and run,
    whatever else is in the data set (no random state, no dependence on order or count)."""
    digest = hashlib.sha256(f"{HELDOUT_SALT}:{caption}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def spread(entries: list[Entry], count: int) -> list[Entry]:
    """`count` entries spread evenly over the catalogue, so a small run still sees every group."""
    if count >= len(entries):
        return entries
    picks = np.unique(np.linspace(0, len(entries) - 1, max(count, 1)).round().astype(int))
    return [entries[i] for i in picks]


def slug(text: str) -> str:
    """Fluent's file-name form: "A button (blood type)" -> "a-button-blood-type", "piñata" -> "pinata"."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("'", "").replace("\u2019", "")  # "man's shoe" -> "mans-shoe"
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def cache_dir() -> Path:
    """The data cache: downloads, the rendered datasets (and the trainer's runs). QUICKBRUSH_DATA overrides."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("quickbrush", appauthor=False)) / "training-data"


def log(message: str) -> None:
    print(f"[data] {message}", file=sys.stderr, flush=True)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
