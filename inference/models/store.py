"""Where models live on this computer, and what a model reference points at.

A model is found, in order, as: the built-in model; a path (a diffusers folder or one checkpoint
file); a name inside Quickbrush's own models folder; a Hugging Face repo id in the local Hub
cache. Nothing here downloads; the diffusers backend does that only when the network is allowed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_data_dir

from inference.assets import assets_dir
from inference.jobs import BadInput, JobError, ModelMissing

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
BUILTIN = "builtin"


def models_dir() -> Path:
    """Quickbrush's own models folder; QUICKBRUSH_MODELS overrides it (tests, portable installs)."""
    override = os.environ.get("QUICKBRUSH_MODELS")
    return Path(override) if override else Path(user_data_dir("quickbrush", appauthor=False)) / "models"


BUILTIN_CONFIG = "quickbrush_builtin.json"  # inference.builtin.CONFIG_NAME, without importing torch


def builtin_dir() -> Path:
    """The model shipped inside Quickbrush; QUICKBRUSH_BUILTIN overrides it (tests, installers)."""
    override = os.environ.get("QUICKBRUSH_BUILTIN")
    return Path(override) if override else assets_dir() / "models" / "builtin"


def is_model_folder(path: Path) -> bool:
    return (path / "model_index.json").exists() or (path / BUILTIN_CONFIG).exists()


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str  # what goes into ModelRef.source
    where: str  # "builtin" | "folder" | "file" | "hub-cache"
    task: str  # "all" (the built-in model) | "text2img" | "inpaint" | "edit" | "lora" | "unknown"
    pipeline: str = ""


@dataclass(frozen=True)
class Located:
    """A resolved model source."""

    kind: str  # "builtin" | "folder" | "file" | "repo"
    path: str  # a filesystem path, or a repo id for "repo"


def not_a_model_folder(path: str | Path) -> ModelMissing:
    """What to tell the designer about a folder that no backend can load."""
    path = Path(path)
    return ModelMissing(
        f"{path.name} is not a diffusers model folder.",
        f"{path} has no model_index.json. Point to the folder that contains model_index.json, "
        "or to a single .safetensors checkpoint file.",
    )


def looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~")) and "\\" not in text


def locate(source: str) -> Located:
    """What `source` refers to, or ModelMissing with a message that says what was looked for."""
    if not source:
        raise ModelMissing("No model chosen.")
    if source == BUILTIN:
        if not is_model_folder(builtin_dir()):
            raise ModelMissing(
                "The built-in model is not installed in this copy of Quickbrush.",
                f"Looked in {builtin_dir()}. Choose a model with --model, or put one in {models_dir()}.",
            )
        return Located("builtin", str(builtin_dir()))
    path = Path(source).expanduser()
    if not path.exists() and not path.is_absolute() and (models_dir() / source).exists():
        path = models_dir() / source
    if path.is_dir():
        if not is_model_folder(path):
            raise not_a_model_folder(path)
        return Located("folder", str(path))
    if path.is_file():
        if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise BadInput(f"{path.name} is not a model checkpoint (expected .safetensors or .ckpt).")
        return Located("file", str(path))
    if looks_like_repo_id(source):
        return Located("repo", source)
    raise ModelMissing(f"Model not found: {source}", f"No such file or folder, and not in {models_dir()}.")


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_fingerprint(path: str) -> str:
    """A cheap identity for a folder model: hash of its configs and weight file sizes.

    Hashing gigabytes of weights on every load would cost seconds; configs plus sizes change
    whenever the model does in practice.
    """
    digest = hashlib.sha256()
    root = Path(path)
    for file in sorted(root.rglob("*")):
        if file.is_file():
            rel = file.relative_to(root).as_posix()
            digest.update(rel.encode())
            if file.suffix in (".json", ".txt"):
                digest.update(file.read_bytes())
            else:
                digest.update(str(file.stat().st_size).encode())
    return digest.hexdigest()


MODEL_WEIGHTS = (".safetensors", ".bin")  # what diffusers and transformers read a component from


