"""Which runtime and precision run a Stable Diffusion model fastest here, found out once and remembered.

The fastest path depends on the machine: on a CPU with native bf16 (AVX-512 BF16, AMX)
OpenVINO in bf16 is several times faster than torch, on an AVX2-only CPU OpenVINO in fp32 beats
torch by less, and int8 pays only with VNNI or AMX. So on the first use of a model on a
machine, `choose` times one UNet call of each path this CPU can run well (`cpu_paths`) on the
job's shape and keeps the fastest whose output agrees with torch's float32 reference
(`AGREEMENT`). The choice is remembered per model, device and CPU in the data folder
(`Choices`, in the cache folder), so later runs start on it at once; Preferences and `quickbrush-cli --runtime`
override it.

Only the UNet is probed: it is where the time goes (one step is 80 % of a 1-step job with a
tiny decoder), and each path runs the text encoder and VAE in the same runtime and precision.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "openvino")
RUNTIME_LABELS = {"torch": "PyTorch", "openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}
PRECISION_LABELS = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "int8": "int8"}
# Largest relative L2 error of a path's UNet output against torch float32 on the same input that
# still counts as the same image. Measured on SD-Turbo's architecture at 512 px: OpenVINO bf16
# and torch bf16 stay well under it; an int8 UNet whose calibration failed lands far above it.
AGREEMENT = 0.08
CHOICES_FILE = "runtimes.json"
CHOICES_FORMAT = 1


def label(runtime: str, dtype: str, seconds: float | None = None) -> str:
    """How the Model dock names a path: "OpenVINO bf16 · 1.3 s an image"."""
    text = f"{RUNTIME_LABELS.get(runtime, runtime)} {PRECISION_LABELS.get(dtype, dtype)}"
    if seconds is not None:
        text += f" · {seconds:.1f} s an image" if seconds >= 0.1 else f" · {seconds * 1000:.0f} ms an image"
    return text


def check_runtime(runtime: str | None) -> None:
    from inference.jobs import BadInput

    if runtime is not None and runtime not in RUNTIMES:
        raise BadInput(f"Unknown runtime {runtime!r}: use {', '.join(RUNTIMES)}.")


# --------------------------------------------------------------------------- this CPU


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux names them (avx2, avx512_bf16, amx_int8...); empty where
    the platform does not list them (then OpenVINO's own view of the CPU decides, below)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The flags that decide between paths; the machine's signature is made of these and its name.
DECIDING_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
                  "avx512_fp16")


def cpu_summary() -> dict[str, Any]:
    return {"name": cpu_name(), "cores": os.cpu_count(), "machine": platform.machine(),
            "flags": [flag for flag in DECIDING_FLAGS if flag in cpu_flags()]}


def cpu_signature() -> str:
    return hashlib.sha256(json.dumps(cpu_summary(), sort_keys=True).encode()).hexdigest()[:16]


def native_bf16() -> bool:
    flags = cpu_flags()
    if flags:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    return _openvino_default_precision() == "bf16"


def has_vnni() -> bool:
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def native_precision() -> str:
    """OpenVINO's precision where nothing else is asked: bf16 if the CPU computes it natively."""
    return "bfloat16" if native_bf16() else "float32"


def _openvino_default_precision() -> str | None:
    try:
        from inference.backends.openvino_backend import core

        return str(core().get_property("CPU", "INFERENCE_PRECISION_HINT"))
    except Exception:  # no openvino: no opinion
        return None


def openvino_available() -> bool:
    from inference.backends.openvino_backend import available

    return available()


def cpu_paths(openvino: bool | None = None) -> list[tuple[str, str]]:
    """The (runtime, precision) pairs worth timing on this CPU; emulated bf16 and int8 without
    VNNI are slower than fp32 and are left out."""
    openvino = openvino_available() if openvino is None else openvino
    paths = [("torch", "float32")]
    if native_bf16():
        paths.append(("torch", "bfloat16"))
    if openvino:
        paths.append(("openvino", "float32"))
        if native_bf16():
            paths.append(("openvino", "bfloat16"))
        if has_vnni():
            paths.append(("openvino", "int8"))
    return paths


# --------------------------------------------------------------------------- remembered choices


@dataclass
class Choice:
    """What the probe found for one model on one device and CPU."""

    runtime: str
    dtype: str
    unet_seconds: float | None = None  # one UNet call of the probe's shape on the chosen path
    measured: dict[str, dict[str, float]] = field(default_factory=dict)  # "openvino/bfloat16": {seconds, error}
    shape: list[int] = field(default_factory=list)  # batch, height, width of the probe (pixels)
    cpu: dict[str, Any] = field(default_factory=dict)
    when: float = 0.0
    probe_seconds: float = 0.0

    @property
    def label(self) -> str:
        return label(self.runtime, self.dtype)


