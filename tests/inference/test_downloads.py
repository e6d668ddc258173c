"""Downloads from a real HTTP server playing the Hub (tests/hub_server.py, the `hub_server` fixture):
progress, a dropped connection, a corrupt file, a stalled server, offline, a full disk, cancel and
resume, remove. Files are small; only the cancel tests throttle the server, to stop mid-file."""

import dataclasses
import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from inference.jobs import BadInput, Cancelled, ModelMissing, NetworkUnavailable
from inference.models import catalog, downloads
from inference.models.catalog import Entry

WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


def repo_files(weights_size=300_000):
    return {
        "model_index.json": b'{"_class_name": "StableDiffusionPipeline"}',
        "unet/config.json": b'{"sample_size": 32}',
        WEIGHTS: os.urandom(weights_size),
        "README.md": b"# not needed",
    }


def make_entry(repo="tiny/model", files=("model_index.json", "unet/*"), **changes) -> Entry:
    e = Entry(id=repo.split("/")[1], name="Tiny model", description="A tiny test model.", kind="pipeline",
              repo=repo, revision=None, files=tuple(files), capabilities=("generate",), preset="default",
              base=None, download_bytes=300_000, memory_bytes=300_000, licence="MIT",
              licence_url="https://example.org/mit", commercial=True)
    return dataclasses.replace(e, **changes)


def file_gets(server, name):
    return [rng for method, path, rng in server.requests if method == "GET" and path.endswith("/" + name)]


