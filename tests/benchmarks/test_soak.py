"""The soak benchmark runs, one job of each kind, and reports in the shape its doc promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import soak


def test_memory_is_read_after_job_1_and_a_quarter_half_and_all_of_them():
    assert soak.checkpoints(200) == [1, 50, 100, 200]
    assert soak.checkpoints(5) == [1, 2, 5]
    assert soak.checkpoints(1) == [1]


def test_a_short_soak_prints_its_report(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "soak.py"), "--jobs", "5", "--steps", "1"], check=False,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    assert report["jobs"] == 5 and report["kinds"] == ["generate", "vary", "inpaint", "outpaint", "edit"]
    assert set(report["rss_mb"]) == {"1", "2", "5"}
    assert all(isinstance(value, float) and value > 0 for value in report["rss_mb"].values())
    assert isinstance(report["growth_mb"], float) and report["limit_mb"] == 50
    assert isinstance(report["under_limit"], bool)
    assert report["failed"] == 0 and report["first_error"] is None, report["first_error"]
    assert set(report["median_ms"]) == set(report["kinds"]), "every kind ran"
    assert isinstance(report["cpu"]["count"], int) and isinstance(report["cpu"]["flags"], list)
    assert done.returncode == (0 if report["under_limit"] else 1)
