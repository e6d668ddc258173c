"""Finding models on disk: folders, single files, Quickbrush's models folder and the Hub cache."""

import hashlib
import os
import shutil

import numpy as np
import pytest

from inference.engine import Engine
from inference.jobs import BadInput, Generate, ModelMissing, ModelRef
from inference.models import store


def fake_hub_cache(cache, repo_id, folder):
    """Lay `folder` out as huggingface_hub caches a download: blobs, a snapshot of links, refs/main."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    for file in folder.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            link = snapshot / file.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(blob, link.parent), link)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, tiny_sd):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    fake_hub_cache(cache, "quickbrush-tests/tiny-sd-turbo", tiny_sd)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_locate_kinds(tmp_path, tiny_sd, tiny_sd_single_file):
    assert store.locate(str(tiny_sd)).kind == "folder"
    assert store.locate(str(tiny_sd_single_file)).kind == "file"
    assert store.locate("org/name").kind == "repo"
    with pytest.raises(ModelMissing, match="not found"):
        store.locate(str(tmp_path / "missing"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BadInput, match="not a model checkpoint"):
        store.locate(str(tmp_path / "notes.txt"))
    with pytest.raises(ModelMissing, match="No model"):
        store.locate("")


def test_builtin_missing_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setattr(store, "builtin_dir", lambda: tmp_path / "builtin")
    with pytest.raises(ModelMissing, match="built-in model is not installed"):
        store.locate("builtin")


def test_names_resolve_inside_the_models_folder(tmp_path, monkeypatch, tiny_sd):
    monkeypatch.setenv("QUICKBRUSH_MODELS", str(tmp_path))
    shutil.copytree(tiny_sd, tmp_path / "my-model")
    located = store.locate("my-model")
    assert located.kind == "folder" and located.path == str(tmp_path / "my-model")


def test_list_models_reads_the_hub_cache(hub_cache):
    infos = {m.name: m for m in store.list_models()}
    info = infos["quickbrush-tests/tiny-sd-turbo"]
    assert info.where == "hub-cache" and info.task == "text2img" and info.source == "quickbrush-tests/tiny-sd-turbo"


def test_repo_id_loads_offline_from_the_hub_cache_with_its_preset(hub_cache):
    engine = Engine()
    try:
        job = Generate(prompt="apple", model=ModelRef("quickbrush-tests/tiny-sd-turbo"), seed=1)
        image, resolved, _, info = engine.run(1, job, lambda p: None, lambda: False)
        assert image.size == (64, 64)
        # The repo name says turbo: one step, no guidance, trailing Euler.
        assert (resolved.steps, resolved.guidance, resolved.scheduler) == (1, 0.0, "euler_trailing")
        assert info["preset"] == "sd-turbo"
    finally:
        engine.unload()


def test_estimate_bytes_counts_weights_and_loras(tiny_sd, tiny_lora):
    base = store.estimate_bytes(ModelRef(str(tiny_sd)))
    weights = sum(f.stat().st_size for f in tiny_sd.rglob("*.safetensors"))
    assert base == weights > 0
    with_lora = store.estimate_bytes(ModelRef(str(tiny_sd), loras=(store_lora(tiny_lora),)))
    assert with_lora == base + tiny_lora.stat().st_size


def store_lora(path):
    from inference.jobs import LoraRef

    return LoraRef(str(path))


def test_low_memory_unloads_older_models_before_loading(tiny_sd, tiny_sd_inpaint, monkeypatch):
    from inference import engine as engine_module

    engine = Engine(max_models=4, reserve_bytes=0)
    try:
        engine.model(ModelRef(str(tiny_sd)))
        free = {"bytes": 10**12}
        monkeypatch.setattr(engine_module, "_available_memory", lambda device: free["bytes"])
        engine.model(ModelRef(str(tiny_sd_inpaint)))
        assert len(engine.loaded_models()) == 2, "plenty of memory: both stay"
        free["bytes"] = 1
        engine.model(ModelRef(str(tiny_sd_inpaint), preset="sd-turbo"))
        assert [m.ref.preset for m in engine.loaded_models()] == ["sd-turbo"], "no memory: older ones go"
    finally:
        engine.unload()


def test_scheduler_overrides_do_not_leak_between_runs(tiny_sd):
    engine = Engine()
    try:
        def run(**kw):
            job = Generate(prompt="apple", model=ModelRef(str(tiny_sd)), steps=2, seed=4, **kw)
            return np.asarray(engine.run(1, job, lambda p: None, lambda: False)[0])

        plain = run(scheduler="euler")
        run(scheduler="euler_trailing")
        assert np.array_equal(run(scheduler="euler"), plain)
    finally:
        engine.unload()


def _remove(path):
    shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.mark.parametrize("change, words", [
    (lambda d: _remove(d / "unet"), r"my-model is incomplete: the unet folder is missing"),
    (lambda d: (_remove(d / "unet"), _remove(d / "vae")), r"the unet and vae folders are missing"),
    (lambda d: [_remove(f) for f in (d / "unet").iterdir()], r"its unet folder is empty"),
    (lambda d: _remove(d / "unet" / "config.json"), r"incomplete: unet/config\.json is missing"),
    (lambda d: (d / "unet" / "config.json").write_text("{"), r"damaged: unet/config\.json is not valid JSON"),
    (lambda d: _remove(d / "unet" / "diffusion_pytorch_model.safetensors"), r"its unet folder has no weights"),
    (lambda d: (d / "scheduler" / "scheduler_config.json").rename(d / "scheduler" / "config.json"),
     r"scheduler/scheduler_config\.json is missing"),
    (lambda d: _remove(d / "tokenizer"), r"the tokenizer folder is missing"),
    (lambda d: (d / "model_index.json").write_text("{"), r"damaged: its model_index\.json is not valid JSON"),
    (lambda d: (d / "model_index.json").write_text("[]"), r"model_index\.json does not describe a pipeline"),
])
def test_an_incomplete_model_folder_says_what_is_wrong_with_it(tmp_path, tiny_sd, change, words):
    """Not diffusers' "no file named config.json found in directory": the folder, and what it lacks."""
    folder = shutil.copytree(tiny_sd, tmp_path / "my-model")
    change(folder)
    engine = Engine()
    with pytest.raises(ModelMissing, match=words) as caught:
        engine.run(1, Generate(prompt="x", model=ModelRef(str(folder))), lambda p: None, lambda: False)
    assert "no file named" not in caught.value.message and "Expecting" not in caught.value.message


