"""Fixtures for the training data tests (tests/training/test_data_*.py): small packages built
here, and npm / apt-get stand-ins on PATH, so nothing reaches a network."""

from __future__ import annotations

import pytest

from data_fixtures import BUILT_SOURCES, FakeApt, FakeNpm, build_packages, clipart_tree, on_path, pins_of, seed_cache
from training import data
from training.data import debian


@pytest.fixture(scope="session")
def packages():
    """{role: (Pin, tarball bytes)} for every package prepare() reads."""
    return build_packages()


@pytest.fixture
def npm(packages, tmp_path_factory, monkeypatch):
    """An `npm` on PATH that packs `packages`; `npm.hits` lists what was asked for."""
    fake = FakeNpm(tmp_path_factory.mktemp("npm"), packages)
    on_path(monkeypatch, fake.bin)
    return fake


@pytest.fixture
def no_debian(tmp_path_factory, monkeypatch):
    """A machine with no Debian package installed and an apt-get that offers only what the test
    gives it (`no_debian.offer(...)`)."""
    monkeypatch.setattr(debian, "SYSTEM_ROOT", tmp_path_factory.mktemp("root"))
    fake = FakeApt(tmp_path_factory.mktemp("apt"))
    on_path(monkeypatch, fake.bin)
    return fake


@pytest.fixture(scope="session")
def clipart(tmp_path_factory):
    return clipart_tree(tmp_path_factory.mktemp("openclipart"))


@pytest.fixture(scope="session")
def built(packages, tmp_path_factory):
    """One dataset (BUILT_SOURCES at 32 px), built once for the read-only tests."""
    path = data.prepare(seed_cache(tmp_path_factory.mktemp("cache"), packages), size=32, sources=BUILT_SOURCES,
                        pins=pins_of(packages))
    return data.load(path)
