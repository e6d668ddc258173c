"""Atomic writes that leave nothing behind: a save killed at any moment never corrupts the previous
file, and its temporary file goes with the next save of that file or at the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from inference import files
from inference.files import SaveError, atomic_write, clean_stale_temps
from watchdog import watchdog as hang_watch

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and POSIX file semantics")

# A child that starts an atomic write of `size` bytes, says so once half of it is on disk, and then
# waits to be killed (it never finishes on its own).
_WRITER = textwrap.dedent("""
    import sys, time
    from inference.files import atomic_write

    target, size = sys.argv[1], int(sys.argv[2])
    chunk = bytes(range(256)) * 4096  # 1 MiB

    def write(handle):
        for written in range(0, size, len(chunk)):
            handle.write(chunk)
            if written >= size // 2:
                handle.flush()
                print("halfway", flush=True)
                time.sleep(120)

    atomic_write(target, write)
""")


@pytest.fixture
def watchdog():
    """Turn a hang (a child that never reports) into a failure rather than a stuck test run."""
    with hang_watch("waiting for the writer", 60):
        yield


def _kill_mid_write(target: Path, size: int = 64 << 20) -> int:
    """Start a writer of `target`, SIGKILL it halfway through, reap it; its pid."""
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), str(size)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "halfway"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    return child.pid


def _temps(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def test_a_killed_write_keeps_the_old_file_and_the_next_save_removes_its_temp(tmp_path, watchdog):
    target = tmp_path / "art.ora"
    atomic_write(target, lambda handle: handle.write(b"the previous version"))

    pid = _kill_mid_write(target)

    assert target.read_bytes() == b"the previous version"
    left = _temps(tmp_path)
    assert len(left) == 1 and f".{pid}-" in left[0]  # the temp names its writer
    assert (tmp_path / left[0]).stat().st_size >= 32 << 20

    atomic_write(target, lambda handle: handle.write(b"the next version"))
    assert os.listdir(tmp_path) == ["art.ora"]
    assert target.read_bytes() == b"the next version"


def test_clean_stale_temps_removes_what_killed_saves_left_in_a_folder(tmp_path, watchdog):
    first, second = tmp_path / "one.ora", tmp_path / "two.png"
    for target in (first, second):
        atomic_write(target, lambda handle: handle.write(b"kept"))
        _kill_mid_write(target, 4 << 20)
    assert len(_temps(tmp_path)) == 2

    removed = clean_stale_temps(tmp_path)

    assert len(removed) == 2 and all(p.parent == tmp_path for p in removed)
    assert sorted(os.listdir(tmp_path)) == ["one.ora", "two.png"]
    assert first.read_bytes() == second.read_bytes() == b"kept"


def test_clean_stale_temps_of_one_file_leaves_the_others(tmp_path, watchdog):
    mine, other = tmp_path / "mine.ora", tmp_path / "other.ora"
    _kill_mid_write(mine, 4 << 20)
    _kill_mid_write(other, 4 << 20)

    removed = clean_stale_temps(mine)  # that file need not exist: the killed save was its first

    assert len(removed) == 1 and removed[0].name.startswith(".mine.ora.")
    assert len(_temps(tmp_path)) == 1 and _temps(tmp_path)[0].startswith(".other.ora.")
    # A save of one file cleans its own temps, not its neighbours'.
    atomic_write(mine, lambda handle: handle.write(b"x"))
    assert _temps(tmp_path)[0].startswith(".other.ora.")


def test_a_live_writers_temp_is_never_removed(tmp_path, watchdog):
    target = tmp_path / "busy.ora"
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), str(4 << 20)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "halfway"
        assert clean_stale_temps(tmp_path) == []
        assert clean_stale_temps(target) == []
        # Another save of the same file meanwhile (say, an autosave) leaves it alone too.
        atomic_write(target, lambda handle: handle.write(b"other"))
        assert len(_temps(tmp_path)) == 1
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert len(clean_stale_temps(tmp_path)) == 1


def _fake_temp(folder: Path, target: str, pid: int, host: str = files._HOST, age_s: float = 0.0) -> Path:
    path = folder / f".{target}.{pid}-{host}.0badc0de.tmp"
    path.write_bytes(b"partial")
    if age_s:
        then = time.time() - age_s
        os.utime(path, (then, then))
    return path


def test_a_reused_process_id_does_not_keep_a_stale_temp(tmp_path):
    # In a container every run of the app may get the same pid; a temp an earlier run left was
    # written before this process started, so it is stale although the pid is alive.
    started = psutil.Process().create_time()
    old = _fake_temp(tmp_path, "a.ora", os.getpid(), age_s=time.time() - started + 60)
    fresh = _fake_temp(tmp_path, "b.ora", os.getpid())  # a save of this process, in another thread
    assert clean_stale_temps(tmp_path) == [old]
    assert fresh.exists()


def test_temps_of_other_machines_and_old_versions_go_only_once_untouched_for_an_hour(tmp_path):
    hour = 3600
    other_host = "ffffffff" if files._HOST != "ffffffff" else "eeeeeeee"
    recent_remote = _fake_temp(tmp_path, "a.ora", 1, host=other_host, age_s=60)
    old_remote = _fake_temp(tmp_path, "b.ora", 1, host=other_host, age_s=2 * hour)
    # The naming before process ids, as a killed save of the previous version left it.
    recent_legacy = tmp_path / ".c.ora.1a2b3c4d.tmp"
    old_legacy = tmp_path / ".d.ora.1a2b3c4d.tmp"
    not_ours = tmp_path / ".notes.txt.1a2b3c4d.tmp"  # another program's, maybe
    for path in (recent_legacy, old_legacy, not_ours):
        path.write_bytes(b"partial")
    for path in (old_legacy, not_ours):
        os.utime(path, (time.time() - 2 * hour,) * 2)
    unrelated = [tmp_path / ".hidden", tmp_path / "x.tmp", tmp_path / ".x.ora.tmp"]
    for path in unrelated:
        path.write_bytes(b"someone's")

    assert sorted(clean_stale_temps(tmp_path)) == sorted([old_remote, old_legacy])
    for path in (recent_remote, recent_legacy, not_ours, *unrelated):
        assert path.exists()
    # For one file, an old-style temp of that file goes whatever its suffix.
    os.utime(recent_legacy, (time.time() - 2 * hour,) * 2)
    assert clean_stale_temps(tmp_path / "c.ora") == [recent_legacy]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symlinks")
def test_the_temps_of_a_symlinked_file_are_beside_the_real_file(tmp_path, watchdog):
    real_dir, link_dir = tmp_path / "real", tmp_path / "links"
    real_dir.mkdir()
    link_dir.mkdir()
    real = real_dir / "art.ora"
    real.write_bytes(b"old")
    link = link_dir / "art.ora"
    link.symlink_to(real)
    _kill_mid_write(link, 4 << 20)
    assert len(_temps(real_dir)) == 1 and _temps(link_dir) == []
    assert len(clean_stale_temps(link)) == 1
    assert _temps(real_dir) == [] and real.read_bytes() == b"old"


def test_clean_stale_temps_never_raises(tmp_path):
    assert clean_stale_temps(tmp_path / "no such folder") == []
    assert clean_stale_temps(tmp_path / "no such folder" / "x.ora") == []
    assert clean_stale_temps("bad\0name") == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_a_temp_that_cannot_be_removed_is_skipped(tmp_path):
    stale = _fake_temp(tmp_path, "a.ora", 1, host="ffffffff", age_s=7200)
    os.chmod(tmp_path, 0o555)
    try:
        assert clean_stale_temps(tmp_path) == []
        atomic_write_error = None
        try:
            atomic_write(tmp_path / "a.ora", lambda handle: handle.write(b"x"))
        except SaveError as error:
            atomic_write_error = error
        assert atomic_write_error is not None and "permission denied" in atomic_write_error.message
    finally:
        os.chmod(tmp_path, 0o755)
    assert stale.exists()


def test_running_out_of_memory_while_writing_says_so(tmp_path):
    def write(handle):
        raise MemoryError()

    with pytest.raises(SaveError) as caught:
        atomic_write(tmp_path / "big.ora", write)
    assert caught.value.message == "Could not save big.ora: there is not enough memory."
    assert os.listdir(tmp_path) == []
