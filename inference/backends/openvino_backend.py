"""Stable Diffusion family on OpenVINO (CPU): the diffusers pipeline, its networks compiled by OpenVINO.

The pipeline stays diffusers' own (schedulers, guidance, inpaint and InstructPix2Pix logic, LoRA
loading); only its heavy networks are swapped for OpenVINO ones: the text encoder(s), the UNet
and the VAE's encoder and decoder (the VAE's 1x1 quant convolutions stay in torch, with its
config and scaling). Each swapped network is a small torch.nn.Module (`_OVModule`) whose forward
runs an OpenVINO compiled model, so the pipelines and this package's timers and hooks see
modules as always.

Conversion happens on the first use of a model: `openvino.convert_model` traces each network
once and the IR is saved under the cache folder, keyed by the model's fingerprint, its LoRAs and
their scales (fused into the weights before tracing), and the OpenVINO version (`ir_key`). Later
loads read the IR and never build the torch UNet or text encoder, so the first job after a
restart costs a compile, not a conversion; the compiled blobs themselves go to OpenVINO's own
compile cache (CACHE_DIR), which keys them by the model, the static input shapes and the device
properties. Shapes are made static per job shape before compiling (`_OVModule` keeps one compiled
model per input shape): OpenVINO's CPU kernels are markedly faster on static shapes.

Precision: OpenVINO's INFERENCE_PRECISION_HINT, chosen per CPU by inference.runtimes (bf16 where
the CPU computes bf16 natively, else f32), and int8 (NNCF post-training quantisation of the
UNet, calibrated on the model's own latents) where the CPU has VNNI or AMX.

Why not optimum-intel, which does this for its own pipelines: it pins transformers below 5.6 and
pulls torchvision, and its pipelines are its own classes; this module keeps diffusers' pipelines,
which the rest of the backend (LoRAs, schedulers, derived pipelines) already speaks.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from inference.backends import Capabilities
from inference.backends import diffusers_backend as sd
from inference.jobs import BadInput, JobError, ModelRef
from inference.models.store import Located

log = logging.getLogger(__name__)

# The networks swapped, by pipeline attribute; the VAE's are its submodules.
TEXT_ENCODERS = ("text_encoder", "text_encoder_2")
PRECISIONS = {"float32": "f32", "bfloat16": "bf16", "int8": "bf16"}  # int8: the rest of the graph in bf16
IR_FORMAT = 2  # bump when what this module writes into the IR folder changes


def available() -> bool:
    """Whether the openvino package can be imported here (the registry asks before offering it)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def version() -> str:
    import openvino

    return openvino.__version__


_CORE = None


def core() -> Any:
    """One OpenVINO Core per process."""
    global _CORE
    if _CORE is None:
        import openvino

        _CORE = openvino.Core()
    return _CORE


def compile_properties(precision: str) -> dict[str, Any]:
    """What every compile asks for: the precision, latency (one image at a time) and the compile
    cache. One cache folder per precision: with a single folder, OpenVINO 2026.4 read a blob
    compiled in f32 back for a bf16 compile of the same model, and that UNet drew another
    picture (relative error about 1; tests/inference/test_runtimes.py would catch it)."""
    from inference.files import cache_dir

    hint = PRECISIONS[precision]
    folder = cache_dir() / "openvino" / "compiled" / f"{precision}-{hint}"
    folder.mkdir(parents=True, exist_ok=True)
    return {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "CACHE_DIR": str(folder)}


