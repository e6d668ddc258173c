"""training/data/debian.py: pinned Debian packages, and what happens when a pin cannot be had.

`no_debian` (conftest.py) is a machine with nothing installed and an apt-get stand-in that offers
only the .deb files a test builds (real ones, made with dpkg-deb)."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from data_fixtures import clipart_svg, pins_of, seed_cache
from training import data
from training.data import DataError, debian

SIZE = 32
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
needs_resvg = pytest.mark.skipif(importlib.util.find_spec("resvg_py") is None, reason="needs resvg_py")
CLIPART = {f"{data.CLIPART_IN_DEB}/food/fruit/an_apple_01.svg": clipart_svg("Apple").encode()}


def test_a_missing_pin_stops_the_build_and_says_what_it_needs(no_debian, tmp_path):
    with pytest.raises(DataError) as raised:
        data.prepare(tmp_path, size=SIZE, sources=("openclipart",))
    message = str(raised.value)
    assert "openclipart-svg 1:0.18+dfsg-19" in message and "--allow-other-versions" in message
    assert "apt-get download openclipart-svg=1:0.18+dfsg-19" in message
    assert no_debian.calls == ["download openclipart-svg=1:0.18+dfsg-19"]  # never another version
    assert not list(tmp_path.glob("dataset-*"))


def test_a_missing_font_pin_stops_the_build_instead_of_using_other_images(packages, no_debian, tmp_path):
    with pytest.raises(DataError, match=r"fonts-noto-color-emoji 2\.042-0\+deb12u1.*--allow-other-versions"):
        data.prepare(seed_cache(tmp_path, packages), size=SIZE, sources=("noto",), pins=pins_of(packages))


def test_the_command_line_names_the_missing_pin(no_debian, tmp_path, capsys):
    assert data.main(["--sources", "openclipart", "--cache-dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "openclipart-svg 1:0.18+dfsg-19" in error and "Traceback" not in error


@needs_dpkg
@needs_resvg
def test_the_pinned_version_is_downloaded_and_recorded(no_debian, tmp_path):
    no_debian.offer(data.CLIPART_DEB, data.CLIPART_DEB_VERSION, CLIPART)
    no_debian.offer(data.CLIPART_DEB, "1:0.19-1", CLIPART)  # apt's candidate: never taken without the option
    ds = data.load(data.prepare(tmp_path, size=SIZE, sources=("openclipart",)))
    assert ds.meta["versions"]["debian"] == {"openclipart-svg": {"version": "1:0.18+dfsg-19", "from": "apt-get download"}}
    assert ds.meta["settings"]["debian"] == {"openclipart-svg": "1:0.18+dfsg-19"}
    assert "apple clip art" in set(ds.captions)


@needs_dpkg
@needs_resvg
def test_allow_other_versions_takes_another_version_and_records_it(no_debian, tmp_path, capsys):
    no_debian.offer(data.CLIPART_DEB, "1:0.19-1", CLIPART)
    assert data.main(["--sources", "openclipart", "--size", str(SIZE), "--cache-dir", str(tmp_path),
                      "--allow-other-versions"]) == 0
    ds = data.load(tmp_path / f"dataset-{SIZE}-openclipart.npz")
    assert ds.meta["versions"]["debian"]["openclipart-svg"] == {"version": "1:0.19-1", "from": "apt-get download"}
    assert ds.meta["settings"]["allow_other_versions"] is True
    assert data.data_card(("openclipart",), ds.meta["versions"]).count("`openclipart-svg` 1:0.19-1") == 2
    # a build that holds to the pins never reuses it
    with pytest.raises(DataError, match="openclipart-svg 1:0.18"):
        data.prepare(tmp_path, size=SIZE, sources=("openclipart",))


def test_allow_other_versions_without_any_font_draws_the_64px_images_and_says_so(packages, no_debian, tmp_path):
    ds = data.load(data.prepare(seed_cache(tmp_path, packages), size=SIZE, sources=("noto",), pins=pins_of(packages),
                                allow_other_versions=True))
    assert set(ds.source) == {"noto"} and "thumbs up: dark skin tone" in set(ds.captions)
    assert ds.meta["stats"]["noto"]["font"].startswith("none")
    assert ds.meta["versions"]["debian"] == {"fonts-noto-color-emoji": None}


def test_the_pinned_version_in_the_cache_is_used_without_apt(no_debian, tmp_path):
    unpacked = tmp_path / "deb" / f"{data.CLIPART_DEB}_{data.CLIPART_DEB_VERSION}" / data.CLIPART_IN_DEB
    unpacked.mkdir(parents=True)
    found = debian.find_clipart(tmp_path)
    assert (found.path, found.version, found.origin) == (unpacked, data.CLIPART_DEB_VERSION, "cache")
    assert no_debian.calls == []


def test_an_installed_package_counts_only_at_the_pinned_version(no_debian, tmp_path, monkeypatch):
    installed = debian.SYSTEM_ROOT / data.CLIPART_IN_DEB
    installed.mkdir(parents=True)
    monkeypatch.setattr(debian, "installed_version", lambda package: data.CLIPART_DEB_VERSION)
    assert debian.find_clipart(tmp_path).origin == "installed"
    monkeypatch.setattr(debian, "installed_version", lambda package: "1:0.17-1")
    with pytest.raises(DataError, match=r"this system has 1:0\.17-1"):
        debian.find_clipart(tmp_path)
    other = debian.find_clipart(tmp_path, allow_other_versions=True)
    assert (other.version, other.origin) == ("1:0.17-1", "installed")


def test_a_font_that_is_not_the_pinned_versions_font_is_refused(no_debian, tmp_path):
    font = tmp_path / "deb" / f"{data.NOTO_DEB}_{data.NOTO_DEB_VERSION}" / data.NOTO_FONT_IN_DEB
    font.parent.mkdir(parents=True)
    font.write_bytes(b"not the font")
    with pytest.raises(DataError, match="sha256"):
        debian.find_noto_font(tmp_path)
