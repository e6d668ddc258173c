"""Autosave and recovery (editor/autosave.py): what is written when, on which thread, what is
offered after a crash, and what goes when the work is saved or given up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from editor import autosave as asv
from editor import main_window as mw
from editor.autosave import AutosaveManager, autosave_dir, find_recoverable, recover
from editor.document import Document
from editor.ora import load_ora
from inference.jobs import Generate, ModelRef, Result, Target

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    """No timer fires unless a test asks for one, and no modal question blocks a test."""
    monkeypatch.setenv(asv.INTERVAL_ENV, "3600")
    monkeypatch.setattr(mw, "ask_unsaved", lambda parent, name, unapplied: "discard")


@pytest.fixture
def photo(tmp_path):
    y, x = np.mgrid[0:48, 0:64]
    path = tmp_path / "photo.png"
    Image.fromarray(np.stack([x * 4, y * 5, (x + y) % 256], -1).astype("uint8")).save(path)
    return path


@pytest.fixture
def window(make_window):
    return make_window()


def paint(document, y=20, x0=10, x1=40):
    document.begin_stroke()
    for x in range(x0, x1, 3):
        document.stroke_to(x, y, radius=5, hardness=1.0)
    document.end_stroke()


def add_result(document, colour=(200, 30, 30, 255), box=(4, 4, 20, 20)):
    job = Generate(prompt="red square", model=ModelRef("builtin"), seed=3, target=Target(box))
    size = (box[2] - box[0], box[3] - box[1])
    return document.history.add_result(Result(1, job, image=Image.new("RGBA", size, colour)))


def files(folder=None):
    folder = folder or autosave_dir()
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []


def saved_once(qtbot, manager, action):
    with qtbot.waitSignal(manager.saved, timeout=20_000) as blocker:
        action()
    return Path(blocker.args[0])


def crash(folder=None):
    """What a Quickbrush killed now leaves: its sidecars name a process that no longer runs as
    their owner (the same pid, started earlier: what a container's next run sees)."""
    for sidecar in (folder or autosave_dir()).glob("*.json"):
        data = json.loads(sidecar.read_text())
        data["process_started"] = data["process_started"] - 1000
        sidecar.write_text(json.dumps(data))


# --------------------------------------------------------------------------- where and how often


def test_the_data_folder_is_the_override_or_platformdirs(monkeypatch, tmp_path):
    monkeypatch.setenv(asv.DATA_DIR_ENV, str(tmp_path / "d"))
    assert asv.autosave_dir() == tmp_path / "d" / "autosave"
    monkeypatch.delenv(asv.DATA_DIR_ENV)
    from platformdirs import user_data_dir

    assert asv.data_dir() == Path(user_data_dir("quickbrush", appauthor=False))


def test_tests_never_use_the_real_data_folder():
    from platformdirs import user_data_dir

    assert os.environ[asv.DATA_DIR_ENV]
    assert not autosave_dir().is_relative_to(user_data_dir("quickbrush", appauthor=False))


def test_the_interval_is_30_seconds_unless_the_environment_says(monkeypatch, qtbot):
    monkeypatch.delenv(asv.INTERVAL_ENV)
    assert AutosaveManager().interval_ms == 30_000
    monkeypatch.setenv(asv.INTERVAL_ENV, "2.5")
    assert AutosaveManager().interval_ms == 2_500
    monkeypatch.setenv(asv.INTERVAL_ENV, "soon")
    assert AutosaveManager().interval_ms == 30_000


def test_the_timer_autosaves_unsaved_changes(qtbot):
    document = Document.new(64, 48)
    manager = AutosaveManager(interval_s=0.05)
    manager.watch(document)
    paint(document)
    with qtbot.waitSignal(manager.saved, timeout=20_000) as blocker:
        pass  # no tick called: the timer does it
    loaded, _ = load_ora(blocker.args[0])
    assert np.array_equal(loaded.mask, document.mask)
    manager.shutdown(remove=False)


def test_nothing_is_written_while_the_document_is_clean(qtbot, window, photo):
    window.open_path(str(photo))
    window.autosave.tick()
    window.autosave.wait()
    assert files() == []
    paint(window.document)
    window.document.undo_stack.undo()  # back to the file's state: changed, but nothing to save
    window.autosave.tick()
    window.autosave.wait()
    assert files() == []
    window.document.undo_stack.redo()
    saved_once(qtbot, window.autosave, window.autosave.tick)
    assert files() == sorted([f"{window.document.uid}.json", f"{window.document.uid}.ora"])


def test_an_unchanged_document_is_not_written_again(qtbot, window, monkeypatch):
    writes = []
    real = asv.AutosaveManager._snapshot_and_write
    monkeypatch.setattr(asv.AutosaveManager, "_snapshot_and_write", lambda self: (writes.append(1), real(self)))
    paint(window.document)
    saved_once(qtbot, window.autosave, window.autosave.tick)
    window.autosave.tick()
    window.autosave.wait()
    assert len(writes) == 1
    paint(window.document, y=30)
    saved_once(qtbot, window.autosave, window.autosave.tick)
    assert len(writes) == 2


def test_applying_a_result_autosaves_at_once_with_the_history(qtbot, window):
    applied = add_result(window.document)
    add_result(window.document, colour=(0, 0, 255, 255))  # stays unapplied
    path = saved_once(qtbot, window.autosave, lambda: window._apply(applied, as_new_layer=False))
    loaded, records = load_ora(path)
    assert tuple(loaded.layers[0].pixels[10, 10]) == (200, 30, 30, 255)
    assert [r["applied"] for r in records] == [0, None], "the unapplied result is kept too"


def test_the_snapshot_is_taken_on_the_gui_thread_and_written_on_another(qtbot, window, monkeypatch):
    from editor import ora

    threads = {}
    release = threading.Event()
    real_prepare, real_write = ora.prepare_save, ora.write_prepared

    def prepare(*args, **kwargs):
        threads["snapshot"] = threading.current_thread()
        return real_prepare(*args, **kwargs)

    def write(prepared):
        threads["write"] = threading.current_thread()
        release.wait(20)
        return real_write(prepared)

    monkeypatch.setattr(ora, "prepare_save", prepare)
    monkeypatch.setattr(ora, "write_prepared", write)
    document = window.document
    paint(document, y=10)
    before = document.mask.copy()
    with qtbot.waitSignal(window.autosave.saved, timeout=20_000) as blocker:
        window.autosave.tick()
        paint(document, y=40)  # while the file is being written: not in this autosave
        release.set()
    assert threads["snapshot"] is threading.main_thread()
    assert threads["write"] is not threading.main_thread()
    loaded, _ = load_ora(blocker.args[0])
    assert np.array_equal(loaded.mask, before)
    assert not np.array_equal(document.mask, before)


def test_a_failed_autosave_says_so_once_and_tries_again(qtbot, window, monkeypatch):
    from editor import ora
    from inference.files import SaveError

    real = ora.write_prepared

    def full(prepared):
        raise SaveError(f"Could not save {prepared.target.name}: the disk is full.", "ENOSPC")

    monkeypatch.setattr(ora, "write_prepared", full)
    paint(window.document)
    with qtbot.waitSignal(window.autosave.failed, timeout=20_000) as blocker:
        window.autosave.tick()
    message = blocker.args[0]
    assert message == "Could not autosave Untitled: the disk is full. Save it yourself (Ctrl+S) to keep your changes safe."
    assert window.banner.isVisibleTo(window) and window.banner.message.text() == message
    shown = []
    window.autosave.failed.connect(lambda *a: shown.append(a))
    window.autosave.tick()  # dirty still: it tries again, and does not repeat the banner
    window.autosave.wait()
    qtbot.wait(50)
    assert shown == []
    monkeypatch.setattr(ora, "write_prepared", real)
    saved_once(qtbot, window.autosave, window.autosave.tick)


# --------------------------------------------------------------------------- what removes it


def test_a_save_removes_the_autosave(qtbot, window, tmp_path):
    paint(window.document)
    saved_once(qtbot, window.autosave, window.autosave.tick)
    with qtbot.waitSignal(window.autosave.removed, timeout=20_000):
        assert window._save_to(str(tmp_path / "work.ora"))
        window.wait_for_save()
    assert files() == []
    paint(window.document, y=35)  # changed again after the save: autosaved again
    saved_once(qtbot, window.autosave, window.autosave.tick)
    assert len(files()) == 2


def test_closing_with_discard_removes_the_autosave_and_cancel_keeps_it(qtbot, window, monkeypatch):
    paint(window.document)
    saved_once(qtbot, window.autosave, window.autosave.tick)
    monkeypatch.setattr(mw, "ask_unsaved", lambda parent, name, unapplied: "cancel")
    assert not window.close()
    assert len(files()) == 2
    monkeypatch.setattr(mw, "ask_unsaved", lambda parent, name, unapplied: "discard")
    assert window.close()
    assert files() == []


def test_a_clean_quit_leaves_no_autosave(qtbot, window, tmp_path):
    paint(window.document)
    saved_once(qtbot, window.autosave, window.autosave.tick)
    window._save_to(str(tmp_path / "work.ora"))
    window.wait_for_save()
    assert window.close()
    assert files() == []


def test_a_new_document_after_discard_removes_the_old_autosave(qtbot, window, monkeypatch):
    monkeypatch.setattr(mw, "ask_new_size", lambda parent, default: (32, 32))
    paint(window.document)
    saved_once(qtbot, window.autosave, window.autosave.tick)
    window.new_document()
    window.autosave.wait()
    assert files() == []


def test_a_removal_asked_while_writing_wins(qtbot, window, monkeypatch):
    """The file thread does writes and removals in order: a save during an autosave leaves none."""
    from editor import ora

    release = threading.Event()
    real = ora.write_prepared
    monkeypatch.setattr(ora, "write_prepared", lambda prepared: (release.wait(20), real(prepared))[1])
    paint(window.document)
    window.autosave.tick()
    window.document.mark_saved()  # saved while the autosave is still being written
    release.set()
    window.autosave.wait()
    assert files() == []


# --------------------------------------------------------------------------- recovery


def test_recovery_lists_the_crashed_documents_newest_first(qtbot, make_window, monkeypatch):
    clock = iter([1000.0, 2000.0, 3000.0])
    monkeypatch.setattr(asv, "_now", lambda: next(clock))
    older, newer = make_window(), make_window()
    paint(older.document)
    saved_once(qtbot, older.autosave, older.autosave.tick)
    paint(newer.document, y=30)
    saved_once(qtbot, newer.autosave, newer.autosave.tick)
    assert find_recoverable().autosaves == [], "this Quickbrush still runs: nothing to recover"
    crash()
    found = find_recoverable()
    assert [a.uid for a in found.autosaves] == [newer.document.uid, older.document.uid]
    assert found.problems == []
    assert found.autosaves[0].name == "Untitled" and found.autosaves[0].belongs_to is None


def test_an_autosave_older_than_its_file_is_not_offered(qtbot, window, tmp_path):
    path = tmp_path / "work.ora"
    window._save_to(str(path))
    window.wait_for_save()
    paint(window.document)
    saved_once(qtbot, window.autosave, window.autosave.tick)
    crash()
    assert [a.path for a in find_recoverable().autosaves] == [str(path)]
    future = os.path.getmtime(path) + 3600
    os.utime(path, (future, future))  # saved since, by another program
    assert find_recoverable().autosaves == []
    assert len(files()) == 2, "not offered, but not deleted either"


def test_a_corrupt_autosave_is_skipped_with_a_clear_message(qtbot, make_window):
    good, truncated = make_window(), make_window()
    for window in (good, truncated):
        paint(window.document)
        saved_once(qtbot, window.autosave, window.autosave.tick)
    crash()
    ora = autosave_dir() / f"{truncated.document.uid}.ora"
    ora.write_bytes(ora.read_bytes()[:-200])
    (autosave_dir() / "0123abcd.json").write_text("{ not json")
    found = find_recoverable()
    assert [a.uid for a in found.autosaves] == [good.document.uid]
    messages = sorted(p.message for p in found.problems)
    assert messages == ["An autosave of 0123abcd is damaged and could not be recovered; it was skipped.",
                        "An autosave of Untitled is damaged and could not be recovered; it was skipped."]
    assert all("Traceback" not in p.message and "Error" not in p.message for p in found.problems)
    assert sorted(os.listdir(autosave_dir() / "damaged")) == sorted(
        ["0123abcd.json", f"{truncated.document.uid}.json", f"{truncated.document.uid}.ora"])
    assert find_recoverable().problems == [], "reported once: it was moved aside"


def test_another_running_quickbrush_keeps_its_autosaves(tmp_path):
    """A second Quickbrush (a real process) autosaves; this one must not offer that work while
    it runs, and offers it once that process is killed."""
    script = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from editor.document import Document\n"
        "from editor.autosave import AutosaveManager\n"
        "doc = Document.new(32, 32)\n"
        "manager = AutosaveManager(folder=sys.argv[1], interval_s=3600)\n"
        "manager.watch(doc)\n"
        "doc.begin_stroke(); doc.stroke_to(5, 5, 3); doc.end_stroke()\n"
        "manager.tick(); manager.wait()\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    other = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=env, cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        assert len(list(tmp_path.glob("*.ora"))) == 1
        assert find_recoverable(tmp_path).autosaves == []
    finally:
        other.kill()
        other.wait(30)
    found = find_recoverable(tmp_path).autosaves
    assert len(found) == 1 and found[0].pid == other.pid


def test_a_dead_owner_with_this_processs_pid_is_still_offered(qtbot, window):
    """In a container every run may get the same pid: the start time tells runs apart."""
    paint(window.document)
    saved_once(qtbot, window.autosave, window.autosave.tick)
    sidecar = autosave_dir() / f"{window.document.uid}.json"
    assert json.loads(sidecar.read_text())["pid"] == os.getpid()
    assert find_recoverable().autosaves == []
    crash()
    assert [a.pid for a in find_recoverable().autosaves] == [os.getpid()]


def _crashed_window(qtbot, make_window, prepare):
    first = make_window()
    prepare(first)
    qtbot.waitUntil(lambda: not first.autosave.writing)  # applying a result started one already
    saved_once(qtbot, first.autosave, first.autosave.tick)
    crash()
    (autosave,) = find_recoverable().autosaves
    return first, autosave


def test_a_recovered_document_has_its_layers_mask_selection_and_history(qtbot, make_window, tmp_path,
                                                                          monkeypatch):
    path = tmp_path / "work.ora"

    def prepare(window):
        window._save_to(str(path))
        window.wait_for_save()
        entry = add_result(window.document)
        window._apply(entry, as_new_layer=True)
        add_result(window.document, colour=(0, 200, 0, 255))
        paint(window.document)
        window.document.set_selection((2, 3, 30, 25))

    first, autosave = _crashed_window(qtbot, make_window, prepare)
    assert autosave.path == str(path) and autosave.name == "work.ora"
    second = make_window()
    document = recover(autosave, second)
    assert second.document is document
    original = first.document
    assert [layer.name for layer in document.layers] == [layer.name for layer in original.layers]
    for a, b in zip(document.layers, original.layers):
        assert np.array_equal(a.pixels, b.pixels) and (a.x, a.y) == (b.x, b.y)
    assert np.array_equal(document.mask, original.mask)
    assert document.selection_box() == (2, 3, 30, 25)
    assert len(document.history) == 2 and len(document.history.unapplied()) == 1
    assert document.needs_saving and second.windowTitle().startswith("work.ora*")
    assert document.path == str(path) and document.display_name == "work.ora"

    # Save writes where the document belongs, without asking, and the autosave goes.
    monkeypatch.setattr(mw, "ask_save_path", lambda *a: pytest.fail("Save asked for a path"))
    with qtbot.waitSignal(second.autosave.removed, timeout=20_000):
        assert second.save()
        second.wait_for_save()
    reloaded, records = load_ora(path)
    assert np.array_equal(reloaded.mask, original.mask) and len(records) == 2
    assert files() == []


def test_a_recovered_image_keeps_where_it_was_opened_from(qtbot, make_window, photo):
    def prepare(window):
        window.open_path(str(photo))
        paint(window.document)

    _first, autosave = _crashed_window(qtbot, make_window, prepare)
    assert autosave.name == "photo.png" and autosave.source_path == str(photo) and autosave.path is None
    second = make_window()
    document = recover(autosave, second)
    assert document.source_path == str(photo) and document.path is None
    assert document.display_name == "photo.png" and document.needs_saving


def test_recovered_work_stays_autosaved_and_owned(qtbot, make_window):
    """Recovered work is never older than the last autosave: its file stays (now this process's)
    until the document is saved or discarded, and is updated by the next autosave."""
    _first, autosave = _crashed_window(qtbot, make_window, lambda window: paint(window.document))
    second = make_window()
    document = recover(autosave, second)
    assert autosave.ora.exists() and find_recoverable().autosaves == [], "claimed: not offered twice"
    assert json.loads(autosave.sidecar.read_text())["pid"] == os.getpid()
    paint(document, y=40)
    path = saved_once(qtbot, second.autosave, second.autosave.tick)
    assert path == autosave.ora
    loaded, _ = load_ora(path)
    assert np.array_equal(loaded.mask, document.mask)
    crash()  # and if this run crashes too, the newest state is offered
    (again,) = find_recoverable().autosaves
    assert again.uid == autosave.uid and again.saved > autosave.saved


def test_declining_removes_the_autosave(qtbot, make_window):
    _first, autosave = _crashed_window(qtbot, make_window, lambda window: paint(window.document))
    autosave.delete()
    assert files() == [] and find_recoverable().autosaves == []


def test_a_damaged_autosave_found_only_when_recovering_is_reported_and_set_aside(qtbot, make_window):
    from inference.jobs import BadInput

    _first, autosave = _crashed_window(qtbot, make_window, lambda window: paint(window.document))
    # Checksums fine, a part missing: only reading the document finds it.
    with zipfile.ZipFile(autosave.ora) as zf:
        parts = {name: zf.read(name) for name in zf.namelist() if name != "data/layer000.png"}
    with zipfile.ZipFile(autosave.ora, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    second = make_window()
    before = second.document
    with pytest.raises(BadInput) as caught:
        recover(autosave, second)
    assert caught.value.message == "An autosave of Untitled is damaged and could not be recovered; it was skipped."
    assert second.document is before
    assert find_recoverable().autosaves == [] and not autosave.ora.exists()
