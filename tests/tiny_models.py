"""Tiny random-weight Stable Diffusion family models, built on disk for tests.

The recipe is the one diffusers' own fast tests use (``get_dummy_components()`` in
``tests/pipelines/stable_diffusion/test_stable_diffusion_inpaint.py``,
``test_stable_diffusion_instruction_pix2pix.py`` and
``tests/pipelines/stable_diffusion_xl/test_stable_diffusion_xl.py``): seed with
``torch.manual_seed(0)``, build two-block UNets, a two-block VAE and 32-wide CLIP text
encoders, then assemble the real pipeline class.  Every builder writes a normal diffusers
folder with ``save_pretrained`` so product code loads it back through its real loading
code (``DiffusionPipeline.from_pretrained(folder)``), and nothing is ever downloaded.

Sizes (what product code will see):

* The VAE has ``block_out_channels=[32, 64]``, i.e. two blocks and one downsampling step,
  so the **VAE scale factor is 2** (``2 ** (len(block_out_channels) - 1)``), not 8 as in
  real SD.  With a UNet ``sample_size`` of 32 latents, the pipelines' native (default)
  image size is therefore **64 x 64 px** (``build_sd(..., sample_size=s)`` gives ``2*s``).
* SD text2img / inpaint / pix2pix: 64 x 64.  SDXL: 64 x 64 as well (its UNet is also
  ``sample_size=32``).
* Image sizes must be multiples of ``2 * 2 = 4`` px here (VAE factor times the UNet's one
  downsampling step), not of 8/64 as with real models.

The tokenizer is written at test time (``write_clip_tokenizer``): the 256 byte-level
characters, their ``</w>`` variants, a handful of merges, dummy filler tokens, and the two
CLIP special tokens as the *last* two ids (998, 999), as in real CLIP where they are the two
highest ids.  The text encoders' ``bos_token_id``/``eos_token_id``/``pad_token_id`` are set
to match that tokenizer (diffusers' tests use 0/2/1 because they download
``hf-internal-testing/tiny-random-clip``; with ``eos_token_id == 2`` transformers falls back
to an ``argmax(input_ids)`` pooling that happens to pick the same position here, since
``<|endoftext|>`` is the highest id).

What ``from_single_file`` needed (diffusers 0.42.1 / transformers 5.24), learnt by reading
``diffusers/loaders/single_file.py``, ``single_file_model.py`` and ``single_file_utils.py``:

* Pass ``config=<diffusers folder>``.  Without it diffusers infers the model type from
  marker keys (``infer_diffusers_model_type``) and tries to fetch the *real* SD 1.5 configs
  from the Hub, which fails offline.  Beware: with ``local_files_only=True`` and no cached
  config, diffusers logs "Attempting to download the necessary config files" and retries
  with ``local_files_only=False``; only ``HF_HUB_OFFLINE=1`` stops that (it then raises
  ``LocalEntryNotFoundError``).  With ``config`` a local directory, every component's config
  (and the tokenizer/scheduler files) comes from that folder and only the weights come from
  the checkpoint.
* The text encoder is only taken from the checkpoint if the marker key
  ``cond_stage_model.transformer.text_model.embeddings.position_embedding.weight`` exists
  (``is_clip_model``); otherwise diffusers falls back to ``from_pretrained`` on the folder.
  transformers >= 5.6 *flattened* ``CLIPTextModel`` (its state dict and the saved
  ``model.safetensors`` have no ``text_model.`` prefix any more), but the original-format
  checkpoint must still spell the keys ``cond_stage_model.transformer.text_model.*``;
  diffusers strips ``text_model.`` again when the model has no ``text_model`` attribute.
* UNet and VAE are created on the meta device (``init_empty_weights``) and filled with
  ``load_model_dict_into_meta``: a key the conversion misses would silently stay on the
  meta device instead of raising, which is why the test compares every parameter.
* The UNet key conversion is derived from ``layers_per_block`` of the config (LDM
  ``input_blocks.{(L+1)*i + j + 1}``), so the hard-coded 4-block tables of the original
  script had to be generalised to the 2-block tiny UNet.  Up-block upsamplers sit at
  ``output_blocks.N.1`` when the block has no attention and ``output_blocks.N.2`` when it
  has one; the loader accepts both.
* The VAE mid-block attention uses ``to_q/to_k/to_v/to_out.0`` + ``group_norm`` in current
  diffusers; LDM uses ``q/k/v/proj_out`` + ``norm`` stored as 1x1 convolutions, so those
  four weights are reshaped to ``(C, C, 1, 1)``.
* ``CLIPTokenizer`` is a ``TokenizersBackend`` in transformers 5, no longer a subclass of
  ``PreTrainedTokenizer`` (now ``PythonBackend``), so the single-file loader always loads it
  with ``from_pretrained(config, subfolder="tokenizer")``.
"""

