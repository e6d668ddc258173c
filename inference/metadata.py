"""The recipe inside every PNG Quickbrush writes.

Two text chunks travel with each image:

* ``parameters``: the AUTOMATIC1111 "infotext" that A1111, Forge, Civitai and most image
  viewers read: the prompt, a ``Negative prompt: ...`` line (left out when empty), then one
  line of comma-separated ``Key: value`` pairs (``Steps: 4, Sampler: Euler a, CFG scale: 0.0,
  Seed: 123, Size: 512x512, ...``). Values holding a comma, colon or newline are JSON-quoted,
  as A1111 does. It is written as tEXt when the text is Latin-1 and as iTXt otherwise (again
  as A1111 does, through Pillow's ``add_text``).
* ``quickbrush``: an iTXt chunk holding exact JSON,
  ``{"format": 1, "job": job.to_dict(), "timings": ..., "model_info": ..., "inputs": ...}``
  (the last three only when given), from which ``Job.from_dict`` rebuilds the job exactly.

Reading prefers the ``quickbrush`` chunk. An image from another tool that only has a
``parameters`` chunk gives a best-effort recipe of the same shape (``{"format": 1, "job":
{...}}``, plus ``"source": "parameters"`` and the parsed ``"parameters"``), so
``job_from_recipe`` works on both.

No Qt here: this module is part of ``inference``.
"""

from __future__ import annotations

import bisect
import io
import json
import math
import os
import re
import struct
import zlib
from importlib import metadata as _importlib_metadata
from pathlib import Path
from typing import Any, Mapping

from PIL import Image, PngImagePlugin, UnidentifiedImageError

# Saving (atomic replacement, its errors) lives in inference.files; these names stay importable here.
from inference.files import SaveError, atomic_write
from inference.jobs import (
    JOB_KINDS,
    MAX_GUIDANCE,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MIN_SIDE,
    BadInput,
    Job,
    JobError,
    short_repr,
)

__all__ = [
    "RECIPE_FORMAT",
    "PARAMETERS_KEY",
    "RECIPE_KEY",
    "SaveError",
    "format_parameters",
    "parse_parameters",
    "recipe_payload",
    "recipe_pnginfo",
    "save_png",
    "read_recipe",
    "job_from_recipe",
    "recipe_job_kind",
    "MAX_PARAMETERS_CHARS",
    "sampler_name",
    "scheduler_from_sampler",
    "quickbrush_version",
]

RECIPE_FORMAT = 1
PARAMETERS_KEY = "parameters"
RECIPE_KEY = "quickbrush"


def quickbrush_version() -> str:
    try:
        return _importlib_metadata.version("quickbrush")
    except _importlib_metadata.PackageNotFoundError:
        return "dev"
    except Exception:  # a broken installation must not stop an image from saving
        return "dev"


# --------------------------------------------------------------------------- sampler names

# Our scheduler name (a key of inference.models.presets.SCHEDULERS) or a diffusers scheduler
# class name -> (A1111 sampler, A1111 schedule type or None).
_SAMPLERS: dict[str, tuple[str, str | None]] = {
    "euler": ("Euler", None),
    "euler_trailing": ("Euler", "SGM Uniform"),
    "euler_a": ("Euler a", None),
    "euler_ancestral": ("Euler a", None),
    "ddim": ("DDIM", None),
    "ddim_trailing": ("DDIM", "SGM Uniform"),
    "ddpm": ("DDPM", None),
    "dpmpp_2m": ("DPM++ 2M", None),
    "dpmpp_2m_karras": ("DPM++ 2M", "Karras"),
    "dpmpp_2m_sde": ("DPM++ 2M SDE", None),
    "dpmpp_sde": ("DPM++ SDE", None),
    "lcm": ("LCM", None),
    "tcd": ("TCD", None),
    "heun": ("Heun", None),
    "lms": ("LMS", None),
    "dpm2": ("DPM2", None),
    "dpm2_a": ("DPM2 a", None),
    "pndm": ("PLMS", None),
    "plms": ("PLMS", None),
    "unipc": ("UniPC", None),
    "EulerDiscreteScheduler": ("Euler", None),
    "EulerAncestralDiscreteScheduler": ("Euler a", None),
    "DDIMScheduler": ("DDIM", None),
    "DDPMScheduler": ("DDPM", None),
    "DPMSolverMultistepScheduler": ("DPM++ 2M", None),
    "DPMSolverSDEScheduler": ("DPM++ SDE", None),
    "LCMScheduler": ("LCM", None),
    "TCDScheduler": ("TCD", None),
    "HeunDiscreteScheduler": ("Heun", None),
    "LMSDiscreteScheduler": ("LMS", None),
    "KDPM2DiscreteScheduler": ("DPM2", None),
    "KDPM2AncestralDiscreteScheduler": ("DPM2 a", None),
    "PNDMScheduler": ("PLMS", None),
    "UniPCMultistepScheduler": ("UniPC", None),
}
_SAMPLERS_LOWER = {key.lower(): value for key, value in _SAMPLERS.items()}

