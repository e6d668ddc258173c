"""The model catalog: the models Quickbrush knows work well, read from `catalog.toml`.

The data lives in one readable file beside this module, so adding a model is a few lines of
TOML, not code. An entry says where the model comes from (repository, revision, files), what it
does (capabilities), what it costs (download and memory) and under which licence. Recipes stay
in `inference.models.presets`: an entry only names its preset.

No torch, diffusers or Qt here: the Model dock and the CLI list the catalog without loading
any of them.
"""

from __future__ import annotations

import json
import re
import threading
import tomllib
from dataclasses import dataclass, field
from datetime import UTC
from functools import lru_cache
from pathlib import Path

from inference.jobs import BadInput

__all__ = [
    "CAPABILITIES",
    "KINDS",
    "Entry",
    "accept_licence",
    "catalog_path",
    "entries",
    "entry",
    "for_repo",
    "licence_accepted",
    "pipeline_problem",
    "requires",
]

CAPABILITIES = ("generate", "inpaint", "edit", "decoder", "lora")
KINDS = ("pipeline", "lora", "decoder", "builtin")
LICENCES_FILE = "licences.json"
_HEX40 = re.compile(r"[0-9a-f]{40}")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Entry:
    id: str  # what the CLI and the dock show first: "sd-turbo", "builtin", "taesd"
    name: str  # "SD-Turbo"
    description: str  # one sentence a designer understands
    kind: str  # "pipeline" | "lora" | "decoder" | "builtin"
    repo: str | None  # "stabilityai/sd-turbo"; None for the built-in model
    revision: str | None  # a pinned 40-hex commit; None: the newest on main, recorded at download
    files: tuple[str, ...]  # repository paths or patterns ("tokenizer/*"); () = every file (for_repo)
    capabilities: tuple[str, ...]
    preset: str | None  # a Preset.name in inference/models/presets.py
    base: str | None  # for a LoRA: the catalog id of the model it applies to
    download_bytes: int
    memory_bytes: int
    licence: str
    licence_url: str
    commercial: bool
    large: bool = False
    pipeline: str | None = None  # a diffusers class the model needs (Flux2KleinPipeline)
    # Additions to the shared contract:
    variant: str | None = None  # "fp16" when `files` are diffusers' fp16 variant files
    verified: bool = False  # revision, sizes and file names were checked against the Hub
    adhoc: bool = field(default=False, compare=False)  # made by for_repo, not from the catalog

    @property
    def revision_or_main(self) -> str:
        return self.revision or "main"


def catalog_path() -> Path:
    return Path(__file__).with_name("catalog.toml")


def _problem(where: str, text: str) -> ValueError:
    return ValueError(f"{catalog_path().name}, {where}: {text}")


def _parse(raw: dict, index: int) -> Entry:
    where = f"model {index + 1} ({raw.get('id', '?')})"
    known = {f for f in Entry.__dataclass_fields__ if f != "adhoc"}
    unknown = set(raw) - known
    if unknown:
        raise _problem(where, f"unknown field(s) {', '.join(sorted(unknown))}")
    for required in ("id", "name", "description", "kind", "capabilities", "download_bytes", "memory_bytes",
                     "licence", "licence_url", "commercial"):
        if required not in raw:
            raise _problem(where, f"{required} is missing")
    if raw["kind"] not in KINDS:
        raise _problem(where, f"kind must be one of {', '.join(KINDS)}")
    bad = [c for c in raw["capabilities"] if c not in CAPABILITIES]
    if bad:
        raise _problem(where, f"unknown capabilities {bad}")
    revision = raw.get("revision")
    if revision is not None and not _HEX40.fullmatch(revision):
        raise _problem(where, "revision must be a 40-hex commit (or left out)")
    if raw["kind"] != "builtin" and not raw.get("repo"):
        raise _problem(where, "repo is missing")
    if raw["kind"] != "builtin" and not raw.get("files"):
        raise _problem(where, "files is empty")
    return Entry(
        id=raw["id"], name=raw["name"], description=raw["description"], kind=raw["kind"],
        repo=raw.get("repo"), revision=revision, files=tuple(raw.get("files", ())),
        capabilities=tuple(raw["capabilities"]), preset=raw.get("preset"), base=raw.get("base"),
        download_bytes=int(raw["download_bytes"]), memory_bytes=int(raw["memory_bytes"]),
        licence=raw["licence"], licence_url=raw["licence_url"], commercial=bool(raw["commercial"]),
        large=bool(raw.get("large", False)), pipeline=raw.get("pipeline"), variant=raw.get("variant"),
        verified=bool(raw.get("verified", False)),
    )


@lru_cache(maxsize=1)
def _load() -> tuple[Entry, ...]:
    with catalog_path().open("rb") as handle:
        data = tomllib.load(handle)
    found = tuple(_parse(raw, i) for i, raw in enumerate(data.get("model", [])))
    ids = [e.id for e in found]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise _problem("ids", f"{', '.join(duplicates)} appear more than once")
    for e in found:
        if e.base is not None and e.base not in ids:
            raise _problem(e.id, f"base {e.base!r} is not in the catalog")
    return found


