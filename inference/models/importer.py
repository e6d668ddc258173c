"""Bringing a model file or folder into Quickbrush's models folder, safely.

What a file is (family, variant, kind) is read from its safetensors header alone: the tensor
names and shapes, never the weights, so inspecting a 7 GB SDXL checkpoint costs one small read.
The same header check decides whether a file is whole: a header that does not parse, or tensor
offsets that do not add up to the file's size (a truncated download or copy), is refused here
and never listed by `inference.models.store.list_models`.

Pickle checkpoints (.ckpt, .bin, .pt) can run any code when unpickled, so they are refused
unless the designer opts in; then they are read with torch's weights-only unpickler (which
refuses anything but tensors and plain containers) and written as safetensors, so the models
folder only ever holds files that cannot run code.

An import is a copy (a hard link when the file is on the same disk) into a hidden temporary
name beside its destination, renamed into place when complete: a failed or cancelled import
leaves nothing behind. No torch or diffusers import here except for the pickle conversion.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from inference.jobs import BadInput, Cancelled, ModelMissing
from inference.models import store

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
TOKENIZER_DIR = CONFIGS_DIR / "clip-tokenizer"
TEMP_PREFIX = ".importing-"  # store.list_models skips names starting with "."

# Bytes per element of each safetensors dtype.
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit

UNET = "model.diffusion_model."
FIRST_CONV = UNET + "input_blocks.0.0.weight"
_VARIANTS = {4: "text2img", 9: "inpaint", 8: "pix2pix"}
FAMILY_NAMES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}
VARIANT_NAMES = {"text2img": "text to image", "inpaint": "inpainting", "pix2pix": "InstructPix2Pix"}

Progress = Callable[[int, int], None]  # (bytes done, bytes in all); raise Cancelled in it to stop


@dataclass(frozen=True)
class Detected:
    """What a model file or folder is."""

    family: str | None  # "sd1" | "sd2" | "sdxl"; None when it cannot be told (a LoRA of unknown base)
    variant: str | None  # "text2img" | "inpaint" | "pix2pix" for a pipeline; None otherwise
    kind: str  # "pipeline" | "lora" | "decoder"
    format: str  # "safetensors" | "diffusers" | "pickle"
    config: str | None = None  # the shipped config folder a single file loads with (configs/<name>)
    bytes: int = 0

    def describe(self) -> str:
        family = FAMILY_NAMES.get(self.family or "", "")
        if self.kind == "lora":
            return f"{family} LoRA".strip()
        if self.kind == "decoder":
            return "tiny decoder (TAESD)"
        return f"{family} {VARIANT_NAMES.get(self.variant or '', '')} model".replace("  ", " ").strip()


@dataclass(frozen=True)
class ImportedModel:
    name: str  # what list_models shows and ModelRef.source accepts (a name inside models_dir())
    path: Path
    detected: Detected
    bytes: int
    linked: bool  # hard-linked, so it took no extra disk space


# --------------------------------------------------------------------------- safetensors headers


def read_header(path: str | Path) -> dict[str, dict]:
    """The tensors of a safetensors file ({name: {"dtype", "shape", "data_offsets"}}), checked
    against the file: BadInput when the header is damaged or the file is shorter or longer than
    the tensors it declares. Reads only the header."""
    path = Path(path)
    name = path.name
    damaged = f"{name} is damaged or incomplete, so it cannot be used"
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise BadInput(f"{damaged}: it is empty or cut short.", f"{path}: {size} bytes")
            (length,) = struct.unpack("<Q", prefix)
            if length > _MAX_HEADER or length + 8 > size:
                raise BadInput(f"{damaged}: its safetensors header is broken.",
                               f"{path}: header length {length}, file size {size}")
            raw = handle.read(length)
    except OSError as exc:
        raise BadInput(f"{name} could not be read.", f"{path}: {exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{damaged}: its safetensors header is broken.", f"{path}: {exc}") from exc
    if not isinstance(header, dict):
        raise BadInput(f"{damaged}: its safetensors header is broken.", f"{path}: not a JSON object")
    header.pop("__metadata__", None)
    end = 0
    spans = []
    for key, info in header.items():
        try:
            begin, stop = info["data_offsets"]
            count = 1
            for dim in info["shape"]:
                count *= int(dim)
            expected = count * _DTYPE_BYTES[info["dtype"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"{damaged}: its safetensors header is broken.", f"{path}: tensor {key}: {exc!r}") from exc
        if not (isinstance(begin, int) and isinstance(stop, int)) or begin < 0 or stop - begin != expected:
            raise BadInput(f"{damaged}: its safetensors header is broken.",
                           f"{path}: tensor {key} spans {begin}..{stop}, its shape needs {expected} bytes")
        spans.append((begin, stop))
        end = max(end, stop)
    data = size - 8 - length
    if data < end:
        raise BadInput(f"{damaged}: the file is cut short (an interrupted download or copy?).",
                       f"{path}: the header needs {end} bytes of tensors, the file has {data}. "
                       "Download or copy it again.")
    if data > end:
        raise BadInput(f"{damaged}: it holds more bytes than its tensors.",
                       f"{path}: {data - end} bytes after the last tensor.")
    spans.sort()
    for (_, stop), (begin, _) in zip(spans, spans[1:]):
        if begin < stop:
            raise BadInput(f"{damaged}: its safetensors header is broken.", f"{path}: tensors overlap")
    return header


def file_is_whole(path: str | Path) -> bool:
    """Whether a checkpoint file in the models folder can be listed: a safetensors file whose
    header matches its size, or a pickle checkpoint in torch's zip format."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        try:
            read_header(path)
        except BadInput:
            return False
        return True
    import zipfile

    return zipfile.is_zipfile(path)