def ir_key(sha: str | None, ref: ModelRef) -> str:
    """The IR folder's name: what the converted weights depend on, nothing else."""
    loras = [[lora.source, lora.scale] for lora in ref.loras]
    text = json.dumps([IR_FORMAT, sha or ref.source, ref.config, loras, version()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def ir_folder(sha: str | None, ref: ModelRef) -> Path:
    from inference.files import cache_dir

    return cache_dir() / "openvino" / "ir" / ir_key(sha, ref)


# --------------------------------------------------------------------------- the module wrapper


def _torch_module_base():
    import torch

    return torch.nn.Module


class _Output(tuple):
    """What a transformers text encoder returns, as far as diffusers' pipelines read it: item 0
    (last hidden state, or the projected pooled embedding of CLIPTextModelWithProjection) and
    `hidden_states[-2]` (the penultimate layer SDXL conditions on)."""

    def __new__(cls, first: Any, penultimate: Any):
        self = super().__new__(cls, (first, [penultimate, None]))
        self.hidden_states = [penultimate, None]
        return self


def make_module(kind: str, ir: Path, precision: str, config: Any = None, extras: dict[str, Any] | None = None):
    """A torch module running the IR at `ir` (see _OVModule); built lazily so importing this
    module imports neither torch nor openvino."""
    import torch

    class _OVModule(torch.nn.Module):
        """One network as OpenVINO runs it, with one compiled model per static input shape."""

        def __init__(self):
            super().__init__()
            self.kind = kind
            self.ir = ir
            self.precision = precision
            self.config = config
            self._compiled: dict[tuple, Any] = {}
            self.seconds = 0.0  # time in OpenVINO, summed over calls (for the benchmark's stages)
            self.compile_seconds = 0.0
            for name, value in (extras or {}).items():
                object.__setattr__(self, name, value)

        # diffusers asks its components where and in what precision they compute
        @property
        def device(self) -> torch.device:
            return torch.device("cpu")

        @property
        def dtype(self) -> torch.dtype:
            return torch.float32

        def compiled(self, shapes: tuple[tuple[int, ...], ...]) -> Any:
            if shapes not in self._compiled:
                started = time.perf_counter()
                # Read afresh for every shape rather than kept: a kept ov.Model holds its weights
                # beside the compiled model's own copy (1.7 GB for SD 2.1's UNet).
                model = core().read_model(str(self.ir))
                model.reshape({i: list(shape) for i, shape in enumerate(shapes)})
                self._compiled[shapes] = core().compile_model(model, "CPU", compile_properties(self.precision)
                                                              ).create_infer_request()
                self.compile_seconds += time.perf_counter() - started
                log.info("compiled %s for %s in %.1f s", self.kind, shapes, time.perf_counter() - started)
            return self._compiled[shapes]

        def infer(self, *arrays: Any) -> list[Any]:
            inputs = [a.detach().to(torch.float32).contiguous().numpy() if a.is_floating_point()
                      else a.detach().to(torch.int64).contiguous().numpy() for a in arrays]
            request = self.compiled(tuple(tuple(a.shape) for a in inputs))
            started = time.perf_counter()
            request.infer(inputs, share_inputs=True)
            outputs = [torch.from_numpy(request.get_output_tensor(i).data.copy())
                       for i in range(len(request.model_outputs))]
            self.seconds += time.perf_counter() - started
            return outputs

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return _FORWARDS[self.kind](self, *args, **kwargs)

        def release(self) -> None:
            self._compiled.clear()

    return _OVModule()


def _unet_forward(module, sample, timestep, encoder_hidden_states, timestep_cond=None, added_cond_kwargs=None,
                  return_dict=False, **_ignored):
    arrays = [sample, timestep, encoder_hidden_states]
    if module.config.get("time_cond_proj_dim"):
        if timestep_cond is None:  # the pipelines always pass it for such UNets (LCM)
            raise BadInput("This model needs a guidance embedding that the pipeline did not give.")
        arrays.append(timestep_cond)
    if module.config.get("addition_embed_type") == "text_time":
        arrays += [added_cond_kwargs["text_embeds"], added_cond_kwargs["time_ids"]]
    (noise,) = module.infer(*project_times(module.config, arrays))
    return (noise,)


def project_times(config: Any, arrays: list[Any]) -> list[Any]:
    """The UNet's inputs with its sinusoidal time projections done here, in float32.

    In bf16 a timestep of 999 rounds to 1000 and the sines of the projection lose all meaning
    (the output of a bf16 UNet fed raw timesteps was another picture: relative error about 1),
    so the IR takes the projections as inputs (`_traceable` cuts them out) and they are
    computed in float32 outside it. SDXL's size conditioning (time_ids) is projected the same way.
    """
    import torch
    from diffusers.models.embeddings import Timesteps

    sample, timestep = arrays[0], arrays[1]
    batch = sample.shape[0]
    timestep = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(batch)
    channels = config.block_out_channels[0]
    projected = list(arrays)
    projected[1] = Timesteps(channels, config.flip_sin_to_cos, config.freq_shift)(timestep).float()
    if config.get("addition_embed_type") == "text_time":
        add = Timesteps(config.addition_time_embed_dim, config.flip_sin_to_cos, config.freq_shift)
        time_ids = projected[-1]
        projected[-1] = add(time_ids.flatten().float()).reshape(time_ids.shape[0], -1).float()
    return projected


def _text_forward(module, input_ids, attention_mask=None, output_hidden_states=None, **_ignored):
    first, penultimate = module.infer(input_ids)
    return _Output(first, penultimate)


def _vae_forward(module, x, *_ignored, **_kw):
    (out,) = module.infer(x)
    return out


_FORWARDS = {"unet": _unet_forward, "text_encoder": _text_forward, "text_encoder_2": _text_forward,
             "vae_encoder": _vae_forward, "vae_decoder": _vae_forward}


# --------------------------------------------------------------------------- conversion


def _example_unet_inputs(unet: Any, batch: int = 2, size: int = 8) -> tuple[list[Any], list[str]]:
    import torch

    config = unet.config
    context = config.cross_attention_dim
    context = context[0] if isinstance(context, (list, tuple)) else context
    arrays = [torch.randn(batch, config.in_channels, size, size), torch.tensor([500.0] * batch),
              torch.randn(batch, 77, context)]
    names = ["sample", "timestep", "encoder_hidden_states"]
    if config.get("time_cond_proj_dim"):
        arrays.append(torch.randn(batch, config.time_cond_proj_dim))
        names.append("timestep_cond")
    if config.get("addition_embed_type") == "text_time":
        pooled = unet.add_embedding.linear_1.in_features - 6 * config.addition_time_embed_dim
        arrays += [torch.randn(batch, pooled), torch.tensor([[size * 8.0, size * 8.0, 0, 0, size * 8.0, size * 8.0]] * batch)]
        names += ["text_embeds", "time_ids"]
    return arrays, names


def _traceable(kind: str, network: Any, config: Any) -> Any:
    """The network as a module of positional tensors in, tensors out (what convert_model traces)."""
    import torch

    class UNet(torch.nn.Module):
        """Takes the time projections as inputs (see project_times): its own are cut out while
        tracing, by `_without_time_projections`."""

        def __init__(self):
            super().__init__()
            self.net = network

        def forward(self, sample, timestep, encoder_hidden_states, *extra):
            kwargs = {}
            index = 0
            if config.get("time_cond_proj_dim"):
                kwargs["timestep_cond"] = extra[index]
                index += 1
            if config.get("addition_embed_type") == "text_time":
                kwargs["added_cond_kwargs"] = {"text_embeds": extra[index], "time_ids": extra[index + 1]}
            return self.net(sample, timestep, encoder_hidden_states, return_dict=False, **kwargs)[0]

    class Text(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = network

        def forward(self, input_ids):
            out = self.net(input_ids, output_hidden_states=True, return_dict=True)
            return out[0], out.hidden_states[-2]

    if kind == "unet":
        return UNet()
    if kind.startswith("text_encoder"):
        return Text()
    return network


class _without_time_projections:
    """While tracing, the UNet's time projections pass their (already projected) inputs through."""

    def __init__(self, unet: Any):
        self.unet = unet

    def __enter__(self):
        import torch

        self.saved = self.unet.__dict__.get("get_time_embed"), getattr(self.unet, "add_time_proj", None)
        self.unet.get_time_embed = lambda sample, timestep: timestep.to(sample.dtype)
        if self.saved[1] is not None:
            self.unet.add_time_proj = torch.nn.Identity()
        return self

    def __exit__(self, *exc):
        del self.unet.get_time_embed
        if self.saved[1] is not None:
            self.unet.add_time_proj = self.saved[1]
        return False


def convert(pipe: Any, folder: Path, on_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Trace the pipeline's networks into OpenVINO IR under `folder` (written whole or not at
    all: a half-written folder from a killed conversion is never read). Returns the metadata."""
    import openvino
    import torch

    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    meta: dict[str, Any] = {"format": IR_FORMAT, "openvino": version(), "networks": {}}
    vae = pipe.vae
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    latent = vae.config.latent_channels
    jobs: list[tuple[str, Any, list[Any]]] = []
    for name in TEXT_ENCODERS:
        encoder = getattr(pipe, name, None)
        if encoder is not None:
            jobs.append((name, encoder, [torch.ones(1, pipe.tokenizer.model_max_length, dtype=torch.int64)]))
    unet_inputs, _names = _example_unet_inputs(pipe.unet)
    jobs.append(("unet", pipe.unet, project_times(pipe.unet.config, unet_inputs)))
    jobs.append(("vae_encoder", vae.encoder, [torch.randn(1, vae.config.in_channels, 8 * scale, 8 * scale)]))
    jobs.append(("vae_decoder", vae.decoder, [torch.randn(1, latent, 8, 8)]))
    try:
        for name, network, example in jobs:
            if on_stage is not None:
                on_stage(f"converting the {name.replace('_', ' ')} for OpenVINO")
            started = time.perf_counter()
            config = getattr(network, "config", None)
            with torch.no_grad(), warnings.catch_warnings(), _cut(name, network):
                # Tracing warns about every shape check it freezes; the shapes are made static anyway.
                warnings.simplefilter("ignore")
                model = openvino.convert_model(_traceable(name, network, config), example_input=tuple(example))
            openvino.save_model(model, str(tmp / f"{name}.xml"))  # weights compressed to fp16 on disk
            del model
            gc.collect()
            meta["networks"][name] = {"seconds": round(time.perf_counter() - started, 2)}
            log.info("converted %s in %.1f s", name, time.perf_counter() - started)
        _save_configs(pipe, tmp)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _cut(name: str, network: Any) -> Any:
    import contextlib

    return _without_time_projections(network) if name == "unet" else contextlib.nullcontext()


def _save_configs(pipe: Any, folder: Path) -> None:
    """The configs of the swapped networks, so a later load needs none of their torch weights."""
    pipe.unet.save_config(str(folder / "unet_config"))
    for name in TEXT_ENCODERS:
        encoder = getattr(pipe, name, None)
        if encoder is not None:
            encoder.config.save_pretrained(str(folder / f"{name}_config"))
    if pipe.unet.config.get("addition_embed_type") == "text_time":
        (folder / "unet_extras.json").write_text(json.dumps(
            {"add_embedding_in_features": pipe.unet.add_embedding.linear_1.in_features}))


def cached(folder: Path) -> bool:
    meta = folder / "meta.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("format") == IR_FORMAT
    except (OSError, ValueError):
        return False


def swap_in(pipe: Any, folder: Path, precision: str) -> None:
    """Replace the pipeline's networks with OpenVINO ones read from `folder`; the torch weights
    they replace are dropped."""
    from types import SimpleNamespace

    import transformers
    from diffusers import UNet2DConditionModel

    unet_config = UNet2DConditionModel.load_config(str(folder / "unet_config"))
    extras: dict[str, Any] = {}
    extras_file = folder / "unet_extras.json"
    if extras_file.is_file():
        features = json.loads(extras_file.read_text())["add_embedding_in_features"]
        # SDXL's pipeline reads the width of the UNet's added embedding to check its time ids.
        extras["add_embedding"] = SimpleNamespace(linear_1=SimpleNamespace(in_features=features))
    unet_ir = folder / ("unet.int8.xml" if precision == "int8" else "unet.xml")
    from diffusers.configuration_utils import FrozenDict

    unet = make_module("unet", unet_ir, precision, FrozenDict(unet_config), extras)
    modules = {"unet": unet}
    for name in TEXT_ENCODERS:
        if (folder / f"{name}.xml").is_file() and (folder / f"{name}_config").is_dir():
            config = transformers.AutoConfig.from_pretrained(str(folder / f"{name}_config"))
            modules[name] = make_module(name, folder / f"{name}.xml", _text_precision(precision), config)
    pipe.register_modules(**modules)
    pipe.vae.encoder = make_module("vae_encoder", folder / "vae_encoder.xml", _text_precision(precision))
    pipe.vae.decoder = make_module("vae_decoder", folder / "vae_decoder.xml", _text_precision(precision))
    gc.collect()


def _text_precision(precision: str) -> str:
    return "bfloat16" if precision == "int8" else precision


def ov_modules(pipe: Any) -> list[Any]:
    found = [getattr(pipe, name, None) for name in ("unet",) + TEXT_ENCODERS]
    vae = getattr(pipe, "vae", None)
    if vae is not None:
        found += [getattr(vae, "encoder", None), getattr(vae, "decoder", None)]
    return [m for m in found if m is not None and hasattr(m, "ir")]


# --------------------------------------------------------------------------- loading


def load(ref: ModelRef, located: Located, precision: str,
         on_stage: Callable[[str], None] | None = None) -> sd.Loaded:
    """The model with its networks on OpenVINO, converting them first if no IR is cached."""
    import diffusers

    started = time.perf_counter()
    sha = _fingerprint(located)
    folder = ir_folder(sha, ref)
    fresh = not cached(folder)
    quantised = precision != "int8" or _int8_ready(folder)
    if not fresh and located.kind in ("folder", "builtin", "repo") and quantised:
        pipe = _load_without_networks(located, ref)
        swap_in(pipe, folder, precision)
        loaded = sd.finish_load(ref, pipe, "cpu", _torch_float32(), sha, started, loras=False)
        loaded.tiny_decoder = sd.load_tiny_decoder(located, loaded.family, "cpu", _torch_float32(), pipe.vae.config)
    else:
        # No IR yet, a single file (whose pipeline diffusers builds whole), or int8 still to
        # quantise (which calibrates on the torch model's latents): load in torch, fuse, trace.
        loaded = sd.load(ref, "cpu", "float32")
        if fresh:
            if on_stage is not None:
                on_stage("converting the model for OpenVINO (once)")
            if ref.loras:
                loaded.pipe.fuse_lora(lora_scale=1.0)
                loaded.pipe.unload_lora_weights()
            convert(loaded.pipe, folder, on_stage)
        if precision == "int8" and not _int8_ready(folder):
            from inference.backends import openvino_int8

            if on_stage is not None:
                on_stage("quantising the UNet to int8 (once)")
            openvino_int8.quantize(loaded, folder, on_stage)
        swap_in(loaded.pipe, folder, precision)
    if loaded.tiny_decoder is not None:
        _tiny_on_openvino(loaded, located, precision, on_stage)
    _precompile(loaded)
    loaded.backend = BACKEND
    loaded.runtime = "openvino"
    loaded.dtype = precision
    loaded.load_seconds = time.perf_counter() - started
    loaded.derived.clear()
    return loaded


def _precompile(loaded: sd.Loaded) -> None:
    """Compile the networks for the native size while the model loads (from OpenVINO's compile
    cache after the first time), so the first job pays for inference only. Other sizes compile
    when a job first asks for them."""
    pipe = loaded.pipe
    config = pipe.unet.config
    side = loaded.native // loaded.vae_scale
    batch = 2 if loaded.preset.guidance_for(loaded.preset.steps) > 1 and loaded.in_channels != 8 else 1
    try:
        # The UNet first: compiling it needs the most memory, and with the text encoder already
        # compiled beside it the process peaked 1 GB higher (SD-Turbo at 512 px).
        if not config.get("time_cond_proj_dim") and config.get("addition_embed_type") != "text_time":
            context = config.cross_attention_dim
            pipe.unet.compiled(((batch, config.in_channels, side, side), (batch, config.block_out_channels[0]),
                                (batch, pipe.tokenizer.model_max_length, context)))
        for name in TEXT_ENCODERS:
            encoder = getattr(pipe, name, None)
            if encoder is not None and hasattr(encoder, "ir"):
                encoder.compiled(((1, pipe.tokenizer.model_max_length),))
        latent = pipe.vae.config.latent_channels
        decoder = loaded.tiny_decoder.decoder if loaded.tiny_decoder is not None else pipe.vae.decoder
        for network in {id(pipe.vae.decoder): pipe.vae.decoder, id(decoder): decoder}.values():
            if hasattr(network, "ir"):
                network.compiled(((1, latent, side, side),))
    except Exception:  # a job compiles what it needs anyway
        log.warning("compiling ahead for %s failed", loaded.ref.source, exc_info=True)


def _tiny_on_openvino(loaded: sd.Loaded, located: Located, precision: str,
                      on_stage: Callable[[str], None] | None) -> None:
    """The tiny decoder's network on OpenVINO too (converted once, keyed by its own files)."""
    tiny_folder = sd.tiny_decoder_folder(located, loaded.family)
    key = hashlib.sha256(json.dumps([IR_FORMAT, sd.folder_fingerprint(str(tiny_folder)), version()]).encode())
    from inference.files import cache_dir

    folder = cache_dir() / "openvino" / "tiny" / key.hexdigest()[:24]
    xml = folder / "decoder.xml"
    if not xml.is_file():
        import openvino
        import torch

        if on_stage is not None:
            on_stage("converting the tiny decoder for OpenVINO")
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        channels = loaded.tiny_decoder.config.latent_channels
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = openvino.convert_model(loaded.tiny_decoder.decoder, example_input=(torch.randn(1, channels, 8, 8),))
        openvino.save_model(model, str(tmp / "decoder.xml"))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    loaded.tiny_decoder.decoder = make_module("vae_decoder", xml, _text_precision(precision))


def size_multiple(unet_config: Any, vae_scale: int) -> int:
    """What image sides must divide by on OpenVINO: the traced UNet upsamples by exactly 2 at
    each level, so its latents must divide by 2 per downsampling (64 px for SD's UNets), where
    torch's UNet resizes to odd skip sizes (8 px). A 840 x 1400 px inpaint crop failed in
    OpenVINO's shape check before this; the engine now rounds the model's input size to it."""
    return max(8, vae_scale * 2 ** (len(unet_config["block_out_channels"]) - 1))


def fingerprint_of(located: Located) -> str | None:
    """The model's fingerprint (what its IR and its runtime choice are keyed by)."""
    return _fingerprint(located)


def probe(ref: ModelRef, located: Located, size: tuple[int, int] | None,
          on_stage: Callable[[str], None] | None = None) -> tuple[Any, sd.Loaded]:
    """Find the fastest agreeing path for this model here (inference.runtimes): load it in
    torch float32 (the reference), convert it for OpenVINO (and quantise it where int8 is worth
    timing), time one UNet call per path. Returns the Choice and the torch model, which the
    engine keeps if torch float32 won."""
    from inference import runtimes

    started = time.perf_counter()
    if on_stage is not None:
        on_stage("loading the model to choose the fastest runtime")
    loaded = sd.load(ref, "cpu", "float32")
    pipe = loaded.pipe
    sha = loaded.sha256
    folder = ir_folder(sha, ref)
    paths = runtimes.cpu_paths()
    if not cached(folder):
        if on_stage is not None:
            on_stage("converting the model for OpenVINO (once)")
        if ref.loras:
            # The IR must carry the LoRAs fused; the reference keeps them as adapters (same weights).
            _convert_fused(ref, located, folder, on_stage)
        else:
            convert(pipe, folder, on_stage)
    if ("openvino", "int8") in paths and not _int8_ready(folder):
        try:
            from inference.backends import openvino_int8

            if on_stage is not None:
                on_stage("quantising the UNet to int8 (once)")
            openvino_int8.quantize(loaded, folder, on_stage)
        except Exception as exc:  # no int8 then; the other paths still compete
            log.warning("int8 quantisation failed: %s", exc)
            paths.remove(("openvino", "int8"))
    width, height = size or (loaded.native, loaded.native)
    multiple = loaded.vae_scale * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    width, height = (max(multiple, side // multiple * multiple) for side in (width, height))
    batch = 2 if loaded.preset.guidance_for(loaded.preset.steps) > 1 else 1
    measured = runtimes.measure(pipe, folder, paths, width, height, batch, on_stage)
    chosen = runtimes.pick(measured) or ("torch", "float32")
    key = "/".join(chosen)
    choice = runtimes.Choice(runtime=chosen[0], dtype=chosen[1], unet_seconds=measured.get(key, {}).get("seconds"),
                             measured=measured, shape=[batch, height, width], cpu=runtimes.cpu_summary(),
                             when=time.time(), probe_seconds=round(time.perf_counter() - started, 1))
    log.info("runtime chosen for %s: %s (%s)", ref.source, choice.label, measured)
    return choice, loaded


def _convert_fused(ref: ModelRef, located: Located, folder: Path, on_stage) -> None:
    """Convert a LoRA'd model from a copy loaded for the purpose, whose LoRAs are fused in."""
    loaded = sd.load(ref, "cpu", "float32")
    try:
        loaded.pipe.fuse_lora(lora_scale=1.0)
        loaded.pipe.unload_lora_weights()
        convert(loaded.pipe, folder, on_stage)
    finally:
        sd.BACKEND.release(loaded)


def _int8_ready(folder: Path) -> bool:
    from inference.backends import openvino_int8

    return openvino_int8.ready(folder)


def _torch_float32() -> Any:
    import torch

    return torch.float32


def _fingerprint(located: Located) -> str | None:
    if located.kind == "file":
        return sd.file_sha256(located.path)
    path = sd._snapshot(located.path) if located.kind == "repo" else located.path
    return sd.folder_fingerprint(path)


def _load_without_networks(located: Located, ref: ModelRef) -> Any:
    """The pipeline with its scheduler, tokenizers and VAE, but no UNet or text encoder: those
    come from the IR, so their torch weights are never read (half the memory at load)."""
    import diffusers

    path = sd._snapshot(located.path) if located.kind == "repo" else located.path
    index = sd.check_pipeline_folder(path, Path(path).name)
    kwargs: dict[str, Any] = {name: None for name in ("unet",) + TEXT_ENCODERS if name in index}
    if "safety_checker" in index:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    variant = sd.weights_variant(path)
    if variant:
        kwargs["variant"] = variant
    sd._quiet_loading()
    try:
        return diffusers.DiffusionPipeline.from_pretrained(path, local_files_only=True, **kwargs)
    except JobError:
        raise
    except Exception as exc:
        raise BadInput(f"Could not load the model {Path(ref.source).name}: {sd._first_line(exc)}", repr(exc)) from exc


class OpenVINOBackend(sd.DiffusersBackend):
    """The diffusers backend with OpenVINO networks: same pipelines, same run, same previews."""

    name = "openvino"

    def claims(self, located: Located) -> bool:
        return available() and super().claims(located)

    def placement(self, device: str | None, dtype: str | None) -> tuple[str, str]:
        if device not in (None, "auto", "cpu"):
            raise BadInput(f"OpenVINO runs Stable Diffusion on the CPU here, not on {device}.")
        from inference import runtimes

        if dtype in (None, "auto"):
            return "cpu", runtimes.native_precision()
        if dtype in ("int8", "bfloat16", "float32"):
            return "cpu", dtype
        from inference.device import DTYPE_NAMES

        named = DTYPE_NAMES.get(dtype)
        if named in ("bfloat16", "float32"):
            return "cpu", named
        raise BadInput(f"OpenVINO runs in float32, bfloat16 or int8, not {dtype}.")

    def load(self, ref: ModelRef, located: Located, device: str, dtype: str, on_stage=None) -> sd.Loaded:
        return load(ref, located, dtype, on_stage)

    def capabilities(self, loaded: sd.Loaded) -> Capabilities:
        import dataclasses

        return dataclasses.replace(super().capabilities(loaded),
                                   multiple=size_multiple(loaded.pipe.unet.config, loaded.vae_scale))

    def release(self, loaded: sd.Loaded) -> None:
        if loaded.pipe is not None:
            for module in ov_modules(loaded.pipe):
                module.release()
        super().release(loaded)


BACKEND = OpenVINOBackend()
