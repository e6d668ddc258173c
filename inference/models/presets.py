"""Few-step recipes: which scheduler, how many steps and what guidance each model family wants.

One data table, so a designer never has to know that SD-Turbo wants trailing Euler at guidance 0
while an LCM-LoRA wants the LCM scheduler at guidance 1. The model catalog extends it by adding
rows; the first row whose pattern matches the model's name (or one of its LoRAs' names) wins.
Values follow each model's card on the Hugging Face Hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterable


@dataclass(frozen=True)
class Preset:
    name: str
    # Regular expressions matched (case-insensitively) against the model's and LoRAs' names.
    patterns: tuple[str, ...]
    scheduler: str | None  # a key of SCHEDULERS; None keeps the model's own scheduler
    steps: int
    guidance: float
    max_steps: int = 50
    image_guidance: float = 1.5
    # Extra keyword arguments for the scheduler (TCD's gamma goes to the pipeline as `eta`).
    eta: float | None = None
    few_step: bool = True
    # Guidance per step count, ((steps, scale), ...), for models tuned that way (the built-in one);
    # empty: `guidance` at every step count.
    guidance_by_steps: tuple[tuple[int, float], ...] = ()

    def guidance_for(self, steps: int) -> float:
        return guidance_for(steps, self.guidance, dict(self.guidance_by_steps))


def guidance_for(steps: int, default: float, by_steps: dict[int, float]) -> float:
    """The guidance scale for a step count: the entry for the largest step count in `by_steps`
    not above `steps` (the smallest entry when all are above), or `default` when there are none.

    Few steps want less guidance than more: each Euler step moves by its guided velocity times
    its length, so one step at the scale four steps like overshoots into saturated colour."""
    if not by_steps:
        return default
    below = [k for k in by_steps if k <= steps]
    return by_steps[max(below) if below else min(by_steps)]


PRESETS: list[Preset] = [
    Preset("sdxs", (r"sdxs",), "euler_trailing", steps=1, guidance=0.0, max_steps=4),
    Preset("sdxl-turbo", (r"sdxl[-_]?turbo",), "euler_trailing", steps=1, guidance=0.0, max_steps=4),
    Preset("sd-turbo", (r"sd[-_]?turbo", r"\bturbo\b"), "euler_trailing", steps=1, guidance=0.0, max_steps=4),
    Preset("hyper-sd-1step", (r"hyper[-_]?sd.*1[-_]?step",), "tcd", steps=1, guidance=0.0, max_steps=8, eta=1.0),
    Preset("hyper-sd", (r"hyper[-_]?sd",), "ddim_trailing", steps=4, guidance=0.0, max_steps=8),
    Preset("tcd", (r"\btcd\b", r"tcd[-_]"), "tcd", steps=4, guidance=0.0, max_steps=8, eta=0.3),
    Preset("lcm-lora", (r"lcm[-_]?lora",), "lcm", steps=4, guidance=1.0, max_steps=8),
    # Full LCM distillations embed guidance in the UNet (w-conditioning); 8 is their card's value.
    Preset("lcm", (r"\blcm\b", r"lcm[-_]", r"latent[-_]?consistency"), "lcm", steps=4, guidance=8.0, max_steps=8),
    # FLUX.2 klein is step-distilled: 4 steps at guidance 1.0 (its card), its own flow-matching scheduler.
    Preset("flux2-klein", (r"flux\.?2.*klein",), None, steps=4, guidance=1.0, max_steps=8),
    Preset(
        "instruct-pix2pix",
        (r"pix2pix",),
        "euler_a",
        steps=10,
        guidance=7.0,
        image_guidance=1.5,
        few_step=False,
    ),
]

# Used when nothing matches: an ordinary SD-family model.
DEFAULT_PRESET = Preset("default", (), "dpmpp_2m_karras", steps=20, guidance=7.0, max_steps=150, few_step=False)

# name -> (diffusers scheduler class name, config overrides)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_trailing": ("EulerDiscreteScheduler", {"timestep_spacing": "trailing"}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "ddim_trailing": ("DDIMScheduler", {"timestep_spacing": "trailing"}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "lcm": ("LCMScheduler", {}),
    "tcd": ("TCDScheduler", {}),
}


def match_preset(names: Iterable[str], explicit: str | None = None) -> Preset:
    """The preset for a model: by explicit name, else by the first row matching any of `names`.

    LoRA names come before the base model's name in `names` when a LoRA decides the recipe
    (an LCM-LoRA on a plain SD 1.5 is an LCM model).
    """
    if explicit:
        for preset in PRESETS + [DEFAULT_PRESET]:
            if preset.name == explicit:
                return preset
        raise KeyError(f"Unknown preset {explicit!r}; known: {', '.join(p.name for p in PRESETS)}")
    names = [n.lower() for n in names if n]
    for name in names:
        for preset in PRESETS:
            if any(re.search(pattern, name) for pattern in preset.patterns):
                return preset
    return DEFAULT_PRESET


def with_steps_from_name(preset: Preset, names: Iterable[str]) -> Preset:
    """Hyper-SD and similar LoRAs are trained for the step count in their file name ("8steps")."""
    for name in names:
        found = re.search(r"(\d+)[-_]?steps?", name.lower())
        if found and preset.few_step:
            steps = int(found.group(1))
            if 1 <= steps <= preset.max_steps:
                return replace(preset, steps=steps)
    return preset
