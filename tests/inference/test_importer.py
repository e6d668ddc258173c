"""Importing models: what a file is from its header, damaged files refused and never listed,
pickles refused (or converted weights-only), atomic copies, and single files loading offline
from the configs that ship with Quickbrush."""

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from inference.jobs import BadInput, Cancelled, Generate, ModelMissing, ModelRef
from inference.models import importer, store


@pytest.fixture
def models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv("QUICKBRUSH_MODELS", str(folder))
    return folder


# --------------------------------------------------------------------------- real-shaped headers


def _ldm_unet(config: dict) -> dict[str, tuple]:
    """Original-layout UNet tensor names and shapes of a config, from a UNet built on the meta
    device (no memory, no weights)."""
    import torch
    import tiny_models
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
    state = dict(unet.state_dict())
    extra = {}
    for key in [k for k in state if k.startswith("add_embedding.")]:  # SDXL's size conditioning
        _, layer, what = key.split(".")
        extra[f"label_emb.0.{ {'linear_1': 0, 'linear_2': 2}[layer]}.{what}"] = state.pop(key)
    converted = {**tiny_models._convert_unet(state, config), **extra}
    return {"model.diffusion_model." + k: tuple(v.shape) for k, v in converted.items()}


def _ldm_checkpoint(config_dir: Path, unet_only: bool = False) -> dict[str, tuple]:
    import torch
    import tiny_models
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    read = lambda name: json.loads((config_dir / name / "config.json").read_text())
    shapes = _ldm_unet(read("unet"))
    if unet_only:
        return shapes
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(read("vae"))
        text = CLIPTextModel(CLIPTextConfig(**read("text_encoder")))
    shapes.update({"first_stage_model." + k: tuple(v.shape)
                   for k, v in tiny_models._convert_vae(vae.state_dict(), read("vae")).items()})
    shapes.update({"cond_stage_model.transformer." + k: tuple(v.shape)
                   for k, v in tiny_models._convert_clip(text.state_dict()).items()})
    return shapes


def _open_clip(prefix: str, config: dict, layers: int) -> dict[str, tuple]:
    """OpenCLIP text-tower names and shapes (SD 2.x's ViT-H, SDXL's bigG), as in their checkpoints."""
    width, inner = config["hidden_size"], config["intermediate_size"]
    shapes = {prefix + "positional_embedding": (77, width), prefix + "token_embedding.weight": (49408, width),
              prefix + "ln_final.weight": (width,), prefix + "ln_final.bias": (width,),
              prefix + "text_projection": (width, width)}
    for i in range(layers):
        block = f"{prefix}transformer.resblocks.{i}."
        shapes.update({block + "ln_1.weight": (width,), block + "ln_1.bias": (width,), block + "ln_2.weight": (width,),
                       block + "ln_2.bias": (width,), block + "attn.in_proj_weight": (3 * width, width),
                       block + "attn.in_proj_bias": (3 * width,), block + "attn.out_proj.weight": (width, width),
                       block + "attn.out_proj.bias": (width,), block + "mlp.c_fc.weight": (inner, width),
                       block + "mlp.c_fc.bias": (inner,), block + "mlp.c_proj.weight": (width, inner),
                       block + "mlp.c_proj.bias": (width,)})
    return shapes


