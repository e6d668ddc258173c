"""Small offline stand-ins for the training data's inputs, shared by tests/training/test_data_*.py.

The npm packages are tiny tarballs built here (a few emoji, icons and Fluent SVGs in the real
packages' layouts); `fake_npm` and `fake_apt` put executables named `npm` and `apt-get` on PATH
that hand them out the way the real clients do (`npm pack NAME@VERSION --pack-destination DIR`,
`apt-get download NAME[=VERSION]`), so the code under test runs its real commands and never
reaches a network.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from PIL import Image, ImageDraw

from training import data
from training.data import Pin

TONES = list(data.TONES)
# What the shared `built` dataset (conftest.py) draws: Fluent needs resvg.
BUILT_SOURCES = ("twemoji", "fluent-flat", "fluent-modern") if importlib.util.find_spec("resvg_py") else ("twemoji",)


def _emoji(unified, label, group, subgroup, order, tones=(), tone_labels="cldr"):
    """One emoji.json item and its emojibase label item."""
    image = unified.lower() + ".png"
    item = {"name": label.upper(), "unified": unified, "image": image, "category": group,
            "subcategory": subgroup, "sort_order": order, "has_img_google": True, "has_img_twitter": True}
    labels = {"hexcode": unified.replace("-FE0F", ""), "label": label}
    if tones:
        item["skin_variations"] = {}
        labels["skins"] = []
        for key in tones:
            variant = f"{unified}-{key}"
            item["skin_variations"][key] = {"unified": variant, "image": variant.lower() + ".png"}
            if tone_labels:  # "cldr": as it should be; "base": emojibase 16's slip for some emoji
                tone_label = data._tone_caption(label, key) if tone_labels == "cldr" else label
                labels["skins"].append({"hexcode": variant, "label": tone_label})
    return item, labels


def _catalogue():
    rows = [
        _emoji("1F600", "grinning face", "Smileys & Emotion", "face-smiling", 1),
        _emoji("2764-FE0F", "red heart", "Smileys & Emotion", "heart", 2),
        _emoji("1F499", "blue heart", "Smileys & Emotion", "heart", 3),
        _emoji("1F44D", "thumbs up", "People & Body", "hand-fingers-closed", 4, TONES),
        _emoji("1F468-200D-1F4BB", "man technologist", "People & Body", "person-role", 5, TONES),
        _emoji("1F469-200D-1F4BB", "woman technologist", "People & Body", "person-role", 6, TONES),
        # no skin labels here: captions fall back to CLDR's pattern; "1F3FB-1F3FB" is one tone
        _emoji("1F9D1-200D-1F91D-200D-1F9D1", "people holding hands", "People & Body", "family", 7,
               ("1F3FB-1F3FB", "1F3FB-1F3FC"), tone_labels=None),
        _emoji("1F6B6-200D-27A1-FE0F", "person walking facing right", "People & Body", "person-activity", 8, TONES,
               tone_labels="base"),
        _emoji("1F534", "red circle", "Symbols", "geometric", 8),
        _emoji("1F535", "blue circle", "Symbols", "geometric", 9),
        _emoji("1F3FB", "light skin tone", "Component", "skin-tone", 10),
        _emoji("1F1E6", "regional indicator symbol letter a", "Symbols", "alphanum", 11),
    ]
    rows += [_emoji(f"{0x1F680 + k:X}", f"vehicle {k:02d}", "Travel & Places", "transport", 20 + k)
             for k in range(24)]
    return [item for item, _ in rows], [label for _, label in rows]


def _png(seed: int) -> bytes:
    """16 px: a coloured disc on transparency, off-centre so fit() has something to do."""
    image = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    colour = ((seed * 70) % 256, (seed * 130) % 256, (seed * 40 + 90) % 256, 255)
    ImageDraw.Draw(image).ellipse((1, 2, 11, 12), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _svg(colour: str) -> bytes:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" fill="none" viewBox="0 0 32 32">'
            f'<rect x="4" y="8" width="20" height="16" rx="3" fill="{colour}"/></svg>').encode()


def _icon_svg(shape: str) -> bytes:
    """Drawn as both icon sets draw: 24 px view box, currentColor strokes (and an invisible box)."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24" fill="none" '
            f'stroke="currentColor" stroke-width="2"><path stroke="none" d="M0 0h24v24H0z" fill="none"/>'
            f'{shape}</svg>').encode()


def heldout_icon_name() -> str:
    return next(f"gadget-{k}" for k in range(1000) if data.is_heldout(data.icon_caption(f"gadget-{k}")))


