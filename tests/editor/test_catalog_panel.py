"""The Model dock's catalog: the list, its filter, licences, downloads from a real (local) Hub
server with progress, cancel and resume, corrupt files, remove, import and typed repo ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from editor import downloads as qt_downloads
from editor.panels import catalog as catalog_module
from editor.panels.catalog import (
    CatalogPanel,
    file_line,
    human_bytes,
    human_time_left,
    progress_line,
)
from editor.settings import Settings
from inference.jobs import ModelRef
from inference.models import catalog

WAIT = 30000  # ms: generous, for a loaded CI machine; nothing here measures time


@pytest.fixture
def settings(qapp, tmp_path):
    return Settings(QSettings(str(tmp_path / "quickbrush.ini"), QSettings.Format.IniFormat))


@pytest.fixture(autouse=True)
def _no_threads_left():
    yield
    qt_downloads.shutdown_all()
    assert not qt_downloads.running(), [task.what for task in qt_downloads.running()]


@pytest.fixture
def make_panel(qtbot, settings):
    def make(**apis):
        panel = CatalogPanel(settings, runtime_of=lambda source: f"runtime of {source}", **apis)
        qtbot.addWidget(panel)
        panel.resize(320, 520)
        qtbot.waitUntil(panel.wait_ready, timeout=WAIT)
        return panel

    return make


# --------------------------------------------------------------------------- text


def test_sizes_speeds_and_times_read_as_a_designer_reads_them():
    assert human_bytes(2_140_000_000) == "2.1 GB" and human_bytes(540_000_000) == "540 MB"
    assert human_bytes(12_300) == "12.3 KB" and human_bytes(7) == "7 bytes"
    assert human_time_left(42) == "42 s left" and human_time_left(185) == "3 min left"
    assert human_time_left(3 * 3600 + 5 * 60) == "3 h 05 min left" and human_time_left(None) == "time left unknown"

    class F:
        def __init__(self, name, done, total):
            self.name, self.done, self.total = name, done, total

    class P:
        files = (F("model_index.json", 500, 500), F("unet/diffusion_pytorch_model.safetensors", 400_000_000,
                                                     1_700_000_000))
        done, total, bytes_per_s, seconds_left = 400_000_500, 2_100_000_000, 5_100_000, 333.0
        current = "unet/diffusion_pytorch_model.safetensors"

    assert progress_line(P) == "400 MB of 2.1 GB · 5.1 MB/s · 6 min left"
    assert file_line(P) == "File 2 of 2: 400 MB of 1.7 GB · unet/diffusion_pytorch_model.safetensors"


# --------------------------------------------------------------------------- the list


def test_the_list_shows_the_catalog_and_filters_by_capability(make_panel):
    panel = make_panel()
    every = [e.id for e in catalog.entries()]
    assert panel.entries_shown() == every
    for capability in catalog.CAPABILITIES:
        panel.set_capability(capability)
        assert panel.entries_shown() == [e.id for e in catalog.entries(capability)], capability
    panel.set_capability("decoder")
    assert set(panel.entries_shown()) == {"taesd", "taesdxl"}
    panel.set_capability(None)

    # A row: name (non-commercial marked) and description; size and state; the rest on opening it.
    item = panel._items["sd-turbo"]
    e = catalog.entry("sd-turbo")
    name_line, description = item.text(0).split("\n")
    assert name_line == "SD-Turbo  · non-commercial" and description == e.description
    assert item.text(1).split("\n")[0] == human_bytes(e.download_bytes)
    details = [item.child(i).text(0) for i in range(item.childCount())]
    assert any(d.startswith(f"Licence: {e.licence} (non-commercial)") for d in details)
    assert "non-commercial use only" in item.toolTip(0) and e.description in item.toolTip(0)
    flux = panel._items["flux2-klein-4b"]
    assert "large" in flux.text(0) and "memory" in flux.toolTip(0)


def test_a_typed_repo_id_is_checked_and_joins_the_list(make_panel, monkeypatch):
    asked = []
    monkeypatch.setattr(catalog_module, "ask_licence", lambda parent, e: asked.append(e.id) or False)
    panel = make_panel()
    assert not panel.add_repo("not a repo id")
    assert "not a Hugging Face repository id" in panel.error_text()
    assert not panel.add_repo("")
    assert "Type a Hub repository id" in panel.error_text()

    # An unknown licence is asked about like a non-commercial one; declined, nothing is fetched.
    assert not panel.add_repo("someone/some-model")
    assert asked == ["someone/some-model"]
    assert panel.current_id() == "someone/some-model" and "someone/some-model" in panel.entries_shown()
    assert "licence unknown" in panel._items["someone/some-model"].text(0)
    assert "not accepted" in panel.message_text() and not panel.downloads.active()
    # A catalog repository typed in is the catalog's own entry, not a second one.
    assert not panel.add_repo("stabilityai/sd-turbo")
    assert panel.current_id() == "sd-turbo" and panel.entries_shown().count("sd-turbo") == 1


def test_import_refuses_what_it_must_and_lists_what_it_took(qtbot, settings, tmp_path, monkeypatch):
    """Through Part B's real importer: a pickle and a truncated file are refused with a message
    in the dock (no traceback); a whole checkpoint joins the Model list."""
    import numpy as np
    from safetensors.numpy import save_file

    from editor.panels.models import ModelPanel

    monkeypatch.setenv("QUICKBRUSH_MODELS", str(tmp_path / "models"))
    panel = ModelPanel(settings)
    qtbot.addWidget(panel)
    c = panel.catalog
    qtbot.waitUntil(c.wait_ready, timeout=WAIT)

    pickle = tmp_path / "old.ckpt"
    pickle.write_bytes(b"\x80\x02}q\x00.")
    assert c.import_model(path=str(pickle))
    qtbot.waitUntil(lambda: c.error_text() != "", timeout=WAIT)
    assert "old.ckpt" in c.error_text() and "Traceback" not in c.error_banner.details.toPlainText()

    whole = tmp_path / "my-sketch-model.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": np.zeros((320, 4, 3, 3), np.float16)}, str(whole))
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(whole.read_bytes()[:-1000])
    c.error_banner.dismiss()
    assert c.import_model(path=str(truncated))
    qtbot.waitUntil(lambda: c.error_text() != "", timeout=WAIT)
    assert "cut.safetensors" in c.error_text() and "Traceback" not in c.error_banner.details.toPlainText()
    assert not any("cut" in panel.model_combo.itemText(i) for i in range(panel.model_combo.count()))

    # Chosen in the file dialog (which tests replace), imported, and listed.
    monkeypatch.setattr(catalog_module, "choose_import_path", lambda parent, folder: str(whole))
    c.import_file_action.trigger()
    qtbot.waitUntil(lambda: "imported" in c.message_text(), timeout=WAIT)
    assert c.error_text() == ""
    qtbot.waitUntil(lambda: any(panel.model_combo.itemText(i).startswith("my-sketch-model")
                                for i in range(panel.model_combo.count())), timeout=WAIT)


def test_an_unexpected_import_failure_is_one_line_too(make_panel, qtbot, tmp_path):
    class Importer:
        @staticmethod
        def import_path(path, allow_pickle=False, on_progress=None):
            raise ValueError("header too short")

    panel = make_panel(importer_api=Importer)
    assert panel.import_model(path=str(tmp_path / "broken.safetensors"))
    qtbot.waitUntil(lambda: panel.error_text() != "", timeout=WAIT)
    assert panel.error_text() == "Importing broken.safetensors failed: header too short"
    assert "Traceback" not in panel.error_banner.details.toPlainText()


# --------------------------------------------------------------------------- downloads (a real local Hub)

REPO = "test/tiny-model"
UNET = "unet/diffusion_pytorch_model.safetensors"


def tiny_repo() -> dict[str, bytes]:
    """A small diffusers-shaped repository: the Model list lists it by its model_index.json;
    nothing here loads it. Weights are LFS files (sha256-checked), big enough to take a few
    seconds under `hub_server.slow`."""
    import json
    import random

    noise = random.Random(18)
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    return {
        "model_index.json": json.dumps(index).encode(),
        "unet/config.json": b'{"_class_name": "UNet2DConditionModel"}',
        UNET: noise.randbytes(600_000),
        "vae/config.json": b'{"_class_name": "AutoencoderKL"}',
        "vae/diffusion_pytorch_model.safetensors": noise.randbytes(200_000),
    }


@pytest.fixture
def model_panel(qtbot, settings, hub_server, monkeypatch, tmp_path):
    """The whole Model dock against the test Hub; licences of typed repos accepted."""
    from editor.panels.models import ModelPanel

    monkeypatch.setenv("QUICKBRUSH_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(catalog_module, "ask_licence", lambda parent, e: True)
    hub_server.add_repo(REPO, tiny_repo())
    panel = ModelPanel(settings)
    qtbot.addWidget(panel)
    panel.resize(330, 720)
    qtbot.waitUntil(panel.catalog.wait_ready, timeout=WAIT)
    return panel


def _progress(panel):
    return panel.catalog.downloads.last_progress(REPO)


def _start(qtbot, panel) -> None:
    with qtbot.waitSignal(panel.catalog.downloads.started, timeout=WAIT):
        assert panel.catalog.add_repo(REPO)


def _wait_installed(qtbot, panel) -> str:
    catalog_panel = panel.catalog
    qtbot.waitUntil(lambda: not catalog_panel.downloads.is_active(REPO) and catalog_panel.wait_ready()
                    and catalog_panel.state_of(REPO) == "installed", timeout=WAIT)
    return catalog_panel.installed_sources_by_id()[REPO]


def test_a_download_shows_progress_and_ends_in_the_model_list(qtbot, model_panel, settings, hub_server):
    from PySide6.QtCore import QTimer

    c = model_panel.catalog
    hub_server.slow(150_000)
    _start(qtbot, model_panel)
    assert c.cancel_button.isEnabled() and not c.download_button.isEnabled()
    # The GUI thread goes on while the model comes in: a timer on it keeps ticking.
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(c.downloads.is_active(REPO)))
    timer.start(10)
    qtbot.waitUntil(lambda: ticks.count(True) >= 20, timeout=WAIT)
    timer.stop()
    qtbot.waitUntil(lambda: _progress(model_panel) is not None and _progress(model_panel).done > 0, timeout=WAIT)
    first = _progress(model_panel).done
    qtbot.waitUntil(lambda: _progress(model_panel).done > first, timeout=WAIT)  # it advances
    progress = _progress(model_panel)
    total_line, file_text = c.progress_text().split("\n")
    assert " of " in total_line and ("/s" in total_line or "starting" in total_line) and "left" in total_line
    assert file_text.startswith("File ") and " of " in file_text
    assert c.status_text(REPO).endswith("%")
    assert progress.total >= sum(len(v) for v in tiny_repo().values()) - 1
    assert 0 < c.total_bar.value() < 1000

    hub_server.slow(None)
    source = _wait_installed(qtbot, model_panel)
    assert "installed" in c.message_text()
    assert c.progress_text() == "" and not c.cancel_button.isEnabled()
    assert catalog.licence_accepted(c.entry(REPO)), "accepted once, remembered"
    # The model is in the Model list and can be chosen.
    assert model_panel.model_combo.findData(source) >= 0
    c.select(REPO)
    assert c.use_button.isEnabled() and c.remove_button.isEnabled()
    c.use()
    assert settings.model == source and model_panel.model_ref().source == source
    assert model_panel.model_combo.currentData() == source


def test_cancel_keeps_what_was_fetched_and_resume_finishes_it(qtbot, model_panel, hub_server):
    c = model_panel.catalog
    hub_server.slow(100_000)
    _start(qtbot, model_panel)
    qtbot.waitUntil(lambda: _progress(model_panel) is not None
                    and any(f.name == UNET and f.done > 0 for f in _progress(model_panel).files), timeout=WAIT)
    with qtbot.waitSignal(c.downloads.failed, timeout=WAIT):
        c.cancel()
    assert "cancelled" in c.message_text() and c.error_text() == ""
    qtbot.waitUntil(c.wait_ready, timeout=WAIT)
    assert c.state_of(REPO) != "installed" and REPO not in c.installed_sources_by_id()
    assert model_panel.model_combo.findData(REPO) < 0, "a partial download is never listed"
    c.select(REPO)
    assert c.download_button.isEnabled() and not c.cancel_button.isEnabled()
    if c.state_of(REPO) == "partial":
        assert c.download_button.text() == "Resume"
    sent = hub_server.served.get(UNET, 0)
    assert 0 < sent < len(tiny_repo()[UNET])

    # After a restart (a new dock), the same repository typed again goes on from what was kept.
    from editor.panels.models import ModelPanel

    hub_server.slow(None)
    again = ModelPanel(model_panel.settings)
    qtbot.addWidget(again)
    qtbot.waitUntil(again.catalog.wait_ready, timeout=WAIT)
    _start(qtbot, again)
    _wait_installed(qtbot, again)
    resumed = [r for r in hub_server.requests if r[1].endswith(UNET) and r[2]]
    assert resumed, "the second download asked for the rest of the file (a Range request)"
    assert hub_server.served[UNET] < 2 * len(tiny_repo()[UNET])


def test_cancel_works_while_the_server_stalls(qtbot, model_panel, hub_server):
    c = model_panel.catalog
    hub_server.stall()
    _start(qtbot, model_panel)
    qtbot.waitUntil(lambda: any(r[1].startswith(f"/{REPO}/resolve/") and r[0] == "GET" for r in hub_server.requests),
                    timeout=WAIT)
    with qtbot.waitSignal(c.downloads.failed, timeout=WAIT) as failed:
        c.cancel()
    assert failed.args[1].kind == "cancelled" and "cancelled" in c.message_text()
    assert not c.downloads.active() and c.download_button.isEnabled()


def test_offline_says_so_and_fetches_nothing(qtbot, model_panel, hub_server, monkeypatch):
    from huggingface_hub import constants

    c = model_panel.catalog
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _start(qtbot, model_panel)
    with qtbot.waitSignal(c.downloads.failed, timeout=WAIT):
        pass
    assert "offline" in c.error_text() and sum(hub_server.served.values()) == 0


def test_a_corrupt_file_is_an_error_and_never_installed(qtbot, model_panel, hub_server):
    c = model_panel.catalog
    hub_server.corrupt(UNET)
    _start(qtbot, model_panel)
    with qtbot.waitSignal(c.downloads.failed, timeout=WAIT) as failed:
        pass
    error = failed.args[1]
    assert c.error_text() == error.message and error.message
    assert "Traceback" not in c.error_banner.details.toPlainText()
    qtbot.waitUntil(c.wait_ready, timeout=WAIT)
    assert c.state_of(REPO) != "installed" and REPO not in c.installed_sources_by_id()
    assert all(model_panel.model_combo.itemData(i) != REPO for i in range(model_panel.model_combo.count()))
    # The app goes on: the same repository downloads once the server serves it whole.
    hub_server.reset()
    with qtbot.waitSignal(c.downloads.started, timeout=WAIT):
        assert c.download(REPO)
    _wait_installed(qtbot, model_panel)


def test_a_dead_server_is_a_clear_message(qtbot, model_panel, hub_server):
    c = model_panel.catalog
    hub_server.stop()
    _start(qtbot, model_panel)
    with qtbot.waitSignal(c.downloads.failed, timeout=WAIT):
        pass
    assert c.error_text() and "Traceback" not in c.error_text()
    assert not c.downloads.active() and c.download_button.isEnabled()


def test_remove_says_how_much_space_came_back(qtbot, model_panel, settings, hub_server, monkeypatch):
    c = model_panel.catalog
    _start(qtbot, model_panel)
    source = _wait_installed(qtbot, model_panel)
    assert not c.add_repo(REPO) and "already installed" in c.message_text()
    c.select(REPO)
    c.use()
    asked = []
    monkeypatch.setattr(catalog_module, "confirm_remove", lambda parent, e: asked.append(e.id) or False)
    assert not c.remove(REPO) and asked == [REPO]
    assert c.state_of(REPO) == "installed"
    monkeypatch.setattr(catalog_module, "confirm_remove", lambda parent, e: True)
    assert c.remove(REPO)
    qtbot.waitUntil(lambda: "removed" in c.message_text(), timeout=WAIT)
    qtbot.waitUntil(lambda: c.wait_ready() and c.state_of(REPO) == "absent", timeout=WAIT)
    freed = c.message_text().removeprefix(f"{c.entry(REPO).name} removed: ").removesuffix(" freed.")
    assert freed != c.message_text() and freed.endswith(" KB"), c.message_text()
    assert settings.model == "", "the removed model is no longer the one jobs use"
    assert model_panel.model_combo.findData(source) < 0


def test_dock_mid_download_screenshot(qtbot, model_panel, hub_server):
    """artifacts/dock-mid-download.png: the Model dock as a designer sees it while SD-Turbo comes
    in from the (test) Hub, for the issue's note and for a look at the layout."""
    c = model_panel.catalog
    e = catalog.entry("sd-turbo")
    hub_server.add_repo(e.repo, _catalog_repo(e, weights=400_000))
    # The dock's own size (no scroll area: it would own the panel the fixture hands out).
    model_panel.resize(330, 760)
    model_panel.show()
    qtbot.waitExposed(model_panel)
    hub_server.slow(100_000)
    c.select("sd-turbo")
    with qtbot.waitSignal(c.downloads.started, timeout=WAIT):
        assert c.download()
    c._items["sd-turbo"].setExpanded(True)
    qtbot.waitUntil(lambda: (p := c.downloads.last_progress("sd-turbo")) is not None
                    and sum(1 for f in p.files if f.done >= f.total) >= 5 and 0.25 < p.done / p.total < 0.8,
                    timeout=WAIT)
    artifacts = Path(__file__).resolve().parents[2] / "artifacts"
    artifacts.mkdir(exist_ok=True)
    path = artifacts / "dock-mid-download.png"
    assert model_panel.grab().save(str(path))
    assert path.stat().st_size > 5000
    c.cancel()
    qtbot.waitUntil(lambda: not c.downloads.active(), timeout=WAIT)


