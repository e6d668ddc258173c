"""Stable Diffusion speed on this machine: Quickbrush's automatic path against two baselines.

Builds real architectures with random weights (speed does not depend on weight values;
benchmarks/architectures.py): SD-Turbo (SD 2.1 UNet, OpenCLIP ViT-H text encoder, SD VAE; 1
step, guidance 0), SD 1.5 with an LCM scheduler (an LCM-LoRA's recipe: 4 steps, guidance 1) and
an SDXS-like small UNet (1 step), each with a TAESD in its `vae_tiny/`; at 512 and 256 px.

Each path runs in a fresh process of its own (so its memory is its own and nothing is warm from
another), all in one invocation, on the same prompt and seed:

  diffusers_fp32   what a user writes: DiffusionPipeline.from_pretrained(folder), then
                   pipe(prompt, num_inference_steps, guidance_scale, generator) with the model's
                   recipe (inference.models.presets); float32 torch, the model's own VAE.
  openvino_taesd   the FastSD CPU recipe, written here without Quickbrush's backend: text
                   encoder, UNet and TAESD decoder converted by openvino.convert_model (IR with
                   fp16 weights, as FastSD ships them), reshaped static to the job's shape,
                   compiled by core.compile_model(model, "CPU") with no properties (OpenVINO's
                   default precision for this CPU), the model's scheduler, the TAESD decoder.
                   Conversion runs in a child of its own first (conversion_s), and is cached.
  quickbrush_tiny  inference.engine.Engine, Generate(runtime="auto", decoder="tiny"): the path
                   Quickbrush chose for this machine and model, the TAESD decoder.
  quickbrush_full  the same with decoder="full" (the model's own VAE decoder).
                   Before them an untimed "first use" child runs one job on a fresh engine: it
                   probes the paths, converts, remembers the choice (first_use_s); the timed
                   children then start on the remembered choice and the cached IR, as the app
                   does after its first job on a model.

Per path: load_s; end to end (one image, prompt to PIL image, model loaded: the median of
--repeats calls after one untimed warm-up call); per-stage milliseconds (text encoder, UNet
summed over steps, final decoder, previews, the rest); peak resident memory of the process
(VmHWM); agreement with diffusers_fp32: relative L2 error of the UNet's output on one fixed input
(seeded latents, timestep 999, the reference text encoder's embedding of the prompt; also the
text encoder's own error) and PSNR of the final image (tiny-decoder paths against the reference
latents decoded by TAESD in float32 torch, full-decoder paths against the reference image).

The JSON also holds the CPU (flags that decide the path), versions, the machine's load, and for
SD-Turbo at 512 px, 1 step: speedup_vs_diffusers and speedup_vs_openvino_taesd (Quickbrush with
the tiny decoder over each baseline), speedup_vs_diffusers_full_decoder, and `targets`, each
met or not: speedup_vs_diffusers >= 10, speedup_vs_openvino_taesd >= 1.3, full decoder >= 3,
Quickbrush's peak memory no more than plain diffusers'. A benchmark, never a timed test.

With --device cuda (a GPU): diffusers_fp32 (the agreement reference) and diffusers_fp16 as a
user writes them (pipe.to("cuda")) against Quickbrush on cuda (torch fp16, compiled), batch 1,
and images per second at batch 8 (--batch); targets there: at most 12 ms end to end with the
tiny decoder and 25 ms with the full one (SD-Turbo, 512 px, 1 step).

    python benchmarks/sd_speed.py --quick --keep /tmp/sdspeed   # SD-Turbo 512 px only
    python benchmarks/sd_speed.py --keep /tmp/sdspeed           # everything (~40 min on 2 cores)
    python benchmarks/sd_speed.py --architectures sdxs_like --sizes 256 --paths quickbrush_tiny
    python benchmarks/sd_speed.py --device cuda --quick         # on a GPU
    python benchmarks/sd_speed.py --dry-run                     # the plan, nothing run

--keep DIR keeps the built models (about 5 GB each), the baseline's IR and Quickbrush's cache
(QUICKBRUSH_CACHE_DIR, one for every invocation using DIR) for the next invocation; --forget
empties Quickbrush's cache first, so first_use_s is measured from nothing again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

ARCHITECTURES = ("sd_turbo", "sd15_lcm", "sdxs_like")
SIZES = (512, 256)
CPU_PATHS = ("diffusers_fp32", "openvino_taesd", "quickbrush_tiny", "quickbrush_full")
CUDA_PATHS = ("diffusers_fp32", "diffusers_fp16", "quickbrush_tiny", "quickbrush_full")
PROMPT = "a red apple on a wooden table, studio photo"
SEED = 42
PSNR_CAP = 100.0  # identical images (the same arithmetic) read as this, not infinity
TARGETS_CPU = {"speedup_vs_diffusers": 10.0, "speedup_vs_openvino_taesd": 1.3, "speedup_vs_diffusers_full_decoder": 3.0}
TARGETS_CUDA_MS = {"quickbrush_tiny": 12.0, "quickbrush_full": 25.0}
HEADLINE = ("sd_turbo", 512)


# --------------------------------------------------------------------------- shared helpers


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM rather than ru_maxrss: Linux carries
    ru_maxrss over exec, so a child could report its parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def recipe(folder: Path) -> tuple[int, float]:
    """Steps and guidance of the model's few-step recipe, read from its name as Quickbrush does."""
    from inference.models.presets import match_preset

    preset = match_preset([folder.name])
    return preset.steps, preset.guidance_for(preset.steps)


