"""packaging/build.py and packaging/quickbrush.spec without running PyInstaller: both parse, and
the .deb's control file, desktop entry and MIME type it writes are well-formed. The build itself
takes many minutes and runs only when asked (packaging/README.md)."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from email.parser import HeaderParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("quickbrush_build", PACKAGING / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tree(build, tmp_path):
    return build.write_deb_tree(tmp_path / "deb", None, "0.1.0", "amd64")


def test_the_spec_and_the_entry_scripts_parse():
    for name in ("quickbrush.spec", "build.py", "entry_quickbrush.py", "entry_quickbrush_cli.py"):
        ast.parse((PACKAGING / name).read_text(), filename=name)


def test_the_spec_freezes_both_entry_points_with_the_assets_and_without_what_is_never_used():
    text = (PACKAGING / "quickbrush.spec").read_text()
    assert 'name="quickbrush"' in text and 'name="quickbrush-cli"' in text
    assert '(str(ROOT / "assets"), "assets")' in text
    for excluded in ("tkinter", "QtWebEngineCore", "Qt3DCore", "QtMultimedia", "QtQuick", "QtQml",
                     "torch/include/", "torch/test/"):
        assert f'"{excluded}"' in text, excluded
    # The frozen app finds the assets where the spec puts them (inference/assets.py's fallback).
    assert (ROOT / "inference" / "assets.py").read_text().count('parents[1] / "assets"') == 1


def test_the_entry_scripts_run_the_entry_points_pyproject_declares():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'quickbrush = "editor.app:main"' in pyproject and 'quickbrush-cli = "inference.cli:main"' in pyproject
    assert "from editor.app import main" in (PACKAGING / "entry_quickbrush.py").read_text()
    assert "from inference.cli import main" in (PACKAGING / "entry_quickbrush_cli.py").read_text()


def test_the_control_file_is_well_formed_and_depends_on_what_ci_installs_for_qt(build, tree):
    text = (tree / "DEBIAN" / "control").read_text()
    fields = HeaderParser().parsestr(text)
    for field in ("Package", "Version", "Architecture", "Maintainer", "Depends", "Description", "Installed-Size"):
        assert fields[field], field
    assert fields["Package"] == "quickbrush" and fields["Version"] == "0.1.0"
    assert text.endswith("\n") and "\n\n" not in text
    for line in text.splitlines():
        assert re.match(r"^([A-Za-z-]+: .+| \S.*)$", line), line
    depends = [d.strip() for d in fields["Depends"].split(",")]
    ci_apt = (ROOT / ".ci" / "run").read_text()
    ci_packages = set(re.findall(r"\blib[a-z0-9.+-]+", ci_apt))
    for package in build.QT_XCB_DEPENDS:
        assert package in depends and package in ci_packages, package
    assert {p for p in ci_packages if p.startswith(("libxcb", "libxkbcommon"))} <= set(depends)


def test_the_desktop_entry_opens_ora_documents_with_the_installed_command(tree):
    path = tree / "usr/share/applications/quickbrush.desktop"
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read_string(path.read_text())
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Name"] == "Quickbrush"
    assert section["Exec"].split()[0] == "quickbrush" and section["Icon"] == "quickbrush"
    assert "image/openraster" in section["MimeType"].split(";") and section["MimeType"].endswith(";")
    assert section["Categories"].endswith(";")
    if shutil.which("desktop-file-validate"):
        done = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_mime_type_names_ora_files(tree):
    root = ET.parse(tree / "usr/share/mime/packages/quickbrush.xml").getroot()
    ns = "{http://www.freedesktop.org/standards/shared-mime-info}"
    assert root.tag == f"{ns}mime-info"
    (mime,) = root.findall(f"{ns}mime-type")
    assert mime.get("type") == "image/openraster"
    assert [g.get("pattern") for g in mime.findall(f"{ns}glob")] == ["*.ora"]


def test_the_commands_and_the_icon_point_into_opt(build, tree):
    for name in ("quickbrush", "quickbrush-cli"):
        link = tree / "usr/bin" / name
        assert link.is_symlink() and str(link.readlink()) == f"{build.INSTALL_DIR}/{name}"
    assert (tree / "usr/share/icons/hicolor/scalable/apps/quickbrush.svg").read_text().lstrip().startswith("<")


def test_the_frozen_folder_goes_to_opt_with_its_executables(build, tmp_path):
    app = tmp_path / "dist" / "quickbrush"
    (app / "_internal").mkdir(parents=True)
    for name in ("quickbrush", "quickbrush-cli"):
        (app / name).write_bytes(b"\x7fELF")
        (app / name).chmod(0o775)
    (app / "_internal" / "data.txt").write_text("x")
    tree = build.write_deb_tree(tmp_path / "deb", app, "0.1.0", "amd64")
    opt = tree / build.INSTALL_DIR.lstrip("/")
    assert (opt / "_internal" / "data.txt").read_text() == "x"
    for name in ("quickbrush", "quickbrush-cli"):
        assert (opt / name).stat().st_mode & 0o777 == 0o755
    assert (tree / "usr/bin/quickbrush").readlink() == Path(build.INSTALL_DIR) / "quickbrush"


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_dpkg_deb_accepts_the_metadata(tree, tmp_path):
    deb = tmp_path / "metadata-only.deb"
    done = subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    info = subprocess.run(["dpkg-deb", "--field", str(deb), "Package", "Depends"], capture_output=True, text=True)
    assert info.returncode == 0 and "Package: quickbrush" in info.stdout and "libxcb-cursor0" in info.stdout


@pytest.mark.parametrize("target", ["windows", "macos"])
def test_another_os_is_refused_in_one_clear_line(build, capsys, target):
    assert build.main([target]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"must run on {target}" in err