from __future__ import annotations

import json
from pathlib import Path

# Heavy imports (torch, diffusers, transformers) happen inside the functions, so that
# importing this module (e.g. from tests/conftest.py) stays cheap.

SEED = 0
VOCAB_SIZE = 1000
MODEL_MAX_LENGTH = 77
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
BOS_ID = VOCAB_SIZE - 2
EOS_ID = VOCAB_SIZE - 1

# Standard SD 1.x / SDXL noise schedule.
SD_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)

_SD_KINDS = {
    # kind -> (UNet in_channels, pipeline class name)
    "text2img": (4, "StableDiffusionPipeline"),
    "inpaint": (9, "StableDiffusionInpaintPipeline"),
    "pix2pix": (8, "StableDiffusionInstructPix2PixPipeline"),
}


# ----------------------------------------------------------------------------- tokenizer


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte-level mapping: every byte to a printable unicode character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


_MERGES = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("e", "r</w>"), ("o", "n</w>"), ("a", "t</w>")]


def write_clip_tokenizer(folder: Path, vocab_size: int = VOCAB_SIZE):
    """Write a tiny byte-level BPE CLIP tokenizer into ``folder`` and return it.

    Every unicode string tokenizes (unknown characters fall back to their UTF-8 bytes),
    ``padding="max_length"`` pads to 77 with ``<|endoftext|>``, and ids stay below
    ``vocab_size`` so they fit the tiny text encoders' embedding tables.
    """
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in chars + [c + "</w>" for c in chars] + [a + b for a, b in _MERGES]:
        vocab[token] = len(vocab)
    if len(vocab) + 2 > vocab_size:
        raise ValueError(f"vocab_size must be >= {len(vocab) + 2}")
    while len(vocab) < vocab_size - 2:
        vocab[f"<|filler{len(vocab)}|>"] = len(vocab)
    vocab[BOS_TOKEN] = vocab_size - 2
    vocab[EOS_TOKEN] = vocab_size - 1

    vocab_file = folder / "vocab.json"
    merges_file = folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in _MERGES), encoding="utf-8")

    tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=MODEL_MAX_LENGTH)
    tokenizer.save_pretrained(folder)
    return tokenizer


# ----------------------------------------------------------------------------- components


def _text_config(**extra):
    from transformers import CLIPTextConfig

    settings = dict(
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=5,
        pad_token_id=EOS_ID,
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=MODEL_MAX_LENGTH,
    )
    return CLIPTextConfig(**{**settings, **extra})


def _vae(**extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        **extra,
    )


def _unet(**extra):
    """The two-block UNet every tiny pipeline shares (64 px images through the 2x VAE); the
    builders change what tells their family apart."""
    from diffusers import UNet2DConditionModel

    settings = dict(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )
    return UNet2DConditionModel(**{**settings, **extra})