def model_folder_name(architecture: str) -> str:
    if architecture == "tiny":
        return "sd-turbo-tiny"
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from architectures import model_name

    return model_name(architecture)


def build(architecture: str, folder: Path) -> None:
    """The model's folder, with its TAESD in `vae_tiny/`. "tiny" (the test's) is the tests'
    toy pipeline with a trailing Euler scheduler (SD-Turbo's) and a 2x TAESD to match its VAE."""
    if architecture != "tiny":
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from architectures import build as build_architecture

        build_architecture(folder, architecture)
        return
    sys.path.insert(0, str(ROOT / "tests"))
    import tiny_models
    import torch
    from diffusers import AutoencoderTiny, EulerDiscreteScheduler, StableDiffusionPipeline

    tiny_models.build_sd(folder)
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    pipe.scheduler = EulerDiscreteScheduler(**tiny_models.SD_BETAS, timestep_spacing="trailing", steps_offset=1)
    pipe.save_pretrained(folder, safe_serialization=True)
    torch.manual_seed(1)
    AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                    num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1)).save_pretrained(folder / "vae_tiny")


class StageClock:
    """Seconds spent in named modules, per call, through forward hooks (which the pipelines and
    Quickbrush's OpenVINO modules, torch modules too, all go through). On a GPU each hook waits
    for the device, or the clock would time kernel launches."""

    def __init__(self, modules: dict[str, Any], cuda: bool = False):
        self.calls: dict[str, list[float]] = {name: [] for name in modules}
        self._handles = []
        self._cuda = cuda
        for name, module in modules.items():
            if module is None:
                continue
            started: list[float] = []

            def pre(*_: Any, started=started) -> None:
                self._sync()
                started[:] = [time.perf_counter()]

            def post(*_: Any, name=name, started=started) -> None:
                self._sync()
                if started:
                    self.calls[name].append(time.perf_counter() - started.pop())

            self._handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def _sync(self) -> None:
        if self._cuda:
            import torch

            torch.cuda.synchronize()

    def reset(self) -> None:
        for calls in self.calls.values():
            calls.clear()

    def add(self, name: str, seconds: float) -> None:
        self.calls.setdefault(name, []).append(seconds)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def stages_of(calls: dict[str, list[float]], final_decoder: str) -> dict[str, float]:
    """Milliseconds per stage of one image: the final decode is the last call of its decoder;
    earlier calls of the tiny decoder are step previews."""
    stages = {"text_encoder": sum(calls.get("text_encoder", [])), "unet": sum(calls.get("unet", []))}
    decoder_calls = list(calls.get(final_decoder, []))
    stages["decoder"] = decoder_calls.pop() if decoder_calls else 0.0
    preview = sum(decoder_calls) if final_decoder == "tiny_decoder" else sum(calls.get("tiny_decoder", []))
    stages["preview"] = preview
    stages["unet_calls"] = len(calls.get("unet", []))
    return stages


