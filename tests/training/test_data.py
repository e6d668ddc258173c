"""The training data pipeline, offline: tiny npm tarballs built here, served by a local registry."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from training import data
from training.data import DataError, Pin

HAVE_RESVG = importlib.util.find_spec("resvg_py") is not None

SIZE = 32
SOURCES = ("twemoji", "fluent-flat", "fluent-modern") if HAVE_RESVG else ("twemoji",)
needs_resvg = pytest.mark.skipif(not HAVE_RESVG, reason="needs resvg_py")

TONES = list(data.TONES)


# --------------------------------------------------------------------------- fake packages


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


def _heldout_icon_name() -> str:
    return next(f"gadget-{k}" for k in range(1000) if data.is_heldout(data.icon_caption(f"gadget-{k}")))


TABLER = {  # name: (category, styles)
    "cat": ("Animals", ("outline", "filled")),
    "dog": ("Animals", ("outline",)),
    "arrow-left": ("Arrows", ("outline",)),
    "no-category": ("", ("outline",)),
    _heldout_icon_name(): ("Devices", ("outline", "filled")),
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


def _tgz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _integrity(blob: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(blob).digest()).decode()


@pytest.fixture(scope="module")
def packages():
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
        "tabler": ("@tabler/icons", _tgz(_tabler_files())),
        "lucide": ("lucide-static", _tgz(_lucide_files())),
        "google": ("emoji-datasource-google", _tgz(google)),
        "twitter": ("emoji-datasource-twitter", _tgz(twitter)),
        "fluent": ("fluentui-emoji", _tgz(fluent)),
        "labels": ("emojibase-data", _tgz({"package/en/data.json": json.dumps(labels_json).encode()})),
    }
    return {role: (Pin(name, "0.0.1", _integrity(blob)), blob) for role, (name, blob) in blobs.items()}


# --------------------------------------------------------------------------- icons


@pytest.fixture(scope="module")
def with_icons(packages, tmp_path_factory):
    """Emoji (one set) and both icon sets in one data set."""
    served = Registry(packages)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(data.REGISTRY_ENV, served.url)
        path = data.prepare(tmp_path_factory.mktemp("cache"), size=SIZE, sources=("twemoji", "tabler", "lucide"),
                            pins=_pins(packages))
    served.stop()
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
    name = data.icon_caption(_heldout_icon_name())
    rows = [i for i, c in enumerate(ds.captions) if c in (name, "filled " + name)]
    assert len(rows) == 2 and {str(ds.split[i]) for i in rows} == {"heldout"}
    assert data.icon_caption("arrow-big-up") == "arrow big up icon"
    assert data.icon_caption("cat", filled=True) == "filled cat icon"


def test_emoji_only_settings_do_not_depend_on_the_icon_pins():
    """Adding an icon pin (or bumping one) must not make the emoji data set stale."""
    emoji = data._settings(128, data.SOURCES, None, data.PINS)
    assert "tabler" not in emoji["pins"] and "lucide" not in emoji["pins"]
    icons = data._settings(128, ("lucide",), None, data.PINS)
    assert set(icons["pins"]) == {"tabler", "lucide"}  # Lucide borrows Tabler's categories
    assert data.dataset_name(128, data.ALL_SOURCES) == "dataset-128-all.npz"
    assert data.parse_sources("all") == data.ALL_SOURCES
    assert data.parse_sources("twemoji,tabler") == ("twemoji", "tabler")


def _pins(packages):
    return {role: pin for role, (pin, _) in packages.items()}


class Registry:
    """A real HTTP server at npm's tarball layout; `hits` lists the paths asked for."""

    def __init__(self, packages, corrupt: str | None = None):
        files = {}
        for role, (pin, blob) in packages.items():
            files[f"/{pin.name}/-/{pin.filename}"] = blob[:-10] + b"0" * 10 if role == corrupt else blob
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()
            self.server = None


@pytest.fixture
def registry(packages, monkeypatch):
    served = Registry(packages)
    monkeypatch.setenv(data.REGISTRY_ENV, served.url)
    yield served
    served.stop()


