"""The built-in model's sampler, written once for both of its runtimes (onnxruntime in
inference/builtin_onnx.py, torch in inference/builtin.py), in numpy so that the shipped runtime
imports no torch.

A runtime subclasses `Sampler` and provides the four parts that touch its networks (`encode`,
`decode`, `embed`, `velocity`, all on numpy float32 arrays) and the settings it reads from
quickbrush_builtin.json; everything else is here: the conditioning of each task, the noise, the
sigma schedule, classifier-free guidance, the Euler steps, image-to-image strength, the inpaint
blend, callbacks and cancelling. The noise comes from one generator, numpy's
`default_rng(seed)`, so a seed gives the same picture on either runtime, on every machine.

The steps are FlowMatchEulerDiscreteScheduler's on the straight path x_t = (1 - t) x_0 + t noise
(the model predicts noise - x_0): x <- x + (sigma_next - sigma) * v, ending at sigma 0, at the
times of `sigma_schedule`; tests/inference/test_builtin.py checks the two agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def sigma_schedule(steps: int, strength: float = 1.0, shift: float = 1.0) -> np.ndarray:
    """The noise levels the sampler starts each Euler step at: from `strength` down, `steps` of them.

    Evenly spaced when `shift` is 1; above 1 the spacing moves toward the noisy end (SD3's time
    shift, s*t / (1 + (s-1)*t)), where a few-step sampler decides the layout. Scaled by `strength`
    after the shift, so image-to-image still starts exactly at `strength`."""
    t = np.linspace(1.0, 1.0 / steps, steps)
    return strength * shift * t / (1 + (shift - 1) * t)


def noise(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """The starting noise for `seed`: float64 normals from numpy's default generator, as float32.
    Part of what a seed means: changing how it is drawn changes every saved recipe's picture."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def latent_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A pixel mask (uint8 or bool [H, W], nonzero = paint) -> float32 [1, 1, h, w] in {0, 1}; any
    painted pixel marks its latent cell (max pooling), so the model repaints the whole footprint
    of the stroke."""
    m = np.asarray(mask)
    m = (m > 127) if m.dtype == np.uint8 else (m > 0.5)
    h, w = size
    H, W = m.shape
    # Cell edges as adaptive pooling computes them: floor(i*H/h) to ceil((i+1)*H/h).
    out = np.zeros((1, 1, h, w), np.float32)
    for i in range(h):
        r0, r1 = (i * H) // h, -((-(i + 1) * H) // h)
        rows = m[r0:r1].any(0)
        for j in range(w):
            c0, c1 = (j * W) // w, -((-(j + 1) * W) // w)
            out[0, 0, i, j] = rows[c0:c1].any()
    return out


class Sampler:
    """`conditioning` and `sample` over a runtime's networks; see the module doc for what a
    subclass provides."""

    latent_channels: int
    size: int  # native output, square
    steps: int  # default step count
    shift: float  # the time shift of sigma_schedule

    def guidance_for(self, steps: int) -> float:
        raise NotImplementedError

    def encode(self, rgba: np.ndarray) -> np.ndarray:
        """uint8 RGBA [B, H, W, 4] -> unit-scale latents float32 [B, C, H/8, W/8]."""
        raise NotImplementedError

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Unit-scale latents float32 [B, C, h, w] -> uint8 RGBA [B, 8h, 8w, 4]."""
        raise NotImplementedError

    def embed(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token vectors float32 [B, TOKENS, D] and pooled vectors [B, D]; "" is the null prompt."""
        raise NotImplementedError

    def velocity(self, x: np.ndarray, t: np.ndarray, tokens: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        """The UNet: model input float32 [B, 2C+2, h, w] and times [B] (sigma * 1000) -> [B, C, h, w]."""
        raise NotImplementedError

    # ---------------------------------------------------------------- shared

    def conditioning(self, task: str, batch: int, image: np.ndarray | None = None,
                     mask: np.ndarray | None = None) -> np.ndarray:
        """The condition latent, mask and edit flag channels for one task (see inference/builtin.py)."""
        c = self.latent_channels
        h, w = (image.shape[0] // 8, image.shape[1] // 8) if image is not None else (self.size // 8,) * 2
        cond = np.zeros((batch, c + 2, h, w), np.float32)
        if task == "generate":
            cond[:, c] = 1
        elif task == "inpaint":
            latent = self.encode(image[None])
            small = latent_mask(mask, (h, w))
            cond[:, :c] = latent * (1 - small)
            cond[:, c] = small
        elif task == "edit":
            cond[:, :c] = self.encode(image[None])
            cond[:, c + 1] = 1
        else:
            raise ValueError(f"unknown task {task!r}")
        return cond

    def sample(self, prompt: str, task: str = "generate", *, image: np.ndarray | None = None,
               mask: np.ndarray | None = None, steps: int | None = None, guidance: float | None = None,
               seed: int = 0, batch: int = 1, negative_prompt: str = "", strength: float = 1.0,
               callback: Callable[[int, int, np.ndarray], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> tuple[np.ndarray | None, dict]:
        """RGBA uint8 [batch, H, W, 4] and stage timings. `image` (uint8 RGBA [H, W, 4]) and `mask`
        (uint8 [H, W]) share one size, a multiple of 32 px; text to image runs at the native size.

        `strength` below 1 starts from `image` part-way along the path (image to image), so all
        `steps` still run, over the last `strength` of it. `callback(step, steps, latents)` gets
        the latents after each step. `cancelled` is asked before each step; when it says yes,
        sampling stops and None is returned in place of the images.
        """
        steps = steps or self.steps
        guidance = self.guidance_for(steps) if guidance is None else guidance
        timings: dict[str, float] = {}
        start = time.perf_counter()
        cond = self.conditioning(task, batch, image, mask)
        timings["encode_s"] = time.perf_counter() - start

        use_cfg = guidance > 1.0
        tokens, pooled = self.embed([prompt] * batch + ([negative_prompt] * batch if use_cfg else []))
        c = self.latent_channels
        h, w = cond.shape[-2:]
        x = noise(seed, (batch, c, h, w))
        strength = min(1.0, max(0.0, float(strength)))
        if strength < 1.0 and image is not None:
            x = (1 - strength) * self.encode(image[None]) + strength * x
        sigmas = np.append(sigma_schedule(steps, strength, self.shift), 0.0) if strength > 0 else np.zeros(1)
        start = time.perf_counter()
        for i in range(len(sigmas) - 1):
            if cancelled is not None and cancelled():
                return None, timings
            model_in = np.concatenate([x, cond], 1)
            if use_cfg:
                model_in = np.concatenate([model_in, model_in])
            t = np.full((model_in.shape[0],), sigmas[i] * 1000, np.float32)
            v = self.velocity(model_in, t, tokens, pooled)
            if use_cfg:
                v_text, v_null = np.split(v, 2)
                v = v_null + guidance * (v_text - v_null)
            x = (x + (sigmas[i + 1] - sigmas[i]) * v).astype(np.float32)
            if callback is not None:
                callback(i + 1, steps, x)
        timings["denoise_s"] = time.perf_counter() - start
        start = time.perf_counter()
        if task == "inpaint":
            # Outside the mask the source latent stands: only the painted area changes.
            small = cond[:, c : c + 1]
            x = x * small + cond[:, :c]  # the condition latent is already zero under the mask
        out = self.decode(x)
        timings["decode_s"] = time.perf_counter() - start
        return out, timings
