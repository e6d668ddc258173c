"""End to end, as a designer would: `quickbrush photo.png` on a real X server, a mask painted with
real mouse events, Ctrl+Enter, the inpaint result previewed on the canvas, Ctrl+Shift+Enter to
apply it, Ctrl+Z to take it back.

The X server is Debian's Xvfb (installed by .ci/run) and the mouse and keyboard are xdotool's
XTEST events, so the events travel X server -> xcb -> Qt exactly as a real mouse's do. The app
is the installed `quickbrush` command, run on the tiny inpaint model with a fresh HOME, and
tells the test where its canvas is through its --log-file. Screenshots land in artifacts/e2e/
(git-ignored) for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageGrab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "e2e"
# Device pixels of the X screen per scale: an ordinary 1600x1000 monitor at 1x, and a 15"
# high-DPI laptop panel at 2x (1440x900 logical px).
SCREENS = {1.0: (1600, 1000), 2.0: (2880, 1800)}


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (.ci/run installs it with apt)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI promised it: a missing tool is a broken CI, not a skip
        pytest.skip(message)
    return path


@pytest.fixture
def xserver():
    """Starts private Xvfb servers on free display numbers (Xvfb picks one and writes it to a pipe)."""
    xvfb = _need("Xvfb")
    _need("xdotool")
    servers: list[subprocess.Popen] = []

    def start(size: tuple[int, int]) -> str:
        read_end, write_end = os.pipe()
        servers.append(subprocess.Popen(
            [xvfb, "-displayfd", str(write_end), "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"],
            pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()
        assert number, "Xvfb did not start"
        return f":{number}"

    yield start
    for proc in servers:
        proc.terminate()
        proc.wait(10)


class App:
    """The running `quickbrush` process, its log, and helpers to drive it through X."""

    def __init__(self, proc: subprocess.Popen, log: Path, display: str, env: dict[str, str]):
        self.proc, self.log, self.display, self.env = proc, log, display, env

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_for(self, pattern: str, timeout: float = 120.0, after: int = 0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.compile(pattern).search(self.log_text(), after)
            if match:
                return match
            if self.proc.poll() is not None:
                pytest.fail(f"quickbrush exited with {self.proc.returncode} while waiting for {pattern!r}:\n"
                            f"{self.log_text()}\n{self.proc.stdout.read() if self.proc.stdout else ''}")
            time.sleep(0.1)
        pytest.fail(f"no {pattern!r} in the log after {timeout:.0f} s:\n{self.log_text()}")

    def xdotool(self, *args: object) -> None:
        subprocess.run(["xdotool", *map(str, args)], env=self.env, check=True, timeout=30)

    def drag(self, points: list[tuple[int, int]]) -> None:
        """Press, move through `points` in real motion events, release: one brush stroke."""
        x, y = points[0]
        self.xdotool("mousemove", "--sync", x, y)
        self.xdotool("mousedown", 1)
        for x, y in points[1:]:
            self.xdotool("mousemove", "--sync", x, y)
            time.sleep(0.01)
        self.xdotool("mouseup", 1)

    def grab(self) -> Image.Image:
        return ImageGrab.grab(xdisplay=self.display).convert("RGB")

    def settle(self, seconds: float = 0.6) -> None:
        time.sleep(seconds)  # let Qt process the events and repaint before a screenshot


def _photo(path: Path) -> Path:
    """A soft landscape-like gradient: easy to tell mask overlay and result apart on it."""
    y, x = np.mgrid[0:384, 0:512]
    sky = np.stack([90 + x * 0.15, 140 + y * 0.1, 200 - y * 0.2], -1)
    ground = np.stack([70 + x * 0.1, 120 + 0 * x, 60 + 0 * x], -1)
    pixels = np.where((y > 250)[..., None], ground, sky).clip(0, 255).astype("uint8")
    Image.fromarray(pixels).save(path)
    return path


def _seed_settings(config_home: Path, values: dict) -> None:
    """What a designer would have chosen last time: QSettings' native INI file on Linux."""
    from PySide6.QtCore import QSettings

    store = QSettings(str(config_home / "Quickbrush" / "Quickbrush.conf"), QSettings.Format.IniFormat)
    for name, value in values.items():
        store.setValue(name, json.dumps(value))
    store.sync()
    assert store.status() == QSettings.Status.NoError