@pytest.fixture(scope="module")
def built(packages, tmp_path_factory):
    """One dataset, built once for the read-only tests."""
    served = Registry(packages)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(data.REGISTRY_ENV, served.url)
        path = data.prepare(tmp_path_factory.mktemp("cache"), size=SIZE, sources=SOURCES, pins=_pins(packages))
    served.stop()
    return data.load(path)


# --------------------------------------------------------------------------- the dataset


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


# --------------------------------------------------------------------------- downloads and caching


def test_second_run_does_no_network_io(packages, registry, tmp_path):
    path = data.prepare(tmp_path, size=SIZE, sources=("twemoji",), pins=_pins(packages))
    stamp = path.stat().st_mtime_ns
    assert len(registry.hits) == 3  # google (catalogue), labels, twitter
    registry.stop()
    assert data.prepare(tmp_path, size=SIZE, sources=("twemoji",), pins=_pins(packages)) == path
    assert path.stat().st_mtime_ns == stamp
    # other settings rebuild, still from the cached tarballs
    other = data.prepare(tmp_path, size=24, sources=("twemoji",), pins=_pins(packages))
    assert other.name == "dataset-24-twemoji.npz" and data.load(other).images.shape[1:] == (24, 24, 4)
    assert len(registry.hits) == 3


def test_corrupt_tarball_is_refused_and_nothing_is_written(packages, monkeypatch, tmp_path):
    served = Registry(packages, corrupt="twitter")
    monkeypatch.setenv(data.REGISTRY_ENV, served.url)
    try:
        with pytest.raises(DataError, match="integrity check"):
            data.prepare(tmp_path, size=SIZE, sources=("twemoji",), pins=_pins(packages))
    finally:
        served.stop()
    assert not list(tmp_path.glob("dataset-*")) and not list(tmp_path.glob(".dataset-*"))
    assert not [p.name for p in (tmp_path / "npm").iterdir() if "twitter" in p.name]


def test_a_damaged_cached_tarball_is_fetched_again(packages, registry, tmp_path):
    data.prepare(tmp_path, size=SIZE, sources=("twemoji",), pins=_pins(packages))
    cached = tmp_path / "npm" / packages["twitter"][0].filename
    cached.write_bytes(b"truncated")
    data.prepare(tmp_path, size=24, sources=("twemoji",), pins=_pins(packages))
    assert registry.hits.count(f"/emoji-datasource-twitter/-/{cached.name}") == 2
    assert cached.read_bytes() == packages["twitter"][1]


def test_production_pins_are_sha512():
    for pin in data.PINS.values():
        algorithm, _, digest = pin.integrity.partition("-")
        assert algorithm == "sha512" and len(base64.b64decode(digest)) == 64


def test_limit_spreads_over_the_catalogue(packages, registry, tmp_path):
    path = data.prepare(tmp_path, size=SIZE, sources=("twemoji",), limit=8, pins=_pins(packages))
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