@pytest.fixture
def timeouts(monkeypatch):
    """Short waits, so a stalled server fails a test in about a second."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.3)
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 2)


def test_a_normal_download(hub_server):
    from huggingface_hub import hf_hub_download

    files = repo_files()
    sha = hub_server.add_repo("tiny/model", files)
    e = make_entry()
    assert downloads.state(e) == "absent" and downloads.installed_path(e) is None
    seen = []
    path = downloads.Download(e, seen.append).run()

    assert path.name == sha and path == downloads.installed_path(e)
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()) \
        == ["model_index.json", "unet/config.json", WEIGHTS]  # README.md is not in the entry's files
    assert (path / WEIGHTS).read_bytes() == files[WEIGHTS]
    assert downloads.state(e) == "installed"
    assert downloads.model_source(e) == str(path)
    # Progress: per file and in total, ending complete.
    last = seen[-1]
    assert last.stage == "done" and last.done == last.total == sum(len(files[n]) for n in files if n != "README.md")
    assert {f.name: f.total for f in last.files}[WEIGHTS] == len(files[WEIGHTS])
    assert all(f.done == f.total for f in last.files)
    assert any(p.current == WEIGHTS and p.stage == "verify" for p in seen)
    assert all(p.bytes_per_s >= 0 for p in seen)
    # The usual cache layout: huggingface_hub (and so diffusers) finds the files offline.
    assert hf_hub_download("tiny/model", WEIGHTS, revision=sha, local_files_only=True) == str(path / WEIGHTS)
    # A second run fetches nothing.
    before = len(hub_server.requests)
    assert downloads.Download(e).run() == path
    assert len(hub_server.requests) == before


def test_a_dropped_connection_resumes_where_it_stopped(hub_server):
    files = repo_files()
    hub_server.add_repo("tiny/model", files)
    hub_server.drop_after(100_000)
    path = downloads.Download(make_entry()).run()
    assert (path / WEIGHTS).read_bytes() == files[WEIGHTS]
    ranges = file_gets(hub_server, WEIGHTS)
    assert len(ranges) == 2 and ranges[0] is None and ranges[1].startswith("bytes=")
    resumed_at = int(ranges[1][len("bytes="):-1])
    assert resumed_at > 0
    # Not fetched again from zero: every byte of the file was served once.
    assert hub_server.served[WEIGHTS] == len(files[WEIGHTS])


def test_a_corrupt_file_is_refused_and_never_listed(hub_server):
    from inference.models import store

    hub_server.add_repo("tiny/model", repo_files())
    hub_server.corrupt(WEIGHTS)
    e = make_entry()
    with pytest.raises(downloads.Corrupt) as info:
        downloads.Download(e).run()
    assert WEIGHTS in info.value.message and "sha256" in info.value.details
    assert downloads.state(e) != "installed" and downloads.installed_path(e) is None
    assert "tiny/model" not in [m.name for m in store.list_models()]
    with pytest.raises(ModelMissing):
        downloads.model_source(e)
    blobs = downloads._repo_folder("tiny/model") / "blobs"
    assert not [p for p in blobs.iterdir() if p.stat().st_size == 300_000]  # the damaged file is gone
    # Once the server sends the right bytes, the download completes.
    hub_server.reset()
    assert downloads.Download(e).run() == downloads.installed_path(e)


def test_a_stalled_server_times_out_with_a_clear_message(hub_server, timeouts):
    hub_server.add_repo("tiny/model", repo_files())
    hub_server.stall()
    with pytest.raises(NetworkUnavailable) as info:
        downloads.Download(make_entry()).run()
    assert "stalled" in info.value.message and "0.3 seconds" in info.value.message
    assert "HF_HUB_DOWNLOAD_TIMEOUT" in info.value.details
    assert downloads.state(make_entry()) != "installed"


def test_an_unreachable_hub_is_a_network_error(hub_server, timeouts, monkeypatch):
    from huggingface_hub import constants

    hub_server.stop()
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(NetworkUnavailable) as info:
        downloads.Download(make_entry()).run()
    assert "Hugging Face Hub" in info.value.message


def test_offline_without_and_with_the_model(hub_server, monkeypatch):
    from huggingface_hub import constants

    hub_server.add_repo("tiny/model", repo_files())
    e = make_entry()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(NetworkUnavailable) as info:
        downloads.Download(e).run()
    assert "offline" in info.value.message and not hub_server.requests

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    path = downloads.Download(e).run()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = len(hub_server.requests)
    assert downloads.Download(e).run() == path and downloads.state(e) == "installed"
    assert len(hub_server.requests) == before


def test_a_full_disk_is_said_before_anything_is_fetched(hub_server, monkeypatch):
    hub_server.add_repo("tiny/model", repo_files())
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 50_000, 50_000))
    e = make_entry()
    with pytest.raises(downloads.DiskFull) as info:
        downloads.Download(e).run()
    assert info.value.needed > 300_000 and info.value.free == 50_000
    assert "needs 300.1 kB" in info.value.message and "50.0 kB is free" in info.value.message
    assert not file_gets(hub_server, WEIGHTS)
    assert downloads.state(e) == "absent"


def test_cancel_mid_download_then_resume(hub_server):
    files = repo_files(400_000)
    hub_server.add_repo("tiny/model", files)
    hub_server.slow(200_000)  # two seconds for the file: cancel lands mid-file
    e = make_entry()
    download = None

    def on_progress(p):
        if p.current == WEIGHTS and p.done > 100_000:
            download.cancel()

    download = downloads.Download(e, on_progress)
    with pytest.raises(Cancelled):
        download.run()
    assert downloads.state(e) == "partial"
    part = next((downloads._repo_folder("tiny/model") / "blobs").glob("*.incomplete"))
    kept = part.stat().st_size
    assert 100_000 < kept < len(files[WEIGHTS])

    hub_server.reset()
    path = downloads.Download(e).run()  # as after a restart: a new Download, the same cache
    assert (path / WEIGHTS).read_bytes() == files[WEIGHTS]
    assert file_gets(hub_server, WEIGHTS)[-1] == f"bytes={kept}-"


def test_cancel_from_another_thread(hub_server):
    import threading

    hub_server.add_repo("tiny/model", repo_files(400_000))
    hub_server.slow(200_000)
    download = downloads.Download(make_entry())
    started = threading.Event()
    download.on_progress = lambda p: started.set() if p.done > 0 else None
    result = {}

    def work():
        try:
            download.run()
        except Cancelled as exc:
            result["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    assert started.wait(10)
    download.cancel()
    thread.join(10)
    assert not thread.is_alive() and isinstance(result.get("error"), Cancelled)


def test_remove_gives_the_space_back(hub_server):
    files = repo_files()
    hub_server.add_repo("tiny/model", files)
    e = make_entry()
    downloads.Download(e).run()
    assert downloads.remove(e) == sum(len(files[n]) for n in files if n != "README.md")
    assert downloads.state(e) == "absent"
    assert not downloads._repo_folder("tiny/model").exists()


def test_remove_of_a_partial_download_deletes_its_part(hub_server):
    hub_server.add_repo("tiny/model", repo_files(400_000))
    hub_server.slow(200_000)
    e = make_entry()
    download = downloads.Download(e, lambda p: download.cancel() if p.done > 50_000 else None)
    with pytest.raises(Cancelled):
        download.run()
    reclaimed = downloads.remove(e)
    assert reclaimed > 50_000 and downloads.state(e) == "absent"


def test_a_non_commercial_licence_is_accepted_first(hub_server):
    hub_server.add_repo("tiny/model", repo_files())
    e = make_entry(commercial=False, licence="Non-Commercial Test Licence")
    with pytest.raises(downloads.LicenceRequired) as info:
        downloads.Download(e).run()
    assert "Non-Commercial Test Licence" in info.value.message and not hub_server.requests
    catalog.accept_licence(e)
    assert downloads.Download(e).run().is_dir()


def test_unknown_repository_and_missing_files(hub_server):
    hub_server.add_repo("tiny/model", repo_files())
    with pytest.raises(ModelMissing) as info:
        downloads.Download(make_entry(repo="nobody/nothing")).run()
    assert "no model nobody/nothing" in info.value.message
    with pytest.raises(ModelMissing) as info:
        downloads.Download(make_entry(files=("model_index.json", "vae/*"))).run()
    assert "vae/*" in info.value.details
    with pytest.raises(ModelMissing):
        downloads.Download(make_entry(revision="0" * 40)).run()


def test_a_lora_brings_its_base_model(hub_server, monkeypatch):
    hub_server.add_repo("tiny/model", repo_files())
    hub_server.add_repo("tiny/lora", {"pytorch_lora_weights.safetensors": os.urandom(20_000)})
    base = make_entry()
    lora = make_entry(repo="tiny/lora", files=("pytorch_lora_weights.safetensors",), kind="lora",
                      base=base.id, capabilities=("generate", "lora"), preset="lcm-lora")
    monkeypatch.setattr(catalog, "_load", lambda: (base, lora))
    seen = []
    downloads.Download(lora, seen.append).run()
    assert downloads.state(base) == downloads.state(lora) == "installed"
    assert any(f.name.startswith(f"{base.id}: ") for f in seen[-1].files)
    ref = downloads.model_ref(lora)
    assert ref.source == str(downloads.installed_path(base)) and ref.preset == "lcm-lora"
    assert Path(ref.loras[0].source).name == "pytorch_lora_weights.safetensors"
    # Removing the LoRA keeps its base model.
    assert downloads.remove(lora) == 20_000
    assert downloads.state(base) == "installed" and downloads.state(lora) == "absent"


def test_a_typed_repository_gets_one_format(hub_server):
    files = repo_files()
    files["unet/diffusion_pytorch_model.fp16.safetensors"] = os.urandom(1000)
    files["unet/diffusion_pytorch_model.bin"] = os.urandom(1000)
    files["v1-5-pruned.safetensors"] = os.urandom(1000)
    hub_server.add_repo("someone/model", files)
    e = catalog.for_repo("someone/model")
    catalog.accept_licence(e)
    path = downloads.Download(e).run()
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()) \
        == ["model_index.json", "unet/config.json", WEIGHTS]
    assert downloads.state(e) == "installed"


def test_a_typed_repository_of_one_checkpoint_is_that_file(hub_server):
    hub_server.add_repo("someone/checkpoint", {"model.safetensors": os.urandom(1000), "README.md": b"#"})
    e = catalog.for_repo("someone/checkpoint")
    catalog.accept_licence(e)
    path = downloads.Download(e).run()
    assert downloads.model_source(e) == str(path / "model.safetensors")


def test_a_pickle_only_repository_is_refused(hub_server):
    hub_server.add_repo("someone/pickles", {"model.ckpt": os.urandom(1000)})
    e = catalog.for_repo("someone/pickles")
    catalog.accept_licence(e)
    with pytest.raises(BadInput) as info:
        downloads.Download(e).run()
    assert "pickle" in info.value.message


def test_a_decoder_is_linked_into_the_models_folder(hub_server, monkeypatch, tmp_path):
    monkeypatch.setenv("QUICKBRUSH_MODELS", str(tmp_path / "models"))
    hub_server.add_repo("tiny/taesd", {"config.json": b"{}", "diffusion_pytorch_model.safetensors": b"x" * 5000})
    e = make_entry(repo="tiny/taesd", id="taesd", kind="decoder", capabilities=("decoder",), preset=None,
                   files=("config.json", "diffusion_pytorch_model.safetensors"))
    downloads.Download(e).run()
    assert (tmp_path / "models" / "taesd" / "config.json").is_file()
    downloads.remove(e)
    assert not os.path.lexists(tmp_path / "models" / "taesd")


def test_the_builtin_model_needs_no_download():
    e = catalog.entry("builtin")
    assert downloads.model_source(e) == "builtin"
    with pytest.raises(BadInput):
        downloads.remove(e)


def test_a_tiny_diffusers_model_arrives_loadable(hub_server, tiny_sd):
    from inference.models.store import check_pipeline_folder

    hub_server.add_repo("tiny/sd", tiny_sd)
    e = make_entry(repo="tiny/sd", files=("model_index.json", "*/*.json", "*/*.safetensors", "tokenizer/*"))
    path = downloads.Download(e).run()
    assert check_pipeline_folder(path, "tiny/sd")["_class_name"] == "StableDiffusionPipeline"


def test_downloads_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys; from inference.models import downloads; "
            "print([m for m in ('torch', 'diffusers', 'PySide6') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("n, text", [(0, "0 bytes"), (999, "999 bytes"), (2_600_000_000, "2.6 GB"),
                                     (50_000, "50.0 kB")])
def test_human_bytes(n, text):
    assert downloads.human_bytes(n) == text


def test_cancel_interrupts_a_silent_server(hub_server, monkeypatch):
    """Cancel does not wait for the read timeout while the server sends nothing."""
    import threading

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 60)
    hub_server.add_repo("tiny/model", repo_files())
    hub_server.stall()
    download = downloads.Download(make_entry())
    result = {}

    def work():
        try:
            download.run()
        except Exception as exc:  # noqa: BLE001 - the test looks at which
            result["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    while thread.is_alive() and download._socket is None:  # the first file's headers came
        thread.join(0.01)
    download.cancel()
    thread.join(20)
    assert not thread.is_alive() and isinstance(result.get("error"), Cancelled)


def test_a_disk_that_fills_up_mid_download(hub_server, monkeypatch):
    import builtins
    import errno

    hub_server.add_repo("tiny/model", repo_files())
    real_open = builtins.open

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return Full(handle) if str(path).endswith(".incomplete") else handle

    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(downloads.DiskFull) as info:
        downloads.Download(make_entry()).run()
    assert "filled up" in info.value.message


def test_two_entries_sharing_a_file_keep_it_until_both_are_removed(hub_server, monkeypatch):
    """The catalog's two LCM-LoRA entries (on SD 1.5 and on its inpainting model) are one file."""
    hub_server.add_repo("tiny/model", repo_files())
    hub_server.add_repo("tiny/lora", {"pytorch_lora_weights.safetensors": os.urandom(20_000)})
    base = make_entry()
    first = make_entry(repo="tiny/lora", id="lora-a", files=("pytorch_lora_weights.safetensors",), kind="lora",
                       base=base.id, capabilities=("generate", "lora"))
    second = dataclasses.replace(first, id="lora-b")
    monkeypatch.setattr(catalog, "_load", lambda: (base, first, second))
    downloads.Download(first).run()
    before = len(hub_server.requests)
    downloads.Download(second).run()
    assert not any(m == "GET" and "/resolve/" in p for m, p, _ in hub_server.requests[before:])
    assert downloads.remove(first) == 0  # still used by the other entry
    assert downloads.state(second) == "installed" and downloads.state(first) == "absent"
    assert downloads.remove(second) == 20_000


