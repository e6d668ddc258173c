"""The icon sets: Tabler's and Lucide's catalogues (captions from icon names, classes from
Tabler's categories) and drawing their SVGs in black."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

from training.data.common import ICON_GROUP, Entry, DataError, log, slug, spread
from training.data.fetch import Pin, fetch, read_tar
from training.data.render import Rendered, _render_svg

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
            log(f"{source}: {entry.image}: {error}")
            failed += 1
            continue
        out.add(entry, image, size)
    out.stats = {"images": len(out.images), "icons": len(entries), "svg_failed": failed,
                 "categories": len({e.subgroup for e in out.entries})}
    return out


def _icon_part(source: str, pins: Mapping[str, Pin], folder: Path, size: int, limit: int | None) -> Rendered:
    """Render one icon set; Lucide reads Tabler's catalogue too, for its categories."""
    tabler = read_tar(fetch(pins["tabler"], folder), lambda n: n == "package/icons.json"
                       or (source == "tabler" and n.startswith("package/icons/") and n.endswith(".svg")))
    try:
        tabler_json = json.loads(tabler.pop("package/icons.json"))
    except KeyError as error:
        raise DataError(f"{pins['tabler'].name} lacks {error}") from error
    if source == "tabler":
        entries, files = tabler_catalogue(tabler_json, tabler), tabler
    else:
        files = read_tar(fetch(pins["lucide"], folder), lambda n: n == "package/tags.json"
                          or (n.startswith("package/icons/") and n.endswith(".svg")))
        try:
            tags = json.loads(files.pop("package/tags.json"))
        except KeyError as error:
            raise DataError(f"{pins['lucide'].name} lacks {error}") from error
        categories = {name: item["category"] for name, item in tabler_json.items() if item.get("category")}
        entries = lucide_catalogue(tags, files, categories)
    if limit is not None:
        entries = spread(entries, limit)
    return _render_icons(source, entries, files, size)
