"""Real Stable Diffusion architectures with random weights, saved as diffusers folders.

Speed does not depend on weight values, so the benchmarks build the shapes of real models
locally (nothing is downloaded) and load them back through Quickbrush's real loading code. The
configs are those the public models ship (their config.json files, copied here by value):

- `sd15`: runwayml/stable-diffusion-v1-5 (UNet 860M, VAE 84M, CLIP ViT-L text 123M parameters);
  `scheduler="lcm"` gives it the LCMScheduler that an LCM-LoRA runs with.
- `sd_turbo`: stabilityai/sd-turbo, i.e. the SD 2.1 UNet (linear projections, head dims
  5/10/20/20, cross-attention width 1024), the OpenCLIP ViT-H text tower as SD 2.x ships it
  (23 layers, width 1024) and the SD VAE, with its trailing Euler scheduler.
- `sdxs_like`: an SDXS-sized small UNet (three blocks, one layer each, no mid-block attention)
  with the SD 2.1 text encoder and VAE: the class of one-step models that trade UNet depth for
  speed.
- `taesd`: the TAESD tiny autoencoder (diffusers' AutoencoderTiny defaults are madebyollin/taesd's
  config), saved as a model's `vae_tiny/` so Quickbrush finds it.

The tokenizer is the small byte-level CLIP tokenizer of tests/tiny_models.py (ids stay below
the real vocabulary, which is all a text encoder's speed depends on).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SD_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    latent_channels=4, norm_num_groups=32, sample_size=512, scaling_factor=0.18215,
)
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, norm_eps=1e-5, act_fn="silu",
    downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, mid_block_scale_factor=1,
)
SD21_UNET = dict(SD15_UNET, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
SDXS_UNET = dict(
    SD21_UNET, layers_per_block=1, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(5, 10, 20), mid_block_type=None,
)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
              bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
OPENCLIP_H = dict(CLIP_L, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                  hidden_act="gelu", projection_dim=512)

ARCHITECTURES = ("sd_turbo", "sd15_lcm", "sdxs_like")
# For trying the app's other job kinds on real shapes (not in the speed benchmark's default set):
# an SD 1.5 inpainting UNet (9 input channels) and an InstructPix2Pix one (8), as
# runwayml/stable-diffusion-inpainting and timbrooks/instruct-pix2pix ship them.
KIND_ARCHITECTURES = ("sd15_inpaint", "sd15_pix2pix")


def _helpers():
    sys.path.insert(0, str(ROOT / "tests"))
    import tiny_models  # a byte-level CLIP tokenizer and the SD noise schedule, written locally

    tiny_models._quiet()
    return tiny_models


def build(folder: Path, architecture: str, tiny_decoder: bool = True, seed: int = 0) -> Path:
    """Save `architecture` (one of ARCHITECTURES, or "sd15") with random weights into `folder`."""
    import torch
    from diffusers import (AutoencoderKL, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, LCMScheduler,
                           PNDMScheduler, StableDiffusionInpaintPipeline, StableDiffusionInstructPix2PixPipeline,
                           StableDiffusionPipeline, UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    tiny = _helpers()
    folder = Path(folder)
    torch.manual_seed(seed)
    unet_config, text_config = {"sd15": (SD15_UNET, CLIP_L), "sd15_lcm": (SD15_UNET, CLIP_L),
                                "sd15_inpaint": (dict(SD15_UNET, in_channels=9), CLIP_L),
                                "sd15_pix2pix": (dict(SD15_UNET, in_channels=8), CLIP_L),
                                "sd_turbo": (SD21_UNET, OPENCLIP_H), "sdxs_like": (SDXS_UNET, OPENCLIP_H)}[architecture]
    unet = UNet2DConditionModel(**unet_config)
    vae = AutoencoderKL(**SD_VAE)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    tokenizer = tiny.write_clip_tokenizer(folder / "tokenizer", vocab_size=49408)
    if architecture == "sd15_lcm":
        scheduler = LCMScheduler(**tiny.SD_BETAS, set_alpha_to_one=True, steps_offset=1)
    elif architecture in ("sd15", "sd15_inpaint"):
        scheduler = PNDMScheduler(**tiny.SD_BETAS, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    elif architecture == "sd15_pix2pix":
        scheduler = EulerAncestralDiscreteScheduler(**tiny.SD_BETAS)
    else:
        scheduler = EulerDiscreteScheduler(**tiny.SD_BETAS, timestep_spacing="trailing", steps_offset=1)
    cls = {"sd15_inpaint": StableDiffusionInpaintPipeline,
           "sd15_pix2pix": StableDiffusionInstructPix2PixPipeline}.get(architecture, StableDiffusionPipeline)
    pipe = cls(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    if tiny_decoder:
        build_taesd(folder / "vae_tiny")
    return folder


def build_taesd(folder: Path) -> Path:
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(1)
    AutoencoderTiny().save_pretrained(folder, safe_serialization=True)
    return folder


def model_name(architecture: str) -> str:
    """The folder name, which picks the few-step preset (inference.models.presets) as the real
    model's name would."""
    return {"sd_turbo": "sd-turbo-random", "sd15_lcm": "sd15-lcm-lora-random", "sdxs_like": "sdxs-like-random",
            "sd15": "sd15-random", "sd15_inpaint": "sd15-inpainting-random",
            "sd15_pix2pix": "instruct-pix2pix-random"}[architecture]
