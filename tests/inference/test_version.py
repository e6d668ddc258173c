"""inference/version.py: one version for --version, the About box and the frozen app."""

import tomllib
from importlib import metadata
from pathlib import Path

from inference import version as version_module

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_fallback_matches_pyproject():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version_module.FALLBACK_VERSION == declared


def test_without_distribution_metadata_the_fallback_is_used(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version_module.metadata, "version", missing)
    assert version_module.version() == version_module.FALLBACK_VERSION

