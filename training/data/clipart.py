"""Clip art: Openclipart's catalogue (captions from each work's title, classes from its folders)
and drawing its SVGs of any size."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Mapping

import numpy as np

from training.data.common import CLIPART_GROUP, Entry, log, slug, spread
from training.data.render import Rendered, _render_any_svg

# Folders that hold no pictures of things (gradients, patterns, examples) or no category at all.
CLIPART_SKIP = ("special", "unsorted")
CLIPART_MIN_CLASS = 20  # a subfolder with fewer images joins its parent's class
CLIPART_MAX_CLASS = 150  # 1,378 generated stars and 1,853 theme icons would otherwise swamp the rest


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


def _render_clipart(root: Path, size: int, limit: int | None) -> Rendered:
    out = Rendered("openclipart")
    svgs = {}
    for file in sorted(root.rglob("*.svg")):
        try:
            svgs[file.relative_to(root).as_posix()] = file.read_text("utf-8", errors="replace")
        except OSError as error:
            log(f"openclipart: {file}: {error}")
    entries = clipart_catalogue(svgs)
    if limit is not None:
        entries = spread(entries, limit)
    failed, empty = 0, 0
    for entry in entries:
        try:
            image = _render_any_svg(svgs[entry.image], size)
        except Exception as error:  # noqa: BLE001 - one bad file costs one image, never the data set
            log(f"openclipart: {entry.image}: {type(error).__name__}: {error}")
            failed += 1
            continue
        empty += not out.add(entry, image, size)
    out.stats = {"images": len(out.images), "svg_files": len(svgs), "chosen": len(entries), "svg_failed": failed,
                 "empty": empty, "classes": len({e.subgroup for e in out.entries})}
    return out
