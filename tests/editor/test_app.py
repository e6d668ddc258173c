"""Start-up (editor/app.py): the recovery offer after a crash and the tidying of stale temp files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from editor import app
from editor import autosave as asv
from editor import main_window as mw
from editor.autosave import autosave_dir, find_recoverable

# The real dialogs, before the autouse fixture replaces them.
ASK_RECOVER, CONFIRM_DISCARD_AUTOSAVE = app.ask_recover, app.confirm_discard_autosave


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv(asv.INTERVAL_ENV, "3600")
    monkeypatch.setattr(mw, "ask_unsaved", lambda parent, name, unapplied: "discard")
    monkeypatch.setattr(app, "ask_recover", lambda parent, autosave: pytest.fail("asked unexpectedly"))
    monkeypatch.setattr(app, "confirm_discard_autosave", lambda parent, autosave: pytest.fail("asked unexpectedly"))


def crashed(qtbot, make_window, count=1):
    """`count` documents with a stroke each, autosaved by a Quickbrush that then died."""
    masks = []
    for i in range(count):
        window = make_window()
        document = window.document
        document.begin_stroke()
        document.stroke_to(10 + 10 * i, 10, radius=4)
        document.end_stroke()
        with qtbot.waitSignal(window.autosave.saved, timeout=20_000):
            window.autosave.tick()
        masks.append(document.mask.copy())
        window.autosave.shutdown(remove=False)
    for sidecar in autosave_dir().glob("*.json"):  # its owner's start time is not ours: gone
        data = json.loads(sidecar.read_text())
        data["process_started"] -= 1000
        sidecar.write_text(json.dumps(data))
    return masks


def answers(monkeypatch, *choices, confirms=()):
    asked, confirmed = [], []
    choices, confirms = list(choices), list(confirms)
    monkeypatch.setattr(app, "ask_recover", lambda parent, autosave: (asked.append(autosave.name), choices.pop(0))[1])
    monkeypatch.setattr(app, "confirm_discard_autosave",
                        lambda parent, autosave: (confirmed.append(autosave.name), confirms.pop(0))[1])
    return asked, confirmed


def test_nothing_to_recover_asks_nothing(make_window):
    assert app.offer_recovery(make_window()) == []


def test_recover_opens_the_document_in_the_empty_window(qtbot, make_window, monkeypatch):
    (mask,) = crashed(qtbot, make_window)
    window = make_window()
    answers(monkeypatch, "recover")
    (document,) = app.offer_recovery(window)
    assert window.document is document and np.array_equal(document.mask, mask)
    assert document.needs_saving


def test_a_second_recovered_document_opens_in_a_window_of_its_own(qtbot, make_window, monkeypatch):
    crashed(qtbot, make_window, count=2)
    window = make_window()
    asked, _ = answers(monkeypatch, "recover", "recover")
    opened = []
    recovered = app.offer_recovery(window, new_window=lambda: (opened.append(make_window()), opened[-1])[1])
    assert len(asked) == 2 and len(recovered) == 2 and len(opened) == 1
    assert window.document is recovered[0] and opened[0].document is recovered[1]


def test_declining_asks_first_then_removes_the_autosave(qtbot, make_window, monkeypatch):
    crashed(qtbot, make_window)
    window = make_window()
    before = window.document
    # Discard, then "Cancel" at the confirmation: asked again; discard and confirm: gone.
    asked, confirmed = answers(monkeypatch, "discard", "discard", confirms=(False, True))
    assert app.offer_recovery(window) == []
    assert len(asked) == 2 and len(confirmed) == 2
    assert window.document is before
    assert list(autosave_dir().glob("*.ora")) == [] and find_recoverable().autosaves == []


def test_not_now_keeps_the_autosave_for_the_next_start(qtbot, make_window, monkeypatch):
    crashed(qtbot, make_window)
    answers(monkeypatch, "later")
    assert app.offer_recovery(make_window()) == []
    assert len(find_recoverable().autosaves) == 1


def test_a_damaged_autosave_shows_its_message_in_the_banner(qtbot, make_window, monkeypatch):
    crashed(qtbot, make_window)
    (autosave_dir() / "feedc0de.json").write_text("][")
    window = make_window()
    answers(monkeypatch, "later")
    app.offer_recovery(window)
    assert window.banner.message.text() == ("An autosave of feedc0de is damaged and could not be recovered; "
                                           "it was skipped.")


def test_the_dialogs_say_what_they_will_do(qtbot, make_window, monkeypatch):
    """The real dialogs, answered by clicking their buttons as soon as they show."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    crashed(qtbot, make_window)
    (autosave,) = find_recoverable().autosaves
    seen = []

    def click(label):
        def press():
            box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
            seen.append((box.windowTitle(), box.text(), box.informativeText(), [b.text() for b in box.buttons()]))
            next(b for b in box.buttons() if b.text() == label).click()
        return press

    monkeypatch.setattr(app, "ask_recover", ASK_RECOVER)
    monkeypatch.setattr(app, "confirm_discard_autosave", CONFIRM_DISCARD_AUTOSAVE)
    import signal

    from PySide6.QtCore import QTimer

    signal.alarm(120)  # a button not found would leave a dialog waiting for ever: fail instead
    window = make_window()
    QTimer.singleShot(50, click("Not now"))
    assert app.ask_recover(window, autosave) == "later"
    QTimer.singleShot(50, click("Discard…"))
    assert app.ask_recover(window, autosave) == "discard"
    QTimer.singleShot(50, click("Cancel"))
    assert app.confirm_discard_autosave(window, autosave) is False
    QTimer.singleShot(50, click("Discard changes"))
    assert app.confirm_discard_autosave(window, autosave) is True
    signal.alarm(0)
    title, text, info, buttons = seen[0]
    assert title == "Recover unsaved work"
    assert text.startswith("Quickbrush did not close properly. Untitled has unsaved changes, autosaved today at ")
    assert "never saved" in info and sorted(buttons) == ["Discard…", "Not now", "Recover"]
    title, text, info, _buttons = seen[2]
    assert title == "Discard unsaved work" and text.startswith("Discard the unsaved changes to Untitled from today")
    assert "cannot be recovered" in info


def test_start_up_removes_stale_temps_in_the_autosave_folder_and_beside_recent_files(tmp_path, monkeypatch):
    from inference import files

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    recent = tmp_path / "work"
    folder = autosave_dir()
    for place in (recent, folder):
        place.mkdir(parents=True)
    live = files.temp_path_for(recent / "b.ora")  # this process: a save running now
    stale = [Path(str(files.temp_path_for(p)).replace(f".{os.getpid()}-", f".{dead}-"))
             for p in (recent / "a.ora", folder / "x.ora")]
    for path in [live, *stale]:
        path.write_bytes(b"half a file")
    called = []
    real = files.clean_stale_temps
    monkeypatch.setattr(files, "clean_stale_temps", lambda place: (called.append(place), real(place))[1])
    app.clean_stale_temps_at_start([str(recent / "a.ora"), str(recent / "b.ora"), str(tmp_path / "gone" / "c.ora")])
    assert called == [folder, recent, tmp_path / "gone"]
    assert live.exists() and not any(path.exists() for path in stale)
