"""Crash recovery end to end, on a real X server: open a photo, paint a stroke, generate an
inpaint result (left unapplied), wait for the autosave, kill -9 the app, start it again, answer
"Recover" with the keyboard, and find the stroke and the history back.

The recovered state is checked three ways: the app's log line written from the recovered
document itself (its layers, mask box and history entries), against the autosave the killed app
left on disk; the window title (unsaved changes, the photo's name); and a screenshot in
artifacts/e2e/ (the stroke's mask overlay is on the canvas). Starts the app as
test_quickbrush_e2e.py does (its fixtures), with a one-second autosave interval.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_quickbrush_e2e import ARTIFACTS, _canvas, _redness, launch, xserver  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _autosave_state(folder: Path) -> dict:
    """What the autosave on disk holds: the sidecar, the mask's box and the history entries."""
    (sidecar,) = folder.glob("*.json")
    data = json.loads(sidecar.read_text())
    with zipfile.ZipFile(folder / f"{data['uid']}.ora") as zf:
        mask = np.asarray(Image.open(io.BytesIO(zf.read("quickbrush/mask.png"))))
        history = json.loads(zf.read("quickbrush/history.json"))["entries"]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return {"sidecar": data, "mask_box": box, "history": history}


def _window_names(app) -> list[str]:
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "Quickbrush"], env=app.env,
                           capture_output=True, text=True, timeout=30, check=False).stdout.split()
    return [subprocess.run(["xdotool", "getwindowname", wid], env=app.env, capture_output=True, text=True,
                           timeout=30, check=True).stdout.strip() for wid in found]


def test_killed_app_recovers_the_stroke_and_the_history(launch, monkeypatch):  # noqa: F811 - the fixture
    monkeypatch.setenv("QUICKBRUSH_AUTOSAVE_SECONDS", "1")
    folder = Path(os.environ["QUICKBRUSH_DATA_DIR"]) / "autosave"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # First run: a stroke and an inpaint result in the history, not applied.
    first = launch()
    x, y, w, h = _canvas(first)
    first.settle(1.0)
    cx, cy = x + w // 2, y + h // 2
    stroke_box = (cx - 50, cy - 8, cx + 50, cy + 8)
    park = (x + 40, y + h - 40)  # the pointer away from the stroke: its brush outline would show
    first.xdotool("mousemove", "--sync", *park)
    first.settle(0.3)
    before = first.grab()
    first.drag([(cx - 60 + i * 8, cy) for i in range(16)])
    first.xdotool("mousemove", "--sync", *park)
    mark = len(first.log_text())
    first.xdotool("key", "--clearmodifiers", "ctrl+Return")
    finished = first.wait_for(r"job \d+ finished: inpaint ok", timeout=180, after=mark)
    # The autosave the result starts may be in the log already: look from the result on.
    first.wait_for(r"autosaved photo\.png to ", timeout=30, after=finished.end())
    deadline = time.monotonic() + 30
    while len((on_disk := _autosave_state(folder))["history"]) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)  # an autosave begun before the result came in may have finished first
    first.settle()
    first.grab().save(ARTIFACTS / "recovery-0-before-kill.png")
    assert on_disk["sidecar"]["pid"] == first.proc.pid and on_disk["sidecar"]["name"] == "photo.png"
    assert len(on_disk["history"]) == 1 and on_disk["history"][0]["applied"] is None

    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(30)
    assert first.proc.returncode == -signal.SIGKILL

    # Second run: offered, recovered with Return (the default button, Recover).
    second = launch(open_photo=False)
    second.wait_for(r"recovery offered for photo\.png, autosaved (today|yesterday) at \d\d:\d\d", timeout=60)
    dialog = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", "^Recover unsaved work$"],
                            env=second.env, capture_output=True, text=True, timeout=60, check=True).stdout.split()[0]
    second.settle(0.5)
    second.grab().save(ARTIFACTS / "recovery-1-offered.png")
    second.xdotool("windowfocus", "--sync", dialog)
    second.xdotool("key", "Return")
    recovered = second.wait_for(r"recovered photo\.png from (\S+): (\d+) layers?, mask box \(([\d, ]+)\), "
                                r"selection None, (\d+) history entr", timeout=60)
    ora, layers, mask_box, entries = recovered.groups()
    assert Path(ora) == folder / f"{on_disk['sidecar']['uid']}.ora"
    assert int(layers) == 1
    assert tuple(int(v) for v in mask_box.split(",")) == on_disk["mask_box"], "the stroke's mask is back"
    assert int(entries) == 1, "the unapplied inpaint result is back in the history"

    # The window says it holds the photo with unsaved changes; the autosave is now its own.
    x2, y2, w2, h2 = _canvas(second)
    assert (x2, y2, w2, h2) == (x, y, w, h)
    second.xdotool("mousemove", "--sync", *park)
    second.settle(1.0)
    assert any(re.fullmatch(r"photo\.png\* — Quickbrush", name) for name in _window_names(second)), \
        _window_names(second)
    shot = second.grab()
    shot.save(ARTIFACTS / "recovery-2-recovered.png")
    assert _redness(shot, stroke_box) > _redness(before, stroke_box) + 20, "the mask overlay shows the stroke"
    assert _autosave_state(folder)["sidecar"]["pid"] == second.proc.pid, "claimed by the running app"

    assert second.proc.poll() is None, "still running"
    for app in (first, second):
        errors = [line for line in app.log_text().splitlines() if " ERROR " in line or "Traceback" in line]
        assert not errors, errors
