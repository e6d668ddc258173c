"""Preferences and last-used parameters, persisted with QSettings and observable.

Each setting is a property with its own `<name>_changed` signal, emitted only when the value
really changes (as Krita AI Diffusion's settings do), so widgets can bind both ways and hold no
state of their own. Values are stored as JSON text: QSettings' native types differ by platform
(INI files return strings, the Windows registry returns ints), JSON reads back the same everywhere.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from PySide6.QtCore import QObject, QSettings, Signal

# name -> default. The type of the default is the type of the setting.
DEFAULTS: dict[str, Any] = {
    # generation
    "mode": "generate",
    "prompt": "",
    "negative_prompt": "",
    "steps": 0,  # 0: the model's own default
    "guidance": -1.0,  # negative: the model's own default
    "strength": 0.6,  # Vary
    "inpaint_strength": 1.0,
    "image_guidance": 1.5,
    "seed": 0,
    "seed_locked": False,
    "variations": 1,
    "size_preset": "native",
    "outpaint_left": 0,  # pixels the Outpaint mode adds on each side
    "outpaint_top": 0,
    "outpaint_right": 0,
    "outpaint_bottom": 0,
    "live_preview": True,
    # model
    "model": "",
    "device": "auto",
    "runtime": "auto",  # "auto" (the fastest measured here, see inference.runtimes), "torch" or "openvino"
    "fast_decode": False,  # decode finals with the model's tiny decoder (TAESD); Refine decodes in full
    # canvas and tools
    "brush_size": 40,
    "brush_hardness": 0.8,
    "mask_opacity": 0.5,
    "mask_color": "#ff3c64",
    # files and window
    "recent_files": [],
    "window_geometry": "",
    "window_state": "",
}

MAX_RECENT = 10


def _make_property(name: str, kind: type) -> property:
    def getter(self: "Settings") -> Any:
        return self._values[name]

    def setter(self: "Settings", value: Any) -> None:
        self.set(name, value)

    return property(getter, setter, doc=f"{name} ({kind.__name__}); emits {name}_changed")


class Settings(QObject):
    changed = Signal(str, object)

    # One `<name>_changed` signal and one property per setting.
    for _name, _default in DEFAULTS.items():
        locals()[f"{_name}_changed"] = Signal(object)
        locals()[_name] = _make_property(_name, type(_default))
    del _name, _default

    def __init__(self, qsettings: QSettings | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._store = qsettings or QSettings()
        self._values: dict[str, Any] = {name: self._load(name, default) for name, default in DEFAULTS.items()}

    def _load(self, name: str, default: Any) -> Any:
        raw = self._store.value(name)
        if raw is None:
            return _copy(default)
        try:
            return _coerce(json.loads(str(raw)), default)
        except (ValueError, TypeError):  # a hand-edited or older file: keep the default
            return _copy(default)

    def set(self, name: str, value: Any) -> None:
        if name not in DEFAULTS:
            raise KeyError(f"unknown setting {name!r}")
        value = _coerce(value, DEFAULTS[name])
        if value == self._values[name]:
            return
        self._values[name] = value
        self._store.setValue(name, json.dumps(value))
        getattr(self, f"{name}_changed").emit(value)
        self.changed.emit(name, value)

    def get(self, name: str) -> Any:
        return self._values[name]

    def bind(self, name: str, callback: Callable[[Any], None]) -> None:
        """Call `callback` with the current value now and with every real change later."""
        getattr(self, f"{name}_changed").connect(callback)
        callback(self._values[name])

    def add_recent_file(self, path: str) -> None:
        recent = [path] + [p for p in self._values["recent_files"] if p != path]
        self.set("recent_files", recent[:MAX_RECENT])

    def reset(self, name: str) -> None:
        self.set(name, DEFAULTS[name])

    def sync(self) -> None:
        self._store.sync()


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _coerce(value: Any, default: Any) -> Any:
    kind = type(default)
    if kind is bool:
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)
    if kind is list:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        return [str(v) for v in value]
    return kind(value)