def _ldm_family_checkpoint(config_dir: Path) -> dict[str, tuple]:
    """A whole original-layout checkpoint of a shipped config's architecture: SD 1.x's CLIP-L under
    cond_stage_model.transformer, SD 2.x's OpenCLIP-H under cond_stage_model.model (24 layers,
    the last unused), SDXL's two encoders under conditioner.embedders.0 and .1."""
    read = lambda name: json.loads((config_dir / name / "config.json").read_text())
    if not (config_dir / "text_encoder_2").is_dir() and read("text_encoder")["hidden_size"] == 768:
        return _ldm_checkpoint(config_dir)
    shapes = {k: v for k, v in _ldm_checkpoint(config_dir).items() if not k.startswith("cond_stage_model.")}
    if (config_dir / "text_encoder_2").is_dir():
        clip = {k.replace("cond_stage_model.transformer.", "conditioner.embedders.0.transformer."): v
                for k, v in _ldm_checkpoint(config_dir).items() if k.startswith("cond_stage_model.")}
        shapes.update(clip)
        shapes.update(_open_clip("conditioner.embedders.1.model.", read("text_encoder_2"), 32))
    else:
        shapes.update(_open_clip("cond_stage_model.model.", read("text_encoder"), 24))
    return shapes


def write_sparse_safetensors(path: Path, shapes: dict[str, tuple], dtype: str = "F16") -> Path:
    """A valid safetensors file of zeros with these real tensor shapes. Its data is a hole
    (truncate past the header), so a 2 GB checkpoint takes no disk space."""
    size = {"F16": 2, "F32": 4}[dtype]
    header, offset = {}, 0
    for key, shape in shapes.items():
        n = size * int(np.prod(shape, dtype=np.int64))
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    return path


class _CountingOpen:
    """`open` for the importer module that counts the bytes it reads."""

    def __init__(self):
        self.read = 0

    def __call__(self, *args, **kwargs):
        handle = open(*args, **kwargs)
        original = handle.read

        def read(n=-1):
            data = original(n)
            self.read += len(data)
            return data

        handle.read = read
        return handle


@pytest.mark.slow
@pytest.mark.parametrize("config, name, family, variant, expected_config", [
    ("sd1", "dreamshaper.safetensors", "sd1", "text2img", "sd1"),
    ("sd1-inpaint", "sd15-inpainting.safetensors", "sd1", "inpaint", "sd1-inpaint"),
    ("sd1-pix2pix", "ip2p.safetensors", "sd1", "pix2pix", "sd1-pix2pix"),
    ("sd2-v", "v2-1_768-ema-pruned.safetensors", "sd2", "text2img", "sd2-v"),
    ("sd2-v", "v2-1_512-base.safetensors", "sd2", "text2img", "sd2-base"),
    ("sd2-inpaint", "512-inpainting-ema.safetensors", "sd2", "inpaint", "sd2-inpaint"),
    ("sdxl", "juggernaut-xl.safetensors", "sdxl", "text2img", "sdxl"),
    ("sdxl-inpaint", "sdxl-inpaint.safetensors", "sdxl", "inpaint", "sdxl-inpaint"),
])
def test_family_and_variant_come_from_real_shapes_in_the_header_alone(tmp_path, monkeypatch, config, name, family,
                                                                      variant, expected_config):
    shapes = _ldm_unet(json.loads((importer.CONFIGS_DIR / config / "unet" / "config.json").read_text()))
    if family == "sdxl":  # the second text encoder, which only SDXL has
        shapes["conditioner.embedders.1.model.ln_final.weight"] = (1280,)
    path = write_sparse_safetensors(tmp_path / name, shapes)
    counting = _CountingOpen()
    monkeypatch.setattr(importer, "open", counting, raising=False)
    detected = importer.inspect(path)
    assert (detected.family, detected.variant, detected.kind, detected.config) == (
        family, variant, "pipeline", expected_config)
    assert detected.bytes == path.stat().st_size > 1_000_000_000
    assert counting.read < 2_000_000  # the header: the weights were never read


