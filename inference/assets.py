"""Where the files that ship beside the code live: the icons and the built-in model.

In a source checkout and an editable install that is the repository's `assets/` folder; an
installed wheel carries the same folder as the `quickbrush_assets` package (pyproject.toml maps
`assets/` onto it), so code never assumes the repository layout.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


@cache
def assets_dir() -> Path:
    spec = importlib.util.find_spec("quickbrush_assets")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[1] / "assets"  # a checkout run without installing


def icons_dir() -> Path:
    return assets_dir() / "icons"