# --------------------------------------------------------------------------- what a model is


def _sdxl_lora_hint(keys: list[str]) -> bool:
    """SDXL's second text encoder, in kohya's (lora_te2_) or diffusers' (text_encoder_2.) names."""
    return any(k.startswith(("lora_te2_", "text_encoder_2.")) for k in keys)


def _lora_family(header: dict[str, dict]) -> str | None:
    """The base family of a LoRA, from the width of a cross-attention key projection's input
    (768 SD 1.x, 1024 SD 2.x, 2048 SDXL) or SDXL's second text encoder."""
    keys = list(header)
    if _sdxl_lora_hint(keys):
        return "sdxl"
    for key in keys:
        lowered = key.lower()
        if ("attn2" in lowered and "to_k" in lowered and ("lora_down" in lowered or "lora_a" in lowered)
                and lowered.endswith("weight")):
            width = header[key]["shape"][-1]
            return {768: "sd1", 1024: "sd2", 2048: "sdxl"}.get(width)
    return None


def _is_lora(keys: list[str]) -> bool:
    return any("lora" in k.lower() for k in keys[:2000])


def _checkpoint_family(header: dict[str, dict], hint: str = "") -> tuple[str, str, str]:
    """(family, variant, shipped config) of an original-layout SD checkpoint."""
    channels = header[FIRST_CONV]["shape"][1]
    variant = _VARIANTS.get(channels)
    if variant is None:
        raise BadInput(f"{hint or 'This checkpoint'} has a UNet with {channels} input channels, "
                       "which no Stable Diffusion pipeline Quickbrush knows takes.")
    keys = header.keys()
    if any(k.startswith("conditioner.embedders.1.") for k in keys) or UNET + "label_emb.0.0.weight" in keys:
        family = "sdxl"
    else:
        attn = sorted(k for k in keys if k.startswith(UNET) and k.endswith("attn2.to_k.weight"))
        width = header[attn[0]]["shape"][1] if attn else 768
        family = "sd2" if width == 1024 else "sd1"
    return family, variant, config_name(family, variant, hint)  # type: ignore[return-value]


def config_name(family: str, variant: str, name: str = "") -> str | None:
    """The shipped config folder (configs/<name>) for a family and variant, if one ships."""
    if family == "sd2" and variant == "text2img":
        # SD 2.x comes as 768 px v-prediction (2.0, 2.1) or 512 px epsilon ("base", SD-Turbo); the
        # tensors are the same, so the name decides, and the 768 px model is the usual one.
        config = "sd2-base" if re.search(r"base|512|turbo", name.lower()) else "sd2-v"
    else:
        config = family + ("" if variant == "text2img" else "-" + variant)
    return config if (CONFIGS_DIR / config / "model_index.json").is_file() else None