def test_shipped_configs_build_the_reference_architectures():
    """Parameter counts of the networks the shipped configs describe (built on the meta device)
    are the published models' own."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def count(name, component, cls=None):
        config = json.loads((importer.CONFIGS_DIR / name / component / "config.json").read_text())
        with torch.device("meta"):
            model = UNet2DConditionModel.from_config(config) if cls is None else cls(CLIPTextConfig(**config))
        return sum(p.numel() for p in model.parameters())

    assert count("sd1", "unet") == 859_520_964
    assert count("sd2-v", "unet") == 865_910_724
    assert count("sdxl", "unet") == 2_567_463_684
    assert count("sd1", "text_encoder", CLIPTextModel) == 123_060_480
    assert count("sd2-v", "text_encoder", CLIPTextModel) == 340_387_840
    assert count("sdxl", "text_encoder_2", CLIPTextModelWithProjection) == 694_659_840
    for folder in importer.CONFIGS_DIR.iterdir():
        if (folder / "model_index.json").is_file():
            index = json.loads((folder / "model_index.json").read_text())
            assert all((folder / k).is_dir() for k, v in index.items() if isinstance(v, list) and v[0]), folder


def test_the_shipped_tokenizer_is_clips():
    tokenizers = importer.shipped_tokenizers(importer.CONFIGS_DIR / "sdxl")
    assert tokenizers["tokenizer"]("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tokenizers["tokenizer"]) == 49408
    assert tokenizers["tokenizer"].pad_token == "<|endoftext|>" and tokenizers["tokenizer_2"].pad_token == "!"


@pytest.mark.slow
@pytest.mark.parametrize("config, name, pipeline, family, native, unet, text, pad, prediction", [
    ("sd1", "my-sd15-merge.safetensors", "StableDiffusionPipeline", "sd1", 512, 859_520_964, 123_060_480,
     "<|endoftext|>", "epsilon"),
    ("sd2-v", "v2-1_768-ema-pruned.safetensors", "StableDiffusionPipeline", "sd2", 768, 865_910_724, 340_387_840,
     "!", "v_prediction"),
])
def test_a_real_architecture_file_loads_offline_without_a_config(tmp_path, config, name, pipeline, family, native,
                                                                 unet, text, pad, prediction):
    """The whole architecture (zero weights, a sparse file) through the real loader, with
    HF_HUB_OFFLINE set and no --config: the shipped configs and tokenizer are all it needs.
    (SDXL loads the same way, checked by hand: 14 GB at its peak, too much for a test.)"""
    from inference.backends import diffusers_backend

    path = write_sparse_safetensors(tmp_path / name, _ldm_family_checkpoint(importer.CONFIGS_DIR / config))
    loaded = diffusers_backend.load(ModelRef(str(path)), "cpu", "bfloat16")  # half the memory of float32
    pipe = loaded.pipe
    assert type(pipe).__name__ == pipeline
    assert (loaded.family, loaded.native, loaded.in_channels) == (family, native, 4)
    assert sum(p.numel() for p in pipe.unet.parameters()) == unet
    assert sum(p.numel() for p in pipe.text_encoder.parameters()) == text
    assert not any(p.is_meta for module in (pipe.unet, pipe.vae, pipe.text_encoder) for p in module.parameters())
    assert pipe.tokenizer("a cat").input_ids == [49406, 320, 2368, 49407] and pipe.tokenizer.pad_token == pad
    assert pipe.scheduler.config.prediction_type == prediction
    diffusers_backend.BACKEND.release(loaded)


# --------------------------------------------------------------------------- the tiny models


def test_tiny_models_are_told_apart(tiny_sd, tiny_sd_inpaint, tiny_sd2, tiny_sdxl, tiny_sd_single_file, tiny_lora):
    assert importer.inspect(tiny_sd) == importer.Detected("sd1", "text2img", "pipeline", "diffusers", None,
                                                          importer.inspect(tiny_sd).bytes)
    assert importer.inspect(tiny_sd_inpaint).variant == "inpaint"
    assert importer.inspect(tiny_sd2).family == "sd2"
    assert importer.inspect(tiny_sdxl).family == "sdxl"
    single = importer.inspect(tiny_sd_single_file)
    assert (single.family, single.variant, single.kind, single.format, single.config) == (
        "sd1", "text2img", "pipeline", "safetensors", "sd1")
    assert importer.inspect(tiny_lora).kind == "lora"


def test_a_single_file_loads_offline_through_the_shipped_config_it_is_detected_as(
        tmp_path, monkeypatch, tiny_sd, tiny_sd_single_file):
    """No --config: the backend takes the config folder for the file's family from
    importer.CONFIGS_DIR (here holding the tiny model's configs in place of the real ones) and
    builds its tokenizers from the shared vocabulary, and the result equals the folder's."""
    from inference.engine import Engine

    configs = tmp_path / "configs"
    shutil.copytree(tiny_sd, configs / "sd1", ignore=shutil.ignore_patterns("*.safetensors", "vocab.json",
                                                                            "merges.txt"))
    shutil.copytree(tiny_sd / "tokenizer", configs / "clip-tokenizer")
    monkeypatch.setattr(importer, "CONFIGS_DIR", configs)
    monkeypatch.setattr(importer, "TOKENIZER_DIR", configs / "clip-tokenizer")
    engine = Engine(max_models=2)
    common = dict(prompt="a red square", seed=3, steps=2, scheduler="euler", device="cpu", dtype="float32")
    try:
        folder = engine.run(1, Generate(model=ModelRef(str(tiny_sd)), **common), lambda p: None, lambda: False)
        single = engine.run(2, Generate(model=ModelRef(str(tiny_sd_single_file)), **common), lambda p: None,
                            lambda: False)
    finally:
        engine.unload()
    assert np.array_equal(np.asarray(folder[0]), np.asarray(single[0]))


def test_a_file_the_shipped_configs_do_not_fit_says_so(tiny_sd_single_file):
    """The tiny file has SD 1.x names but toy sizes: a clear message, not a shape dump."""
    from inference.backends import diffusers_backend

    with pytest.raises(ModelMissing, match="does not fit the sd1 config files"):
        diffusers_backend.load(ModelRef(str(tiny_sd_single_file)), "cpu", "float32")


# --------------------------------------------------------------------------- damaged files


def _damaged(kind: str, good: Path, out: Path) -> Path:
    data = good.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    if kind == "truncated":
        out.write_bytes(data[: len(data) - 1000])
    elif kind == "header-cut":
        out.write_bytes(data[: 8 + length // 2])
    elif kind == "bad-json":
        out.write_bytes(data[:8] + b"{" * length + data[8 + length:])
    elif kind == "huge-length":
        out.write_bytes(struct.pack("<Q", 1 << 40) + data[8:])
    elif kind == "trailing":
        out.write_bytes(data + b"\0" * 64)
    elif kind == "empty":
        out.write_bytes(b"")
    return out


DAMAGES = ["truncated", "header-cut", "bad-json", "huge-length", "trailing", "empty"]


@pytest.mark.parametrize("kind", DAMAGES)
def test_a_damaged_file_is_refused_clearly_and_never_listed(tmp_path, models, tiny_sd_single_file, kind):
    bad = _damaged(kind, tiny_sd_single_file, tmp_path / f"{kind}.safetensors")
    with pytest.raises(BadInput, match="damaged or incomplete"):
        importer.inspect(bad)
    with pytest.raises(BadInput, match="damaged or incomplete"):
        importer.import_path(bad)
    assert not models.exists() or not any(models.iterdir())
    # One that got into the models folder some other way is not listed either.
    models.mkdir(exist_ok=True)
    shutil.copy(bad, models / bad.name)
    shutil.copy(tiny_sd_single_file, models / "good.safetensors")
    assert [m.name for m in store.list_models(include_hub_cache=False) if m.where == "file"] == ["good"]


def test_a_folder_with_a_damaged_weight_file_is_refused(tmp_path, models, tiny_sd):
    folder = shutil.copytree(tiny_sd, tmp_path / "broken")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(BadInput, match="diffusion_pytorch_model.safetensors is damaged"):
        importer.import_path(folder)
    assert not models.exists() or not any(models.iterdir())


def test_not_a_model_is_refused(tmp_path):
    from safetensors.numpy import save_file

    other = tmp_path / "embeddings.safetensors"
    save_file({"emb_params": np.zeros((2, 768), np.float16)}, str(other))
    with pytest.raises(BadInput, match="not a Stable Diffusion model"):
        importer.inspect(other)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(BadInput, match="not a model file"):
        importer.inspect(tmp_path / "notes.txt")


# --------------------------------------------------------------------------- pickles


def test_pickles_are_refused_by_default_with_why(tmp_path, models, tiny_sd_single_file):
    import torch
    from safetensors.torch import load_file

    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": load_file(str(tiny_sd_single_file))}, ckpt)
    with pytest.raises(importer.PickleRefused, match="can run any code"):
        importer.import_path(ckpt)
    assert not models.exists() or not any(models.iterdir())


def test_an_allowed_pickle_is_converted_to_safetensors_weights_only(tmp_path, models, tiny_sd_single_file):
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(tiny_sd_single_file))
    ckpt = tmp_path / "my-model.ckpt"
    torch.save({"state_dict": tensors, "global_step": 875000}, ckpt)
    imported = importer.import_path(ckpt, allow_pickle=True)
    assert imported.path == models / "my-model.safetensors"
    assert (imported.detected.family, imported.detected.variant, imported.detected.format) == (
        "sd1", "text2img", "pickle")
    back = load_file(str(imported.path))
    assert back.keys() == tensors.keys()
    assert all(torch.equal(back[k], tensors[k]) for k in tensors)
    assert [m.name for m in store.list_models(include_hub_cache=False) if m.where == "file"] == ["my-model"]


class _Payload:
    def __reduce__(self):
        return (os.mkdir, (str(Path(os.environ["QUICKBRUSH_MODELS"]).parent / "pwned"),))


def test_a_pickle_that_would_run_code_is_refused_even_when_allowed(tmp_path, models):
    import torch

    evil = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "x": _Payload()}, evil)
    with pytest.raises(BadInput, match="weights-only"):
        importer.import_path(evil, allow_pickle=True)
    assert not (tmp_path / "pwned").exists()
    assert not models.exists() or not any(models.iterdir())