TABLER = {  # name: (category, styles)
    "cat": ("Animals", ("outline", "filled")),
    "dog": ("Animals", ("outline",)),
    "arrow-left": ("Arrows", ("outline",)),
    "no-category": ("", ("outline",)),
    heldout_icon_name(): ("Devices", ("outline", "filled")),
}
LUCIDE = {  # name: tags
    "cat": ["pet"],  # Tabler has the same name
    "puppy": ["pet", "dog"],  # a tag is a Tabler name
    "squiggle": ["wave"],  # nothing to borrow a category from: left out
}


def _tabler_files() -> dict[str, bytes]:
    files = {"package/icons.json": json.dumps({
        name: {"name": name, "category": category, "tags": [], "styles": {s: {} for s in styles}}
        for name, (category, styles) in TABLER.items()}).encode()}
    for name, (_, styles) in TABLER.items():
        for style in styles:
            shape = '<circle cx="12" cy="12" r="8"/>' if style == "outline" else '<rect x="4" y="6" width="16" height="12" fill="currentColor"/>'
            files[f"package/icons/{style}/{name}.svg"] = _icon_svg(shape)
    return files


def _lucide_files() -> dict[str, bytes]:
    files = {"package/tags.json": json.dumps(LUCIDE).encode()}
    for name in [*LUCIDE, "kitty"]:  # "kitty": an alias file, not in tags.json
        files[f"package/icons/{name}.svg"] = _icon_svg('<path d="M4 20 L12 4 L20 20 Z"/>')
    return files


def tgz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def integrity_of(blob: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(blob).digest()).decode()



def build_packages() -> dict:
    """{role: (Pin, tarball bytes)} for every package prepare() reads."""
    emoji_json, labels_json = _catalogue()
    meta = json.dumps(emoji_json).encode()
    images = {}
    for item in emoji_json:
        images[item["image"]] = _png(len(images))
        for variant in (item.get("skin_variations") or {}).values():
            images[variant["image"]] = _png(len(images))
    google = {"package/emoji.json": meta, **{f"package/img/google/64/{k}": v for k, v in images.items()}}
    twitter = {"package/emoji.json": meta, **{f"package/img/twitter/64/{k}": v for k, v in images.items()}}
    fluent = {}
    for style, colour in (("flat", "#e0a000"), ("modern", "#3060f0")):
        for name in ("grinning-face", "red-heart", "blue-heart", "thumbs-up-default", "man-technologist-default",
                     "woman-technologist-default", "keycap-hashtag", "unrelated-thing"):
            fluent[f"package/icons/{style}/{name}.svg"] = _svg(colour)
        for tone in data.TONES.values():
            fluent[f"package/icons/{style}/thumbs-up-{tone}.svg"] = _svg(colour)
    blobs = {
        "tabler": ("@tabler/icons", tgz(_tabler_files())),
        "lucide": ("lucide-static", tgz(_lucide_files())),
        "google": ("emoji-datasource-google", tgz(google)),
        "twitter": ("emoji-datasource-twitter", tgz(twitter)),
        "fluent": ("fluentui-emoji", tgz(fluent)),
        "labels": ("emojibase-data", tgz({"package/en/data.json": json.dumps(labels_json).encode()})),
    }
    return {role: (Pin(name, "0.0.1", integrity_of(blob)), blob) for role, (name, blob) in blobs.items()}



def clipart_svg(title: str | None, colour: str = "#c03030") -> str:
    meta = (f'<metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            f'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:cc="http://web.resource.org/cc/">'
            f'<cc:Work><dc:title>{title}</dc:title><dc:creator><cc:Agent><dc:title>Some Author</dc:title>'
            f'</cc:Agent></dc:creator></cc:Work></rdf:RDF></metadata>') if title is not None else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="300" height="200">{meta}'
            f'<ellipse cx="150" cy="100" rx="120" ry="70" fill="{colour}"/></svg>')


def clipart_tree(root: Path) -> Path:
    """Openclipart's layout in miniature: titled, untitled, skipped and broken files."""
    files = {
        "animals/mammals/crazy_monkey_shandy_brow_01.svg": clipart_svg("Crazy Monkey"),
        "food/fruit/an_apple_01.svg": clipart_svg("Clipart by Nicu Buculei - apple (red) 2004"),
        "food/fruit/pear_02.svg": clipart_svg(None),  # no title: the file name
        "food/fondue_uliphant_01.svg": clipart_svg("Open Clip Art Library"),  # the library's title
        "special/gradients/gradient-zebra.svg": clipart_svg("Zebra gradient"),  # not a picture
        "unsorted/thing.svg": clipart_svg("Thing"),  # no category
        "shapes/broken.svg": "<svg this is not xml",
    }
    files.update({f"signs_and_symbols/road/sign_{k}.svg": clipart_svg("Road signs") for k in range(5)})
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root




def pins_of(packages: dict) -> dict[str, Pin]:
    return {role: pin for role, (pin, _) in packages.items()}


