"""training/data/card.py: DATA.md, by package name, version and upstream project."""

from __future__ import annotations

import json
from pathlib import Path

from training import data


def test_data_card_names_each_source_by_package_version_and_project():
    everything = data.data_card(data.ALL_SOURCES)
    for needle in ("`@tabler/icons` 3.52.0", "`npm pack lucide-static@1.62.0`", "https://github.com/lucide-icons/lucide",
                   "`apt-get download openclipart-svg=1:0.18+dfsg-19`", "emoji-datasource-twitter", "CC-BY 4.0",
                   "Paweł Kuna", "Cole Bemis", "--sources all", data.PINS["fluent"].integrity,
                   f"font sha256 {data.NOTO_FONT_SHA256}"):
        assert needle in everything, needle
    emoji = data.data_card(data.SOURCES)
    assert "tabler" not in emoji and "Twemoji by Twitter" in emoji
    icons = data.data_card(("lucide",))
    assert "@tabler/icons" in icons, "Lucide's classes come from Tabler's catalogue"


def test_data_card_shows_the_versions_a_data_set_recorded():
    versions = data.pinned_versions(("twemoji",))
    versions["npm"]["emoji-datasource-twitter"] = {"version": "17.0.0", "integrity": "sha512-abc"}
    card = data.data_card(("twemoji",), versions)
    assert "`emoji-datasource-twitter` 17.0.0: 64 px PNGs" in card and "sha512-abc" in card
    assert "via emoji-datasource-twitter 17.0.0" in card and "`emoji-datasource-twitter` 16.0.0" not in card


def test_the_shipped_card_is_current():
    root = Path(__file__).resolve().parents[2] / "assets" / "models" / "builtin"
    shipped = json.loads((root / "quickbrush_builtin.json").read_text()).get("data_sources") or data.SOURCES
    assert (root / "DATA.md").read_text(encoding="utf-8") == data.data_card(shipped), \
        "DATA.md is out of date: the export writes it (python -m training.train export)"
