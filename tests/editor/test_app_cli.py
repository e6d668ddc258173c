"""`quickbrush --version` and `quickbrush --smoke` (editor/app.py), run as an installer's smoke
test runs them: in a real process, with no screen and no network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from inference.version import version

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """The app in a process of its own, in an empty working folder, with its own temp, home and
    data folders, so the test can tell what it left behind."""
    for name in ("cwd", "tmp", "home"):
        (tmp_path / name).mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "QT_QPA_PLATFORM": "offscreen"}
    env.pop("DISPLAY", None)
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "editor.app"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path / "cwd", env=env)


def test_version_is_printed_by_both_entry_points(tmp_path):
    app = _run(tmp_path, "--version")
    assert app.returncode == 0, app.stderr
    assert app.stdout.strip() == f"quickbrush {version()}"
    cli = subprocess.run([sys.executable, "-m", "inference.cli", "--version"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == f"quickbrush-cli {version()}"


def test_smoke_generates_with_the_builtin_model_and_leaves_nothing_behind(tmp_path):
    done = _run(tmp_path, "--smoke")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "smoke test passed" in lines[0] and version() in lines[0], done.stdout
    assert "built-in model" in lines[0]
    # Its image went to a temporary folder it removed; nothing lands where it was started.
    assert list((tmp_path / "tmp").iterdir()) == []
    assert list((tmp_path / "cwd").iterdir()) == []


def test_smoke_picks_the_offscreen_platform_without_a_screen(tmp_path):
    code = ("import os, sys; os.environ.pop('QT_QPA_PLATFORM', None); os.environ.pop('WAYLAND_DISPLAY', None)\n"
            "from editor import app; sys.exit(app.main(sys.argv[1:]))")
    done = _run(tmp_path, "--smoke", code=code)
    assert done.returncode == 0, done.stderr
    assert "Qt platform offscreen" in done.stdout


def test_a_failing_smoke_says_so_in_one_line_and_exits_non_zero(tmp_path):
    code = ("import sys\n"
            "from inference import worker\n"
            "def broken(self, job): raise OSError('the built-in model is missing from this installation')\n"
            "worker.Worker.submit = broken\n"
            "from editor import app; sys.exit(app.main(sys.argv[1:]))")
    done = _run(tmp_path, "--smoke", code=code)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == "quickbrush --smoke: failed: the built-in model is missing from this installation"


def test_the_about_box_shows_the_version():
    from editor import main_window

    assert f"<h3>Quickbrush {version()}</h3>" in main_window.ABOUT_TEXT
