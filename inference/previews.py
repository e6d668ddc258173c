"""Cheap live previews: a linear map from the 4 latent channels to RGB, no decoder needed.

The coefficients are the least-squares fits used across the Stable Diffusion tool ecosystem
(SD 1.x/2.x share a VAE latent space; SDXL has its own). A later tiny decoder can replace this.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

_SD_FACTORS = torch.tensor(
    [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
)
_SD_BIAS = torch.zeros(3)
_SDXL_FACTORS = torch.tensor(
    [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]]
)
_SDXL_BIAS = torch.tensor([0.1084, -0.0175, -0.0011])


def latents_to_preview(latents: torch.Tensor, family: str = "sd1", max_side: int = 256) -> Image.Image | None:
    """RGB approximation of the first image in a (B, 4, h, w) latent batch."""
    if latents.ndim != 4 or latents.shape[1] != 4:
        return None
    factors, bias = (_SDXL_FACTORS, _SDXL_BIAS) if family == "sdxl" else (_SD_FACTORS, _SD_BIAS)
    lat = latents[0].detach().to("cpu", torch.float32)
    rgb = torch.einsum("chw,cr->hwr", lat, factors) + bias
    array = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    image = Image.fromarray(np.ascontiguousarray(array), "RGB")
    # Latents are 1/8 of the image; upscaling a little makes the preview readable without cost.
    scale = max(1, max_side // max(image.size))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.BILINEAR)
    return image
