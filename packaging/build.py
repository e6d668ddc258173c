"""Build Quickbrush's frozen app and its installer: `python packaging/build.py linux|windows|macos`.

It installs PyInstaller into the Python that runs it (the environment Quickbrush is installed
in, so the frozen app carries exactly the libraries that environment holds: install the CPU
build of torch there first, as README says), freezes the app with packaging/quickbrush.spec
(onedir: dist/quickbrush/ with both executables), makes the installer for this OS and prints a
JSON report of the sizes it produced. PyInstaller does not cross-compile, so each OS's
installer is built on that OS.

Linux: a .deb (dpkg-deb) that installs the folder as /opt/quickbrush, with /usr/bin/quickbrush and
/usr/bin/quickbrush-cli, a desktop entry, the icon and the OpenRaster MIME type. It has no
maintainer scripts: dpkg's triggers for shared-mime-info, desktop-file-utils and the icon cache
refresh those databases, and removing the package removes every file it installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "quickbrush.spec"
DIST = ROOT / "dist"
WORK = ROOT / "build" / "pyinstaller"
APP_DIR = "quickbrush"  # the onedir folder's name in dist/ (the spec's COLLECT name)
INSTALL_DIR = "/opt/quickbrush"
DEB_BUDGET_BYTES = 350 * 1000 * 1000

# The libraries Qt's xcb platform plugin loads that the PySide6 wheel does not carry (the same
# list .ci/run installs; tests/packaging/test_build.py checks the two agree), and the X, GL and
# font libraries under them.
QT_XCB_DEPENDS = ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0", "libxcb-render-util0",
                  "libxcb-shape0", "libxcb-xkb1", "libxkbcommon-x11-0")
BASE_DEPENDS = ("libc6", "libx11-xcb1", "libxkbcommon0", "libfontconfig1", "libfreetype6", "libegl1", "libgl1",
                "libglib2.0-0 | libglib2.0-0t64", "libdbus-1-3")

DESCRIPTION = "A desktop image editor with a fast, local, few-step diffusion model"
MIME_TYPE = "image/openraster"


class BuildError(Exception):
    """One line for the person running the build."""


def version() -> str:
    sys.path.insert(0, str(ROOT))
    try:
        from inference.version import version as _version

        return _version()
    finally:
        sys.path.remove(str(ROOT))


# --------------------------------------------------------------------------- the frozen app


def install_pyinstaller() -> None:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        run([sys.executable, "-m", "pip", "install", "pyinstaller"])


def freeze() -> Path:
    run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
         "--distpath", str(DIST), "--workpath", str(WORK), str(SPEC)])
    app = DIST / APP_DIR
    for name in ("quickbrush", "quickbrush-cli"):
        if not (app / (name + (".exe" if os.name == "nt" else ""))).exists():
            raise BuildError(f"PyInstaller finished without {name} in {app}")
    return app


def run(command: list[str], **kwargs) -> None:
    print("+", " ".join(command), file=sys.stderr, flush=True)
    # Their output goes to stderr: stdout is the JSON report alone, for whatever reads it.
    done = subprocess.run(command, stdout=sys.stderr, **kwargs)
    if done.returncode != 0:
        raise BuildError(f"{Path(command[0]).name} {' '.join(command[1:3])} ... failed with exit code {done.returncode}")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


# --------------------------------------------------------------------------- the .deb's files


def deb_architecture() -> str:
    try:
        return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def control_file(version_: str, architecture: str, installed_kib: int) -> str:
    depends = ", ".join((*BASE_DEPENDS, *QT_XCB_DEPENDS))
    return (f"Package: quickbrush\n"
            f"Version: {version_}\n"
            f"Section: graphics\n"
            f"Priority: optional\n"
            f"Architecture: {architecture}\n"
            f"Maintainer: Quickbrush project <noreply@quickbrush.invalid>\n"
            f"Installed-Size: {installed_kib}\n"
            f"Depends: {depends}\n"
            f"Description: {DESCRIPTION}\n"
            f" Quickbrush paints, selects and masks like an image editor and generates, varies,\n"
            f" inpaints and outpaints with diffusion models that run on this computer. Its\n"
            f" built-in model and the CPU runtimes are included: it works offline.\n")


def desktop_entry() -> str:
    return ("[Desktop Entry]\n"
            "Type=Application\n"
            "Name=Quickbrush\n"
            "GenericName=Image Editor\n"
            f"Comment={DESCRIPTION}\n"
            "Exec=quickbrush %f\n"
            "Icon=quickbrush\n"
            "Terminal=false\n"
            "Categories=Graphics;2DGraphics;RasterGraphics;\n"
            f"MimeType={MIME_TYPE};image/png;image/jpeg;image/webp;\n"
            "StartupWMClass=Quickbrush\n")


def mime_xml() -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">\n'
            f'  <mime-type type="{MIME_TYPE}">\n'
            '    <comment>OpenRaster image</comment>\n'
            '    <magic priority="60">\n'
            '      <match type="string" offset="38" value="image/openraster"/>\n'
            '    </magic>\n'
            '    <glob pattern="*.ora"/>\n'
            '  </mime-type>\n'
            '</mime-info>\n')


def write_deb_tree(root: Path, app: Path | None, version_: str, architecture: str) -> Path:
    """The .deb's contents under `root`: DEBIAN/control, the desktop entry, the MIME type, the
    icon and the /usr/bin links, and the frozen app in opt/ when `app` is given (the tests
    build the metadata without it)."""
    opt = root / INSTALL_DIR.lstrip("/")
    if app is not None:
        # Hard links where dist/ and build/ share a file system: the frozen folder is over a GB.
        shutil.copytree(app, opt, symlinks=True, copy_function=_link_or_copy)
    installed = folder_bytes(opt) if opt.exists() else 0
    files = {
        "usr/share/applications/quickbrush.desktop": desktop_entry(),
        "usr/share/mime/packages/quickbrush.xml": mime_xml(),
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    icon = root / "usr/share/icons/hicolor/scalable/apps/quickbrush.svg"
    icon.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "assets" / "icons" / "app.svg", icon)
    bin_dir = root / "usr" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("quickbrush", "quickbrush-cli"):
        link = bin_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(f"{INSTALL_DIR}/{name}")  # absolute: valid wherever /usr/bin is
    installed += folder_bytes(root / "usr")
    debian = root / "DEBIAN"
    debian.mkdir(parents=True, exist_ok=True)
    (debian / "control").write_text(control_file(version_, architecture, max(1, installed // 1024)))
    for path in root.rglob("*"):  # dpkg-deb refuses group- or world-writable control folders
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    return root


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def build_deb(app: Path, version_: str) -> Path:
    architecture = deb_architecture()
    tree = WORK / "deb"
    if tree.exists():
        shutil.rmtree(tree)
    write_deb_tree(tree, app, version_, architecture)
    deb = DIST / f"quickbrush_{version_}_{architecture}.deb"
    deb.unlink(missing_ok=True)
    # xz: torch's libraries compress to about a third; the budget is for the download.
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(tree), str(deb)])
    shutil.rmtree(tree)
    return deb


# --------------------------------------------------------------------------- main


HOME_OS = {"linux": "linux", "windows": "win32", "macos": "darwin"}


def build(target: str) -> dict:
    if not sys.platform.startswith(HOME_OS[target]):
        raise BuildError(f"the {target} build must run on {target}: PyInstaller freezes the Python and "
                         f"libraries of the machine it runs on and cannot make a {target} app here")
    if target == "linux" and shutil.which("dpkg-deb") is None:
        raise BuildError("the .deb needs dpkg-deb (Debian's dpkg package); install it and build again")
    started = time.monotonic()
    version_ = version()
    install_pyinstaller()
    app = freeze()
    report: dict = {"target": target, "version": version_, "onedir": str(app.relative_to(ROOT)),
                    "onedir_bytes": folder_bytes(app)}
    if target == "linux":
        deb = build_deb(app, version_)
        report.update(deb=str(deb.relative_to(ROOT)), deb_bytes=deb.stat().st_size,
                      deb_budget_bytes=DEB_BUDGET_BYTES, deb_within_budget=deb.stat().st_size <= DEB_BUDGET_BYTES)
    report["seconds"] = round(time.monotonic() - started, 1)
    if target != "linux":
        installer = "an NSIS installer" if target == "windows" else "an .app bundle in a .dmg"
        print(json.dumps(report, indent=2))
        raise BuildError(f"the frozen app is in {app}; this build makes no {target} installer: packaging/ "
                         f"has no script for {installer} yet")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=sorted(HOME_OS), help="the OS to build for (the one this runs on)")
    args = parser.parse_args(argv)
    try:
        report = build(args.target)
    except BuildError as error:
        print(f"build.py: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