def test_a_folder_with_pickle_only_weights_is_refused_then_converted(tmp_path, models, tiny_sd):
    import torch
    from safetensors.torch import load_file

    folder = shutil.copytree(tiny_sd, tmp_path / "old-style")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(str(weights)), folder / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(importer.PickleRefused, match="diffusion_pytorch_model.bin"):
        importer.import_path(folder)
    imported = importer.import_path(folder, allow_pickle=True)
    assert (imported.path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(imported.path.rglob("*.bin"))
    store.check_pipeline_folder(imported.path, imported.name)


def test_a_hub_snapshot_is_imported_without_the_files_diffusers_never_reads(tmp_path, models, tiny_sd,
                                                                          tiny_sd_single_file):
    folder = shutil.copytree(tiny_sd, tmp_path / "snapshot")
    shutil.copy(tiny_sd_single_file, folder / "v1-5-pruned.safetensors")
    (folder / "v1-5-pruned.ckpt").write_bytes(b"a pickle")
    (folder / "unet" / "diffusion_pytorch_model.fp16.bin").write_bytes(b"a pickle")
    (folder / "unet" / "diffusion_flax_model.msgpack").write_bytes(b"flax")
    imported = importer.import_path(folder)  # the pickles are never needed, so not refused
    copied = sorted(p.relative_to(imported.path).as_posix() for p in imported.path.rglob("*") if p.is_file())
    assert copied == sorted(p.relative_to(tiny_sd).as_posix() for p in tiny_sd.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- copying


def test_imports_land_in_the_models_folder_and_are_listed(models, tiny_sd, tiny_sd_single_file, tiny_lora):
    folder = importer.import_path(tiny_sd)
    single = importer.import_path(tiny_sd_single_file)
    again = importer.import_path(tiny_sd_single_file)
    lora = importer.import_path(tiny_lora)
    assert (folder.path, single.path, again.path, lora.path) == (
        models / tiny_sd.name, models / "tiny_sd.safetensors", models / "tiny_sd-2.safetensors",
        models / "tiny_lora.safetensors")
    assert lora.detected.kind == "lora"
    listed = {m.name: m.task for m in store.list_models(include_hub_cache=False) if m.where != "builtin"}
    assert listed == {tiny_sd.name: "text2img", "tiny_sd": "text2img", "tiny_sd-2": "text2img", "tiny_lora": "lora"}
    assert store.locate("tiny_sd.safetensors").kind == "file"


def test_a_tiny_decoder_folder_is_imported_as_the_familys_decoder(tmp_path, models):
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8)).save_pretrained(
        tmp_path / "my-taesd")
    imported = importer.import_path(tmp_path / "my-taesd")
    assert imported.detected.kind == "decoder"
    assert imported.path == models / "taesd"