def _from_header(header: dict[str, dict], name: str, fmt: str, size: int) -> Detected:
    keys = list(header)
    if FIRST_CONV in header:
        family, variant, config = _checkpoint_family(header, name)
        return Detected(family, variant, "pipeline", fmt, config, size)
    if _is_lora(keys):
        return Detected(_lora_family(header), None, "lora", fmt, None, size)
    if any(k.startswith(("decoder.layers.", "encoder.layers.")) for k in keys):
        return Detected(None, None, "decoder", fmt, None, size)
    if any(k.startswith(("decoder.conv_in", "first_stage_model.decoder")) for k in keys):
        raise BadInput(f"{name} is a VAE on its own, not a model: Quickbrush uses each model's own VAE.")
    raise BadInput(f"{name} is not a Stable Diffusion model, LoRA or tiny decoder Quickbrush knows.",
                   f"None of its {len(keys)} tensors is a UNet ({UNET}*) or LoRA weight; "
                   f"the first: {', '.join(keys[:5])}")


def _folder(path: Path) -> Detected:
    size = _tree_bytes(path)
    config = path / "config.json"
    if not (path / "model_index.json").exists() and config.is_file():
        try:
            cls = json.loads(config.read_text(encoding="utf-8")).get("_class_name")
        except (OSError, ValueError):
            cls = None
        if cls == "AutoencoderTiny":
            _check_weights(path, "the tiny decoder")
            return Detected(None, None, "decoder", "diffusers", None, size)
    if (path / store.BUILTIN_CONFIG).exists():
        raise BadInput(f"{path.name} is a Quickbrush built-in model folder; it is used where it is.")
    index = store.check_pipeline_folder(path, path.name)
    name = index.get("_class_name", "")
    try:
        unet = json.loads((path / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        unet = {}
    channels = unet.get("in_channels", 4)
    variant = _VARIANTS.get(channels) or ("pix2pix" if "Pix2Pix" in name else "inpaint" if "Inpaint" in name
                                          else "text2img")
    if "text_encoder_2" in index or "XL" in name:
        family = "sdxl"
    else:
        family = "sd2" if unet.get("cross_attention_dim") == 1024 else "sd1"
    for weights in path.rglob("*"):
        if weights.suffix.lower() == ".safetensors" and weights.parent != path:  # top-level ones are not read
            read_header(weights)  # a damaged component is refused now, not at its first use
    return Detected(family, variant, "pipeline", "diffusers", None, size)


def _check_weights(path: Path, label: str) -> None:
    weights = [f for f in path.rglob("*") if f.suffix.lower() == ".safetensors"]
    if not weights and not any(f.suffix.lower() in PICKLE_SUFFIXES for f in path.rglob("*")):
        raise ModelMissing(f"{path.name} ({label}) has no weights.")
    for file in weights:
        read_header(file)


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def inspect(path: str | Path) -> Detected:
    """What `path` is: a single .safetensors checkpoint, LoRA or tiny decoder (from its header), a
    diffusers folder, or a pickle checkpoint (kind from its name only: it is not opened)."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _folder(path)
    if not path.is_file():
        raise ModelMissing(f"{path.name or path} was not found.", f"No such file or folder: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _from_header(read_header(path), path.name, "safetensors", path.stat().st_size)
    if suffix in PICKLE_SUFFIXES:
        kind = "lora" if "lora" in path.name.lower() else "pipeline"
        return Detected(None, None, kind, "pickle", None, path.stat().st_size)
    raise BadInput(f"{path.name} is not a model file Quickbrush can import.",
                   "Import a .safetensors file, a diffusers folder (with model_index.json), or, "
                   "with the pickle opt-in, a .ckpt, .bin or .pt file.")


class PickleRefused(BadInput):
    """A pickle checkpoint, refused because opening it could run code; `allow_pickle` converts it."""

    kind = "pickle_refused"


def pickle_refusal(path: Path) -> PickleRefused:
    return PickleRefused(
        f"{path.name} is a pickle checkpoint, which can run any code on this computer when it is opened, "
        "so Quickbrush does not import it by default.",
        "Prefer a .safetensors version of the model. If you trust where this file comes from, import it "
        "with the pickle option (quickbrush-cli models import --allow-pickle): it is then read with "
        "torch's weights-only loader, which refuses anything but tensors, and saved as .safetensors.")


# --------------------------------------------------------------------------- shipped configs


def shipped_config(path: str | Path, family: str | None = None, variant: str | None = None) -> Path | None:
    """The shipped config folder a single-file checkpoint loads with offline, or None. A pickle
    checkpoint is not opened here: pass the family and variant its loader read."""
    path = Path(path)
    if family and variant:
        name = config_name(family, variant, path.name)
        return CONFIGS_DIR / name if name else None
    try:
        detected = inspect(path)
    except (BadInput, ModelMissing):
        return None
    return CONFIGS_DIR / detected.config if detected.config else None


def shipped_tokenizers(config: Path) -> dict:
    """The CLIP tokenizers for a shipped config folder, built from the one shipped vocabulary.

    The folders carry only each tokenizer's settings (its padding token), not 1.5 MB of
    vocabulary each; diffusers takes components passed by name instead of loading them."""
    from transformers import CLIPTokenizer

    vocab, merges = TOKENIZER_DIR / "vocab.json", TOKENIZER_DIR / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        raise ModelMissing("This copy of Quickbrush is missing its CLIP tokenizer files, so a single-file "
                           "checkpoint cannot load without a config.",
                           f"Looked in {TOKENIZER_DIR}. Reinstall Quickbrush, or pass a diffusers folder or "
                           "repo id of the same family with --config.")
    tokenizers = {}
    for name in ("tokenizer", "tokenizer_2"):
        settings = config / name / "tokenizer_config.json"
        if settings.is_file():
            options = json.loads(settings.read_text(encoding="utf-8"))
            options.pop("tokenizer_class", None)
            tokenizers[name] = CLIPTokenizer(str(vocab), str(merges), **options)
    return tokenizers


# --------------------------------------------------------------------------- importing


def _free_name(stem: str, suffix: str = "") -> str:
    stem = re.sub(r"[^\w.+-]+", "-", stem).strip("-.") or "model"
    root = store.models_dir()
    candidate, n = stem, 2
    while (root / (candidate + suffix)).exists():
        candidate, n = f"{stem}-{n}", n + 1
    return candidate + suffix


def _copy_file(source: Path, target: Path, done: int, total: int, on_progress: Progress | None,
               chunk: int = 8 << 20) -> tuple[int, bool]:
    """Hard link where the filesystem allows it, else a copy in chunks with progress."""
    try:
        os.link(source, target)
        done += source.stat().st_size
        if on_progress:
            on_progress(done, total)
        return done, True
    except OSError:
        pass
    with open(source, "rb") as src, open(target, "wb") as dst:
        while block := src.read(chunk):
            dst.write(block)
            done += len(block)
            if on_progress:
                on_progress(done, total)
        dst.flush()
        os.fsync(dst.fileno())
    shutil.copystat(source, target)
    return done, False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _convert_pickle(source: Path, target: Path) -> None:
    """A pickle checkpoint's tensors, loaded weights-only, written as safetensors."""
    import torch
    from safetensors.torch import save_file

    try:
        state = torch.load(str(source), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        try:
            state = torch.load(str(source), map_location="cpu", weights_only=True)
        except Exception:
            raise BadInput(f"{source.name} could not be read as a weights-only checkpoint: it is damaged, or "
                           "holds more than tensors (which Quickbrush never runs).", repr(exc)) from exc
    metadata = {"format": "pt", "converted_from": source.name}
    if isinstance(state, dict) and isinstance(state.get("global_step"), int):
        metadata["global_step"] = str(state["global_step"])
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BadInput(f"{source.name} holds no named tensors, so it is not a model checkpoint.")
    tensors, seen = {}, set()
    for key, value in state.items():
        if isinstance(key, str) and isinstance(value, torch.Tensor):
            # safetensors refuses tensors sharing memory (tied weights): each gets its own copy.
            storage = (value.untyped_storage().data_ptr(), value.storage_offset())
            value = value.contiguous() if storage not in seen else value.clone().contiguous()
            seen.add(storage)
            tensors[key] = value
    if not tensors:
        raise BadInput(f"{source.name} holds no tensors, so it is not a model checkpoint.")
    save_file(tensors, str(target), metadata=metadata)


def import_path(path: str | Path, allow_pickle: bool = False, on_progress: Progress | None = None,
                name: str | None = None) -> ImportedModel:
    """Copy (or hard-link) a model into models_dir() and return what it became.

    Refuses, with a message saying why: a damaged or truncated file, a file that is not a model,
    a pickle checkpoint without `allow_pickle`. `on_progress(done, total)` is called as bytes are
    copied; raising Cancelled (or KeyboardInterrupt) in it stops the import, leaving nothing."""
    source = Path(path).expanduser()
    if not source.exists():
        raise ModelMissing(f"{source.name or source} was not found.", f"No such file or folder: {source}")
    root = store.models_dir()
    try:
        if source.resolve().is_relative_to(root.resolve()):
            raise BadInput(f"{source.name} is already in the models folder.", str(root))
    except OSError:
        pass
    detected = inspect(source)
    pickles = ([source] if source.is_file() and detected.format == "pickle" else
               [f for f in sorted(source.rglob("*")) if f.suffix.lower() in PICKLE_SUFFIXES and f.is_file()
                and not _unused(f, source, detected)] if source.is_dir() else [])
    if pickles and not allow_pickle:
        raise pickle_refusal(pickles[0])
    root.mkdir(parents=True, exist_ok=True)
    as_folder = source.is_dir() or detected.kind == "decoder"
    if not as_folder:
        final_name = _free_name(name or source.stem, ".safetensors")
    else:
        default = source.name
        if detected.kind == "decoder" and name is None and source.name not in ("taesd", "taesdxl"):
            # Where the diffusers backend looks for a family's tiny decoder (TINY_SHARED there).
            default = "taesdxl" if "xl" in source.name.lower() else "taesd"
        final_name = _free_name(name or default)
    final = root / final_name
    temp = root / f"{TEMP_PREFIX}{os.getpid()}-{final_name}"
    _remove(temp)
    linked = False
    try:
        if source.is_file() and detected.kind == "decoder":
            # A tiny decoder is used as a diffusers folder: the file beside AutoencoderTiny's config
            # (TAESD's and TAESDXL's are diffusers' defaults).
            temp.mkdir()
            total = source.stat().st_size
            if on_progress:
                on_progress(0, total)
            _, linked = _copy_file(source, temp / "diffusion_pytorch_model.safetensors", 0, total, on_progress)
            (temp / "config.json").write_text(json.dumps({"_class_name": "AutoencoderTiny"}) + "\n")
        elif source.is_file():
            total = source.stat().st_size
            if detected.format == "pickle":
                if on_progress:
                    on_progress(0, total)
                _convert_pickle(source, temp)
                if on_progress:
                    on_progress(total, total)
                detected = inspect(temp)
                detected = Detected(detected.family, detected.variant, detected.kind, "pickle", detected.config,
                                    temp.stat().st_size)
            else:
                if on_progress:
                    on_progress(0, total)
                _, linked = _copy_file(source, temp, 0, total, on_progress)
                read_header(temp)  # the copy is whole (the source could change while copying)
        else:
            files = [f for f in sorted(source.rglob("*")) if f.is_file()]
            skipped = {f for f in files if _unused(f, source, detected)}
            total = sum(f.stat().st_size for f in files if f not in skipped)
            done, linked = 0, True
            temp.mkdir()
            if on_progress:
                on_progress(0, total)
            for file in files:
                if file in skipped:
                    continue
                target = temp / file.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                if file.suffix.lower() in PICKLE_SUFFIXES:
                    # transformers reads model.safetensors where it read pytorch_model.bin
                    target = target.with_name("model.safetensors" if file.stem == "pytorch_model"
                                              else file.stem + ".safetensors")
                    _convert_pickle(file, target)
                    done += file.stat().st_size
                    linked = False
                    if on_progress:
                        on_progress(done, total)
                else:
                    done, one_linked = _copy_file(file, target, done, total, on_progress)
                    linked = linked and one_linked
        if final.exists():  # taken while we copied
            final = root / _free_name(final_name.removesuffix(".safetensors"), "" if as_folder else ".safetensors")
        os.replace(temp, final)
    except BaseException:
        _remove(temp)
        raise
    size = final.stat().st_size if final.is_file() else _tree_bytes(final)
    return ImportedModel(final.name, final, detected, size, linked)


_OTHER_FRAMEWORKS = (".msgpack", ".h5", ".onnx", ".onnx_data", ".pb", ".tflite")


def _unused(file: Path, root: Path, detected: Detected) -> bool:
    """Files of a diffusers folder that diffusers never reads here, so not worth copying: a pickle
    beside safetensors weights (the same weights), Flax/TF/ONNX exports, and a pipeline folder's
    top-level checkpoints (a Hub snapshot of SD 1.5 holds two 4 GB single-file copies there)."""
    suffix = file.suffix.lower()
    if suffix in _OTHER_FRAMEWORKS:
        return True
    if detected.kind == "pipeline" and file.parent == root and suffix in (".safetensors",) + PICKLE_SUFFIXES:
        return True
    return suffix in PICKLE_SUFFIXES and any(f.suffix.lower() == ".safetensors" for f in file.parent.iterdir())


__all__ = ["Cancelled", "Detected", "ImportedModel", "PickleRefused", "import_path", "inspect", "read_header", "file_is_whole",
           "shipped_config", "shipped_tokenizers"]