def choice_key(sha: str | None, source: str, loras: tuple, device: str) -> str:
    text = json.dumps([sha or source, [[lora.source, lora.scale] for lora in loras], device, cpu_signature()])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class Choices:
    """The choices file in the data folder: {key: Choice}. A damaged file is read as empty (the
    probe runs again) and rewritten whole, atomically."""

    def __init__(self, path: Path | None = None):
        from inference.files import cache_dir

        # The cache folder: like a converted model, a choice is rebuilt (at a cost) when missing.
        self.path = path or cache_dir() / CHOICES_FILE

    def _read(self) -> dict[str, Any]:
        from inference.files import read_json_object

        data = read_json_object(self.path)
        if data.get("format") != CHOICES_FORMAT or not isinstance(data.get("models"), dict):
            return {}
        return data["models"]

    def get(self, key: str) -> Choice | None:
        record = self._read().get(key)
        if not isinstance(record, dict):
            return None
        try:
            choice = Choice(**{k: v for k, v in record.items() if k in Choice.__dataclass_fields__})
        except TypeError:
            return None
        if choice.runtime not in RUNTIMES[1:] or choice.dtype not in PRECISION_LABELS:
            return None
        return choice

    def put(self, key: str, choice: Choice) -> None:
        from inference.files import atomic_write

        models = self._read()
        models[key] = asdict(choice)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"format": CHOICES_FORMAT, "models": models}, indent=1).encode()
        try:
            atomic_write(self.path, lambda f: f.write(body))
        except Exception:  # a full disk costs a probe next time, never the job
            log.warning("could not remember the runtime choice", exc_info=True)

    def forget(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass


# --------------------------------------------------------------------------- the probe


def relative_error(output: Any, reference: Any) -> float:
    import torch

    output, reference = output.float(), reference.float()
    return float(torch.linalg.vector_norm(output - reference) / (torch.linalg.vector_norm(reference) + 1e-12))


def probe_inputs(pipe: Any, width: int, height: int, batch: int, seed: int = 0) -> list[Any]:
    """UNet inputs of the job's shape: noise latents, the first timestep a 1-step sampler uses,
    and a real prompt's text embeddings (random ones would make every path agree too easily)."""
    import torch

    from inference.backends.openvino_backend import _example_unet_inputs

    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    arrays, names = _example_unet_inputs(pipe.unet, batch, 8)
    generator = torch.Generator().manual_seed(seed)
    arrays[0] = torch.randn(batch, pipe.unet.config.in_channels, height // scale, width // scale, generator=generator)
    arrays[1] = torch.tensor([999.0] * batch)
    prompt = "a red apple on a wooden table, studio photo"
    with torch.inference_mode():
        if hasattr(pipe, "encode_prompt"):
            encoded = pipe.encode_prompt(prompt=prompt, device="cpu", num_images_per_prompt=1,
                                         do_classifier_free_guidance=False)
            embeds = encoded[0]
            if "text_embeds" in names and len(encoded) > 2 and encoded[2] is not None:
                arrays[-2] = encoded[2].expand(batch, -1).float()
        else:  # InstructPix2Pix's pipeline keeps it private; the text encoder's own output is the same
            ids = pipe.tokenizer(prompt, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            embeds = pipe.text_encoder(ids)[0]
    arrays[2] = embeds.expand(batch, -1, -1).float()
    if "time_ids" in names:
        arrays[-1] = torch.tensor([[height, width, 0, 0, height, width]] * batch, dtype=torch.float32)
    return arrays


def _time(call: Callable[[], Any], repeats: int = 2) -> tuple[float, Any]:
    """The best of `repeats` timed calls after one untimed warm-up (which compiles)."""
    output = call()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        output = call()
        best = min(best, time.perf_counter() - started)
    return best, output


def measure(pipe: Any, ir: Path, paths: list[tuple[str, str]], width: int, height: int, batch: int,
            on_stage: Callable[[str], None] | None = None) -> dict[str, dict[str, float]]:
    """Seconds of one UNet call and relative error against torch fp32, for each path. `pipe` is
    the float32 torch pipeline (the reference); OpenVINO paths read the IR at `ir`."""
    import torch

    from inference.backends import openvino_backend as ov

    inputs = probe_inputs(pipe, width, height, batch)
    unet = pipe.unet
    config = unet.config
    kwargs: dict[str, Any] = {}
    if config.get("time_cond_proj_dim"):
        kwargs["timestep_cond"] = inputs[3]
    if config.get("addition_embed_type") == "text_time":
        kwargs["added_cond_kwargs"] = {"text_embeds": inputs[-2], "time_ids": inputs[-1]}

    def torch_call(dtype: Any) -> Any:
        def run() -> Any:
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                return unet(inputs[0], inputs[1], inputs[2], return_dict=False, **kwargs)[0]
        return run

    results: dict[str, dict[str, float]] = {}
    reference = None
    for runtime, dtype in paths:
        if on_stage is not None:
            on_stage(f"timing {label(runtime, dtype)}")
        try:
            if runtime == "torch":
                seconds, output = _time(torch_call(getattr(torch, dtype)), repeats=1)
            else:
                xml = ir / ("unet.int8.xml" if dtype == "int8" else "unet.xml")
                extras = {}
                module = ov.make_module("unet", xml, dtype, config, extras)
                seconds, output = _time(lambda: module(inputs[0], inputs[1], inputs[2], return_dict=False, **kwargs)[0])
                module.release()
        except Exception as exc:  # a path that fails here is simply not chosen
            log.warning("probe of %s/%s failed: %s", runtime, dtype, exc)
            continue
        if reference is None and (runtime, dtype) == ("torch", "float32"):
            reference = output
        error = 0.0 if reference is None or output is reference else relative_error(output, reference)
        results[f"{runtime}/{dtype}"] = {"seconds": round(seconds, 4), "error": round(error, 5)}
        log.info("probe %s/%s: %.3f s, error %.4f", runtime, dtype, seconds, error)
    return results


def pick(measured: dict[str, dict[str, float]]) -> tuple[str, str] | None:
    """The fastest measured path that agrees with the reference."""
    good = [(v["seconds"], k) for k, v in measured.items() if v["error"] <= AGREEMENT]
    if not good:
        return None
    runtime, dtype = min(good)[1].split("/")
    return runtime, dtype
