"""`python -m training.data`: render the chosen sources into the dataset file and print a JSON summary."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterable

from training.data.common import ALL_SOURCES, DATA_ENV, SOURCES, DataError
from training.data.dataset import load, prepare
from training.data.edits import edit_pairs, pair_kind

USAGE = """The built-in model's training data: pinned sources rendered into one reproducible .npz.

    python -m training.data [--size 128] [--limit N] [--sources all|noto,twemoji,...] [--allow-other-versions]

npm packages are fetched with `npm pack NAME@VERSION` and checked against their sha512 integrity
pins; Debian packages with `apt-get download NAME=VERSION`. A pinned version that cannot be had
stops the build, unless --allow-other-versions (then the file records what was used). Fetched
packages are cached, so a second run does no network I/O; the dataset is written once per settings.
"""


def summary(path: Path) -> dict:
    ds = load(path, images=False)
    pairs = edit_pairs(ds)
    heldout = ds.heldout_indices()
    return {
        "path": str(path),
        "size": ds.meta["settings"]["size"],
        "images": len(ds),
        "captions": len(set(ds.captions.tolist())),
        "heldout_captions": len(set(ds.captions[heldout].tolist())),
        "heldout_images": len(heldout),
        "per_source": dict(Counter(ds.source.tolist())),
        "per_group": dict(Counter(ds.group.tolist()).most_common()),
        "subgroups": len(set(ds.subgroup.tolist())),
        "edit_pairs": dict(Counter(pair_kind(text) for _, _, text in pairs)),
        "sources": ds.meta["stats"],
        "versions": ds.meta.get("versions"),
        "build_seconds": ds.meta["seconds"],
    }


def parse_sources(text: str) -> tuple[str, ...]:
    """"all", or a comma-separated list of sources."""
    return ALL_SOURCES if text.strip() == "all" else tuple(s for s in text.split(",") if s)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data", description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="square image size in pixels (default 128)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images (smoke runs)")
    parser.add_argument("--sources", default=",".join(SOURCES),
                        help=f"comma-separated, from {','.join(ALL_SOURCES)}, or 'all' (default: the emoji sets)")
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"default: the user cache, or ${DATA_ENV}")
    parser.add_argument("--allow-other-versions", action="store_true",
                        help="when a pinned Debian package version cannot be had, build from another one "
                             "(recorded in the dataset file) instead of stopping")
    args = parser.parse_args(None if argv is None else list(argv))
    started = time.monotonic()
    try:
        path = prepare(args.cache_dir, size=args.size, sources=parse_sources(args.sources), limit=args.limit,
                       allow_other_versions=args.allow_other_versions)
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    result = summary(path)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0
