"""quickbrush-cli models list|download|remove|import|info, in-process and as a real process,
downloading from the test Hub (tests/hub_server.py)."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from inference.cli import EXIT_CANCELLED, main
from inference.models import catalog, downloads

ROOT = Path(__file__).resolve().parents[2]
REPO = "tester/tiny-sd"


def cli(capsys, *args):
    code = main([*map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *needles):
    assert code == 1, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("quickbrush-cli: error: "), err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


@pytest.fixture
def models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("QUICKBRUSH_MODELS", str(folder))
    return folder


def rows(out):
    return {line.split()[0]: line for line in out.strip().splitlines()}


# --------------------------------------------------------------------------- list, info


def test_list_shows_the_catalog_and_imported_models_one_line_each(capsys, models, tiny_sd, tiny_lora):
    shutil.copytree(tiny_sd, models / "my-sd")
    shutil.copy(tiny_lora, models / "my-lora.safetensors")
    code, out, err = cli(capsys, "models", "list", "--no-hub-cache")
    assert code == 0 and not err
    listed = rows(out)
    for e in catalog.entries():
        assert e.id in listed, e.id
        assert ",".join(e.capabilities) in listed[e.id] and e.licence in listed[e.id]
        assert ("not installed" in listed[e.id]) == (downloads.state(e) == "absent")
    assert "installed" in listed["builtin"] and "MB" in listed["builtin"]
    assert "generate" in listed["my-sd"] and "installed" in listed["my-sd"] and "MB" in listed["my-sd"]
    assert "lora" in listed["my-lora.safetensors"]
    # Bare `models` is `models list`, as before.
    code, bare, _ = cli(capsys, "models", "--no-hub-cache")
    assert code == 0 and bare == out


def test_list_filters_by_capability(capsys, models, tiny_lora):
    shutil.copy(tiny_lora, models / "my-lora.safetensors")
    code, out, _ = cli(capsys, "models", "list", "--capability", "edit", "--no-hub-cache")
    assert code == 0
    assert set(rows(out)) == {e.id for e in catalog.entries("edit")}


def test_info_prints_the_whole_entry(capsys, models):
    e = next(e for e in catalog.entries() if e.repo and not e.commercial and e.preset)
    code, out, _ = cli(capsys, "models", "info", e.id)
    assert code == 0
    for text in (e.id, e.repo, e.revision or "main", e.licence, e.licence_url, e.preset, "commercial use: no",
                 "not installed", *e.files[:3]):
        assert text in out, text
    assert "GB" in out or "MB" in out


def test_info_and_remove_of_an_imported_model(capsys, models, tiny_sd_single_file):
    code, out, _ = cli(capsys, "models", "import", tiny_sd_single_file)
    assert code == 0 and "Imported tiny_sd.safetensors: SD 1.x text to image model" in out
    code, out, _ = cli(capsys, "models", "info", "tiny_sd.safetensors")
    assert code == 0 and "SD 1.x" in out and "shipped sd1 configs" in out
    size = (models / "tiny_sd.safetensors").stat().st_size
    code, out, _ = cli(capsys, "models", "remove", "tiny_sd.safetensors")
    assert code == 0 and out.strip() == f"Removed tiny_sd.safetensors: {downloads.human_bytes(size)} freed."
    assert not (models / "tiny_sd.safetensors").exists()


def test_unknown_models_are_one_line_errors(capsys, models):
    code, _, err = cli(capsys, "models", "info", "no-such-model")
    one_line_error(code, err, "no-such-model")
    code, _, err = cli(capsys, "models", "remove", "no-such-model")
    one_line_error(code, err, "no installed model")
    e = next(e for e in catalog.entries() if e.kind == "pipeline")
    code, _, err = cli(capsys, "models", "remove", e.id)
    one_line_error(code, err, "not installed")


# --------------------------------------------------------------------------- import


def test_import_a_folder_and_a_lora_then_list_them(capsys, models, tiny_sd, tiny_lora):
    code, out, err = cli(capsys, "models", "import", tiny_sd, "--name", "my-model")
    assert code == 0 and "Imported my-model: SD 1.x text to image model" in out and "--model my-model" in out
    code, out, _ = cli(capsys, "models", "import", tiny_lora)
    assert code == 0 and "LoRA" in out and "--lora" in out
    code, out, _ = cli(capsys, "models", "list", "--no-hub-cache")
    assert "my-model" in rows(out) and "tiny_lora.safetensors" in rows(out)


def test_import_refuses_pickles_and_damaged_files_in_one_line(capsys, tmp_path, models, tiny_sd_single_file):
    import torch
    from safetensors.torch import load_file

    ckpt = tmp_path / "model.ckpt"
    torch.save(load_file(str(tiny_sd_single_file)), ckpt)
    code, _, err = cli(capsys, "models", "import", ckpt)
    one_line_error(code, err, "pickle", "can run any code", "--allow-pickle")
    code, out, _ = cli(capsys, "models", "import", ckpt, "--allow-pickle")
    assert code == 0 and "converted from a pickle" in out and (models / "model.safetensors").is_file()

    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(tiny_sd_single_file.read_bytes()[:-4096])
    code, _, err = cli(capsys, "models", "import", cut)
    one_line_error(code, err, "cut.safetensors", "damaged or incomplete")
    assert sorted(p.name for p in models.iterdir()) == ["model.safetensors"]


# --------------------------------------------------------------------------- download, remove


def test_download_needs_the_licence_accepted_then_shows_progress_and_installs(capsys, models, hub_server, tiny_sd):
    hub_server.add_repo(REPO, tiny_sd)
    code, _, err = cli(capsys, "models", "download", REPO)
    one_line_error(code, err, "--accept-licence")
    code, out, err = cli(capsys, "models", "download", REPO, "--accept-licence")
    assert code == 0, err
    assert out.startswith(f"{REPO} installed: ")
    assert f"{REPO}: " in err and " of " in err and "MB" in err and "Traceback" not in err
    e = catalog.for_repo(REPO)
    assert downloads.state(e) == "installed"
    code, out, _ = cli(capsys, "models", "list")
    assert "installed" in rows(out)[REPO]
    code, out, _ = cli(capsys, "models", "remove", REPO)
    assert code == 0 and out.startswith(f"Removed {REPO}: ") and "MB freed." in out
    assert downloads.state(e) == "absent"


def test_a_non_commercial_catalog_model_needs_its_licence_accepted(capsys, models):
    e = next(e for e in catalog.entries() if not e.commercial and e.kind == "pipeline")
    code, _, err = cli(capsys, "models", "download", e.id)
    one_line_error(code, err, e.licence, e.licence_url, "--accept-licence")
    assert not catalog.licence_accepted(e)


def test_download_while_offline_is_one_line(capsys, models, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = cli(capsys, "models", "download", REPO, "--accept-licence")
    one_line_error(code, err, "offline")


def test_download_of_a_missing_repository_is_one_line(capsys, models, hub_server):
    code, _, err = cli(capsys, "models", "download", "nobody/nothing", "--accept-licence")
    assert code == 1 and "Traceback" not in err
    one_line_error(code, err)


def test_ctrl_c_cancels_a_download_in_a_real_process_and_keeps_the_partial(models, hub_server, tiny_sd):
    """SIGINT, as a terminal sends for Ctrl+C: the cancelled exit code, one line, no traceback, and
    what was fetched kept for the next try."""
    hub_server.add_repo(REPO, tiny_sd)
    hub_server.slow(200_000)
    process = subprocess.Popen([sys.executable, "-m", "inference.cli", "models", "download", REPO,
                                "--accept-licence"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        first = process.stderr.readline()  # the first progress line: the download is under way
        assert f"{REPO}: " in first, first
        for _ in range(20):  # lines a few seconds apart (and one per checked file) until one with
            later = process.stderr.readline()  # bytes, speed and time left
            if " left" in later:
                break
        assert " of " in later and "kB/s" in later and " left" in later, later
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == EXIT_CANCELLED, err
    assert "Traceback" not in err and "cancelled" in err
    assert not out
    hub_server.reset()
    assert downloads.state(catalog.for_repo(REPO)) == "partial"


def test_a_damaged_import_in_a_real_process_prints_one_line(tmp_path, models, tiny_sd_single_file):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(tiny_sd_single_file.read_bytes()[:100])
    result = subprocess.run([sys.executable, "-m", "inference.cli", "models", "import", str(cut)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    one_line_error(result.returncode, result.stderr, "damaged or incomplete")
    assert not result.stdout