# (A1111 sampler, schedule type) -> our scheduler name; schedule None matches any schedule.
# Only names our backends know (inference.models.presets.SCHEDULERS) are listed.
_SCHEDULERS_BACK: dict[tuple[str, str | None], str] = {
    ("euler", "sgm uniform"): "euler_trailing",
    ("euler", None): "euler",
    ("euler a", None): "euler_a",
    ("ddim", "sgm uniform"): "ddim_trailing",
    ("ddim", None): "ddim",
    ("dpm++ 2m", "karras"): "dpmpp_2m_karras",
    ("dpm++ 2m karras", None): "dpmpp_2m_karras",  # A1111 before 1.9 put the schedule in the name
    ("dpm++ 2m", None): "dpmpp_2m",
    ("lcm", None): "lcm",
    ("tcd", None): "tcd",
}


def sampler_name(scheduler: str) -> tuple[str, str | None]:
    """Our scheduler name (or a diffusers class name) as A1111's (sampler, schedule type).

    Unknown names come back as given, with no schedule type.
    """
    found = _SAMPLERS.get(scheduler) or _SAMPLERS_LOWER.get(scheduler.lower())
    return found if found else (scheduler, None)


def scheduler_from_sampler(sampler: str | None, schedule_type: str | None = None) -> str | None:
    """An A1111 sampler (and schedule type) as our scheduler name; None when we have no match.

    Our own names (e.g. "euler_trailing", written by a tool that did not map them) pass through.
    """
    if not sampler:
        return None
    sampler_l = str(sampler).strip().lower()
    schedule_l = str(schedule_type).strip().lower() if schedule_type else None
    for key in ((sampler_l, schedule_l), (sampler_l, None)):
        if key in _SCHEDULERS_BACK:
            return _SCHEDULERS_BACK[key]
    if sampler_l in _SCHEDULERS_BACK.values():
        return sampler_l
    found = _SAMPLERS_LOWER.get(sampler_l)  # a diffusers class name
    if found:
        return scheduler_from_sampler(*found)
    return None


# --------------------------------------------------------------------------- writing parameters


