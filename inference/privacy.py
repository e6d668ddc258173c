"""No byte leaves the machine unasked: every third-party telemetry channel off, before it loads.

Quickbrush's only traffic is a download the designer asked for. Some libraries it runs on phone
home by default, and each is switched off here, in the one place everything passes through:
`inference/__init__.py` calls `switch_off()`, so the GUI, the CLI and the worker all run it
before any of these libraries is imported.

- onnxruntime (the built-in model's runtime): its Linux and macOS wheels carry Microsoft's 1DS
  uploader, on by default; traced here, a few seconds after the first job it looks up the
  collector's host again and again, and it writes a device id and an event database under
  ~/.cache/Microsoft. `ORT_DISABLE_TELEMETRY=1`, read when the library initialises, stops the
  uploader, its events and the device id for the process (onnxruntime's Privacy.md);
  `onnxruntime()` below also calls its `disable_telemetry_events()`.
- OpenVINO (the CPU fast path): its conversion API sends Google Analytics events and keeps a
  client id under ~/intel through the `openvino_telemetry` package, and falls back to a silent
  stub of its own when that package cannot be imported. Blocking the import for this process
  switches it off without touching the designer's opt-in file, which other Intel tools share.
- huggingface_hub, transformers and diffusers: `HF_HUB_DISABLE_TELEMETRY`, their older
  `DISABLE_TELEMETRY`, and the cross-tool `DO_NOT_TRACK`, which huggingface_hub honours too.

Values are forced, not defaulted: a telemetry variable left in the designer's environment by
another tool does not turn these back on. `tests/inference/test_privacy.py` traces the running
app with strace and fails on any connection that is not local.
"""

from __future__ import annotations

import logging
import os
import sys
from types import ModuleType

log = logging.getLogger(__name__)

TELEMETRY_OFF: dict[str, str] = {
    "ORT_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}
# Packages that only ever send usage data; importing them is refused in this process.
BLOCKED_MODULES = ("openvino_telemetry",)


def switch_off() -> None:
    """Turn every known telemetry channel off for this process (and the processes it starts)."""
    for name, value in TELEMETRY_OFF.items():
        os.environ[name] = value
    for name in BLOCKED_MODULES:
        module = sys.modules.get(name)
        if module is None:
            # None in sys.modules makes `import name` raise ImportError, which is what the
            # libraries that use it check for before falling back to a stub.
            sys.modules[name] = None  # type: ignore[assignment]
        else:
            log.warning("%s was imported before Quickbrush could block it; its telemetry may run", name)


def onnxruntime() -> ModuleType:
    """onnxruntime, imported with its telemetry off (the environment variable, set by
    `switch_off`, and its own API for the events the variable might not cover)."""
    switch_off()  # idempotent; here too in case a caller imported this module directly
    import onnxruntime as ort

    disable = getattr(ort, "disable_telemetry_events", None)
    if callable(disable):
        disable()
    return ort