def test_command_line_prints_a_json_summary(packages, registry, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "PINS", _pins(packages))
    assert data.main(["--size", str(SIZE), "--sources", "twemoji", "--cache-dir", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["per_source"]["twemoji"] == summary["images"] > 0
    assert summary["edit_pairs"]["skin"] > 0 and summary["heldout_captions"] > 0
    assert summary["per_group"]["People & Body"] > 0


# --------------------------------------------------------------------------- keywords


def test_emoji_tags_are_read_from_the_pinned_emojibase_data(registry, tmp_path):
    labels = [{"hexcode": "1F431", "label": "Cat face", "tags": ["Cat", "kitty", "pet"]},
              {"hexcode": "1F600", "label": "grinning face"}]
    blob = _tgz({"package/en/data.json": json.dumps(labels).encode()})
    pin = Pin("emojibase-data", "0.0.2", _integrity(blob))
    (tmp_path / "npm").mkdir()
    (tmp_path / "npm" / pin.filename).write_bytes(blob)  # cached: no download
    assert data.emoji_tags(tmp_path, {"labels": pin}) == {"cat face": ("cat", "kitty", "pet"), "grinning face": ()}
    assert registry.hits == []


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


# --------------------------------------------------------------------------- Noto


def test_noto_without_a_font_uses_the_64px_images(packages, registry, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "find_noto_font", lambda folder: None)
    ds = data.load(data.prepare(tmp_path, size=SIZE, sources=("noto",), pins=_pins(packages)))
    assert set(ds.source) == {"noto"} and "thumbs up: dark skin tone" in set(ds.captions)
    assert ds.meta["stats"]["noto"]["font"].startswith("none")


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
def test_noto_renders_from_the_font(packages, registry, tmp_path):
    ds = data.load(data.prepare(tmp_path, size=SIZE, sources=("noto",), pins=_pins(packages),
                                noto_font=_noto_font()))
    captions = set(ds.captions)
    assert {"grinning face", "thumbs up: dark skin tone", "woman technologist"} <= captions
    assert ds.meta["stats"]["noto"]["font"] == "given"
    grin = ds.images[list(ds.captions).index("grinning face")]
    assert grin[SIZE // 2, SIZE // 2, 3] == 255 and grin[0, 0, 3] == 0


# --------------------------------------------------------------------------- clip art


def _clipart_svg(title: str | None, colour: str = "#c03030") -> str:
    meta = (f'<metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            f'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:cc="http://web.resource.org/cc/">'
            f'<cc:Work><dc:title>{title}</dc:title><dc:creator><cc:Agent><dc:title>Some Author</dc:title>'
            f'</cc:Agent></dc:creator></cc:Work></rdf:RDF></metadata>') if title is not None else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="300" height="200">{meta}'
            f'<ellipse cx="150" cy="100" rx="120" ry="70" fill="{colour}"/></svg>')


@pytest.fixture(scope="module")
def clipart(tmp_path_factory):
    root = tmp_path_factory.mktemp("openclipart")
    files = {
        "animals/mammals/crazy_monkey_shandy_brow_01.svg": _clipart_svg("Crazy Monkey"),
        "food/fruit/an_apple_01.svg": _clipart_svg("Clipart by Nicu Buculei - apple (red) 2004"),
        "food/fruit/pear_02.svg": _clipart_svg(None),  # no title: the file name
        "food/fondue_uliphant_01.svg": _clipart_svg("Open Clip Art Library"),  # the library's title
        "special/gradients/gradient-zebra.svg": _clipart_svg("Zebra gradient"),  # not a picture
        "unsorted/thing.svg": _clipart_svg("Thing"),  # no category
        "shapes/broken.svg": "<svg this is not xml",
    }
    files.update({f"signs_and_symbols/road/sign_{k}.svg": _clipart_svg("Road signs") for k in range(5)})
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def test_clipart_captions_come_from_titles_and_classes_from_folders(clipart, monkeypatch):
    monkeypatch.setattr(data, "CLIPART_MIN_CLASS", 2)
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


def test_clipart_without_the_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "find_clipart", lambda folder: None)
    with pytest.raises(DataError, match="openclipart-svg"):
        data.prepare(tmp_path, size=SIZE, sources=("openclipart",))


def test_data_card_names_each_source_and_the_shipped_card_is_current():
    everything = data.data_card(data.ALL_SOURCES)
    for needle in ("@tabler/icons", "lucide-static", "openclipart-svg", "emoji-datasource-twitter", "CC-BY 4.0",
                   "Paweł Kuna", "Cole Bemis", "--sources all"):
        assert needle in everything, needle
    emoji = data.data_card(data.SOURCES)
    assert "tabler" not in emoji and "Twemoji by Twitter" in emoji
    icons = data.data_card(("lucide",))
    assert "@tabler/icons" in icons, "Lucide's classes come from Tabler's catalogue"
    root = Path(__file__).resolve().parents[2] / "assets" / "models" / "builtin"
    shipped = json.loads((root / "quickbrush_builtin.json").read_text()).get("data_sources") or data.SOURCES
    assert (root / "DATA.md").read_text(encoding="utf-8") == data.data_card(shipped), \
        "DATA.md is out of date: the export writes it (python -m training.train export)"