def _quote(value: Any) -> str:
    """A1111's `quote`: JSON-quote a value holding a comma, colon or newline."""
    text = str(value)
    if any(c in text for c in ",:\n\r") or text.startswith('"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def _model_name(source: str) -> str:
    """"stabilityai/sd-turbo" -> "sd-turbo"; "/m/dream.safetensors" -> "dream"."""
    name = re.split(r"[\\/]", source.rstrip("/\\"))[-1] or source
    stem, dot, suffix = name.rpartition(".")
    if dot and suffix.lower() in {"safetensors", "ckpt", "pt", "pth", "bin", "onnx", "gguf"}:
        return stem
    return name


def _number(value: float) -> str:
    return repr(float(value))


def format_parameters(
    job: Job,
    *,
    size: tuple[int, int] | None = None,
    model_info: Mapping[str, Any] | None = None,
) -> str:
    """The A1111 infotext for `job`.

    `size` is the output image's size (``save_png`` passes it); without it the job's width and
    height are used, or the input image's size. `model_info` may carry ``"lora_hashes"``
    (LoRA source or name -> sha256), written as A1111's ``Lora hashes``, and ``"sha256"`` for
    the base model when the job's ModelRef has none.
    """
    model_info = model_info or {}
    params: list[tuple[str, Any]] = []
    if job.steps is not None:
        params.append(("Steps", int(job.steps)))
    if job.scheduler:
        sampler, schedule = sampler_name(job.scheduler)
        params.append(("Sampler", sampler))
        if schedule:
            params.append(("Schedule type", schedule))
    if job.guidance is not None:
        params.append(("CFG scale", _number(job.guidance)))
    if job.kind == "edit":
        params.append(("Image CFG scale", _number(getattr(job, "image_guidance"))))
    params.append(("Seed", int(job.seed)))
    if size is None:
        if job.width and job.height:
            size = (job.width, job.height)
        elif getattr(job, "image", None) is not None:
            size = job.image.size  # type: ignore[attr-defined]
    if size is not None:
        params.append(("Size", f"{int(size[0])}x{int(size[1])}"))
    sha = job.model.sha256 or model_info.get("sha256")
    if sha:
        params.append(("Model hash", str(sha)[:10]))
    params.append(("Model", _model_name(job.model.source)))
    if job.kind in ("vary", "inpaint"):
        params.append(("Denoising strength", _number(getattr(job, "strength"))))
    mask_options = getattr(job, "mask_options", None)
    if mask_options is not None:
        params.append(("Mask blur", int(mask_options.feather)))
    if job.model.loras:
        hashes = model_info.get("lora_hashes") or {}
        named = []
        for lora in job.model.loras:
            name = _model_name(lora.source)
            lora_sha = hashes.get(lora.source) or hashes.get(name)
            if lora_sha:
                named.append(f"{name}: {str(lora_sha)[:12]}")
        if named:
            params.append(("Lora hashes", ", ".join(named)))
        params.append(("LoRAs", ", ".join(f"{_model_name(l.source)}: {_number(l.scale)}" for l in job.model.loras)))
    params.append(("Version", f"quickbrush {quickbrush_version()}"))

    line = ", ".join(f"{key}: {_quote(value)}" for key, value in params)
    negative = f"\nNegative prompt: {job.negative_prompt}" if job.negative_prompt else ""
    return f"{job.prompt}{negative}\n{line}".strip()


# --------------------------------------------------------------------------- parsing parameters

# The most of an infotext parsed. Real ones, long prompts and every extension's keys included,
# run to a few thousand characters; a 30 MB "parameters" chunk is not a recipe.
MAX_PARAMETERS_CHARS = 256 * 1024

# A1111 finds the key-value pairs of the last line with re_param,
#     \s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)
# in findall. That retries at every character and rescans a long run of key characters (or a
# quoted value with no closing quote) each time: quadratic, seconds for 40,000 characters, days
# for 30 MB. Each step of that pattern is deterministic, though: a key is the whole run of key
# characters after the spaces and must be followed by a colon; a quoted value ends at the first
# quote that an odd run of backslashes does not escape, and must be followed by a comma or the
# end; otherwise the value runs to the next comma. `_pairs` takes those steps in one pass and
# jumps over a run that failed (every start inside it fails the same way), so it finds exactly
# A1111's pairs (tests/inference/test_metadata_fuzz.py checks it against the pattern).
_RE_SPACES = re.compile(r"\s*")
_RE_KEY = re.compile(r"\w[\w \-/]*")
_RE_QUOTE_OR_BACKSLASHES = re.compile(r'\\+|"')
_RE_INT = re.compile(r"[-+]?\d+")
_RE_FLOAT = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
# Keys whose values are names or hashes even when they look like numbers.
_RE_TEXT_KEY = re.compile(r"hash|model|version|vae|name|lora|sampler|schedule|prompt", re.IGNORECASE)


def _unquote(text: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return value if isinstance(value, str) else text


def _closing_quotes(line: str) -> list[int]:
    """Where a quoted value can end: every quote not right after an odd run of backslashes."""
    closers: list[int] = []
    run_end = run_length = -1
    for match in _RE_QUOTE_OR_BACKSLASHES.finditer(line):
        if match.group() != '"':
            run_end, run_length = match.end(), match.end() - match.start()
        elif not (match.start() == run_end and run_length % 2):
            closers.append(match.start())
    return closers


def _pairs(line: str) -> list[tuple[str, str]]:
    """The (key, value) pairs of A1111's re_param in `line`, in one pass (see above)."""
    pairs: list[tuple[str, str]] = []
    closers: list[int] | None = None
    pos, size = 0, len(line)
    while pos < size:
        start = _RE_SPACES.match(line, pos).end()  # type: ignore[union-attr]
        key = _RE_KEY.match(line, start)
        if key is None:
            pos = start + 1
            continue
        end = key.end()
        if end - start < 2 or end >= size or line[end] != ":":
            pos = end
            continue
        value = _RE_SPACES.match(line, end + 1).end()  # type: ignore[union-attr]
        if value < size and line[value] == '"':
            if closers is None:
                closers = _closing_quotes(line)
            index = bisect.bisect_right(closers, value)
            close = closers[index] if index < len(closers) else -1
            if close > value + 1 and (close + 1 == size or line[close + 1] == ","):
                pairs.append((line[start:end], line[value : close + 1]))
                pos = close + 2
                continue
        comma = line.find(",", value)
        stop = size if comma < 0 else comma
        pairs.append((line[start:end], line[value:stop]))
        pos = stop + 1
    return pairs


def _convert(key: str, value: str) -> Any:
    if _RE_TEXT_KEY.search(key) or len(value) > 64:  # no setting is a 64-digit number
        return value
    if _RE_INT.fullmatch(value):
        return int(value)
    if _RE_FLOAT.fullmatch(value):
        return float(value)
    return value


def _too_long(text: str, what: str) -> BadInput:
    return BadInput(
        f"{what} (AUTOMATIC1111 parameters) is too long to read: {len(text):,} characters, where real "
        f"ones have a few thousand (Quickbrush reads up to {MAX_PARAMETERS_CHARS:,}).",
        text[:300],
    )


def parse_parameters(text: str) -> dict[str, Any]:
    """Parse an A1111 infotext (ours or another tool's) as A1111's own parser does.

    Returns ``{"prompt": ..., "negative_prompt": ..., <Key>: <value>, ...}``: the keys of the
    last line as written ("Steps", "CFG scale", "Size", ...), quoted values unquoted, and
    unquoted values that are plainly integers or decimals converted (hashes, model names and
    versions stay strings; "Size" stays "512x512"). As in A1111 each prompt line is stripped,
    and a last line with fewer than three ``Key: value`` pairs is taken as part of the prompt.
    A text longer than MAX_PARAMETERS_CHARS raises BadInput.
    """
    text = str(text)
    if len(text) > MAX_PARAMETERS_CHARS:
        raise _too_long(text, "The settings text")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    *lines, last = text.split("\n")
    pairs = _pairs(last)
    if len(pairs) < 3:
        lines.append(last)
        pairs = []
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()
        if not in_negative and line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative if in_negative else prompt).append(line)
    result: dict[str, Any] = {"prompt": "\n".join(prompt), "negative_prompt": "\n".join(negative)}
    for key, value in pairs:
        key = key.strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            result[key] = _unquote(value)
        else:
            result[key] = _convert(key, value)
    return result


# --------------------------------------------------------------------------- the JSON recipe


def _jsonable(value: Any) -> Any:
    """Plain JSON data: non-finite floats become null, tuples lists, paths and others strings."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _jsonable(item())
        except Exception:
            pass
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def recipe_payload(
    job: Job,
    timings: Mapping[str, float] | None = None,
    model_info: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The dictionary stored (as JSON) in the ``quickbrush`` chunk."""
    payload: dict[str, Any] = {"format": RECIPE_FORMAT, "job": _jsonable(job.to_dict())}
    for key, value in (("timings", timings), ("model_info", model_info), ("inputs", inputs)):
        if value is not None:
            payload[key] = _jsonable(value)
    return payload


def recipe_pnginfo(
    job: Job,
    timings: Mapping[str, float] | None = None,
    model_info: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    *,
    size: tuple[int, int] | None = None,
) -> PngImagePlugin.PngInfo:
    """Both chunks, ready for ``image.save(..., pnginfo=...)``. `size` is the output's size."""
    info = PngImagePlugin.PngInfo()
    # A POSIX file name may hold bytes that are not UTF-8 (Python keeps them as lone
    # surrogates), and PNG text must be Latin-1 or UTF-8: the readable text shows them as "?",
    # the JSON escapes them ("\\udce9"), so the recipe still names the exact file.
    parameters = format_parameters(job, size=size, model_info=model_info)
    info.add_text(PARAMETERS_KEY, parameters.encode("utf-8", "replace").decode("utf-8"))
    payload = recipe_payload(job, timings, model_info, inputs)
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    info.add_itxt(RECIPE_KEY, text)
    return info


# --------------------------------------------------------------------------- saving

_PNG_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "P", "PA", "RGB", "RGBA"}

