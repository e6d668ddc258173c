"""Quickbrush's headless core. Importing it switches third-party telemetry off first
(inference.privacy): the GUI, the CLI and the worker all pass through here."""

from inference.privacy import switch_off as _switch_off

_switch_off()