def entries(capability: str | None = None) -> list[Entry]:
    """Every catalog entry in the file's order, or those with `capability`."""
    if capability is not None and capability not in CAPABILITIES:
        raise BadInput(f"Unknown capability {capability!r}.", f"Known: {', '.join(CAPABILITIES)}.")
    return [e for e in _load() if capability is None or capability in e.capabilities]


def entry(entry_id: str) -> Entry:
    """The entry with this id (or, for convenience, this repository id)."""
    for e in _load():
        if e.id == entry_id:
            return e
    found = _by_repo(entry_id)
    if found is not None:
        return found
    raise BadInput(f"There is no model called {entry_id!r} in the catalog.",
                   f"Known models: {', '.join(e.id for e in _load())}. Any Hub repository id "
                   "(owner/name) can be downloaded too.")


def _by_repo(repo_id: str) -> Entry | None:
    """The catalog's entry for a repository: its pipeline, or the one entry that uses it (the
    LCM-LoRA repository serves two entries, and is then no answer)."""
    same = [e for e in _load() if e.repo is not None and e.repo.lower() == repo_id.lower()]
    pipelines = [e for e in same if e.kind == "pipeline"]
    if len(pipelines) == 1:
        return pipelines[0]
    return same[0] if len(same) == 1 else None


def for_repo(repo_id: str, revision: str | None = None) -> Entry:
    """An entry for any Hub repository a designer types: the catalog's own entry when there is one,
    else an ad-hoc one whose files are every file of the repository (found at download time),
    with an unknown licence that must be accepted like a non-commercial one."""
    repo_id = repo_id.strip()
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise BadInput(f"{repo_id!r} is not a Hugging Face repository id.",
                       "A repository id looks like owner/name, for example stabilityai/sd-turbo.")
    found = _by_repo(repo_id)
    if found is not None and (revision is None or revision == found.revision):
        return found
    if revision is not None and not _HEX40.fullmatch(revision):
        raise BadInput(f"{revision!r} is not a commit.", "Give the full 40-character commit hash, or none.")
    return Entry(
        id=repo_id, name=repo_id.split("/")[1], description=f"{repo_id} from the Hugging Face Hub.",
        kind="pipeline", repo=repo_id, revision=revision, files=(), capabilities=(), preset=None, base=None,
        download_bytes=0, memory_bytes=0, licence="See the model card",
        licence_url=f"https://huggingface.co/{repo_id}", commercial=False, adhoc=True,
    )


def requires(e: Entry) -> list[Entry]:
    """What `e` needs to run, bases first: a LoRA needs its base model."""
    chain = [e]
    while chain[0].base is not None:
        chain.insert(0, entry(chain[0].base))
    return chain


def pipeline_problem(e: Entry) -> str | None:
    """Why this installation cannot run `e`'s pipeline class (None when it can), without importing
    diffusers: FLUX.2 klein needs a diffusers with Flux2KleinPipeline."""
    if not e.pipeline:
        return None
    import importlib.util

    spec = importlib.util.find_spec("diffusers")
    if spec is None or not spec.origin:
        return f"{e.name} needs the diffusers library, which is not installed."
    try:
        # diffusers lists every pipeline class by name in its lazy-import table.
        source = Path(spec.origin).read_text(encoding="utf-8")
    except OSError:
        return None
    if f'"{e.pipeline}"' not in source:
        return (f"{e.name} needs a newer diffusers (one with {e.pipeline}); "
                "update Quickbrush's Python packages to use it.")
    return None


# --------------------------------------------------------------------------- licences

_licence_lock = threading.Lock()


def _licences_file() -> Path:
    from inference.files import data_dir

    return data_dir() / LICENCES_FILE


def _read_accepted() -> dict:
    from inference.files import read_json_object

    return read_json_object(_licences_file())


def _licence_key(e: Entry) -> str:
    # Keyed by repository and licence name: accepting SD-Turbo's licence does not accept
    # SDXL-Turbo's, and a licence change in the catalog asks again.
    return f"{e.repo or e.id}|{e.licence}"


def licence_accepted(e: Entry) -> bool:
    """Whether the designer may download `e` without being asked: commercial licences count as
    accepted; a non-commercial (or unknown) one once the designer accepted it."""
    if e.commercial:
        return True
    return _licence_key(e) in _read_accepted()


def accept_licence(e: Entry) -> None:
    """Remember that the designer accepted `e`'s licence (in inference.files.data_dir())."""
    from datetime import datetime

    from inference.files import atomic_write

    with _licence_lock:
        data = _read_accepted()
        data[_licence_key(e)] = {"licence": e.licence, "url": e.licence_url,
                                 "accepted": datetime.now(UTC).isoformat(timespec="seconds")}
        path = _licences_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(data, indent=1, sort_keys=True).encode("utf-8")
        atomic_write(path, lambda handle: handle.write(payload))
