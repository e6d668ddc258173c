"""Test configuration shared by every test: offline, headless, and never the user's settings."""

import os
import sys
from pathlib import Path

# Shared test helpers (tiny_models, bad_inputs, tracing) import by name from any test folder.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

# Set before anything imports huggingface_hub or Qt, so no test waits on the network or a display.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
# Never read or write the user's own models folder; tests that need one set it themselves.
if "QUICKBRUSH_MODELS" not in os.environ:
    import tempfile

    os.environ["QUICKBRUSH_MODELS"] = tempfile.mkdtemp(prefix="quickbrush-test-models-")
# Nor the user's cache (converted OpenVINO models): one for the whole run, so tests share conversions.
if "QUICKBRUSH_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["QUICKBRUSH_CACHE_DIR"] = tempfile.mkdtemp(prefix="quickbrush-test-cache-")
    # Converted models add up over many runs (a developer's disk filled with them).
    atexit.register(shutil.rmtree, os.environ["QUICKBRUSH_CACHE_DIR"], True)
# Never the user's data folder (autosaves) either; each test gets its own (_fresh_data_dir).
if "QUICKBRUSH_DATA_DIR" not in os.environ:
    import tempfile

    os.environ["QUICKBRUSH_DATA_DIR"] = tempfile.mkdtemp(prefix="quickbrush-test-data-")


# --------------------------------------------------------------------------------------
# Tiny random-weight diffusion models (see tests/tiny_models.py), built once per session
# into pytest's temporary folders and loaded back by tests through the real loading code.
# Heavy modules (torch, diffusers) are imported inside the fixtures, so collection stays fast.

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_data_dir(tmp_path_factory, monkeypatch):
    """A data folder of the test's own: an autosave one test (or an app it starts) leaves must
    not be offered for recovery to the next."""
    monkeypatch.setenv("QUICKBRUSH_DATA_DIR", str(tmp_path_factory.mktemp("data")))


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where CUDA is present; everything else is the default run."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in gpu_items:
        item.add_marker(skip)


def _tiny_models():
    import importlib
    import sys
    from pathlib import Path

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module("tiny_models")


def _on_torch(folder):
    """Remember torch as this model's runtime in the run's cache, so a job of runtime auto on it
    starts at once instead of probing (converting, quantising to int8, timing each path) in
    whichever test happens to come first. Tests of the choice itself use a cache of their own
    (tests/inference/test_runtimes.py); OpenVINO has tests of its own on every job kind."""
    from inference import runtimes
    from inference.backends.openvino_backend import fingerprint_of
    from inference.models.store import locate

    key = runtimes.choice_key(fingerprint_of(locate(str(folder))), str(folder), (), "cpu")
    runtimes.Choices().put(key, runtimes.Choice("torch", "float32"))
    return folder


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    """Folder of a tiny StableDiffusionPipeline (text2img); native size 64 x 64 px."""
    return _on_torch(_tiny_models().build_sd(tmp_path_factory.mktemp("tiny_sd"), kind="text2img"))


@pytest.fixture(scope="session")
def tiny_sd_inpaint(tmp_path_factory):
    """Folder of a tiny StableDiffusionInpaintPipeline (9-channel UNet); native 64 x 64 px."""
    return _on_torch(_tiny_models().build_sd(tmp_path_factory.mktemp("tiny_sd_inpaint"), kind="inpaint"))


@pytest.fixture(scope="session")
def tiny_sd_pix2pix(tmp_path_factory):
    """Folder of a tiny StableDiffusionInstructPix2PixPipeline (8-channel UNet); 64 x 64 px."""
    return _on_torch(_tiny_models().build_sd(tmp_path_factory.mktemp("tiny_sd_pix2pix"), kind="pix2pix"))


@pytest.fixture(scope="session")
def tiny_sd2(tmp_path_factory):
    """Folder of a tiny SD 2.x pipeline (1024-wide text encoder, v-prediction); 64 x 64 px."""
    return _on_torch(_tiny_models().build_sd2(tmp_path_factory.mktemp("tiny_sd2")))


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory):
    """Folder of a tiny StableDiffusionXLPipeline; native size 64 x 64 px."""
    return _on_torch(_tiny_models().build_sdxl(tmp_path_factory.mktemp("tiny_sdxl")))


@pytest.fixture(scope="session")
def tiny_sd_single_file(tiny_sd, tmp_path_factory):
    """One original-format (LDM) .safetensors of the `tiny_sd` weights.

    Load with ``StableDiffusionPipeline.from_single_file(path, config=str(tiny_sd),
    local_files_only=True)``: offline, the `tiny_sd` folder must be given as ``config``.
    """
    out = tmp_path_factory.mktemp("tiny_sd_single_file") / "tiny_sd.safetensors"
    return _on_torch(_tiny_models().write_single_file(tiny_sd, out))


@pytest.fixture(scope="session")
def tiny_lora(tiny_sd, tmp_path_factory):
    """A rank-4 LoRA .safetensors (unet + text encoder) for `tiny_sd`; non-zero, so it changes images."""
    out = tmp_path_factory.mktemp("tiny_lora") / "tiny_lora.safetensors"
    return _tiny_models().write_lora(tiny_sd, out)


@pytest.fixture(scope="session")
def tiny_builtin(tmp_path_factory):
    """Folder of a tiny random-weight Quickbrush built-in model (int8 weights, as shipped); 32 x 32 px."""
    return _tiny_models().build_builtin(tmp_path_factory.mktemp("tiny_builtin") / "builtin", int8=True)


# --------------------------------------------------------------------------------------
# A real HTTP server playing the Hugging Face Hub (tests/hub_server.py), for downloads.


@pytest.fixture
def hub_server(monkeypatch, tmp_path_factory):
    """A started tests/hub_server.HubServer with huggingface_hub pointed at it: HF_ENDPOINT, a
    fresh HF_HOME, online, no xet. huggingface_hub reads these at import into its `constants`
    module, so those are patched too. Add repositories with `hub_server.add_repo(id, folder)`."""
    from huggingface_hub import constants

    from hub_server import HubServer

    server = HubServer().start()
    home = tmp_path_factory.mktemp("hf_home")
    cache = home / "hub"
    for key, value in {"HF_ENDPOINT": server.url, "HF_HOME": str(home), "HF_HUB_CACHE": str(cache),
                       "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_flux2(tmp_path_factory):
    """Folder of a tiny random-weight Flux2KleinPipeline (distilled); native 64 x 64 px, sizes in 4 px."""
    return _tiny_models().build_flux2_klein(tmp_path_factory.mktemp("tiny_flux2"))
