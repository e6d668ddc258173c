"""Guards on what a fresh install gets."""

import os
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
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


def test_every_package_folder_is_listed_for_the_wheel():
    """pyproject lists packages by hand (assets/ is mapped in); a new subpackage must join the list."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for top in ("editor", "inference") for init in (ROOT / top).rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


@pytest.mark.slow
def test_an_installed_wheel_carries_the_icons_and_the_builtin_model(tmp_path):
    """Not only the editable install of the quick start: an installer's `pip install quickbrush.whl`
    must find the icons and the built-in model too."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(ROOT)], check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("quickbrush-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, timeout=300)
    probe = ("import inference, editor.theme; from inference.models import catalog, store; "
             "print(inference.__file__); print(store.builtin_dir()); print(editor.theme.ICONS); "
             "print(len(catalog.entries())); print(catalog.catalog_path().parent / 'configs')")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site"), "QT_QPA_PLATFORM": "offscreen"},
                         timeout=120).stdout.split("\n")
    site = tmp_path / "site"
    assert Path(out[0]).is_relative_to(site), "the probe imported the checkout, not the wheel"
    assert (Path(out[1]) / "quickbrush_builtin.json").is_file() and Path(out[1]).is_relative_to(site)
    assert (Path(out[1]) / "onnx" / "unet.onnx").is_file() and (Path(out[1]) / "DATA.md").is_file()
    assert (Path(out[2]) / "app.svg").is_file() and Path(out[2]).is_relative_to(site)
    assert int(out[3]) >= 10, "the model catalog (catalog.toml) ships in the wheel"
    configs = Path(out[4])
    assert configs.is_relative_to(site) and (configs / "sd1" / "model_index.json").is_file(), \
        "the single-file configs ship in the wheel"


def test_test_files_have_distinct_names():
    """pytest's default (prepend) import mode imports test files by basename: two of the same
    name in different folders stop the whole run at collection."""
    from collections import Counter
    from pathlib import Path

    names = Counter(path.name for path in Path(__file__).parent.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
