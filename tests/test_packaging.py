"""Guards on what a fresh install gets."""

import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, Requirement]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = [Requirement(r) for r in data["project"]["dependencies"]]
    return {r.name.lower(): r for r in reqs}


def test_pyside_pin_excludes_the_broken_6_12_0():
    spec = _requirements()["pyside6-essentials"].specifier
    assert "6.12.0" not in spec, "PySide6 6.12.0 drops references on Python 3.11 (none_dealloc)"
    assert "6.11.3" in spec and "6.8.0" in spec


def test_installed_pyside_is_not_the_broken_release():
    assert not (sys.version_info[:2] == (3, 11) and version("PySide6-Essentials") == "6.12.0")


def test_qt_calls_returning_none_or_bool_do_not_corrupt_refcounts():
    """6.12.0 dies with `none_dealloc` after enough calls that return None or a bool."""
    code = (
        "from PySide6.QtCore import QObject, QTimer\n"
        "o = QObject(); t = QTimer()\n"
        "for i in range(200000):\n"
        "    o.setObjectName('x'); o.blockSignals(False); o.signalsBlocked(); t.isActive()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_torch_is_never_left_to_an_open_range_in_docs_and_ci():
    """A bare `pip install torch` pulls a multi-GB CUDA build; README and CI pin the CPU wheel."""
    for path in (ROOT / "README.md", ROOT / ".ci" / "run"):
        text = path.read_text()
        for line in text.splitlines():
            if "pip install" in line and "torch" in line.replace("torch==", ""):
                raise AssertionError(f"{path.name}: unpinned torch in {line!r}")
        assert "torch==2.13.0" in text, f"{path.name} must pin the CPU torch wheel"