def save_png(
    path: str | os.PathLike[str],
    image: Image.Image,
    job: Job,
    *,
    timings: Mapping[str, float] | None = None,
    model_info: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> Path:
    """Write `image` as a PNG carrying `job`'s recipe, atomically.

    The PNG goes to a hidden temporary file in the same folder, is flushed to disk, then
    replaces `path` in one step: a failure at any point (disk full, permission denied, ...)
    removes the temporary file, leaves whatever was at `path` untouched and raises SaveError
    with a designer-readable message.
    """
    path = Path(path)
    if image is None:
        raise SaveError(f"Could not save {path.name}: there is no image.")
    info = recipe_pnginfo(job, timings, model_info, inputs, size=image.size)
    if image.mode not in _PNG_MODES:
        image = image.convert("RGBA" if "A" in image.mode else "RGB")

    return atomic_write(path, lambda handle: image.save(handle, format="PNG", pnginfo=info))


# --------------------------------------------------------------------------- reading


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    name = getattr(source, "name", None)
    return Path(name).name if isinstance(name, str) else "the image"


def _read_bytes(source: Any, label: str) -> bytes:
    try:
        if isinstance(source, (str, os.PathLike)):
            return Path(source).read_bytes()
        if hasattr(source, "seek"):
            source.seek(0)
        return source.read()
    except FileNotFoundError as error:
        raise BadInput(f"Could not open {label}: the file does not exist.", str(error)) from error
    except IsADirectoryError as error:
        raise BadInput(f"Could not open {label}: it is a folder, not an image.", str(error)) from error
    except PermissionError as error:
        raise BadInput(f"Could not open {label}: permission denied.", str(error)) from error
    except OSError as error:
        raise BadInput(f"Could not open {label}: {error.strerror or error}.", str(error)) from error


def _text_chunks(data: bytes, label: str) -> tuple[dict[str, Any], Image.Exif | None]:
    """Decode the image fully (catching damage) and return its text chunks and EXIF."""
    damaged = f"{label} is damaged or incomplete and cannot be read."
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format == "PNG":
                probe.verify()  # checks every chunk's CRC and that the file ends properly
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            texts: dict[str, Any] = {k: v for k, v in im.info.items() if isinstance(v, str)}
            texts.update(getattr(im, "text", {}) or {})
            exif = im.getexif() if im.format != "PNG" else None
    except UnidentifiedImageError as error:
        if not data:
            raise BadInput(f"{label} is empty.", str(error)) from error
        raise BadInput(
            f"{label} is not an image Quickbrush can read (it may be damaged or in another format).",
            str(error),
        ) from error
    except Image.DecompressionBombError as error:
        raise BadInput(f"{label} is too large to open safely.", str(error)) from error
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError) as error:
        raise BadInput(damaged, f"{type(error).__name__}: {error}") from error
    return texts, exif


