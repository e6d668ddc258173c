"""Write the diffusers config folders Quickbrush ships for single-file checkpoints.

A `.safetensors` checkpoint in the original (LDM) layout holds weights only; diffusers needs each
component's config to build the networks around them, and without one it fetches the reference
repository's configs from the Hub. These folders are those configs, written from the published
hyper-parameters of each architecture (the values in the reference repositories' config.json
files, listed below by value): no weights, nothing downloaded.

The CLIP tokenizer (vocab.json, merges.txt) is made from OpenAI CLIP's BPE merge list, as
OpenAI's own `SimpleTokenizer` builds it (bytes, bytes + "</w>", the first 48,894 merges, the two
special tokens: 49,408 ids). Every SD family uses that one vocabulary; the tokenizers differ
only in their padding token, which each folder's tokenizer_config.json says.

Run: python inference/models/configs/make_configs.py --bpe path/to/bpe_simple_vocab_16e6.txt.gz
(the merge list ships in the open_clip_torch wheel as open_clip/bpe_simple_vocab_16e6.txt.gz).
Without --bpe the tokenizer files already here are kept.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKENIZER = "clip-tokenizer"  # the shared vocabulary; see inference.models.importer.shipped_tokenizer
DIFFUSERS_VERSION = "0.42.1"

BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
             trained_betas=None, clip_sample=False, set_alpha_to_one=False, steps_offset=1)

# stable-diffusion-v1-5 (and its inpainting and InstructPix2Pix offspring): the UNet of LDM's
# v1-inference.yaml (model_channels 320, channel_mult 1,2,4,4, 8 heads, context 768).
SD1_UNET = dict(
    _class_name="UNet2DConditionModel", sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=[320, 640, 1280, 1280],
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, norm_eps=1e-5, act_fn="silu",
    downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, mid_block_scale_factor=1, center_input_sample=False,
    use_linear_projection=False, upcast_attention=False,
)
# stable-diffusion-2-1 (768 px, v-prediction) and -2-1-base (512 px, epsilon): v2-inference(-v).yaml,
# head dim 64 (5, 10, 20, 20 heads), linear projections, context 1024 (OpenCLIP ViT-H).
SD2_UNET = dict(SD1_UNET, cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20], use_linear_projection=True)
# stable-diffusion-xl-base-1.0: three levels, transformer depths 1, 2, 10, context 2048 (CLIP-L
# and OpenCLIP bigG side by side), pooled text + size conditioning (2816 = 1280 + 6 x 256).
SDXL_UNET = dict(
    SD1_UNET, sample_size=128, block_out_channels=[320, 640, 1280],
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    attention_head_dim=[5, 10, 20], transformer_layers_per_block=[1, 2, 10], cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
# The KL-f8 autoencoder every family shares; SDXL's retrained one differs in scale and fp16 needs.
VAE = dict(
    _class_name="AutoencoderKL", in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
    latent_channels=4, norm_num_groups=32, act_fn="silu", sample_size=512, scaling_factor=0.18215,
)
SDXL_VAE = dict(VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True)

# openai/clip-vit-large-patch14's text tower (SD 1.x; SDXL's first encoder).
CLIP_L = dict(
    architectures=["CLIPTextModel"], model_type="clip_text_model", vocab_size=49408, hidden_size=768,
    intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
    hidden_act="quick_gelu", projection_dim=768, layer_norm_eps=1e-5, attention_dropout=0.0, dropout=0.0,
    initializer_range=0.02, initializer_factor=1.0, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    torch_dtype="float32",
)
# OpenCLIP ViT-H/14 as SD 2.x uses it: 23 of its 24 layers (SD 2 reads the penultimate one).
OPENCLIP_H = dict(CLIP_L, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                  hidden_act="gelu", projection_dim=512)
# OpenCLIP ViT-bigG/14, SDXL's second encoder, with its projection (the pooled embedding).
OPENCLIP_BIGG = dict(CLIP_L, architectures=["CLIPTextModelWithProjection"], hidden_size=1280,
                     intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20, hidden_act="gelu",
                     projection_dim=1280)

PNDM = dict(BETAS, _class_name="PNDMScheduler", skip_prk_steps=True, prediction_type="epsilon")
DDIM = dict(BETAS, _class_name="DDIMScheduler", prediction_type="epsilon")
EULER_A = dict(BETAS, _class_name="EulerAncestralDiscreteScheduler", prediction_type="epsilon")
EULER = dict(BETAS, _class_name="EulerDiscreteScheduler", prediction_type="epsilon", interpolation_type="linear",
             timestep_spacing="leading", use_karras_sigmas=False)


def _tokenizer_config(pad: str) -> dict:
    return {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
            "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
            "pad_token": pad, "clean_up_tokenization_spaces": True}


CLIP_PAD = "<|endoftext|>"
OPENCLIP_PAD = "!"  # OpenCLIP pads with id 0

# name -> (pipeline class, components); each component is (library, class, config file, config).
# Native sizes: sd1* and sd2-base 512 px, sd2-v 768 px, sdxl* 1024 px.
def _sd(pipeline: str, unet: dict, vae: dict, text: dict, scheduler: dict, pad: str) -> tuple[str, dict]:
    return pipeline, {
        "unet": ("diffusers", "UNet2DConditionModel", "config.json", unet),
        "vae": ("diffusers", "AutoencoderKL", "config.json", vae),
        "text_encoder": ("transformers", text["architectures"][0], "config.json", text),
        "tokenizer": ("transformers", "CLIPTokenizer", "tokenizer_config.json", _tokenizer_config(pad)),
        "scheduler": ("diffusers", scheduler["_class_name"], "scheduler_config.json", scheduler),
    }


def _sdxl(pipeline: str, unet: dict) -> tuple[str, dict]:
    _, components = _sd(pipeline, unet, SDXL_VAE, CLIP_L, EULER, CLIP_PAD)
    components["text_encoder_2"] = ("transformers", "CLIPTextModelWithProjection", "config.json", OPENCLIP_BIGG)
    components["tokenizer_2"] = ("transformers", "CLIPTokenizer", "tokenizer_config.json",
                                 _tokenizer_config(OPENCLIP_PAD))
    return pipeline, components


CONFIGS = {
    "sd1": _sd("StableDiffusionPipeline", SD1_UNET, VAE, CLIP_L, PNDM, CLIP_PAD),
    "sd1-inpaint": _sd("StableDiffusionInpaintPipeline", dict(SD1_UNET, in_channels=9), VAE, CLIP_L, PNDM, CLIP_PAD),
    "sd1-pix2pix": _sd("StableDiffusionInstructPix2PixPipeline", dict(SD1_UNET, in_channels=8), VAE, CLIP_L,
                       EULER_A, CLIP_PAD),
    "sd2-v": _sd("StableDiffusionPipeline", dict(SD2_UNET, sample_size=96, upcast_attention=True),
                 dict(VAE, sample_size=768), OPENCLIP_H, dict(DDIM, prediction_type="v_prediction"), OPENCLIP_PAD),
    "sd2-base": _sd("StableDiffusionPipeline", SD2_UNET, VAE, OPENCLIP_H, PNDM, OPENCLIP_PAD),
    "sd2-inpaint": _sd("StableDiffusionInpaintPipeline", dict(SD2_UNET, in_channels=9), VAE, OPENCLIP_H, DDIM,
                       OPENCLIP_PAD),
    "sdxl": _sdxl("StableDiffusionXLPipeline", SDXL_UNET),
    "sdxl-inpaint": _sdxl("StableDiffusionXLInpaintPipeline", dict(SDXL_UNET, in_channels=9)),
}


def clip_vocabulary(bpe_gz: Path) -> tuple[dict[str, int], list[str]]:
    """CLIP's vocabulary and merges from its BPE merge list, as OpenAI's SimpleTokenizer makes them."""
    lines = gzip.open(bpe_gz, "rt", encoding="utf-8").read().split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    symbols = [chr(c) for c in chars]
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def write(out: Path = HERE, bpe_gz: Path | None = None) -> None:
    for name, (pipeline, components) in CONFIGS.items():
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        index: dict = {"_class_name": pipeline, "_diffusers_version": DIFFUSERS_VERSION}
        if "text_encoder_2" in components:
            index["force_zeros_for_empty_prompt"] = True
            if "Inpaint" in pipeline:
                index["requires_aesthetics_score"] = False
        else:
            index.update(requires_safety_checker=False, safety_checker=[None, None], feature_extractor=[None, None])
        index["image_encoder"] = [None, None]
        for component, (library, cls, filename, config) in components.items():
            index[component] = [library, cls]
            config = dict(config)
            if library == "diffusers":
                config["_class_name"] = cls
                config["_diffusers_version"] = DIFFUSERS_VERSION
            (folder / component).mkdir(parents=True)
            (folder / component / filename).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    if bpe_gz is not None:
        vocab, merges = clip_vocabulary(bpe_gz)
        tokenizer = out / TOKENIZER
        tokenizer.mkdir(exist_ok=True)
        (tokenizer / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
        (tokenizer / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bpe", type=Path, help="CLIP's bpe_simple_vocab_16e6.txt.gz")
    args = parser.parse_args()
    write(HERE, args.bpe)
