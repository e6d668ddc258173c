"""npm packages by name and version: the pins, `npm pack NAME@VERSION` into the cache, the sha512
integrity check every tarball passes before it is used, and reading files out of a tarball.

npm is the ordinary client: whichever registry or mirror it is configured for (`npm config get
registry`) serves the bytes, and the integrity pin decides whether they are the ones published.
A tarball already in the cache (`<cache>/npm/`) that matches its pin is used without npm, which
is how a machine without npm, or with no network, builds from tarballs copied in by hand.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from training.data.common import DataError, log

NPM_TIMEOUT_S = 900  # the Fluent tarball is over 100 MB


@dataclass(frozen=True)
class Pin:
    """One npm package version, verified by the `dist.integrity` npm published for it."""

    name: str
    version: str
    integrity: str  # "sha512-<base64>"

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def filename(self) -> str:
        """Its name in the cache (the layout before npm pack: older caches stay valid)."""
        return f"{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"

    @property
    def homepage(self) -> str:
        """The upstream project's own page, for DATA.md."""
        return HOMEPAGES.get(self.name, "")


# The production pins. Tests pass their own to prepare(pins=...) for tarballs they build; the
# check itself is the same code either way.
PINS: dict[str, Pin] = {
    # emoji.json (the catalogue: groups, subgroups, skin variations) and Noto's 64 px images
    "google": Pin("emoji-datasource-google", "16.0.0",
                  "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A=="),
    "twitter": Pin("emoji-datasource-twitter", "16.0.0",
                   "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ=="),
    "fluent": Pin("fluentui-emoji", "1.3.0",
                  "sha512-JTXXwqIie2rWTgOkIJDJxr0WtwTz2WU4kdOq8buLVThYwQ264aFR2jdTyuon2oEbLqqGMT64zI4btyn1saB2xw=="),
    # CLDR short names ("thumbs up: medium skin tone"): emoji.json only has Unicode character
    # names ("THUMBS UP SIGN", "HEAVY BLACK HEART"), which are neither how people ask for an emoji
    # nor what Fluent's file names are made from.
    "labels": Pin("emojibase-data", "16.0.3",
                  "sha512-MopInVCDZeXvqBMPJxnvYUyKw9ImJZqIDr2sABo6acVSPev5IDYX+mf+0tsu96JJyc3INNvgIf06Eso7bdTX2Q=="),
    # Tabler Icons (MIT): icons.json gives every icon a category and tags; outline and filled SVGs.
    "tabler": Pin("@tabler/icons", "3.52.0",
                  "sha512-dldKlJNfO/gZnGLcIY0X2EFFKIMGwL/rEvTqglvBgAPFiwj9pZOCN5V3Sf0Gyjq6foX4VQmLdOmsS4w5FdWKAw=="),
    # Lucide (ISC): tags.json gives tags but no categories (see icon_catalogue).
    "lucide": Pin("lucide-static", "1.62.0",
                  "sha512-WBZA/m2PvkFpMGHDtsBck5P2A9G4ehLlYu4GwwICcmEm1BvYVgj00lCDxKRWLlbMlOibLaiwdQ88G5pHkSWgwA=="),
}

# The upstream projects' own pages (never a registry's address).
HOMEPAGES = {
    "emoji-datasource-google": "https://github.com/iamcal/emoji-data",
    "emoji-datasource-twitter": "https://github.com/iamcal/emoji-data",
    "fluentui-emoji": "https://github.com/microsoft/fluentui-emoji",
    "emojibase-data": "https://github.com/milesj/emojibase",
    "@tabler/icons": "https://github.com/tabler/tabler-icons",
    "lucide-static": "https://github.com/lucide-icons/lucide",
}


def _digest_matches(path: Path, integrity: str) -> tuple[bool, str]:
    algorithm, _, expected = integrity.partition("-")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    got = f"{algorithm}-{base64.b64encode(digest.digest()).decode()}"
    return got == integrity, got


def fetch(pin: Pin, folder: Path) -> Path:
    """The package tarball, verified against its pin; packed by npm only when not already cached."""
    target = folder / "npm" / pin.filename
    if target.exists():
        if _digest_matches(target, pin.integrity)[0]:
            return target
        log(f"cached {target.name} does not match its pin; fetching it again")
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    npm = shutil.which("npm")
    if npm is None:
        raise DataError(f"{pin.spec} is not in the cache and npm is not installed: install npm (Node.js), or "
                        f"run `npm pack {pin.spec}` elsewhere and copy the tarball to {target}.")
    # Packed into a folder of its own beside the target: npm names the file itself (scoped names
    # differ from ours), and a failed or refused tarball never reaches the cache.
    with tempfile.TemporaryDirectory(prefix=".pack-", dir=target.parent) as temp:
        command = [npm, "pack", pin.spec, "--pack-destination", temp, "--ignore-scripts"]
        log(f"npm pack {pin.spec}")
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as error:
            raise DataError(f"npm pack {pin.spec} did not run: {error}") from error
        packed = sorted(Path(temp).glob("*.tgz"))
        if result.returncode != 0 or len(packed) != 1:
            said = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise DataError(f"npm pack {pin.spec} failed (exit {result.returncode}): "
                            f"{said[-1] if said else 'no tarball written'}")
        ok, got = _digest_matches(packed[0], pin.integrity)
        if not ok:
            raise DataError(
                f"{pin.spec} from npm failed its integrity check: expected {pin.integrity}, got {got}. "
                "npm (its registry, its cache, or something between) served different bytes; nothing was written."
            )
        os.replace(packed[0], target)
    return target


def read_tar(path: Path, keep: Callable[[str], bool]) -> dict[str, bytes]:
    """Bytes of the regular files whose names `keep` accepts; nothing is extracted to disk."""
    found: dict[str, bytes] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.isfile() and keep(member.name):
                handle = tar.extractfile(member)
                if handle is not None:
                    found[member.name] = handle.read()
    return found
