"""One watchdog for every test that could hang (a quadratic parse, a child that never reports, a
dialog whose button is not found): SIGALRM turns the hang into a failure naming what hung."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class Hung(BaseException):
    """Raised by the watchdog; a BaseException, so no `except Exception` in the code under test
    swallows it. pytest reports it as the test's failure."""


@contextlib.contextmanager
def watchdog(what: str, seconds: int) -> Iterator[None]:
    """Raise Hung in the main thread if the block runs longer than `seconds`."""

    def fire(_signum: int, _frame: Any) -> None:
        raise Hung(f"{what} did not finish in {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