def test_a_model_this_diffusers_cannot_run_is_not_downloaded(hub_server):
    hub_server.add_repo("tiny/model", repo_files())
    with pytest.raises(ModelMissing) as info:
        downloads.Download(make_entry(pipeline="NoSuchPipelineAnywhere")).run()
    assert "newer diffusers" in info.value.message and not hub_server.requests
    assert downloads.Download(make_entry(pipeline="StableDiffusionPipeline")).run().is_dir()


def test_two_downloads_of_one_file_at_once_fetch_it_once(hub_server):
    import threading

    files = repo_files()
    hub_server.add_repo("tiny/model", files)
    hub_server.slow(1_000_000)
    first, second = make_entry(id="first"), make_entry(id="second")
    errors = []

    def work(e):
        try:
            downloads.Download(e).run()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(e,)) for e in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert downloads.state(first) == downloads.state(second) == "installed"
    assert hub_server.served[WEIGHTS] == len(files[WEIGHTS])


def test_remove_keeps_blobs_another_revision_uses(hub_server):
    from huggingface_hub import snapshot_download

    files = repo_files()
    hub_server.add_repo("tiny/model", files)
    old = snapshot_download("tiny/model")  # another tool's copy of the first commit
    changed = dict(files, **{"unet/config.json": b'{"sample_size": 16}'})
    hub_server.add_repo("tiny/model", changed)
    e = make_entry()
    downloads.Download(e).run()  # the second commit: its weights are the same blob
    reclaimed = downloads.remove(e)
    assert reclaimed == len(changed["unet/config.json"])  # only what the other commit does not use
    assert (Path(old) / WEIGHTS).read_bytes() == files[WEIGHTS]


