"""The built-in model's training data: pinned emoji sets, icons and clip art rendered into one
reproducible .npz (`python -m training.data`; training/README.md).

The package, by responsibility:

- `common`: source names and domains, the catalogue `Entry`, the held-out rule, the cache folder.
- `fetch`: npm pins, `npm pack NAME@VERSION` into the cache, integrity checks, reading tarballs.
- `debian`: pinned Debian packages (`apt-get download`, `dpkg-deb -x`) and what may stand in.
- `emoji`, `icons`, `clipart`: each family's catalogue, captions and classes, and its drawing.
- `render`: fitting images into the square, the Noto font, SVGs.
- `dataset`: `prepare` (the dataset file and the versions it records), `load`, `Dataset`.
- `edits`: edit pairs. `card`: DATA.md. `cli`: the command line.

The contract the trainer relies on is `prepare`, `load`, `Dataset` and `edit_pairs`; every name
below stays importable from `training.data`.
"""

# ruff: noqa: F401 - this module re-exports the package's names
from training.data.card import _card_keys, data_card, pinned_versions
from training.data.clipart import (CLIPART_MAX_CLASS, CLIPART_MIN_CLASS, CLIPART_SKIP, _clean_title, _raw_title,
                                   _render_any_svg, _render_clipart, clipart_caption, clipart_catalogue,
                                   clipart_title)
from training.data.cli import main, parse_sources, summary
from training.data.common import (ALL_SOURCES, ALPHA_EDGE, CLIPART_GROUP, CLIPART_SOURCES, DATA_ENV, DOMAINS, FILL,
                                  HELDOUT_FRACTION, HELDOUT_SALT, ICON_GROUP, ICON_SOURCES, SOURCES, TONES,
                                  DataError, Entry, cache_dir, domain_of_group, domain_of_source, file_sha256,
                                  is_heldout, slug, sources_of)
from training.data.dataset import (COLUMNS, FORMAT, Dataset, _settings, dataset_name, load, npm_roles, prepare,
                                   read_roles)
from training.data.debian import (CLIPART_DEB, CLIPART_DEB_VERSION, CLIPART_IN_DEB, DEBIAN_PINS, NOTO_DEB,
                                  NOTO_DEB_VERSION, NOTO_FONT_IN_DEB, NOTO_FONT_SHA256, SYSTEM_NOTO_FONT, Found,
                                  find_clipart, find_noto_font, find_package)
from training.data.edits import _caption_edits, edit_pairs, pair_kind
from training.data.emoji import (FLUENT_ALIASES, _tone_caption, catalogue, emoji_tags, fluent_names,
                                 keyword_captions, text_of)
from training.data.fetch import PINS, Pin, fetch, read_tar
from training.data.icons import icon_caption, icon_subgroup, lucide_catalogue, tabler_catalogue
from training.data.render import NOTO_PIXELS, NotoRenderer, Rendered, fit

_file_sha256 = file_sha256  # the name before the split

__all__ = [name for name in dir() if not name.startswith("__")]
