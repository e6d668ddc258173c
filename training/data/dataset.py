"""The dataset file: `prepare` renders the chosen sources into one `dataset-<size>...npz` in the
cache (once per settings), `load` reads it back as a `Dataset`. The file records what it was built
from: the settings it is reused for, and `meta["versions"]`, the npm packages with their integrity
and the Debian packages with the versions actually used (and the font's sha256)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from training.data.clipart import _render_clipart
from training.data.common import (ALL_SOURCES, ICON_SOURCES, SOURCES, DataError, cache_dir as _default_cache_dir,
                                  file_sha256, log, spread)
from training.data.debian import (CLIPART_DEB, CLIPART_DEB_VERSION, NOTO_DEB, NOTO_DEB_VERSION, Found, find_clipart,
                                  find_noto_font)
from training.data.emoji import _render_fluent, _render_noto, _render_pngs, emoji_inputs
from training.data.fetch import PINS, Pin, fetch, read_tar
from training.data.icons import _icon_part
from training.data.render import Rendered

# Bump when the same settings would produce different arrays, so old dataset files are rebuilt.
FORMAT = 2


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


def npm_roles(sources: tuple[str, ...]) -> list[str]:
    """The pins these sources read (Lucide borrows Tabler's categories)."""
    roles = list(_EMOJI_ROLES) if set(sources) & set(SOURCES) else []
    roles += ["tabler"] if set(sources) & set(ICON_SOURCES) else []
    roles += ["lucide"] if "lucide" in sources else []
    return roles


def read_roles(sources: tuple[str, ...]) -> list[str]:
    """The pins a build of these sources actually reads: what its file records as built from."""
    roles = ["google", "labels"] if set(sources) & set(SOURCES) else []
    roles += ["twitter"] if "twemoji" in sources else []
    roles += ["fluent"] if any(s.startswith("fluent-") for s in sources) else []
    return roles + [r for r in npm_roles(sources) if r in ("tabler", "lucide")]


def _settings(size: int, sources: tuple[str, ...], limit: int | None, pins: Mapping[str, Pin],
              allow_other_versions: bool = False, noto_font: Path | None = None) -> dict:
    """What a data set file was made from, and is reused for. Only the pins its sources read count,
    so adding an icon pin does not make every emoji-only file stale."""
    roles = set(npm_roles(sources))
    settings = {"format": FORMAT, "size": size, "sources": list(sources), "limit": limit,
                "pins": {role: f"{p.name}@{p.version} {p.integrity}" for role, p in sorted(pins.items()) if role in roles}}
    debian = {}
    if "noto" in sources:
        if noto_font is None:
            debian[NOTO_DEB] = NOTO_DEB_VERSION
        else:
            settings["noto_font_sha256"] = file_sha256(noto_font)
    if "openclipart" in sources:
        debian[CLIPART_DEB] = CLIPART_DEB_VERSION
    if debian:
        settings["debian"] = dict(sorted(debian.items()))
    if allow_other_versions:  # never reused by (or reusing) a build that holds to the pins
        settings["allow_other_versions"] = True
    return settings


def _recorded_settings(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return json.loads(str(arrays["meta"])).get("settings")
    except Exception:  # unreadable or from an older layout: rebuild it
        return None


def _debian_record(found: Found) -> dict:
    return {"version": found.version, "from": found.origin}


def prepare(cache_dir: Path | None = None, size: int = 128, sources: tuple[str, ...] = SOURCES,
            limit: int | None = None, *, pins: Mapping[str, Pin] | None = None,
            noto_font: Path | None = None, clipart_dir: Path | None = None,
            allow_other_versions: bool = False) -> Path:
    """Write (once per settings) and return `dataset-<size>.npz` in the cache folder.

    limit: at most this many images, from entries spread evenly over the catalogue (smoke runs).
    pins: the npm packages and their integrity hashes; default PINS (tests build their own tarballs).
    noto_font: a Noto Color Emoji font file to use instead of the pinned Debian package's.
    clipart_dir: Openclipart's SVG folder, instead of the pinned Debian package's.
    allow_other_versions: when a pinned Debian version cannot be had, use another one (recorded in
    the file) instead of stopping; with no font at all, "noto" then draws emoji-datasource-google's
    64 px images, upscaled, and says so in the metadata.
    """
    unknown = set(sources) - set(ALL_SOURCES)
    if unknown:
        raise ValueError(f"unknown sources {sorted(unknown)}; choose from {ALL_SOURCES}")
    sources = tuple(sources)
    emoji_sources = tuple(s for s in sources if s in SOURCES)
    per_source = None if limit is None else max(1, limit // len(sources))
    pins = PINS if pins is None else pins
    folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    out = folder / dataset_name(size, sources, limit)
    settings = _settings(size, sources, limit, pins, allow_other_versions, noto_font)
    if out.exists() and _recorded_settings(out) == settings:
        return out
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    versions: dict = {"npm": {pins[role].name: {"version": pins[role].version, "integrity": pins[role].integrity}
                              for role in read_roles(sources)},
                      "debian": {}}

    font = None
    if "noto" in sources:
        font = (Found(Path(noto_font), NOTO_DEB, "", "given") if noto_font is not None
                else find_noto_font(folder, allow_other_versions))
        if font is not None:
            versions["debian"][NOTO_DEB] = {**_debian_record(font), "font_sha256": file_sha256(font.path)}
        else:
            log("no Noto Color Emoji font at any version: using emoji-datasource-google's 64 px images, upscaled")
            versions["debian"][NOTO_DEB] = None
    clipart = None
    if "openclipart" in sources:
        clipart = (Found(Path(clipart_dir), CLIPART_DEB, "", "given") if clipart_dir is not None
                   else find_clipart(folder, allow_other_versions))
        if clipart is None:
            raise DataError(f"Openclipart needs Debian's {CLIPART_DEB} package at some version (apt-get download "
                            f"{CLIPART_DEB}), and none is to be had here.")
        versions["debian"][CLIPART_DEB] = _debian_record(clipart)

    entries = []
    google: dict[str, bytes] = {}
    if emoji_sources:
        entries, google = emoji_inputs(folder, pins, google_images="noto" in sources and font is None)
        if per_source is not None:
            entries = spread(entries, per_source)
        log(f"{len(entries)} emoji and skin variants")

    rendered: list[Rendered] = []
    fluent_files: dict[str, bytes] = {}
    if any(s.startswith("fluent-") for s in sources):
        styles = tuple(f"package/icons/{s.split('-', 1)[1]}/" for s in sources if s.startswith("fluent-"))
        fluent_files = read_tar(fetch(pins["fluent"], folder), lambda n: n.startswith(styles) and n.endswith(".svg"))
    for source in sources:
        tick = time.monotonic()
        if source == "noto" and font is not None:
            part = _render_noto(entries, font.path, size)
            part.stats["font"] = "given" if font.origin == "given" else font.label
            part.stats["font_sha256"] = versions["debian"][NOTO_DEB]["font_sha256"]
        elif source == "noto":
            part = _render_pngs("noto", entries, google, "package/img/google/64", size)
            part.stats["font"] = "none: emoji-datasource-google 64 px images, upscaled"
        elif source == "twemoji":
            files = read_tar(fetch(pins["twitter"], folder), lambda n: n.startswith("package/img/twitter/64/"))
            part = _render_pngs("twemoji", entries, files, "package/img/twitter/64", size)
        elif source == "openclipart":
            part = _render_clipart(clipart.path, size, per_source)
            part.stats["package"] = "given" if clipart.origin == "given" else clipart.label
        elif source in ICON_SOURCES:
            part = _icon_part(source, pins, folder, size, per_source)
        else:
            part = _render_fluent(source.split("-", 1)[1], entries, fluent_files, size)
        part.stats["seconds"] = round(time.monotonic() - tick, 1)
        log(f"{source}: {part.stats}")
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
        "versions": versions,
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
    write_atomically(out, arrays)
    log(f"wrote {out} ({len(rows)} images, {time.monotonic() - started:.0f} s)")
    return out


def write_atomically(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """A reader (or a crash) never sees half a dataset: write beside it, then swap it in."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