def seed_cache(folder: Path, packages: dict) -> Path:
    """The tarballs where a fetched package lies in the cache: no fetch at all."""
    (folder / "npm").mkdir(parents=True, exist_ok=True)
    for pin, blob in packages.values():
        (folder / "npm" / pin.filename).write_bytes(blob)
    return folder


# npm pack's own behaviour, as far as training.data relies on it: the tarball as published, named
# <name without @, / as ->-<version>.tgz, written into --pack-destination; exit 1 when unknown.
_FAKE_NPM = r'''#!{python}
import json, pathlib, shutil, sys
store = pathlib.Path({store!r})
args = sys.argv[1:]
with open(store / "hits.log", "a") as log:
    log.write(" ".join(args) + "\n")
if not args or args[0] != "pack":
    sys.exit("fake npm: only pack")
spec = next(a for a in args[1:] if not a.startswith("-") and args[args.index(a) - 1] != "--pack-destination")
dest = pathlib.Path(args[args.index("--pack-destination") + 1]) if "--pack-destination" in args else pathlib.Path.cwd()
index = json.loads((store / "index.json").read_text())
if spec not in index:
    sys.exit(f"npm error 404 Not Found - {{spec}}")
name, version = spec.rsplit("@", 1)
shutil.copyfile(store / index[spec], dest / (name.lstrip("@").replace("/", "-") + f"-{{version}}.tgz"))
'''


class FakeNpm:
    """An `npm` on PATH serving `packages` (role -> (Pin, bytes)); `hits` lists the specs packed."""

    def __init__(self, folder: Path, packages: dict, corrupt: str | None = None):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        index = {}
        for role, (pin, blob) in packages.items():
            name = f"{role}.tgz"
            (folder / name).write_bytes(blob[:-10] + b"0" * 10 if role == corrupt else blob)
            index[f"{pin.name}@{pin.version}"] = name
        (folder / "index.json").write_text(json.dumps(index))
        script = folder / "bin" / "npm"
        script.parent.mkdir(exist_ok=True)
        script.write_text(_FAKE_NPM.format(python=sys.executable, store=str(folder)))
        script.chmod(0o755)
        self.bin = script.parent

    @property
    def hits(self) -> list[str]:
        log = self.folder / "hits.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [next(a for a in line.split()[1:] if "@" in a[1:]) for line in lines]


# apt-get download's behaviour: NAME=VERSION fetches that version or fails (exit 100), NAME alone
# fetches the candidate; the .deb lands in the working folder.
_FAKE_APT = r'''#!{python}
import json, pathlib, shutil, sys
store = pathlib.Path({store!r})
args = sys.argv[1:]
with open(store / "apt.log", "a") as log:
    log.write(" ".join(args) + "\n")
if args[:1] != ["download"]:
    sys.exit(100)
debs = json.loads((store / "debs.json").read_text())
spec = args[1]
name, _, version = spec.partition("=")
for deb, (package, have) in debs.items():
    if package == name and (not version or version == have):
        shutil.copy(store / deb, pathlib.Path.cwd() / deb)
        sys.exit(0)
print(f"E: Version '{{version}}' for '{{name}}' was not found" if version else f"E: Unable to locate package {{name}}",
      file=sys.stderr)
sys.exit(100)
'''


class FakeApt:
    """An `apt-get` on PATH that offers the .deb files given to `offer` (and nothing else)."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "debs.json").write_text("{}")
        script = folder / "bin" / "apt-get"
        script.parent.mkdir(exist_ok=True)
        script.write_text(_FAKE_APT.format(python=sys.executable, store=str(folder)))
        script.chmod(0o755)
        self.bin = script.parent

    def offer(self, package: str, version: str, files: dict[str, bytes]) -> None:
        """Build a real .deb (dpkg-deb --build) of `files` (path inside the package -> bytes)."""
        root = self.folder / f"build-{package}-{len(os.listdir(self.folder))}"
        for path, content in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(content)
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN" / "control").write_text(
            f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: Test <test@example.invalid>\n"
            f"Description: a test package\n")
        deb = f"{package}_{version.replace(':', '%3a')}_all.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(self.folder / deb)],
                       check=True, capture_output=True)
        shutil.rmtree(root)
        debs = json.loads((self.folder / "debs.json").read_text())
        debs[deb] = [package, version]
        (self.folder / "debs.json").write_text(json.dumps(debs))

    @property
    def calls(self) -> list[str]:
        log = self.folder / "apt.log"
        return log.read_text().splitlines() if log.exists() else []


def on_path(monkeypatch, *folders: Path) -> None:
    """These folders first on PATH: their npm and apt-get shadow the real ones."""
    monkeypatch.setenv("PATH", os.pathsep.join([*map(str, folders), os.environ.get("PATH", "")]))