def _catalog_repo(e, weights: int = 100_000) -> dict[str, bytes]:
    """Files on the test Hub for a catalog entry: one per path or pattern it asks for."""
    import json

    files = {}
    for pattern in e.files:
        path = pattern.replace("*", "vocab.json")
        if path.endswith(".json"):
            files[path] = json.dumps({"_class_name": "StableDiffusionPipeline"} if path == "model_index.json"
                                     else {"name": path}).encode()
        else:
            files[path] = (bytes(range(256)) * (weights // 256 + 1))[:weights]
    return files


def test_a_non_commercial_licence_is_accepted_before_the_first_download(qtbot, model_panel, hub_server,
                                                                        monkeypatch):
    c = model_panel.catalog
    e = catalog.entry("sd-turbo")
    assert not e.commercial
    hub_server.add_repo(e.repo, _catalog_repo(e))
    shown = []
    monkeypatch.setattr(catalog_module, "ask_licence", lambda parent, entry: shown.append(entry) or False)
    c.select("sd-turbo")
    c.download_button.click()
    assert [x.id for x in shown] == ["sd-turbo"] and not c.downloads.active()
    assert "licence was not accepted" in c.message_text() and not catalog.licence_accepted(e)

    monkeypatch.setattr(catalog_module, "ask_licence", lambda parent, entry: shown.append(entry) or True)
    with qtbot.waitSignal(c.downloads.started, timeout=WAIT):
        c.download_button.click()
    assert catalog.licence_accepted(e)
    qtbot.waitUntil(lambda: c.wait_ready() and c.state_of("sd-turbo") == "installed", timeout=WAIT)
    source = c.installed_sources_by_id()["sd-turbo"]
    # Listed once, by its catalog name (not again by its repo id from the Hub's cache).
    labels = [model_panel.model_combo.itemText(i) for i in range(model_panel.model_combo.count())]
    assert labels.count("SD-Turbo — text to image") == 1 and not any(e.repo in t for t in labels), labels
    assert model_panel.model_combo.findData(source) >= 0
    # Accepted once: the next download does not ask again.
    assert len(shown) == 2
    assert "Runs on: runtime of" not in c._items["sd-turbo"].toolTip(0)  # the real dock asks ModelPanel
    assert "Runs on: " in c._items["sd-turbo"].toolTip(0)


def test_a_full_disk_is_said_before_anything_is_fetched(qtbot, model_panel, hub_server, monkeypatch):
    import shutil
    from collections import namedtuple

    c = model_panel.catalog
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    _start(qtbot, model_panel)
    with qtbot.waitSignal(c.downloads.failed, timeout=WAIT):
        pass
    assert c.error_text().startswith("Not enough disk space")
    assert sum(hub_server.served.values()) == 0
    qtbot.waitUntil(c.wait_ready, timeout=WAIT)
    assert c.state_of(REPO) != "installed" and c.download_button.isEnabled()


def test_a_dock_closed_mid_download_leaves_no_thread_behind(qtbot, settings, hub_server, monkeypatch, tmp_path):
    from editor.panels.models import ModelPanel

    monkeypatch.setenv("QUICKBRUSH_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(catalog_module, "ask_licence", lambda parent, e: True)
    hub_server.add_repo(REPO, tiny_repo())
    hub_server.slow(50_000)
    panel = ModelPanel(settings)  # not given to qtbot: the test deletes it
    qtbot.waitUntil(panel.catalog.wait_ready, timeout=WAIT)
    _start(qtbot, panel)
    qtbot.waitUntil(lambda: _progress(panel) is not None and _progress(panel).done > 0, timeout=WAIT)
    assert qt_downloads.running()
    panel.deleteLater()
    qtbot.waitUntil(lambda: not qt_downloads.running(), timeout=WAIT)


def test_a_lora_entry_downloads_its_base_and_is_chosen_as_one_model(qtbot, model_panel, settings, hub_server,
                                                                    monkeypatch):
    from inference.jobs import LoraRef

    c = model_panel.catalog
    lora, base = catalog.entry("sd15-lcm"), catalog.entry("sd15")
    hub_server.add_repo(base.repo, _catalog_repo(base))
    hub_server.add_repo(lora.repo, _catalog_repo(lora))
    c.select(lora.id)
    with qtbot.waitSignal(c.downloads.started, timeout=WAIT):
        c.download_button.click()
    qtbot.waitUntil(lambda: c.wait_ready() and not c.downloads.active() and c.state_of(lora.id) == "installed",
                    timeout=WAIT)
    assert c.state_of(base.id) == "installed", "the base model came with it"
    choice = "catalog:" + lora.id
    labels = {model_panel.model_combo.itemData(i): model_panel.model_combo.itemText(i)
              for i in range(model_panel.model_combo.count())}
    assert labels[choice] == f"{lora.name} — text to image"
    c.select(lora.id)
    assert c.use_button.isEnabled()
    c.use()
    assert settings.model == choice
    base_folder = c.installed_sources_by_id()[base.id]
    ref = model_panel.model_ref()
    assert ref.source == base_folder and ref.preset == lora.preset
    assert [Path(x.source).name for x in ref.loras] == ["pytorch_lora_weights.safetensors"]
    assert all(isinstance(x, LoraRef) for x in ref.loras)
    assert model_panel.effective_model() == base_folder

    # The base alone is chosen with its own preset.
    c.select(base.id)
    c.use()
    assert model_panel.model_ref() == ModelRef(base_folder, preset=base.preset)

    # Removing the LoRA leaves the base, and a base chosen stays chosen.
    monkeypatch.setattr(catalog_module, "confirm_remove", lambda parent, e: True)
    assert c.remove(lora.id)
    qtbot.waitUntil(lambda: c.wait_ready() and c.state_of(lora.id) == "absent", timeout=WAIT)
    assert c.state_of(base.id) == "installed" and settings.model == base_folder
    assert model_panel.model_combo.findData(choice) < 0
