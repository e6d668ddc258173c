"""The dependency rule of docs/architecture.md: inference never imports Qt or the editor."""

import pkgutil
import subprocess
import sys

import inference


def test_inference_imports_no_qt_and_no_editor():
    modules = sorted(m.name for m in pkgutil.walk_packages(inference.__path__, "inference."))
    assert "inference.worker" in modules and "inference.cli" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('PySide6', 'shiboken6', 'PyQt5', 'PyQt6', 'PySide2', 'editor'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"inference pulled in: {out.stdout.strip()}"