def check_pipeline_folder(path: str | Path, label: str, skip: tuple[str, ...] = ("safety_checker",)) -> dict:
    """The parsed model_index.json of a diffusers folder, or ModelMissing saying plainly what is
    wrong with it: no or unreadable model_index.json, a component folder it lists that is
    missing or empty, a component without its config (or with a broken one), or a model
    component without weights.

    diffusers reports all of these as "no file named config.json found in directory ..." (for
    a missing unet folder it names the top folder) or as a bare JSONDecodeError; checking the
    layout first costs a few stat calls. `label` names the model for the designer (the folder's
    name, or a repo id). Components in `skip` are not looked at: the loader never reads the
    safety checker (it passes None), and many shared folders have it deleted."""
    root = Path(path)
    index_file = root / "model_index.json"
    if not index_file.is_file():
        raise ModelMissing(
            f"{label} is not a diffusers model folder: it has no model_index.json.",
            f"Looked in {root}. Point to the folder that contains model_index.json, "
            "or to a single .safetensors checkpoint file.")
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelMissing(f"{label} is damaged: its model_index.json is not valid JSON.",
                           f"{index_file}: {exc}. Download or copy the model again.") from exc
    if not isinstance(index, dict) or not isinstance(index.get("_class_name"), str):
        raise ModelMissing(f"{label} is damaged: its model_index.json does not describe a pipeline.",
                           f"{index_file} has no _class_name. Download or copy the model again.")
    # Components are the ["library", "Class"] entries; [null, null] means "not part of this model".
    components = {name: value[1] for name, value in index.items()
                  if not name.startswith("_") and isinstance(value, list) and len(value) == 2
                  and isinstance(value[1], str) and name not in skip}
    missing = [name for name in components if not (root / name).is_dir()]
    if missing:
        names = " and ".join(missing) if len(missing) <= 2 else ", ".join(missing[:-1]) + " and " + missing[-1]
        raise ModelMissing(
            f"{label} is incomplete: the {names} folder{'s are' if len(missing) > 1 else ' is'} missing.",
            f"model_index.json in {root} lists {', '.join(f'{n} ({components[n]})' for n in missing)}. "
            "Download or copy the whole model folder again.")
    for name, cls in components.items():
        folder = root / name
        files = [f for f in folder.rglob("*") if f.is_file()]
        if not files:
            raise ModelMissing(f"{label} is incomplete: its {name} folder is empty.",
                               f"{folder} holds no files. Download or copy the model again.")
        if "Tokenizer" in cls:
            continue  # tokenizers come in several file layouts; transformers explains its own
        config = ("scheduler_config.json" if cls.endswith("Scheduler") else
                  "preprocessor_config.json" if cls.endswith(("ImageProcessor", "FeatureExtractor")) else
                  "config.json")
        try:
            json.loads((folder / config).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelMissing(f"{label} is incomplete: {name}/{config} is missing.",
                               f"{folder} has no {config}. Download or copy the model again.") from exc
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ModelMissing(f"{label} is damaged: {name}/{config} is not valid JSON.",
                               f"{folder / config}: {exc}. Download or copy the model again.") from exc
        if config == "config.json" and not any(f.suffix in MODEL_WEIGHTS for f in files):
            raise ModelMissing(f"{label} is incomplete: its {name} folder has no weights.",
                               f"{folder} has no {' or '.join(MODEL_WEIGHTS)} file. "
                               "Download or copy the model again.")
    return index


def weights_variant(path: str | Path) -> str | None:
    """"fp16" for a diffusers folder whose weights are all fp16 variants
    (`diffusion_pytorch_model.fp16.safetensors`), as the catalog downloads them; diffusers finds
    such weights only when asked for the variant, and says nothing clearer than "no file named
    diffusion_pytorch_model.bin" otherwise. None where any component has plain weights."""
    weights = [f.name for f in Path(path).glob("*/*") if f.suffix in MODEL_WEIGHTS]
    if weights and all(".fp16." in name for name in weights):
        return "fp16"
    return None


def _task_from_index(index: dict) -> str:
    name = index.get("_class_name", "")
    if "Pix2Pix" in name:
        return "edit"
    if "Inpaint" in name:
        return "inpaint"
    return "text2img"


def _folder_info(path: Path, where: str, name: str | None = None) -> ModelInfo | None:
    if (path / BUILTIN_CONFIG).exists():
        label = "Built-in" if name == BUILTIN else (name or path.name)
        return ModelInfo(label, str(path) if name != BUILTIN else BUILTIN, where, "all", "QuickbrushBuiltin")
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    source = str(path) if where != "hub-cache" else (name or path.name)
    return ModelInfo(name or path.name, source, where, _task_from_index(index), index.get("_class_name", ""))


def _file_info(path: Path) -> ModelInfo | None:
    """A checkpoint file's entry, or None for a damaged or truncated one (never listed: it would
    only fail when chosen). Read from the safetensors header alone."""
    from inference.models import importer  # imports this module; importing it at the top would loop

    if not importer.file_is_whole(path):
        return None
    task = "unknown"
    if path.suffix.lower() == ".safetensors":
        try:
            detected = importer.inspect(path)
        except JobError:  # whole, but not a model Quickbrush knows: listed, and says so when used
            detected = None
        if detected is not None:
            task = "lora" if detected.kind == "lora" else {"inpaint": "inpaint", "pix2pix": "edit"}.get(
                detected.variant or "", "text2img" if detected.kind == "pipeline" else "unknown")
    return ModelInfo(path.stem, str(path), "file", task)


def list_models(include_hub_cache: bool = True) -> list[ModelInfo]:
    """Every model usable offline: built-in, Quickbrush's models folder, and the Hub cache."""
    found: list[ModelInfo] = []
    if is_model_folder(builtin_dir()):
        info = _folder_info(builtin_dir(), "builtin", BUILTIN)
        if info:
            found.append(info)
    root = models_dir()
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            if entry.name.startswith("."):  # an import or download still in progress, or a temp
                continue
            if entry.is_dir() and is_model_folder(entry):
                info = _folder_info(entry, "folder")
                if info:
                    found.append(info)
            elif entry.is_file() and entry.suffix.lower() in CHECKPOINT_SUFFIXES:
                info = _file_info(entry)
                if info:
                    found.append(info)
    if include_hub_cache:
        found.extend(_hub_cache_models())
    return found


def _hub_cache_models() -> list[ModelInfo]:
    try:
        from huggingface_hub import constants, scan_cache_dir

        # Read the cache location at call time (it can be redirected after import).
        cache = scan_cache_dir(cache_dir=constants.HF_HUB_CACHE)
    except Exception:  # no cache folder yet, or an unreadable one: nothing to list
        return []
    found = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            if (Path(revision.snapshot_path) / "model_index.json").exists():
                info = _folder_info(Path(revision.snapshot_path), "hub-cache", repo.repo_id)
                if info:
                    found.append(info)
                break
    return found


def default_model() -> str:
    """The model a job uses when none is named: built-in if present, else the first installed."""
    for info in list_models():
        if info.task in ("all", "text2img", "inpaint"):
            return info.source
    return BUILTIN


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt")


def estimate_bytes(ref) -> int:
    """Roughly the memory a model takes once loaded: the size of its weight files (0 if unknown).

    Over-counts folders holding several precisions of the same weights, which errs on the side of
    unloading an older model rather than running out of memory.
    """
    sources = [ref.source] + [lora.source for lora in ref.loras]
    total = 0
    for source in sources:
        try:
            located = locate(source) if source == ref.source else Located("file", source)
        except Exception:  # loading will explain what is wrong with it
            continue
        path = Path(located.path)
        if located.kind == "repo":
            continue
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(f.stat().st_size for f in path.rglob("*") if f.suffix in WEIGHT_SUFFIXES and f.is_file())
    return total
