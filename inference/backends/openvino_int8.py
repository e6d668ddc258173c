"""The UNet in int8 for OpenVINO: NNCF post-training quantisation, calibrated on the model's own latents.

Post-training quantisation sets each int8 range from the activations it sees, so those must be
the ones the UNet meets in use: `calibration_inputs` runs the model's own pipeline (its preset's
scheduler, steps and guidance, at its native size) on a handful of varied prompts and records
every UNet call's inputs. A one-step model meets only the first noise level that way, while its
designer may well run it at two to four steps, so half its prompts run at the preset's most steps
(four at most) and the later noise levels come from its own trajectories. The pipeline runs with
the OpenVINO UNet at the CPU's native precision meanwhile (several times faster than the torch
one at 512 px); the text encoder stays torch's, so the inputs are the reference's own.

The quantisation (`quantized`) is what optimum-intel calls hybrid for diffusion UNets: the
convolutions, where most of the arithmetic is, get int8 weights and activations; the MatMuls
with weights (attention projections, feed-forwards, time embedding) get int8 weights only and
compute in the graph's float precision; the first and last convolutions stay in float. Measured
on SD-Turbo's UNet at 512 px (random weights; two cores of an AMD EPYC with AVX-512 VNNI and
BF16; one call; relative L2 error against torch float32 at the first step of a one-step
sampler): float32 4.3 s, bf16 2.2 s (0.011), hybrid int8 1.6-1.7 s (0.077), and int8 for the
MatMuls' activations too (plain nncf.quantize, ModelType.TRANSFORMER: SCHEME "full") 1.3-1.4 s
(0.081). Full is faster, hybrid is the one under inference.runtimes.AGREEMENT (0.08), so
hybrid it is; where the CPU has VNNI but no native bf16 (the graph around the int8 layers then
in float32) full's lead grows (2.8 s against 3.9 s on this CPU), which is the case to revisit
with trained weights. SmoothQuant, on by default for transformers, moved the error by 0.004 and
cost a third of the quantisation's time: off.

The result goes beside the float IR as unet.int8.xml/.bin, swapped in whole: a killed
quantisation leaves temporaries that are never read, and they are removed the next time.

nncf is imported here only, inside `quantize`: it pulls scikit-learn and scipy, which nothing
else needs. Its telemetry goes through openvino_telemetry, which inference.privacy blocks; nncf
then sends nothing (its own stub).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

XML = "unet.int8.xml"
PARTIAL = ".unet.int8.partial"  # a folder beside the IR, removed whole on success or failure
REPORT = "unet.int8.json"  # how the int8 UNet was made (scheme, samples, seconds)

# Varied in subject, style and composition, so the activation ranges are not one picture's.
PROMPTS = (
    "a red apple on a wooden table, studio photo",
    "portrait of an old fisherman, dramatic light, oil painting",
    "a misty mountain lake at sunrise, wide landscape",
    "a neon-lit city street at night in the rain",
    "watercolour sketch of a cat sleeping on a windowsill",
    "an isometric low-poly castle, bright colours, 3d render",
    "macro photo of a dragonfly on a leaf",
    "abstract geometric shapes, bauhaus poster",
)
SAMPLES = 12  # UNet inputs NNCF calibrates on
MIN_PROMPTS = 3
MOST_STEPS = 8  # a long schedule is calibrated on its shape at this many steps (the same noise range)
SCHEME = "hybrid"  # or "full": the MatMuls' activations in int8 too (see above)


def ready(folder: Path) -> bool:
    """Whether folder holds an int8 UNet made by this scheme: one left by another scheme (an
    older Quickbrush, or a measurement) is made again rather than reused."""
    try:
        report = json.loads((folder / REPORT).read_text())
    except (OSError, ValueError):
        return False
    return (folder / XML).is_file() and isinstance(report, dict) and report.get("scheme") == SCHEME


def quantize(loaded: Any, folder: Path, on_stage: Callable[[str], None] | None = None,
             samples: int = SAMPLES, scheme: str = SCHEME) -> None:
    """Write folder/unet.int8.xml (+ .bin): the float UNet IR at folder/unet.xml quantised to
    int8, calibrated on UNet inputs of `loaded`'s own pipeline (a float32 torch pipeline, which
    is left as it was found)."""
    from inference.privacy import switch_off

    switch_off()  # before nncf imports: its telemetry must find openvino_telemetry blocked
    import openvino

    # NNCF reports every layer it leaves in float at INFO, hundreds of lines on the app's stderr.
    logging.getLogger("nncf").setLevel(logging.WARNING)

    from inference.backends.openvino_backend import core

    started = time.perf_counter()
    inputs = calibration_inputs(loaded, folder, samples, on_stage)
    collected = time.perf_counter() - started
    if on_stage is not None:
        on_stage("quantising the UNet to int8")
    model = quantized(core().read_model(str(folder / "unet.xml")), inputs, scheme)
    report = {"scheme": scheme, "samples": len(inputs), "collect_seconds": round(collected, 1),
              "seconds": round(time.perf_counter() - started, 1), "nncf": _nncf_version()}
    _save(model, folder, report, openvino)
    log.info("quantised the UNet to int8 (%s, %d samples) in %.1f s", scheme, len(inputs),
             time.perf_counter() - started)


def quantized(model: Any, inputs: list[list[Any]], scheme: str = SCHEME) -> Any:
    """`model` (an openvino.Model of the UNet) quantised to int8 on `inputs` (each a list of
    numpy arrays in the IR's input order). The first and last convolutions stay in float in
    either scheme: on SD-Turbo's UNet keeping them took the error from 0.10 to 0.08 at the first
    step and from 0.12 to 0.05 at the last, for no measurable time."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    if scheme not in ("hybrid", "full"):
        raise ValueError(f"unknown int8 scheme {scheme!r}")
    dataset = nncf.Dataset(inputs)
    kept = _edge_convolutions(model)
    if scheme == "hybrid":
        # optimum-intel's hybrid quantisation of diffusion UNets (its _get_hybrid_mixed_quantization_config
        # and _mixed_quantization): int8 weights only for the weighted MatMuls and embeddings,
        # then weights and activations of the rest, which is the convolutions.
        kept += _ops_with_weights(model)
        model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM,
                                      ignored_scope=nncf.IgnoredScope(types=["Convolution"]))
    # SmoothQuant off: see the module's docstring.
    return nncf.quantize(
        model, dataset, subset_size=len(inputs), model_type=nncf.ModelType.TRANSFORMER,
        preset=nncf.QuantizationPreset.MIXED, ignored_scope=nncf.IgnoredScope(names=kept, validate=False),
        advanced_parameters=AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(convolution=-1, matmul=-1)))