def _quiet():
    """Silence transformers' 'Writing model shards' progress bar while saving."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - older/newer transformers
        pass


def build_sd(folder: Path, kind: str = "text2img", sample_size: int = 32) -> Path:
    """Build and save a tiny SD 1.x pipeline; ``kind`` is text2img, inpaint or pix2pix.

    Native image size is ``2 * sample_size`` px (64 by default): the VAE scale factor is 2.
    """
    import torch
    import diffusers
    from diffusers import PNDMScheduler
    from transformers import CLIPTextModel

    if kind not in _SD_KINDS:
        raise ValueError(f"kind must be one of {sorted(_SD_KINDS)}, not {kind!r}")
    in_channels, pipeline_name = _SD_KINDS[kind]
    folder = Path(folder)
    _quiet()

    torch.manual_seed(SEED)
    unet = _unet(sample_size=sample_size, in_channels=in_channels, cross_attention_dim=32)
    # The scheduler config of the real SD 1.5 folder.
    scheduler = PNDMScheduler(**SD_BETAS, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    torch.manual_seed(SEED)
    vae = _vae(sample_size=2 * sample_size)
    torch.manual_seed(SEED)
    text_encoder = CLIPTextModel(_text_config())
    tokenizer = write_clip_tokenizer(folder / "tokenizer")

    pipeline_cls = getattr(diffusers, pipeline_name)
    pipe = pipeline_cls(
        unet=unet,
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def build_sd2(folder: Path) -> Path:
    """Build and save a tiny SD 2.x pipeline: what tells 2.x from 1.x, at toy size.

    That is a 1024-wide text encoder (OpenCLIP ViT-H's width, by which Quickbrush names the
    family), linear projections in the UNet's transformers, and a v-prediction DDIM scheduler
    as in stable-diffusion-2-1. Native image size 64 x 64 px.
    """
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    folder = Path(folder)
    _quiet()
    torch.manual_seed(SEED)
    unet = _unet(attention_head_dim=(2, 4), use_linear_projection=True, cross_attention_dim=1024)
    scheduler = DDIMScheduler(**SD_BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                              prediction_type="v_prediction")
    torch.manual_seed(SEED)
    vae = _vae(sample_size=64)
    torch.manual_seed(SEED)
    text_encoder = CLIPTextModel(_text_config(hidden_size=1024, num_hidden_layers=1, hidden_act="gelu"))
    tokenizer = write_clip_tokenizer(folder / "tokenizer")
    pipe = StableDiffusionPipeline(
        unet=unet, scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def build_sdxl(folder: Path) -> Path:
    """Build and save a tiny SDXL base pipeline (two text encoders, text_time embedding).

    Native image size 64 x 64 (UNet sample_size 32, VAE scale factor 2).
    """
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(folder)
    _quiet()

    torch.manual_seed(SEED)
    unet = _unet(
        block_out_channels=(2, 4),
        # SD2/SDXL-specific config below
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 * 8 + 32
        cross_attention_dim=64,  # 32 (text_encoder) + 32 (text_encoder_2)
        norm_num_groups=1,
    )
    scheduler = EulerDiscreteScheduler(**SD_BETAS, steps_offset=1, timestep_spacing="leading")
    torch.manual_seed(SEED)
    vae = _vae(sample_size=64)
    torch.manual_seed(SEED)
    config = _text_config(hidden_act="gelu", projection_dim=32)
    text_encoder = CLIPTextModel(config)
    text_encoder_2 = CLIPTextModelWithProjection(config)
    tokenizer = write_clip_tokenizer(folder / "tokenizer")
    tokenizer_2 = write_clip_tokenizer(folder / "tokenizer_2")

    pipe = StableDiffusionXLPipeline(
        unet=unet,
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        image_encoder=None,
        feature_extractor=None,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


# ----------------------------------------------------------------------------- single file
#
# Diffusers -> original (LDM/CompVis) key mapping, adapted from diffusers'
# scripts/convert_diffusers_to_original_stable_diffusion.py (Copyright The HuggingFace Team,
# Apache License 2.0).  Changes: the UNet/VAE tables are derived from the model config
# instead of being hard-coded for 4 blocks, the VAE attention uses the current
# to_q/to_k/to_v/to_out.0 names, and the CLIP keys get their `text_model.` prefix back.


def _unet_conversion_pairs(config: dict) -> list[tuple[str, str]]:
    """(ldm prefix, diffusers prefix) pairs for a UNet2DConditionModel config."""
    layers = config["layers_per_block"]
    down_types = config["down_block_types"]
    up_types = config["up_block_types"]
    pairs = []
    for i, block_type in enumerate(down_types):
        for j in range(layers):
            ldm = f"input_blocks.{(layers + 1) * i + j + 1}"
            pairs.append((f"{ldm}.0.", f"down_blocks.{i}.resnets.{j}."))
            if "CrossAttn" in block_type:
                pairs.append((f"{ldm}.1.", f"down_blocks.{i}.attentions.{j}."))
        if i < len(down_types) - 1:
            pairs.append((f"input_blocks.{(layers + 1) * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
    for i, block_type in enumerate(up_types):
        has_attention = "CrossAttn" in block_type
        for j in range(layers + 1):
            ldm = f"output_blocks.{(layers + 1) * i + j}"
            pairs.append((f"{ldm}.0.", f"up_blocks.{i}.resnets.{j}."))
            if has_attention:
                pairs.append((f"{ldm}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < len(up_types) - 1:
            ldm = f"output_blocks.{(layers + 1) * i + layers}.{2 if has_attention else 1}."
            pairs.append((ldm, f"up_blocks.{i}.upsamplers.0."))
    pairs.append(("middle_block.1.", "mid_block.attentions.0."))
    for j in range(2):
        pairs.append((f"middle_block.{2 * j}.", f"mid_block.resnets.{j}."))
    return pairs


_UNET_TOP_LEVEL = {
    # diffusers -> ldm
    "time_embedding.linear_1.weight": "time_embed.0.weight",
    "time_embedding.linear_1.bias": "time_embed.0.bias",
    "time_embedding.linear_2.weight": "time_embed.2.weight",
    "time_embedding.linear_2.bias": "time_embed.2.bias",
    "conv_in.weight": "input_blocks.0.0.weight",
    "conv_in.bias": "input_blocks.0.0.bias",
    "conv_norm_out.weight": "out.0.weight",
    "conv_norm_out.bias": "out.0.bias",
    "conv_out.weight": "out.2.weight",
    "conv_out.bias": "out.2.bias",
}

_UNET_RESNET = [
    # (ldm, diffusers)
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("emb_layers.1", "time_emb_proj"),
    ("skip_connection", "conv_shortcut"),
]


def _convert_unet(state_dict: dict, config: dict) -> dict:
    pairs = _unet_conversion_pairs(config)
    out = {}
    for key, value in state_dict.items():
        if key in _UNET_TOP_LEVEL:
            out[_UNET_TOP_LEVEL[key]] = value
            continue
        new = key
        if "resnets" in key:
            for ldm, hf in _UNET_RESNET:
                new = new.replace(hf, ldm)
        for ldm, hf in pairs:
            if new.startswith(hf):
                new = ldm + new[len(hf) :]
                break
        else:
            raise KeyError(f"no LDM name for UNet key {key!r}")
        out[new] = value
    return out


def _vae_conversion_pairs(config: dict) -> list[tuple[str, str]]:
    n = len(config["block_out_channels"])
    pairs = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out"), ("mid.attn_1.", "mid_block.attentions.0.")]
    for i in range(n):
        for j in range(config["layers_per_block"]):
            pairs.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        if i < n - 1:
            pairs.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            pairs.append((f"up.{n - 1 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        for j in range(config["layers_per_block"] + 1):
            pairs.append((f"decoder.up.{n - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
    for i in range(2):
        pairs.append((f"mid.block_{i + 1}.", f"mid_block.resnets.{i}."))
    return pairs


_VAE_ATTENTION = [
    # (ldm, diffusers)
    ("norm.", "group_norm."),
    ("q.", "to_q."),
    ("k.", "to_k."),
    ("v.", "to_v."),
    ("proj_out.", "to_out.0."),
]


def _convert_vae(state_dict: dict, config: dict) -> dict:
    pairs = _vae_conversion_pairs(config)
    out = {}
    for key, value in state_dict.items():
        new = key
        for ldm, hf in pairs:
            new = new.replace(hf, ldm)
        if "attentions" in key:
            for ldm, hf in _VAE_ATTENTION:
                new = new.replace(hf, ldm)
            # LDM stores the attention projections as 1x1 convolutions.
            if any(new.endswith(f"mid.attn_1.{name}.weight") for name in ("q", "k", "v", "proj_out")):
                value = value.reshape(*value.shape, 1, 1)
        out[new] = value
    return out


def _convert_clip(state_dict: dict) -> dict:
    out = {}
    for key, value in state_dict.items():
        if key.endswith("position_ids"):
            continue
        if not key.startswith("text_model."):
            key = "text_model." + key  # transformers >= 5.6 saves CLIPTextModel flattened
        out[key] = value
    return out


def write_single_file(folder: Path, out_file: Path) -> Path:
    """Convert a tiny SD 1.x diffusers folder into one original-format ``.safetensors``.

    Load it back with ``<PipelineClass>.from_single_file(out_file, config=str(folder),
    local_files_only=True)``; ``config`` is required offline (see the module docstring).
    """
    from safetensors.torch import load_file, save_file

    folder, out_file = Path(folder), Path(out_file)
    model_index = json.loads((folder / "model_index.json").read_text())
    if "text_encoder_2" in model_index:
        raise ValueError("write_single_file converts SD 1.x folders only, not SDXL")
    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    vae_config = json.loads((folder / "vae" / "config.json").read_text())

    unet = _convert_unet(load_file(folder / "unet" / "diffusion_pytorch_model.safetensors"), unet_config)
    vae = _convert_vae(load_file(folder / "vae" / "diffusion_pytorch_model.safetensors"), vae_config)
    clip = _convert_clip(load_file(folder / "text_encoder" / "model.safetensors"))

    checkpoint = {}
    checkpoint.update({"model.diffusion_model." + k: v for k, v in unet.items()})
    checkpoint.update({"first_stage_model." + k: v for k, v in vae.items()})
    checkpoint.update({"cond_stage_model.transformer." + k: v for k, v in clip.items()})
    checkpoint = {k: v.contiguous() for k, v in checkpoint.items()}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file(checkpoint, out_file, metadata={"format": "pt"})
    return out_file


# ----------------------------------------------------------------------------- LoRA


def write_lora(folder: Path, out_file: Path, rank: int = 4, text_encoder: bool = True) -> Path:
    """Write a tiny LoRA for the tiny SD 1.x pipeline in ``folder`` (unet + text encoder).

    Built as diffusers' LoRA tests do: peft ``LoraConfig(init_lora_weights=False)`` so that
    ``lora_B`` is random (non-zero) and loading the LoRA visibly changes the output, then
    ``get_peft_model_state_dict`` and ``StableDiffusionPipeline.save_lora_weights``.
    Load it with ``pipe.load_lora_weights(out_file)``.

    The text-encoder keys come out as ``text_encoder.encoder.layers...`` (transformers 5
    flattened ``CLIPTextModel``); diffusers 0.42 loads those and the older spelling
    ``text_encoder.text_model.encoder.layers...`` to the same weights.
    """
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    folder, out_file = Path(folder), Path(out_file)
    torch.manual_seed(SEED + 1)
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    layers = {"unet_lora_layers": get_peft_model_state_dict(unet)}
    if text_encoder:
        te = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder")
        # peft's own injection, not transformers' `add_adapter`: transformers 5.24 refuses
        # peft < 0.22 there, while diffusers' load_lora_weights works with the installed peft.
        te = inject_adapter_in_model(
            LoraConfig(
                r=rank,
                lora_alpha=rank,
                target_modules=["q_proj", "k_proj", "v_proj", "out_proj"],
                init_lora_weights=False,
            ),
            te,
        )
        layers["text_encoder_lora_layers"] = get_peft_model_state_dict(te)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        save_directory=out_file.parent, weight_name=out_file.name, safe_serialization=True, **layers
    )
    return out_file


# --------------------------------------------------------------------------- built-in model

TINY_WORDS = ("red apple green blue heart cat kitty dog face smiling house car make it the skin darker "
              "woman man grayscale mirror background a an of with").split()


def tiny_static_text_encoder(dim: int = 32, seed: int = 0):
    """A model2vec StaticModel over a 30-word vocabulary: the real class and tokenizers' WordLevel
    model, random vectors (close words share a direction, so "kitty" is near "cat")."""
    import numpy as np
    from model2vec import StaticModel
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.normalizers import Lowercase
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"[UNK]": 0, "[PAD]": 1, **{w: i + 2 for i, w in enumerate(TINY_WORDS)}}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = Lowercase()
    tokenizer.pre_tokenizer = Whitespace()
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(vocab), dim)).astype(np.float32)
    vectors[vocab["kitty"]] = vectors[vocab["cat"]] + 0.1 * vectors[vocab["kitty"]]
    return StaticModel(vectors, tokenizer, config={"normalize": True, "hidden_dim": dim}, normalize=True)


def build_builtin(folder: Path, int8: bool = False) -> Path:
    """A tiny random-weight Quickbrush built-in model (32 px, 4x4 latents) saved like the real one."""
    import torch
    from inference.builtin import BuiltinConfig, BuiltinModel, TextEncoder, build_autoencoder, build_unet

    torch.manual_seed(0)
    cfg = BuiltinConfig(size=32, text_dim=32, block_out_channels=(32, 32, 32), attention_heads=2, ae_channels=16)
    model = BuiltinModel(cfg, build_autoencoder(cfg), build_unet(cfg), TextEncoder(tiny_static_text_encoder(32)))
    if int8:
        from training.export import export

        export(model, Path(folder))
    else:
        model.save(folder)
    return Path(folder)


# ----------------------------------------------------------------------------- FLUX.2 klein

# Qwen3's chat template, cut down to what Flux2KleinPipeline's prompt encoder renders (one user
# message, then the assistant's turn with thinking off).
_QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def write_qwen_tokenizer(folder: Path):
    """Write a tiny byte-level BPE Qwen2TokenizerFast into ``folder`` and return it.

    Built from a `tokenizers` BPE of the 256 GPT-2 byte characters (every string tokenizes),
    Qwen's three special tokens after them, `<|endoftext|>` as padding, and a chat template,
    so the pipeline's ``apply_chat_template`` and ``padding="max_length"`` work offline.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {char: i for i, char in enumerate(_bytes_to_unicode().values())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tokenizer = Qwen2TokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token=None, bos_token=None)
    tokenizer.add_special_tokens({"additional_special_tokens": _QWEN_SPECIALS[1:]})
    tokenizer.chat_template = _QWEN_CHAT_TEMPLATE
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_flux2_klein(folder: Path, sample_size: int = 64) -> Path:
    """Build and save a tiny random-weight Flux2KleinPipeline; native ``sample_size`` px.

    The recipe of diffusers' ``Flux2KleinPipelineFastTests.get_dummy_components``, with what the
    pipeline's defaults need: a 27-layer Qwen3 (it reads hidden states 9, 18 and 27, stacked,
    so the transformer's joint_attention_dim is three times the encoder's width) and a
    two-block VAE (scale 2; with the 2x2 latent patches sizes are multiples of 4 px).
    ``is_distilled`` as in the real klein 4B: guidance is ignored, one transformer call a step.
    """
    import torch
    from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, Flux2Transformer2DModel
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder = Path(folder)
    _quiet()
    tokenizer = write_qwen_tokenizer(folder / "tokenizer")
    hidden = 16
    torch.manual_seed(SEED)
    text_encoder = Qwen3ForCausalLM(Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=16, num_hidden_layers=27,
        num_attention_heads=2, num_key_value_heads=2, head_dim=8, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    ))
    latent_channels = 4
    torch.manual_seed(SEED)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=latent_channels * 4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=3 * hidden, timestep_guidance_channels=256,
        axes_dims_rope=[4, 4, 4, 4], guidance_embeds=False,
    )
    torch.manual_seed(SEED)
    vae = AutoencoderKLFlux2(
        sample_size=sample_size, in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16), layers_per_block=1, latent_channels=latent_channels, norm_num_groups=4,
        use_quant_conv=False, use_post_quant_conv=False,
    )
    pipe = Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True),
                              vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer,
                              is_distilled=True)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