def test_a_cached_repo_missing_a_component_names_the_repo(tmp_path, monkeypatch, tiny_sd):
    from huggingface_hub import constants

    partial = shutil.copytree(tiny_sd, tmp_path / "partial")
    shutil.rmtree(partial / "vae")
    fake_hub_cache(tmp_path / "hub", "quickbrush-tests/half-downloaded", partial)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelMissing, match="quickbrush-tests/half-downloaded is incomplete: the vae folder"):
        Engine().run(1, Generate(prompt="x", model=ModelRef("quickbrush-tests/half-downloaded")),
                     lambda p: None, lambda: False)


def test_a_folder_without_the_safety_checker_it_lists_still_loads(tmp_path, tiny_sd):
    """Many shared SD 1.5 folders have their safety_checker deleted; Quickbrush never loads it."""
    import json

    folder = shutil.copytree(tiny_sd, tmp_path / "no-checker")
    index = json.loads((folder / "model_index.json").read_text())
    index["safety_checker"] = ["stable_diffusion", "StableDiffusionSafetyChecker"]
    (folder / "model_index.json").write_text(json.dumps(index))
    assert store.check_pipeline_folder(folder, "no-checker")["_class_name"] == "StableDiffusionPipeline"


def test_a_folder_of_fp16_variant_weights_is_recognised(tmp_path, tiny_sd):
    import shutil

    from inference.models.store import weights_variant

    assert weights_variant(tiny_sd) is None
    folder = tmp_path / "fp16-only"
    shutil.copytree(tiny_sd, folder)
    for weights in list(folder.glob("*/*.safetensors")):
        weights.rename(weights.with_name(weights.name.replace(".safetensors", ".fp16.safetensors")))
    assert weights_variant(folder) == "fp16"
    next(folder.glob("unet/*.fp16.safetensors")).rename(folder / "unet" / "diffusion_pytorch_model.safetensors")
    assert weights_variant(folder) is None, "a component with plain weights: no variant"


@pytest.mark.parametrize("runtime", ["torch", "openvino"])
def test_an_fp16_only_folder_loads_and_draws_on_either_runtime(tmp_path, tiny_sd, runtime):
    """What a catalog download leaves (only *.fp16.safetensors): diffusers needs the variant named."""
    if runtime == "openvino":
        pytest.importorskip("openvino")
    folder = tmp_path / "fp16-only"
    shutil.copytree(tiny_sd, folder)
    for weights in list(folder.glob("*/*.safetensors")):
        weights.rename(weights.with_name(weights.name.replace(".safetensors", ".fp16.safetensors")))
    for _load in ("first", "again"):  # on OpenVINO the second load reads the IR, not the torch UNet
        engine = Engine(max_models=1)
        try:
            image, _job, _timings, info = engine.run(
                1, Generate(prompt="a red apple", model=ModelRef(str(folder)), steps=1, seed=1, width=64, height=64,
                            runtime=runtime), lambda _p: None, lambda: False)
            assert image.size == (64, 64) and info["runtime"] == runtime
        finally:
            engine.unload()