def _edge_convolutions(model: Any) -> list[str]:
    """The UNet's first convolution (on the latents in) and its last (to the prediction out)."""
    found = []
    for start, onward in ((model.get_parameters()[0], _consumers), (model.get_results()[0], _producers)):
        queue, seen = [start], set()
        while queue:
            node = queue.pop(0)
            if node.get_type_name() == "Convolution":
                found.append(node.get_friendly_name())
                break
            for following in onward(node):
                if following.get_friendly_name() not in seen:
                    seen.add(following.get_friendly_name())
                    queue.append(following)
    return found


def _consumers(node: Any) -> list[Any]:
    return [target.get_node() for output in node.outputs() for target in output.get_target_inputs()]


def _producers(node: Any) -> list[Any]:
    return [value.get_node() for value in node.input_values()]


def _constant_behind(op: Any, port: int) -> Any:
    """The Constant feeding `op`'s input `port` through Convert/FakeQuantize/Reshape, or None."""
    node = op.input_value(port).get_node()
    while True:
        kind = node.get_type_name()
        if kind == "Constant":
            return node
        if kind not in ("Convert", "FakeQuantize", "Reshape") or not node.inputs():
            return None
        node = node.input_value(0).get_node()


def _ops_with_weights(model: Any) -> list[str]:
    """The MatMuls with a constant operand and the embedding lookups (optimum-intel's
    _collect_ops_with_weights): what the hybrid scheme compresses instead of quantising."""
    names = []
    for op in model.get_ops():
        kind = op.get_type_name()
        matmul = kind == "MatMul" and (_constant_behind(op, 0) is not None or _constant_behind(op, 1) is not None)
        embedding = (kind == "Gather" and _constant_behind(op, 0) is not None
                     and op.input_value(0).get_element_type().get_type_name() in ("f16", "f32", "f64"))
        if matmul or embedding:
            names.append(op.get_friendly_name())
    return names


# --------------------------------------------------------------------------- calibration


def _arrays(args: tuple, kwargs: dict[str, Any], config: Any) -> tuple[float, list[Any]]:
    """One UNet call as (its timestep, its inputs as the IR takes them): float32 numpy arrays in
    the IR's order, the time projections done (openvino_backend._unet_forward and project_times)."""
    import torch

    from inference.backends.openvino_backend import project_times

    sample = args[0]
    timestep = args[1] if len(args) > 1 else kwargs["timestep"]
    hidden = args[2] if len(args) > 2 else kwargs["encoder_hidden_states"]
    arrays = [sample, timestep, hidden]
    if config.get("time_cond_proj_dim"):
        arrays.append(kwargs["timestep_cond"])
    if config.get("addition_embed_type") == "text_time":
        added = kwargs["added_cond_kwargs"]
        arrays += [added["text_embeds"], added["time_ids"]]
    arrays = project_times(config, arrays)
    when = float(torch.as_tensor(timestep, dtype=torch.float32).reshape(-1)[0])
    return when, [torch.as_tensor(a).detach().to(torch.float32).contiguous().numpy().copy() for a in arrays]