def test_a_killed_download_resumes_in_the_next_process(hub_server, tmp_path):
    """The partial file survives SIGKILL (no cleanup runs) and the next process continues it."""
    import signal
    import subprocess
    import sys
    import time

    from huggingface_hub import constants

    files = repo_files(400_000)
    hub_server.add_repo("tiny/model", files)
    hub_server.slow(200_000)
    code = ("from inference.models import catalog, downloads; "
            "e = catalog.Entry(id='model', name='Tiny model', description='d.', kind='pipeline', "
            "repo='tiny/model', revision=None, files=('model_index.json', 'unet/*'), capabilities=('generate',), "
            "preset='default', base=None, download_bytes=1, memory_bytes=1, licence='MIT', "
            "licence_url='https://example.org', commercial=True); downloads.Download(e).run()")
    env = dict(os.environ, HF_ENDPOINT=hub_server.url, HF_HUB_CACHE=constants.HF_HUB_CACHE, HF_HUB_OFFLINE="0")
    child = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=str(Path(__file__).parents[2]))
    blobs = downloads._repo_folder("tiny/model") / "blobs"
    try:
        while child.poll() is None:
            parts = list(blobs.glob("*.incomplete")) if blobs.is_dir() else []
            if parts and parts[0].stat().st_size > 50_000:
                break
            time.sleep(0.02)
        assert child.poll() is None, "the child finished before it could be killed"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    kept = next(blobs.glob("*.incomplete")).stat().st_size
    hub_server.reset()
    path = downloads.Download(make_entry()).run()
    assert (path / WEIGHTS).read_bytes() == files[WEIGHTS]
    assert file_gets(hub_server, WEIGHTS)[-1] == f"bytes={kept}-"