def timed(call: Callable[[], Any], repeats: int, clock: StageClock, final_decoder: str) -> tuple[Any, dict[str, Any]]:
    """One untimed warm-up call (first-call allocations, compilation), then `repeats` timed ones.
    Returns the last image and the median run (the lower median of an even count): its e2e_ms
    and each of its stages' ms."""
    started = time.perf_counter()
    call()
    warm_up = time.perf_counter() - started
    runs: list[dict[str, float]] = []
    image = None
    for _ in range(repeats):
        clock.reset()
        started, cpu = time.perf_counter(), time.process_time()
        image = call()
        e2e = time.perf_counter() - started
        stages = stages_of(clock.calls, final_decoder)
        stages["e2e"], stages["cpu"] = e2e, time.process_time() - cpu
        runs.append(stages)
    # The stages of the median run itself, so that they add up to its end to end.
    median = sorted(runs, key=lambda r: r["e2e"])[(len(runs) - 1) // 2]
    result: dict[str, Any] = {"warm_up_s": round(warm_up, 3), "repeats": repeats,
                              "e2e_ms": round(median["e2e"] * 1000, 1),
                              "e2e_ms_best": round(min(r["e2e"] for r in runs) * 1000, 1),
                              # CPU time of all the process's threads in the median call: what the
                              # image cost, less sensitive than wall time to other work on the machine
                              "cpu_ms": round(median["cpu"] * 1000, 1),
                              "e2e_ms_all": [round(r["e2e"] * 1000, 1) for r in runs]}
    stage_ms = {k: round(median[k] * 1000, 1) for k in ("text_encoder", "unet", "decoder", "preview")}
    stage_ms["rest"] = round(result["e2e_ms"] - sum(stage_ms.values()), 1)
    result["stage_ms"] = stage_ms
    result["unet_calls"] = int(runs[-1]["unet_calls"])
    return image, result


def token_ids(tokenizer: Any) -> Any:
    """The prompt's ids as every SD pipeline pads them (to the tokenizer's maximum length)."""
    return tokenizer(PROMPT, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def probe_latents(size: int, scale: int, channels: int = 4) -> Any:
    import torch

    generator = torch.Generator().manual_seed(1234)
    return torch.randn(1, channels, size // scale, size // scale, generator=generator)


def save_array(path: Path, value: Any) -> None:
    import numpy as np

    np.save(path, np.asarray(value.detach().float().cpu().numpy() if hasattr(value, "detach") else value,
                             dtype=np.float32))


def unet_probe(unet: Any, size: int, scale: int, work: Path, name: str, own_text: Any,
               device: str = "cpu", dtype: Any = None) -> None:
    """The path's UNet (as the path runs it) on the one fixed input, and its text encoder's
    output on the prompt, saved for the parent to compare with the reference's."""
    import numpy as np
    import torch

    save_array(work / f"{name}.text.npy", own_text)
    reference = work / "probe_embeds.npy"
    embeds = torch.from_numpy(np.load(reference)) if reference.is_file() else own_text.detach().float().cpu()
    latents = probe_latents(size, scale)
    dtype = dtype or torch.float32
    with torch.inference_mode():
        out = unet(latents.to(device, dtype), torch.tensor([999.0], device=device), embeds.to(device, dtype),
                   return_dict=False)[0]
    save_array(work / f"{name}.unet.npy", out)


# --------------------------------------------------------------------------- the children


def child_diffusers(args: argparse.Namespace) -> dict[str, Any]:
    """Plain diffusers as a user writes it; float32 is also the reference the others agree with."""
    import torch
    from diffusers import AutoencoderTiny, DiffusionPipeline

    folder, size, work = Path(args.model), args.size, Path(args.work)
    cuda = args.device == "cuda"
    dtype = torch.float16 if args.child == "diffusers_fp16" else torch.float32
    steps, guidance = recipe(folder)
    started = time.perf_counter()
    if dtype == torch.float32:
        pipe = DiffusionPipeline.from_pretrained(folder)
    else:
        pipe = DiffusionPipeline.from_pretrained(folder, torch_dtype=dtype)
    if cuda:
        pipe = pipe.to("cuda")
    pipe.set_progress_bar_config(disable=True)
    load_s = time.perf_counter() - started

    def call(batch: int = 1, output_type: str = "pil") -> Any:
        out = pipe(PROMPT, num_inference_steps=steps, guidance_scale=guidance, height=size, width=size,
                   generator=torch.Generator().manual_seed(SEED), num_images_per_prompt=batch,
                   output_type=output_type)
        return out.images[0]

    clock = StageClock({"text_encoder": pipe.text_encoder, "unet": pipe.unet, "vae_decoder": pipe.vae.decoder}, cuda)
    image, result = timed(call, args.repeats, clock, "vae_decoder")
    clock.close()
    result.update(load_s=round(load_s, 2), steps=steps, guidance=guidance, path=f"diffusers {str(dtype)[6:]}")
    image.save(work / f"{args.child}.png")
    if args.batch > 1:
        result["batch"] = throughput(lambda: call(args.batch), args.batch, args.repeats)

    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    with torch.inference_mode():
        text = pipe.text_encoder(token_ids(pipe.tokenizer).to(pipe.device))[0]
    if args.child == "diffusers_fp32":
        save_array(work / "probe_embeds.npy", text)
        # The reference of the tiny-decoder paths: this run's own latents through TAESD in float32.
        latents = call(output_type="latent")[None]
        tiny = AutoencoderTiny.from_pretrained(folder / "vae_tiny").to(pipe.device)
        with torch.inference_mode():
            pixels = tiny.decode(latents.float() / tiny.config.scaling_factor, return_dict=False)[0]
        pipe.image_processor.postprocess(pixels, output_type="pil")[0].save(work / "reference_tiny.png")
    unet_probe(pipe.unet, size, scale, work, args.child, text, pipe.device, dtype)
    return result


def throughput(call: Callable[[], Any], batch: int, repeats: int) -> dict[str, Any]:
    call()
    seconds = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {"size": batch, "call_ms": round(median * 1000, 1), "images_per_s": round(batch / median, 2)}


def ov_taesd_folder(args: argparse.Namespace) -> Path:
    return Path(args.ir) / Path(args.model).name


def child_openvino_prepare(args: argparse.Namespace) -> dict[str, Any]:
    """FastSD CPU's conversion: the text encoder, the UNet and the TAESD decoder to OpenVINO IR."""
    import openvino
    import torch
    from diffusers import AutoencoderTiny, DiffusionPipeline

    folder, out = Path(args.model), ov_taesd_folder(args)
    if (out / "done.json").is_file():
        return {"conversion_s": json.loads((out / "done.json").read_text())["conversion_s"], "cached": True}
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pipe = DiffusionPipeline.from_pretrained(folder)
    unet, text_encoder = pipe.unet, pipe.text_encoder

    class Text(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = text_encoder

        def forward(self, input_ids):
            return self.net(input_ids, return_dict=False)[0]

    class UNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = unet

        def forward(self, sample, timestep, encoder_hidden_states):
            return self.net(sample, timestep, encoder_hidden_states, return_dict=False)[0]

    context = unet.config.cross_attention_dim
    tiny = AutoencoderTiny.from_pretrained(folder / "vae_tiny")
    networks = {
        "text_encoder": (Text(), (torch.ones(1, pipe.tokenizer.model_max_length, dtype=torch.int64),)),
        "unet": (UNet(), (torch.randn(1, unet.config.in_channels, 8, 8), torch.tensor([999.0]),
                          torch.randn(1, pipe.tokenizer.model_max_length, context))),
        "taesd_decoder": (tiny.decoder, (torch.randn(1, tiny.config.latent_channels, 8, 8),)),
    }
    seconds: dict[str, float] = {}
    for name, (network, example) in networks.items():
        started = time.perf_counter()
        with torch.no_grad():
            model = openvino.convert_model(network, example_input=example)
        openvino.save_model(model, str(out / f"{name}.xml"))  # fp16 weights, as FastSD's IR ships
        seconds[name] = round(time.perf_counter() - started, 1)
    total = round(sum(seconds.values()), 1)
    (out / "done.json").write_text(json.dumps({"conversion_s": total, "networks": seconds}))
    return {"conversion_s": total, "networks": seconds, "cached": False}


def child_openvino(args: argparse.Namespace) -> dict[str, Any]:
    """FastSD CPU's run: OpenVINO networks compiled at their default precision, static shapes,
    the model's own scheduler, the TAESD decoder."""
    import diffusers
    import numpy as np
    import openvino
    import torch
    from PIL import Image
    from transformers import CLIPTokenizer

    folder, size, work, ir = Path(args.model), args.size, Path(args.work), ov_taesd_folder(args)
    steps, guidance = recipe(folder)
    cfg = guidance > 1
    batch = 2 if cfg else 1
    started = time.perf_counter()
    core = openvino.Core()
    index = json.loads((folder / "model_index.json").read_text())
    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    if unet_config.get("time_cond_proj_dim"):
        raise SystemExit("openvino_taesd: UNets with a guidance embedding are not part of this recipe")
    scale = 2 ** (len(vae_config["block_out_channels"]) - 1)
    latent_side = size // scale
    channels = unet_config["in_channels"]
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    length = tokenizer.model_max_length
    context = unet_config["cross_attention_dim"]
    scheduler_class = getattr(diffusers, index["scheduler"][1])

    def compiled(name: str, shapes: list[list[int]]) -> Any:
        model = core.read_model(str(ir / f"{name}.xml"))
        model.reshape({i: shape for i, shape in enumerate(shapes)})  # static, as FastSD reshapes
        return core.compile_model(model, "CPU")  # no properties: OpenVINO's default precision

    compile_started = time.perf_counter()
    text = compiled("text_encoder", [[1, length]])
    unet = compiled("unet", [[batch, channels, latent_side, latent_side], [batch], [batch, length, context]])
    decoder = compiled("taesd_decoder", [[1, 4, latent_side, latent_side]])
    compile_s = time.perf_counter() - compile_started
    load_s = time.perf_counter() - started
    hint = unet.get_property("INFERENCE_PRECISION_HINT")
    precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)  # "bf16", "f32"

    def encode(prompt: str) -> np.ndarray:
        ids = tokenizer(prompt, padding="max_length", max_length=length, truncation=True, return_tensors="np").input_ids
        return text(ids.astype(np.int64))[0]

    clock = StageClock({})

    def run_stage(name: str, request: Any, inputs: list[np.ndarray]) -> np.ndarray:
        t0 = time.perf_counter()
        out = request(inputs)[0]
        clock.add(name, time.perf_counter() - t0)
        return out

    def call() -> Image.Image:
        ids = tokenizer(PROMPT, padding="max_length", max_length=length, truncation=True, return_tensors="np").input_ids
        embeds = run_stage("text_encoder", text, [ids.astype(np.int64)])
        if cfg:
            empty = tokenizer("", padding="max_length", max_length=length, return_tensors="np").input_ids
            embeds = np.concatenate([run_stage("text_encoder", text, [empty.astype(np.int64)]), embeds])
        scheduler = scheduler_class.from_pretrained(folder / "scheduler")
        scheduler.set_timesteps(steps)
        generator = torch.Generator().manual_seed(SEED)
        latents = torch.randn(1, channels, latent_side, latent_side, generator=generator) * scheduler.init_noise_sigma
        import inspect

        extra = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        for t in scheduler.timesteps:
            model_input = torch.cat([latents] * batch) if cfg else latents
            model_input = scheduler.scale_model_input(model_input, t)
            noise = torch.from_numpy(run_stage("unet", unet, [model_input.numpy(), np.full([batch], float(t), np.float32),
                                                              embeds]))
            if cfg:
                uncond, cond = noise.chunk(2)
                noise = uncond + guidance * (cond - uncond)
            latents = scheduler.step(noise, t, latents, **extra, return_dict=False)[0]
        pixels = run_stage("tiny_decoder", decoder, [latents.numpy()])  # TAESD takes the scaled latents
        pixels = np.clip(pixels[0].transpose(1, 2, 0) / 2 + 0.5, 0, 1)
        return Image.fromarray((pixels * 255).round().astype(np.uint8))

    image, result = timed(call, args.repeats, clock, "tiny_decoder")
    result.update(load_s=round(load_s, 2), compile_s=round(compile_s, 2), precision=precision, steps=steps,
                  guidance=guidance, path=f"OpenVINO default ({precision}) + TAESD")
    image.save(work / f"{args.child}.png")
    own_text = torch.from_numpy(encode(PROMPT))
    reference = work / "probe_embeds.npy"
    embeds = np.load(reference) if reference.is_file() else own_text.numpy()
    probe = unet if batch == 1 else compiled("unet", [[1, channels, latent_side, latent_side], [1], [1, length, context]])
    out = probe([probe_latents(size, scale, channels).numpy(), np.array([999.0], np.float32), embeds.astype(np.float32)])[0]
    save_array(work / f"{args.child}.text.npy", own_text)
    save_array(work / f"{args.child}.unet.npy", out)
    return result


def child_quickbrush(args: argparse.Namespace) -> dict[str, Any]:
    """Quickbrush's engine as the app runs a Generate job; --first-use: the untimed first job."""
    import torch

    from inference.engine import Engine
    from inference.jobs import Generate, ModelRef

    folder, size, work = Path(args.model), args.size, Path(args.work)
    cuda = args.device == "cuda"
    decoder = "tiny" if args.child == "quickbrush_tiny" else "full"
    job = Generate(prompt=PROMPT, model=ModelRef(str(folder)), seed=SEED, width=size, height=size, runtime="auto",
                   decoder=decoder, device="cuda" if cuda else None)
    engine = Engine()

    last: dict[str, Any] = {}

    def call() -> Any:
        image, _job, last["timings"], last["info"] = engine.run(1, job, lambda progress: None, lambda: False)
        return image

    started = time.perf_counter()
    call()
    first = time.perf_counter() - started
    load_s = last["timings"]["load"]
    loaded = engine.loaded_models()[-1]
    if args.first_use:
        return {"first_use_s": round(first, 1), "path": last["info"]["path"], "load_s": round(load_s, 2),
                "choice": remembered_choice(folder, "cuda" if cuda else "cpu")}
    pipe = loaded.pipe
    modules = {"text_encoder": pipe.text_encoder, "unet": pipe.unet, "vae_decoder": pipe.vae.decoder,
               "tiny_decoder": getattr(loaded.tiny_decoder, "decoder", None)}
    clock = StageClock(modules, cuda)
    final = "tiny_decoder" if decoder == "tiny" and loaded.tiny_decoder is not None else "vae_decoder"
    image, result = timed(call, args.repeats, clock, final)
    clock.close()
    # The timed calls repeat the prompt, which the engine's text encoders then answer from
    # memory (a designer trying seeds); a new prompt each time costs the encoder again.
    new_prompt = []
    for index in range(args.repeats):
        varied = dataclasses.replace(job, prompt=f"{PROMPT}, take {index + 1}")
        started = time.perf_counter()
        engine.run(1, varied, lambda progress: None, lambda: False)
        new_prompt.append(time.perf_counter() - started)
    result["e2e_ms_new_prompt"] = round(sorted(new_prompt)[(len(new_prompt) - 1) // 2] * 1000, 1)
    result.update(load_s=round(load_s, 2), first_call_s=round(first, 2), path=last["info"]["path"],
                  runtime=loaded.runtime, dtype=str(loaded.dtype).removeprefix("torch."), decoder=decoder,
                  engine_ms={k: round(v * 1000, 1) for k, v in last["timings"].items()},
                  steps=loaded.preset.steps, guidance=loaded.preset.guidance_for(loaded.preset.steps))
    image.save(work / f"{args.child}.png")
    if args.batch > 1:
        result["batch"] = quickbrush_batch(loaded, job, args.batch, args.repeats)
    scale = loaded.vae_scale
    with torch.inference_mode():
        text = pipe.text_encoder(token_ids(pipe.tokenizer).to(loaded.device))[0]
    dtype = getattr(pipe.unet, "dtype", torch.float32)
    unet_probe(pipe.unet, size, scale, work, args.child, text, loaded.device, dtype)
    return result


def quickbrush_batch(loaded: Any, job: Any, batch: int, repeats: int) -> dict[str, Any]:
    """Images per second at `batch`: a Generate job makes one image, so this calls the backend's
    own run (the engine's path: its scheduler, compiled networks and decoder) with
    num_images_per_prompt."""
    steps = loaded.preset.steps
    call = {"prompt": job.prompt, "negative_prompt": None, "guidance_scale": loaded.preset.guidance_for(steps),
            "seed": job.seed, "width": job.width, "height": job.height, "num_images_per_prompt": batch,
            "decoder": job.decoder}
    run = lambda: loaded.backend.run(loaded, "text2img", dict(call), steps, lambda *a: None, lambda: False,
                                     loaded.preset.scheduler)
    return throughput(run, batch, repeats)


def remembered_choice(folder: Path, device: str) -> dict[str, Any] | None:
    """What inference.runtimes remembered for the model (None on a GPU, where nothing is probed)."""
    from dataclasses import asdict

    from inference import runtimes
    from inference.backends import openvino_backend
    from inference.models.store import locate

    try:
        key = runtimes.choice_key(openvino_backend.fingerprint_of(locate(str(folder))), str(folder), (), device)
        choice = runtimes.Choices().get(key)
    except Exception as exc:  # the report still has the path the engine named
        return {"error": repr(exc)}
    if choice is None:
        return None
    found = asdict(choice)
    found.pop("cpu", None)
    return found


def child_main(args: argparse.Namespace) -> int:
    import inference  # noqa: F401 - third-party telemetry off before OpenVINO or the HF libraries load

    if args.build:
        build(args.child, Path(args.model))
        print(json.dumps({"built": args.model}))
        return 0
    started = time.perf_counter()
    if args.child.startswith("diffusers"):
        result = child_diffusers(args)
    elif args.child == "openvino_taesd":
        result = child_openvino_prepare(args) if args.prepare else child_openvino(args)
    elif args.child.startswith("quickbrush"):
        result = child_quickbrush(args)
    else:
        raise SystemExit(f"unknown path {args.child}")
    result["peak_rss_mb"] = peak_rss_mb()
    result["child_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- the parent


def relative_error(path: Path, reference: Path) -> float | None:
    import numpy as np

    if not (path.is_file() and reference.is_file()):
        return None
    a, b = np.load(path).astype(np.float64), np.load(reference).astype(np.float64)
    if a.shape != b.shape:
        return None
    return round(float(np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-12)), 5)


def psnr(path: Path, reference: Path) -> float | None:
    import numpy as np
    from PIL import Image

    if not (path.is_file() and reference.is_file()):
        return None
    a = np.asarray(Image.open(path).convert("RGB"), np.float64)
    b = np.asarray(Image.open(reference).convert("RGB"), np.float64)
    if a.shape != b.shape:
        return None
    mse = float(np.mean((a - b) ** 2))
    return PSNR_CAP if mse == 0 else round(min(PSNR_CAP, 10 * math.log10(255.0 ** 2 / mse)), 2)


def run_child(argv: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv], check=False, env=env,
                          capture_output=True, text=True, cwd=str(ROOT))
    log.write_text(f"$ {' '.join(argv)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-3:]
        return {"error": " | ".join(tail) or f"exit {done.returncode}", "log": str(log)}
    result = json.loads(lines[-1])
    result.setdefault("wall_s", round(time.perf_counter() - started, 1))
    return result


def plan(args: argparse.Namespace) -> list[tuple[str, int]]:
    return [(arch, size) for arch in args.architectures for size in args.sizes]


def child_argv(path: str, folder: Path, size: int, work: Path, args: argparse.Namespace, ir: Path,
               *extra: str) -> list[str]:
    return ["--child", path, "--model", str(folder), "--size", str(size), "--work", str(work),
            "--repeats", str(args.repeats), "--device", args.device, "--ir", str(ir), "--batch", str(args.batch), *extra]


def summarise(report: dict[str, Any], args: argparse.Namespace) -> None:
    """The headline numbers (SD-Turbo, 512 px, 1 step) and the targets, each met or not."""
    runs = report["runs"]
    key = f"{HEADLINE[0]}@{HEADLINE[1]}"
    if key not in runs:
        key = next(iter(runs), None)  # a run without SD-Turbo at 512 (the test's tiny model)
    if key is None:
        return
    paths = runs[key]["paths"]
    report["headline"] = key

    def e2e(name: str) -> float | None:
        return paths.get(name, {}).get("e2e_ms")

    def ratio(slow: str, fast: str, key: str = "e2e_ms", fast_key: str | None = None) -> float | None:
        a, b = paths.get(slow, {}).get(key), paths.get(fast, {}).get(fast_key or key)
        return round(a / b, 2) if a and b else None

    targets: dict[str, bool | None] = {}
    if args.device == "cuda":
        for name, limit in TARGETS_CUDA_MS.items():
            value = e2e(name)
            targets[f"{name}_e2e_ms<={limit:g}"] = None if value is None else value <= limit
        for name in ("diffusers_fp16", "quickbrush_tiny", "quickbrush_full"):
            batch = paths.get(name, {}).get("batch")
            if batch:
                report[f"images_per_s_batch{batch['size']}_{name}"] = batch["images_per_s"]
        report["speedup_vs_diffusers_fp16"] = ratio("diffusers_fp16", "quickbrush_tiny")
        report["speedup_vs_diffusers_fp16_full_decoder"] = ratio("diffusers_fp16", "quickbrush_full")
    else:
        report["speedup_vs_diffusers"] = ratio("diffusers_fp32", "quickbrush_tiny")
        report["speedup_vs_openvino_taesd"] = ratio("openvino_taesd", "quickbrush_tiny")
        report["speedup_vs_diffusers_full_decoder"] = ratio("diffusers_fp32", "quickbrush_full")
        # The baselines encode the prompt on every call; Quickbrush answers a repeated one from
        # memory. These compare with a new prompt on every Quickbrush call as well.
        report["speedups_with_a_new_prompt"] = {
            "vs_diffusers": ratio("diffusers_fp32", "quickbrush_tiny", fast_key="e2e_ms_new_prompt"),
            "vs_openvino_taesd": ratio("openvino_taesd", "quickbrush_tiny", fast_key="e2e_ms_new_prompt"),
            "vs_diffusers_full_decoder": ratio("diffusers_fp32", "quickbrush_full", fast_key="e2e_ms_new_prompt")}
        # The same from each path's fastest call and from its CPU time: on a machine shared with
        # other work the median carries whatever else ran meanwhile. The targets read the medians.
        for label, key in (("speedups_of_best_calls", "e2e_ms_best"), ("speedups_of_cpu_time", "cpu_ms")):
            report[label] = {"vs_diffusers": ratio("diffusers_fp32", "quickbrush_tiny", key),
                             "vs_openvino_taesd": ratio("openvino_taesd", "quickbrush_tiny", key),
                             "vs_diffusers_full_decoder": ratio("diffusers_fp32", "quickbrush_full", key)}
        for name, bar in TARGETS_CPU.items():
            value = report[name]
            targets[f"{name}>={bar:g}"] = None if value is None else value >= bar
    base = paths.get("diffusers_fp32", {}).get("peak_rss_mb")
    for name in ("quickbrush_tiny", "quickbrush_full"):
        rss = paths.get(name, {}).get("peak_rss_mb")
        targets[f"{name}_peak_rss<=diffusers_fp32"] = None if rss is None or base is None else rss <= base
    report["targets"] = targets
    report["targets_met"] = all(v is True for v in targets.values()) if targets else None


def versions() -> dict[str, str | None]:
    from importlib import metadata

    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in ("torch", "openvino", "diffusers", "transformers"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def parent_main(args: argparse.Namespace) -> int:
    from inference import runtimes

    paths = args.paths or list(CUDA_PATHS if args.device == "cuda" else CPU_PATHS)
    keep = Path(args.keep).resolve() if args.keep else None
    root = keep or Path(tempfile.mkdtemp(prefix="quickbrush-sd-speed-"))
    cache = root / ("quickbrush_cache_cuda" if args.device == "cuda" else "quickbrush_cache")
    ir = root / "openvino_taesd"
    out = root / "last_run"
    commands: list[list[str]] = []
    if args.dry_run:
        for arch, size in plan(args):
            folder = root / "models" / model_folder_name(arch)
            for path in paths:
                commands.append(child_argv(path, folder, size, out / f"{arch}-{size}", args, ir))
        print(json.dumps({"device": args.device, "paths": paths, "runs": [f"{a}@{s}" for a, s in plan(args)],
                          "repeats": args.repeats, "batch": args.batch, "commands": commands}, indent=1))
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
        return 0
    if args.forget:
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = dict(os.environ, QUICKBRUSH_CACHE_DIR=str(cache), QUICKBRUSH_MODELS=str(root / "no_models"),
               QUICKBRUSH_DATA_DIR=str(root / "data"), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    (root / "no_models").mkdir(exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "sd_speed", "when": time.strftime("%Y-%m-%d %H:%M"), "device": args.device,
        "cpu": runtimes.cpu_summary(), "versions": versions(), "load_average_start": list(os.getloadavg()),
        "prompt": PROMPT, "seed": SEED, "repeats": args.repeats, "runs": {},
    }
    try:
        for arch, size in plan(args):
            folder = root / "models" / model_folder_name(arch)
            built = None
            if not (folder / "model_index.json").is_file():
                started = time.perf_counter()
                built = run_child(["--child", arch, "--build", "--model", str(folder)], env, out / f"build-{arch}.log")
                if "error" in built:
                    report["runs"][f"{arch}@{size}"] = {"build": built}
                    continue
                os.sync()  # writing gigabytes back must not compete with the timed runs
                built = round(time.perf_counter() - started, 1)
            work = out / f"{arch}-{size}"
            work.mkdir(parents=True)
            steps, guidance = recipe(folder)
            entry: dict[str, Any] = {"architecture": arch, "size": size, "steps": steps, "guidance": guidance,
                                     "build_s": built, "paths": {}}
            report["runs"][f"{arch}@{size}"] = entry
            for path in paths:
                print(f"sd_speed: {arch} {size}px {path}", file=sys.stderr, flush=True)
                prepared = None
                if path == "openvino_taesd":
                    prepared = run_child(child_argv(path, folder, size, work, args, ir, "--prepare"), env,
                                         work / f"{path}.prepare.log")
                elif path.startswith("quickbrush") and not any(p.startswith("quickbrush") for p in entry["paths"]):
                    # The first Quickbrush path probes and remembers; the next starts from that.
                    prepared = run_child(child_argv(path, folder, size, work, args, ir, "--first-use"), env,
                                         work / f"{path}.first_use.log")
                result = run_child(child_argv(path, folder, size, work, args, ir), env, work / f"{path}.log")
                if prepared is not None:
                    result["prepare" if path == "openvino_taesd" else "first_use"] = prepared
                    if "conversion_s" in prepared:
                        result["conversion_s"] = prepared["conversion_s"]
                    if "first_use_s" in prepared:
                        result["first_use_s"] = prepared["first_use_s"]
                        result["choice"] = prepared.pop("choice", None)
                if path != "diffusers_fp32":
                    tiny = path in ("openvino_taesd", "quickbrush_tiny")
                    reference_image = work / ("reference_tiny.png" if tiny else "diffusers_fp32.png")
                    result["agreement"] = {
                        "unet_rel_error": relative_error(work / f"{path}.unet.npy", work / "diffusers_fp32.unet.npy"),
                        "text_encoder_rel_error": relative_error(work / f"{path}.text.npy",
                                                                 work / "diffusers_fp32.text.npy"),
                        "psnr_db": psnr(work / f"{path}.png", reference_image),
                        "psnr_reference": "diffusers fp32 latents through TAESD (torch fp32)" if tiny
                        else "diffusers fp32 image",
                    }
                entry["paths"][path] = result
                print(f"sd_speed:   {json.dumps({k: result.get(k) for k in ('e2e_ms', 'path', 'error')})}",
                      file=sys.stderr, flush=True)
        report["load_average_end"] = list(os.getloadavg())
        summarise(report, args)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    report["kept"] = str(keep) if keep else None
    print(json.dumps(report, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES),
                        choices=list(ARCHITECTURES) + ["tiny"], metavar="ARCH",
                        help=f"which models (default: {' '.join(ARCHITECTURES)})")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="image sides in px (default 512 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after one warm-up call (default 3)")
    parser.add_argument("--paths", nargs="+", default=None, choices=sorted(set(CPU_PATHS + CUDA_PATHS)),
                        metavar="PATH", help="which paths (default: all of the device's); agreement needs diffusers_fp32")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="keep models, the baseline's IR and Quickbrush's cache here for the next run")
    parser.add_argument("--forget", action="store_true", help="empty Quickbrush's cache first (choices, IR)")
    parser.add_argument("--quick", action="store_true", help="SD-Turbo at 512 px only")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=None,
                        help="also images per second at this batch (default: 8 on cuda, none on cpu)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the children's commands")
    # The children's own arguments.
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--ir", help=argparse.SUPPRESS)
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first-use", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch is None:
        args.batch = 8 if args.device == "cuda" else 1
    if args.child:
        return child_main(args)
    if args.quick:
        args.architectures, args.sizes = ["sd_turbo"], [512]
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