def _runs(preset: Any) -> list[int]:
    """The step count of each calibration prompt: the preset's (long schedules shortened to
    MOST_STEPS), alternating with its most steps (up to four) where the preset takes fewer."""
    steps = max(1, min(preset.steps, MOST_STEPS))
    more = min(max(preset.max_steps, steps), 4)
    if steps >= 4 or more <= steps:
        return [steps] * len(PROMPTS)
    return [steps if index % 2 == 0 else more for index in range(len(PROMPTS))]


def _call_for(loaded: Any) -> dict[str, Any]:
    """The pipeline arguments beyond the prompt for this model's task: a plain picture to edit or
    inpaint where the UNet takes one."""
    if loaded.in_channels not in (8, 9):
        return {"height": loaded.native, "width": loaded.native}
    import numpy as np
    from PIL import Image

    side = loaded.native
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    rgb = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (side, 1)), np.tile(ramp[:, None], (1, side))], -1)
    image = Image.fromarray(rgb.astype(np.uint8))
    if loaded.in_channels == 8:
        return {"image": image, "image_guidance_scale": loaded.preset.image_guidance}
    mask = Image.new("L", (side, side), 0)
    mask.paste(255, (side // 4, side // 4, 3 * side // 4, 3 * side // 4))
    return {"image": image, "mask_image": mask, "height": side, "width": side, "strength": 1.0}


def calibration_inputs(loaded: Any, folder: Path, samples: int = SAMPLES,
                       on_stage: Callable[[str], None] | None = None) -> list[list[Any]]:
    """`samples` UNet inputs recorded from the model's own pipeline, spread over the prompts and
    noise levels recorded (see `spread`)."""
    import torch

    from inference import runtimes
    from inference.backends import diffusers_backend as sd
    from inference.backends.openvino_backend import make_module

    pipe = loaded.pipe
    unet, scheduler = pipe.unet, pipe.scheduler
    config = unet.config
    recorded: list[tuple[float, list[Any]]] = []
    # SDXL's pipeline checks its time ids against the width of the UNet's added embedding.
    extras = {"add_embedding": unet.add_embedding} if config.get("addition_embed_type") == "text_time" else {}
    fast = make_module("unet", folder / "unet.xml", runtimes.native_precision(), config, extras)
    fast.register_forward_pre_hook(lambda _m, args, kwargs: recorded.append(_arrays(args, kwargs, config)),
                                   with_kwargs=True)
    preset = loaded.preset
    call = _call_for(loaded)
    if preset.eta is not None and preset.scheduler == "tcd":
        call["eta"] = preset.eta
    pipe.register_modules(unet=fast)
    try:
        for index, steps in enumerate(_runs(preset)):
            if len(recorded) >= samples and index >= MIN_PROMPTS:
                break
            if on_stage is not None:
                on_stage(f"collecting calibration latents for int8 ({index + 1})")
            pipe.scheduler = sd.make_scheduler(loaded, preset.scheduler)
            with torch.inference_mode():
                pipe(prompt=PROMPTS[index], num_inference_steps=steps, guidance_scale=preset.guidance_for(steps),
                     generator=torch.Generator().manual_seed(index), output_type="latent", **call)
    finally:
        pipe.register_modules(unet=unet)
        pipe.scheduler = scheduler
        fast.release()
    if not recorded:
        raise RuntimeError("the pipeline never called its UNet")
    return spread(recorded, samples)


def spread(recorded: list[tuple[float, list[Any]]], count: int) -> list[list[Any]]:
    """`count` of the recorded (timestep, UNet inputs), as many noise levels and prompts as they
    hold: round-robin over the timesteps, each taking its calls of successive prompts in turn
    (evenly spaced picks alias with the schedule's period: every fourth call of 8-step runs
    holds two noise levels)."""
    by_timestep: dict[float, list[list[Any]]] = {}
    for when, arrays in recorded:
        by_timestep.setdefault(when, []).append(arrays)
    groups = [by_timestep[t] for t in sorted(by_timestep, reverse=True)]
    chosen: list[list[Any]] = []
    for turn in range(max(len(g) for g in groups)):
        for index, group in enumerate(groups):
            if turn < len(group) and len(chosen) < count:
                chosen.append(group[(turn + index) % len(group)])
    return chosen


# --------------------------------------------------------------------------- saving


def _save(model: Any, folder: Path, report: dict[str, Any], openvino: Any) -> None:
    """Swap the int8 IR in beside the float one: written whole in a temporary folder, then the
    .bin and last the .xml renamed in (the .xml is what readers look for, and never appears
    before its weights)."""
    target = folder / XML
    partial = folder / PARTIAL
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        openvino.save_model(model, str(partial / XML))
        (partial / REPORT).write_text(json.dumps(report, indent=1))
        target.unlink(missing_ok=True)  # an old .xml must never meet the new .bin
        for name in (REPORT, target.with_suffix(".bin").name, XML):
            os.replace(partial / name, folder / name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _nncf_version() -> str:
    import nncf

    return nncf.__version__