@pytest.fixture
def launch(xserver, tmp_path, tiny_sd_inpaint):
    started: list[App] = []

    def start(*, scale: float = 1.0, settings: dict | None = None, open_photo: bool = True,
              prefix: tuple[str, ...] = (), drop_env: tuple[str, ...] = ()) -> App:
        """`prefix` runs the app under another program (strace); `drop_env` removes variables."""
        display = xserver(SCREENS[scale])
        home = tmp_path / f"home-{len(started)}"
        (home / ".config").mkdir(parents=True)
        if settings is None:
            settings = {"model": str(tiny_sd_inpaint), "steps": 2, "seed": 7, "seed_locked": True,
                        "prompt": "a small red house", "brush_size": 48}
        _seed_settings(home / ".config", settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "XDG_")) and k not in drop_env}
        env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                   XDG_DATA_HOME=str(home / ".local" / "share"), XDG_RUNTIME_DIR=str(home),
                   HF_HUB_OFFLINE="1", QT_SCALE_FACTOR=str(scale), QT_ACCESSIBILITY="0")
        quickbrush = shutil.which("quickbrush") or pytest.fail("the `quickbrush` command is not installed")
        log = home / "quickbrush.log"
        files = [str(_photo(tmp_path / "photo.png"))] if open_photo else []
        proc = subprocess.Popen([*prefix, quickbrush, *files, "--log-file", str(log)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        app = App(proc, log, display, env)
        started.append(app)
        return app

    yield start
    for app in started:
        if app.proc.poll() is None:
            app.proc.kill()
        app.proc.wait(10)


def _canvas(app: App) -> tuple[int, int, int, int]:
    match = app.wait_for(r"window shown; canvas at (-?\d+),(-?\d+) (\d+)x(\d+)", timeout=60)
    return tuple(int(v) for v in match.groups())


def _redness(image: Image.Image, box) -> float:
    a = np.asarray(image.crop(box), dtype=np.float32)
    return float((a[..., 0] - (a[..., 1] + a[..., 2]) / 2).mean())


@pytest.mark.parametrize("scale", [1.0, 2.0], ids=["1x", "high-dpi-2x"])
def test_paint_inpaint_apply_undo_with_real_mouse_and_keyboard(launch, scale):
    app = launch(scale=scale)
    x, y, w, h = _canvas(app)  # logical px; at 2x the X screen has twice as many device px
    wx, wy, ww, wh, sw, sh, ratio = (float(v) for v in app.wait_for(
        r"window at (-?\d+),(-?\d+) (\d+)x(\d+) on a (\d+)x(\d+) screen at ([\d.]+)x").groups())
    assert ratio == scale and (sw, sh) == (SCREENS[scale][0] / scale, SCREENS[scale][1] / scale)
    assert 0 <= wx and 0 <= wy and wx + ww <= sw and wy + wh <= sh, "the first-run window fits on the screen"
    app.settle(1.0)
    s = scale
    cx, cy = x + w // 2, y + h // 2
    stroke_box = tuple(round(v * s) for v in (cx - 50, cy - 8, cx + 50, cy + 8))
    park = (round((x + 40) * s), round((y + h - 40) * s))  # pointer away from the stroke: its brush outline
    app.xdotool("mousemove", "--sync", *park)              # would otherwise show in the screenshots
    app.settle(0.3)
    before = app.grab()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tag = f"{s:g}x"
    before.save(ARTIFACTS / f"0-opened-{tag}.png")
    canvas_box = tuple(round(v * s) for v in (x, y, x + w, y + h))
    assert np.asarray(before.crop(canvas_box)).std() > 5, "the photo is drawn on the canvas"

    # A real stroke: press, a run of motion events, release. The overlay shows where it went.
    app.drag([(round((cx - 60 + i * 8) * s), round(cy * s)) for i in range(16)])
    app.xdotool("mousemove", "--sync", *park)
    app.settle()
    painted = app.grab()
    painted.save(ARTIFACTS / f"1-mask-painted-{tag}.png")
    assert _redness(painted, stroke_box) > _redness(before, stroke_box) + 20, "the mask overlay shows the stroke"

    # Ctrl+Enter: the painted mask makes it an inpaint job; it runs and is previewed.
    mark = len(app.log_text())
    app.xdotool("key", "--clearmodifiers", "ctrl+Return")
    app.wait_for(r"queued 1 inpaint job", timeout=20, after=mark)
    app.wait_for(r"job \d+ finished: inpaint ok", timeout=180, after=mark)
    app.settle(1.0)
    previewed = app.grab()
    previewed.save(ARTIFACTS / f"2-inpaint-previewed-{tag}.png")

    # Apply (Ctrl+Shift+Enter), then hide the mask overlay (H) to see the image itself.
    app.xdotool("key", "--clearmodifiers", "ctrl+shift+Return")
    app.wait_for(r"applied inpaint result", timeout=20, after=mark)
    app.xdotool("key", "h")
    app.settle()
    applied = app.grab()
    applied.save(ARTIFACTS / f"3-applied-mask-hidden-{tag}.png")
    diff = np.abs(np.asarray(applied.crop(stroke_box), np.int16) - np.asarray(before.crop(stroke_box), np.int16))
    assert diff.mean() > 8, "the masked area now holds the generated pixels"
    outside = tuple(round(v * s) for v in (x + 10, y + 10, x + 60, y + 60))
    assert np.abs(np.asarray(applied.crop(outside), np.int16)
                  - np.asarray(before.crop(outside), np.int16)).mean() < 3, "far from the mask nothing changed"

    # Ctrl+Z takes the applied result back: the image is the photo again.
    app.xdotool("key", "--clearmodifiers", "ctrl+z")
    app.settle()
    undone = app.grab()
    undone.save(ARTIFACTS / f"4-undone-{tag}.png")
    back = np.abs(np.asarray(undone.crop(stroke_box), np.int16) - np.asarray(before.crop(stroke_box), np.int16))
    assert back.mean() < 3, "undo restored the photo under the stroke"

    assert app.proc.poll() is None, "still running"
    errors = [line for line in app.log_text().splitlines() if " ERROR " in line or "Traceback" in line]
    assert not errors, errors


BUILTIN = ROOT / "assets" / "models" / "builtin" / "quickbrush_builtin.json"


@pytest.mark.skipif(not BUILTIN.exists(), reason="the built-in model is not in assets/models/builtin")
def test_a_fresh_install_generates_with_the_built_in_model(launch):
    """No model chosen, no file opened: New, type a prompt (seeded), Ctrl+Enter, Apply."""
    app = launch(settings={"prompt": "red apple", "seed": 3, "seed_locked": True}, open_photo=False)
    x, y, w, h = _canvas(app)
    wx, wy, ww, wh = (int(v) for v in app.wait_for(r"window at (-?\d+),(-?\d+) (\d+)x(\d+)").groups())
    # A click on the status bar makes the window active (there is no window manager to do it),
    # and leaves the document alone; the prompt box has the keyboard focus from the start.
    app.xdotool("mousemove", "--sync", wx + ww // 2, wy + wh - 8)
    app.xdotool("click", 1)
    app.settle(0.3)
    mark = len(app.log_text())
    app.xdotool("key", "--clearmodifiers", "ctrl+Return")
    app.wait_for(r"queued 1 generate job", timeout=20, after=mark)
    app.wait_for(r"job \d+ finished: generate ok in [\d.]+s on builtin", timeout=120, after=mark)
    app.xdotool("key", "--clearmodifiers", "ctrl+shift+Return")
    app.wait_for(r"applied generate result", timeout=20, after=mark)
    app.xdotool("mousemove", "--sync", x + 5, y + 5)
    app.settle(1.0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = app.grab()
    shot.save(ARTIFACTS / "5-builtin-generate.png")
    errors = [line for line in app.log_text().splitlines() if " ERROR " in line or "Traceback" in line]
    assert not errors, errors
