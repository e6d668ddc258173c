"""Debian packages at pinned versions: the Noto Color Emoji font and Openclipart's SVGs, got with
`apt-get download NAME=VERSION` and unpacked with `dpkg-deb -x` into the cache.

A pinned version is taken from, in order: the cache (`<cache>/deb/<name>_<version>/`), this
system's installed package when dpkg says it is that version, or `apt-get download`. When none
has it the build stops and says what it needs; only `allow_other_versions` (the command line's
`--allow-other-versions`) takes another version (installed, apt's candidate, or one unpacked
earlier), and the version actually used is what the data set records.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from training.data.common import DataError, file_sha256, log

NOTO_DEB = "fonts-noto-color-emoji"
NOTO_DEB_VERSION = "2.042-0+deb12u1"  # Debian 12; the font's own version is 2.042 (Unicode 15.1)
NOTO_FONT_IN_DEB = "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
NOTO_FONT_SHA256 = "e5899ed38b8ed83e08bd3ac5de09791e9d19d288333a796de1d35ad17396f1ec"  # that version's font
CLIPART_DEB = "openclipart-svg"
CLIPART_DEB_VERSION = "1:0.18+dfsg-19"  # Debian 12
CLIPART_IN_DEB = "usr/share/openclipart/svg"
DEBIAN_PINS = {NOTO_DEB: NOTO_DEB_VERSION, CLIPART_DEB: CLIPART_DEB_VERSION}

SYSTEM_ROOT = Path("/")  # where installed packages' files are (tests point it elsewhere)
SYSTEM_NOTO_FONT = SYSTEM_ROOT / NOTO_FONT_IN_DEB


@dataclass(frozen=True)
class Found:
    """A path inside a Debian package, and which package version it came from."""

    path: Path
    package: str
    version: str  # "" when nobody can say (a file given by path, an installed file dpkg does not know)
    origin: str  # "cache", "installed", "apt-get download", "unpacked earlier", "given"

    @property
    def label(self) -> str:
        return f"debian {self.package} {self.version or '(version unknown)'}, {self.origin}"


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError):
        return None


def installed_version(package: str) -> str:
    """The version dpkg has installed, or ""."""
    if not shutil.which("dpkg-query"):
        return ""
    result = _run(["dpkg-query", "-W", "-f=${Version}", package])
    return result.stdout.strip() if result is not None and result.returncode == 0 else ""


def _installed(package: str, inside: str) -> Found | None:
    path = SYSTEM_ROOT / inside
    return Found(path, package, installed_version(package), "installed") if path.exists() else None


def _download(folder: Path, package: str, version: str | None, inside: str) -> tuple[Found | None, str]:
    """`apt-get download` this version (or apt's candidate) and unpack it in the cache; the found
    path, or None and why not."""
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        return None, "apt-get or dpkg-deb is not installed"
    debs = folder / "deb"
    debs.mkdir(parents=True, exist_ok=True)
    spec = f"{package}={version}" if version else package
    before = set(debs.glob(f"{package}_*.deb"))
    result = _run(["apt-get", "download", spec], cwd=debs)
    if result is None or result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["no answer"])[-1] if result is not None else "did not run"
        return None, f"apt-get download {spec}: {said}"
    fresh = sorted(set(debs.glob(f"{package}_*.deb")) - before) or sorted(before)
    if not fresh:
        return None, f"apt-get download {spec} wrote no .deb"
    deb = fresh[-1]
    got = _run(["dpkg-deb", "-f", str(deb), "Version"])
    if got is None or got.returncode != 0:
        return None, f"dpkg-deb could not read {deb.name}"
    got_version = got.stdout.strip()
    into = debs / f"{package}_{got_version}"
    unpacked = _run(["dpkg-deb", "-x", str(deb), str(into)])
    if unpacked is None or unpacked.returncode != 0:
        return None, f"dpkg-deb could not unpack {deb.name}"
    found = into / inside
    if not found.exists():
        return None, f"{deb.name} has no {inside}"
    return Found(found, package, got_version, "apt-get download"), ""


def _unpacked_earlier(folder: Path, package: str, inside: str) -> Found | None:
    earlier = sorted((folder / "deb").glob(f"{package}_*/{inside}"))
    if not earlier:
        return None
    unpacked = earlier[-1].relative_to(folder / "deb").parts[0]  # <package>_<version>
    return Found(earlier[-1], package, unpacked.split("_", 1)[1], "unpacked earlier")


def find_package(folder: Path, package: str, version: str, inside: str, *, needed_for: str,
                 allow_other_versions: bool = False) -> Found | None:
    """The path `inside` the pinned package version; a DataError naming what is missing when it
    cannot be had. With allow_other_versions, another version (installed, apt's candidate, or
    unpacked earlier), or None when there is none at all."""
    pinned = folder / "deb" / f"{package}_{version}" / inside
    if pinned.exists():
        return Found(pinned, package, version, "cache")
    installed = _installed(package, inside)
    if installed is not None and installed.version == version:
        return installed
    found, why = _download(folder, package, version, inside)
    if found is not None:
        return found
    if not allow_other_versions:
        have = f" (this system has {installed.version or 'a version dpkg cannot name'})" if installed else ""
        raise DataError(
            f"{needed_for} needs Debian's {package} {version}, which is not in the cache ({pinned.parent}), not "
            f"installed at that version{have}, and could not be downloaded ({why}). Run where apt offers "
            f"`apt-get download {package}={version}` (Debian 12), or pass --allow-other-versions to build from "
            "another version, which the data set then records.")
    log(f"{package} {version} is not to be had ({why}); --allow-other-versions: trying other versions")
    if installed is not None:
        return installed
    found, _ = _download(folder, package, None, inside)
    return found or _unpacked_earlier(folder, package, inside)


def find_noto_font(folder: Path, allow_other_versions: bool = False) -> Found | None:
    """The Noto Color Emoji font of the pinned Debian package (see find_package); its sha256 must be
    that version's font too."""
    found = find_package(folder, NOTO_DEB, NOTO_DEB_VERSION, NOTO_FONT_IN_DEB, needed_for="The noto source",
                         allow_other_versions=allow_other_versions)
    if found is not None and found.version == NOTO_DEB_VERSION and not allow_other_versions:
        got = file_sha256(found.path)
        if got != NOTO_FONT_SHA256:
            raise DataError(f"{found.path} says it is {NOTO_DEB} {NOTO_DEB_VERSION} but its sha256 is {got}, not "
                            f"{NOTO_FONT_SHA256}: reinstall the package, or pass --allow-other-versions.")
    return found


def find_clipart(folder: Path, allow_other_versions: bool = False) -> Found | None:
    """Openclipart's SVG folder of the pinned Debian package (see find_package)."""
    return find_package(folder, CLIPART_DEB, CLIPART_DEB_VERSION, CLIPART_IN_DEB, needed_for="The openclipart source",
                        allow_other_versions=allow_other_versions)
