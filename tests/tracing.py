"""Tracing what a process connects to, in a designer's environment rather than CI's.

Both onnxruntime and OpenVINO switch their telemetry off by themselves when they see a CI
variable (CI=true, GITHUB_ACTIONS, TF_BUILD, ...), so a trace run under CI would prove nothing:
every traced process gets an environment without them, and without the telemetry variables
Quickbrush itself sets (inference/privacy.py), so only Quickbrush's own code switches anything off.
Used by tests/inference/test_privacy.py and tests/e2e/test_privacy_e2e.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Every variable a library might read as "this is a CI machine, stay quiet", and the telemetry
# switches themselves (tests/conftest.py sets HF_HUB_DISABLE_TELEMETRY for the test process).
CI_VARIABLES = (
    "CI", "CONTINUOUS_INTEGRATION", "GITHUB_ACTIONS", "TF_BUILD", "JENKINS_URL", "GITLAB_CI", "TRAVIS",
    "CIRCLECI", "BUILDKITE", "TEAMCITY_VERSION", "APPVEYOR", "CODEBUILD_BUILD_ID", "BITBUCKET_BUILD_NUMBER",
    "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI", "BUILD_ID", "BUILD_NUMBER", "RUN_ID",
)
TELEMETRY_VARIABLES = ("ORT_DISABLE_TELEMETRY", "HF_HUB_DISABLE_TELEMETRY", "DISABLE_TELEMETRY", "DO_NOT_TRACK")
# Long enough for onnxruntime's uploader to wake: traced here, its first lookup came about 10 s
# after the first session was created, then every few seconds.
TRACE_SECONDS = 25


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a designer's desktop: no CI markers, no telemetry switches, a fresh
    home (so a device id written there would show)."""
    env = {k: v for k, v in os.environ.items()
           if k not in CI_VARIABLES + TELEMETRY_VARIABLES and not k.startswith("XDG_")}
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env["PYTHONPATH"] = str(ROOT)
    return env


def strace() -> str:
    path = shutil.which("strace")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("strace is not installed (.ci/run installs it with apt)")
        pytest.skip("strace is not installed (.ci/run installs it with apt)")
    return path


_CONNECT = re.compile(r"connect\(\d+, \{sa_family=(AF_\w+)(.*?)\}")


def outside_connections(trace: str) -> list[str]:
    """connect() calls that could leave the machine: anything but a local (Unix or netlink)
    socket or the loopback address. A DNS lookup shows as a connect to the resolver."""
    found = []
    for line in trace.splitlines():
        match = _CONNECT.search(line)
        if match is None:
            continue
        family, rest = match.groups()
        if family in ("AF_UNIX", "AF_LOCAL", "AF_NETLINK"):
            continue
        if family == "AF_INET" and 'inet_addr("127.0.0.1")' in rest:
            continue
        if family == "AF_INET6" and ('"::1"' in rest or "inet_pton(AF_INET6, \"::1\"" in rest):
            continue
        found.append(line.strip())
    return found


def traced(script: str, home: Path, log: Path, timeout: float) -> subprocess.Popen:
    return subprocess.Popen(
        [strace(), "-f", "-e", "trace=connect", "-o", str(log), sys.executable, "-c", textwrap.dedent(script)],
        env=clean_env(home), cwd=str(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