def test_a_single_file_tiny_decoder_becomes_the_familys_decoder_folder(tmp_path, models):
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny().save_pretrained(tmp_path / "saved")
    single = shutil.copy(tmp_path / "saved" / "diffusion_pytorch_model.safetensors", tmp_path / "taesdxl.safetensors")
    imported = importer.import_path(single)
    assert (imported.detected.kind, imported.path) == ("decoder", models / "taesdxl")
    loaded = AutoencoderTiny.from_pretrained(str(imported.path))
    assert loaded.config.latent_channels == 4


@pytest.mark.parametrize("keys, family", [
    ({"lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 768)}, "sd1"),
    ({"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (8, 1024)}, "sd2"),
    ({"lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k.lora_down.weight": (4, 2048)}, "sdxl"),
    ({"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 1280)}, "sdxl"),
    ({"lora_unet_conv_in.lora_down.weight": (4, 4, 3, 3)}, None),
])
def test_lora_families_come_from_their_cross_attention_width(tmp_path, keys, family):
    from safetensors.numpy import save_file

    path = tmp_path / "style.safetensors"
    save_file({k: np.zeros(shape, np.float16) for k, shape in keys.items()}, str(path))
    detected = importer.inspect(path)
    assert (detected.kind, detected.family) == ("lora", family)


@pytest.mark.parametrize("link", [True, False])
def test_a_cancelled_import_leaves_nothing(models, monkeypatch, tiny_sd, tiny_sd_single_file, link):
    if not link:
        def no_link(*_):
            raise OSError("cross-device link")

        monkeypatch.setattr(importer.os, "link", no_link)
        monkeypatch.setattr(importer, "_copy_file", _small_chunks(importer._copy_file))

    calls = []

    def cancel(done, total):
        calls.append(done)
        if len(calls) == 2:
            raise Cancelled()

    for source in (tiny_sd, tiny_sd_single_file):
        calls.clear()
        with pytest.raises(Cancelled):
            importer.import_path(source, on_progress=cancel)
        assert list(models.iterdir()) == []
    imported = importer.import_path(tiny_sd_single_file)
    assert imported.linked is link
    assert imported.path.read_bytes() == tiny_sd_single_file.read_bytes()


def _small_chunks(copy):
    def copy_in_small_chunks(source, target, done, total, on_progress, chunk=8 << 20):
        return copy(source, target, done, total, on_progress, chunk=1 << 20)

    return copy_in_small_chunks


def test_a_file_already_in_the_models_folder_is_not_imported_again(models, tiny_sd_single_file):
    imported = importer.import_path(tiny_sd_single_file)
    with pytest.raises(BadInput, match="already in the models folder"):
        importer.import_path(imported.path)
