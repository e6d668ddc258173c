"""The background thread that owns the loaded models and runs jobs one at a time.

Thread-safe and callback-based: `submit` returns a job id at once; progress and results arrive
through callbacks called *on the worker thread* (the editor's JobBridge re-emits them as queued Qt
signals). Every job ends in exactly one Result: an image, or an error; a failing job never kills
the thread. Cancelling a running job interrupts it at the end of the current denoising step and
skips the decoder; cancelling a queued job removes it before it starts.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from inference.engine import Engine
from inference.jobs import Cancelled, Job, JobError, Progress, Result

log = logging.getLogger(__name__)


class WorkerStopped(JobError, RuntimeError):
    """The worker was shut down (or its thread ended): nothing more can run on it.

    A RuntimeError too, as `submit` raised before it had a kind of its own."""

    kind = "worker_stopped"

    def __init__(self, message: str = "The background worker has stopped; nothing more can run until "
                 "Quickbrush restarts it.", details: str = ""):
        super().__init__(message, details)

ProgressCallback = Callable[[Progress], None]
ResultCallback = Callable[[Result], None]
StartCallback = Callable[[int, Job], None]


@dataclass
class _Ticket:
    job_id: int
    job: Job
    on_progress: ProgressCallback | None = None
    on_result: ResultCallback | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    finished: bool = False  # its Result was handed out (each job gets exactly one)


@dataclass
class _Command:
    """Work that must run on the worker thread between jobs (models belong to that thread)."""

    action: Callable[[], object]
    done: threading.Event = field(default_factory=threading.Event)
    value: object = None


class Worker:
    def __init__(
        self,
        engine: Engine | None = None,
        on_progress: ProgressCallback | None = None,
        on_result: ResultCallback | None = None,
        on_started: StartCallback | None = None,
        name: str = "quickbrush-worker",
    ):
        self.engine = engine or Engine()
        self._on_progress = on_progress
        self._on_result = on_result
        self._on_started = on_started
        self._queue: deque[_Ticket | _Command] = deque()
        self._lock = threading.Condition()
        self._running: _Ticket | None = None
        self._ids = itertools.count(1)
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # -- API (any thread) ----------------------------------------------------------------

    def submit(
        self, job: Job, on_progress: ProgressCallback | None = None, on_result: ResultCallback | None = None
    ) -> int:
        with self._lock:
            if self._stopping:
                raise WorkerStopped(details=f"submit({job.describe()}) after shutdown")
            ticket = _Ticket(next(self._ids), job, on_progress, on_result)
            self._queue.append(ticket)
            self._lock.notify_all()
            return ticket.job_id

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job; False if it is unknown or already finished."""
        with self._lock:
            if self._running is not None and self._running.job_id == job_id:
                self._running.cancel.set()
                return True
            for item in self._queue:
                if isinstance(item, _Ticket) and item.job_id == job_id:
                    self._queue.remove(item)
                    removed = item
                    break
            else:
                return False
        self._finish(removed, Result(removed.job_id, removed.job, error=Cancelled()))
        return True

    def cancel_all(self) -> int:
        with self._lock:
            ids = [i.job_id for i in self._queue if isinstance(i, _Ticket)]
            if self._running is not None:
                ids.append(self._running.job_id)
        return sum(self.cancel(job_id) for job_id in ids)

    def queued(self) -> list[tuple[int, Job]]:
        with self._lock:
            return [(i.job_id, i.job) for i in self._queue if isinstance(i, _Ticket)]

    @property
    def running(self) -> tuple[int, Job] | None:
        with self._lock:
            return (self._running.job_id, self._running.job) if self._running else None

    def call(self, action: Callable[[], object], timeout: float | None = None) -> object:
        """Run `action` on the worker thread after the jobs queued before it; returns its value.

        Raises WorkerStopped at once when the worker has been shut down (nothing would ever run
        the action), and RuntimeError when called from the worker's own thread (a callback),
        which would wait for itself.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("Worker.call() from the worker's own thread would wait for itself forever.")
        command = _Command(action)
        with self._lock:
            if self._stopping:
                raise WorkerStopped(details="call() after shutdown")
            self._queue.append(command)
            self._lock.notify_all()
        if not command.done.wait(timeout):
            raise TimeoutError("the worker is busy")
        if isinstance(command.value, BaseException):
            raise command.value
        return command.value

    def unload(self, source: str | None = None, timeout: float | None = None) -> int:
        """Free one loaded model, or all of them."""
        return int(self.call(lambda: self.engine.unload(source), timeout))  # type: ignore[arg-type]

    def wait_idle(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._queue or self._running is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def shutdown(self, cancel: bool = True, timeout: float | None = 30.0) -> None:
        if cancel:
            self.cancel_all()
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            self._serve()
        finally:
            self._stopped()

    def _stopped(self) -> None:
        """However the thread ends (shut down, or killed by a callback raising SystemExit), no
        caller may wait on it for ever: what is still queued ends now, with an error."""
        with self._lock:
            self._stopping = True
            left = list(self._queue)
            self._queue.clear()
            ticket, self._running = self._running, None
            self._lock.notify_all()
        for item in left:
            if isinstance(item, _Command):
                item.value = WorkerStopped()
                item.done.set()
        for item in ([ticket] if ticket is not None else []) + [i for i in left if isinstance(i, _Ticket)]:
            if item.finished:
                continue
            try:
                self._finish(item, Result(item.job_id, item.job, error=WorkerStopped()))
            except BaseException:  # the thread is ending anyway; the others still get their results
                pass

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if not self._queue and self._stopping:
                    return
                item = self._queue.popleft()
                if isinstance(item, _Ticket):
                    self._running = item
            if isinstance(item, _Command):
                try:
                    item.value = item.action()
                except BaseException as exc:  # handed back to the caller of call()
                    item.value = exc
                item.done.set()
                with self._lock:
                    self._lock.notify_all()
                continue
            result = self._run(item)
            self._finish(item, result)
            with self._lock:
                self._running = None
                self._lock.notify_all()

    def _run(self, ticket: _Ticket) -> Result:
        if self._on_started:
            self._safe(self._on_started, ticket.job_id, ticket.job)

        def progress(update: Progress) -> None:
            for callback in (ticket.on_progress, self._on_progress):
                if callback:
                    self._safe(callback, update)

        try:
            image, job, timings, info = self.engine.run(ticket.job_id, ticket.job, progress, ticket.cancel.is_set)
            # Kept only where the tiny decoder made the image, for Refine; an engine of another
            # make (a test's fake) may keep none.
            return Result(ticket.job_id, job, image=image, timings=timings, model_info=info,
                          latents=getattr(self.engine, "last_latents", None))
        except JobError as exc:
            return Result(ticket.job_id, ticket.job, error=exc)
        except BaseException as exc:  # the thread must outlive any job
            log.exception("job %s failed", ticket.job_id)
            error = JobError(f"Something went wrong: {str(exc).strip()[:200] or type(exc).__name__}", traceback.format_exc())
            return Result(ticket.job_id, ticket.job, error=error)

    def _finish(self, ticket: _Ticket, result: Result) -> None:
        ticket.finished = True
        for callback in (ticket.on_result, self._on_result):
            if callback:
                self._safe(callback, result)
        with self._lock:
            self._lock.notify_all()

    @staticmethod
    def _safe(callback: Callable, *args: object) -> None:
        try:
            callback(*args)
        except Exception:  # a broken listener must not take the worker down
            log.exception("worker callback failed")