def test_a_downloaded_fp16_model_generates_through_the_engine(hub_server, tiny_sd, tmp_path):
    """The whole way a designer goes: a catalog-style entry (fp16 files only, as the catalog
    lists them) fetched from the Hub, then a Generate job on what model_ref gives."""
    from inference.engine import Engine
    from inference.jobs import Generate

    repo = tmp_path / "fp16"
    shutil.copytree(tiny_sd, repo)
    for weights in list(repo.glob("*/*.safetensors")):
        weights.rename(weights.with_name(weights.name.replace(".safetensors", ".fp16.safetensors")))
    hub_server.add_repo("tiny/sd-fp16", repo)
    e = make_entry(repo="tiny/sd-fp16", files=("model_index.json", "*/*.json", "*/*.fp16.safetensors", "tokenizer/*"),
                   preset="sd-turbo")
    downloads.Download(e).run()
    assert downloads.state(e) == "installed"
    ref = downloads.model_ref(e)
    engine = Engine(max_models=1)
    try:
        image, resolved, _timings, info = engine.run(
            1, Generate(prompt="a red apple", model=ref, seed=1, width=64, height=64, runtime="torch"),
            lambda _p: None, lambda: False)
    finally:
        engine.unload()
    assert image.size == (64, 64)
    assert resolved.steps == 1, "the entry's preset (sd-turbo: 1 step) decides the recipe"