def _exif_parameters(exif: Image.Exif | None) -> str | None:
    """A1111's JPEG/WebP infotext lives in EXIF UserComment (piexif's "UNICODE" encoding)."""
    if not exif:
        return None
    try:
        comment = exif.get_ifd(0x8769).get(0x9286)
    except Exception:
        return None
    if isinstance(comment, str):
        return comment or None
    if not isinstance(comment, bytes) or len(comment) < 8:
        return None
    prefix, body = comment[:8], comment[8:]
    try:
        if prefix.startswith(b"UNICODE"):
            little = len(body) >= 2 and body[0] != 0 and body[1] == 0
            return body.decode("utf-16-le" if little else "utf-16-be").rstrip("\x00") or None
        return body.decode("utf-8", errors="replace").rstrip("\x00") or None
    except UnicodeDecodeError:
        return None


def _recipe_from_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A best-effort recipe for an image another tool made (only an A1111 infotext)."""
    job: dict[str, Any] = {
        "kind": "generate",
        "prompt": str(parameters.get("prompt", "")),
        "negative_prompt": str(parameters.get("negative_prompt", "")),
    }

    def number(key: str, kind: type) -> Any:
        value = parameters.get(key)
        try:
            return kind(float(value)) if kind is int else kind(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            return None

    # Only values a Job takes are kept (each is checked again when the job is built); another
    # tool's out-of-range setting falls back to the model's default rather than failing.
    steps = number("Steps", int)
    if steps is not None and 1 <= steps <= MAX_STEPS:
        job["steps"] = steps
    guidance = number("CFG scale", float)
    if guidance is not None and 0.0 <= guidance <= MAX_GUIDANCE:
        job["guidance"] = guidance
    seed = number("Seed", int)
    if seed is not None and 0 <= seed <= MAX_SEED:
        job["seed"] = seed
    size = re.fullmatch(r"\s*(\d{1,5})\s*x\s*(\d{1,5})\s*", str(parameters.get("Size", "")))
    if size:
        width, height = int(size.group(1)), int(size.group(2))
        if MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE:
            job["width"], job["height"] = width, height
    scheduler = scheduler_from_sampler(parameters.get("Sampler"), parameters.get("Schedule type"))
    if scheduler:
        job["scheduler"] = scheduler
    model = str(parameters.get("Model") or "").strip()
    if model:
        job["model"] = {"source": model, "loras": []}
    strength = number("Denoising strength", float)
    if strength is not None and 0.0 < strength <= 1.0:
        job["kind"] = "vary"
        job["strength"] = strength
    return {"format": RECIPE_FORMAT, "job": job, "source": PARAMETERS_KEY, "parameters": dict(parameters)}


def read_recipe(path_or_image: Any) -> dict[str, Any] | None:
    """The recipe stored in an image, or None when it has none.

    `path_or_image` is a path, a binary file object or a PIL image. Returns the JSON payload of
    the ``quickbrush`` chunk (``{"format": 1, "job": {...}, ...}``); for an image with only an
    A1111 ``parameters`` text (another tool's), a best-effort recipe of the same shape with
    kind "generate" ("vary" when it records a denoising strength), plus ``"source":
    "parameters"`` and the parsed ``"parameters"``. A file that cannot be decoded (not an
    image, truncated, damaged) raises BadInput.
    """
    if isinstance(path_or_image, Image.Image):
        label = _describe(getattr(path_or_image, "filename", None) or "the image")
        try:
            texts = {k: v for k, v in path_or_image.info.items() if isinstance(v, str)}
            texts.update(getattr(path_or_image, "text", {}) or {})
            exif = path_or_image.getexif() if path_or_image.format not in (None, "PNG") else None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as error:
            raise BadInput(f"{label} is damaged or incomplete and cannot be read.", str(error)) from error
    else:
        label = _describe(path_or_image)
        texts, exif = _text_chunks(_read_bytes(path_or_image, label), label)

    warning = None
    raw = texts.get(RECIPE_KEY)
    if raw is not None:
        try:
            payload = json.loads(str(raw))
        except (ValueError, RecursionError):  # deeply nested lists exhaust json's recursion
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("job"), dict):
            return payload
        warning = "The Quickbrush recipe in this image is damaged; settings were read from its parameters text."

    parameters = texts.get(PARAMETERS_KEY)
    if not isinstance(parameters, str) or not parameters.strip():
        parameters = _exif_parameters(exif)
    if parameters and parameters.strip():
        if len(parameters) > MAX_PARAMETERS_CHARS:
            raise _too_long(parameters, f"The settings text in {label}")
        recipe = _recipe_from_parameters(parse_parameters(parameters))
        if warning:
            recipe["warning"] = warning
        return recipe
    if warning:
        raise BadInput(f"The recipe stored in {label} is damaged.", str(raw)[:500])
    return None


def recipe_job_kind(recipe: Any) -> type[Job]:
    """The Job class a recipe (``read_recipe``'s output) rebuilds, so a caller can find the
    inputs it needs first; raises BadInput for anything that is not a usable recipe."""
    if not isinstance(recipe, Mapping):
        raise BadInput("This is not a Quickbrush recipe.", short_repr(recipe, 500))
    version = recipe.get("format")
    if isinstance(version, bool) or not isinstance(version, int):
        raise BadInput("This is not a Quickbrush recipe (it has no format number).", short_repr(version))
    shown = str(version) if abs(version) < 10**9 else "a very large number"
    if version > RECIPE_FORMAT:
        raise BadInput(
            f"This recipe was saved by a newer Quickbrush (recipe format {shown}); "
            "update Quickbrush to use it.",
            f"This version reads recipe format {RECIPE_FORMAT}.",
        )
    if version < 1:
        raise BadInput(f"This recipe has an unsupported format number ({shown}).")
    data = recipe.get("job")
    if not isinstance(data, Mapping):
        raise BadInput("This recipe is damaged: it does not say which job made the image.")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in JOB_KINDS:
        Job.from_dict(data)  # raises its BadInput naming the unknown kind
    return JOB_KINDS[kind]


def job_from_recipe(recipe: Mapping[str, Any], **images: Image.Image | None) -> Job:
    """Rebuild the Job a recipe records; pass ``image=``/``mask=`` for kinds that need them.

    The job passes every check a job built by hand does; a recipe that is damaged, from a newer
    Quickbrush, or holds a value out of range raises BadInput saying which field.
    """
    recipe_job_kind(recipe)
    try:
        return Job.from_dict(recipe["job"], **images)
    except JobError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise BadInput("This recipe is damaged and cannot be used.", f"{type(error).__name__}: {error}") from error
