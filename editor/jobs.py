"""JobBridge: the GUI's one door to the inference worker.

The worker (`inference.worker.Worker`) runs jobs on its own Python thread and calls back *on that
thread*. The bridge turns those callbacks into Qt signals that are always delivered in the GUI
thread, and keeps a GUI-side picture of the queue that changes only in the GUI thread, in the same
order as the signals (so after `started` arrives, `running()` returns that job, and after
`finished` arrives it is gone).

How the hop to the GUI thread is made: each worker callback emits a *private* signal of the bridge
that is connected with an explicit `Qt.QueuedConnection` to a slot of the bridge. The bridge is a
QObject living in the GUI thread, so the slot runs there, from the event loop, whichever thread
emitted (the worker thread, or the GUI thread itself when cancelling a queued job calls back
synchronously: the queued connection still defers it, so no signal re-enters the caller). The
public signals are emitted from those slots, i.e. in the GUI thread, and reach any receiver
directly.

Progress is coalesced: while one delivery to the GUI is pending, newer updates for the same job and
stage replace the pending one instead of queueing behind it, so a slow GUI never builds a backlog
of preview images. A step that completes a stage (`step >= total`) is never replaced, so the last
step always arrives, and always before the job's `finished`.

Nothing here waits on the worker in the GUI thread: `submit`, `cancel*` and `queued` only take the
worker's lock for a moment; `unload_models` queues a command on the worker and reports back with a
signal. Only `shutdown` (at quit) joins the thread, after cancelling, with a timeout.

Keeping the GUI smooth while torch works (measured with tests/editor/test_jobs.py and
benchmarks/gui_stall.py on a 2-core CPU): torch's heavy ops release the GIL, so during denoising
and decoding the GUI thread's 10 ms timer stays within a few ms of its period, with or without a
cap on torch's threads (capping them to leave a core for the GUI only made jobs ~1.5x slower).
What did stall the GUI, by 80-250 ms at a time, was Python's cyclic garbage collector: importing
torch, diffusers and transformers leaves ~500k tracked objects, and every full collection walks
them all while holding the GIL, whichever thread triggers it (first job's lazy imports, model
loading). So the bridge warms up once per process on the worker thread: it imports what the first
job would import, with automatic collection paused (no collection mid-import), then moves
everything alive into the collector's permanent generation (`gc.freeze()`), so later full
collections walk only the objects created since (a loaded model: ~15k) and take a few ms.
The price: cyclic garbage alive at that moment (import leftovers, a few MB) is never collected,
and neither is anything the app created before the bridge that later becomes cyclic garbage, so
create the bridge early (before documents). Pass `warm_up=False` to skip all this.

Only a diffusers model needs it. The built-in model runs on onnxruntime and imports neither torch
nor diffusers, so the bridge warms up only when one is chosen: `warm_up_for(source)` when the
Model panel's choice changes, `warm_up()` to do it now, and otherwise just before the first job
on a diffusers model starts (on the worker thread, so it comes before that job's model loads).
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

from inference.jobs import Job, Progress, Result

log = logging.getLogger(__name__)

WorkerFactory = Callable[..., Any]

# What a first job imports lazily (diffusers resolves its classes on first use). Best effort:
# a name that moved in another diffusers/transformers release is skipped.
_WARM_MODULES = ("inference.engine", "diffusers", "transformers", "diffusers.guiders", "diffusers.pipelines.onnx_utils")
_WARM_ATTRS = {
    "diffusers": (
        "DiffusionPipeline", "StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
        "StableDiffusionInpaintPipeline", "StableDiffusionInstructPix2PixPipeline", "StableDiffusionXLPipeline",
        "AutoPipelineForImage2Image", "AutoPipelineForInpainting", "AutoencoderKL", "UNet2DConditionModel",
        "PNDMScheduler",
    ),
    "transformers": ("CLIPTextModel", "CLIPTextModelWithProjection", "CLIPTokenizer"),
}

_frozen_lock = threading.Lock()
_frozen = False


def warm_up_imports(engine: Any = None) -> bool:
    """Import what the first job would, without collections midway, then `gc.freeze()` once.

    Runs on the worker thread (see the module doc for why); returns whether it froze. Never
    freezes twice, nor while `engine` holds a loaded torch model: frozen objects are never
    collected, and a model's tensors must be freed when it is unloaded. The built-in model on
    onnxruntime may be loaded: nothing of it is in a reference cycle (its memory is
    onnxruntime's, freed when the last reference goes), so freezing it keeps nothing alive.
    """
    global _frozen
    with _frozen_lock:
        if _frozen:
            return False
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            for name in _WARM_MODULES:
                try:
                    importlib.import_module(name)
                except Exception:  # optional pieces (onnxruntime, a moved module)
                    log.debug("warm-up could not import %s", name, exc_info=True)
            for module_name, attrs in _WARM_ATTRS.items():
                module = importlib.import_module(module_name)
                for attr in attrs:
                    try:
                        getattr(module, attr)
                    except Exception:
                        log.debug("warm-up could not resolve %s.%s", module_name, attr, exc_info=True)
            try:
                from inference.models.presets import SCHEDULERS

                import diffusers

                for class_name, _overrides in SCHEDULERS.values():
                    getattr(diffusers, class_name, None)
            except Exception:
                log.debug("warm-up could not resolve the schedulers", exc_info=True)
        finally:
            loaded_models = getattr(engine, "loaded_models", None)
            held = [m for m in loaded_models() if m.info().get("runtime") != "onnxruntime"] if callable(
                loaded_models) else []
            if held:
                log.info("a model was loaded before the warm-up; not freezing the collector")
            else:
                gc.freeze()
                _frozen = True
            if was_enabled:
                gc.enable()
        return _frozen


def _default_worker_factory(engine: Any = None, **callbacks: Any) -> Any:
    from inference.worker import Worker

    return Worker(engine=engine, **callbacks)


class JobBridge(QObject):
    """Qt face of an `inference.worker.Worker`. Use it from the GUI thread only.

    Signals (all emitted in the GUI thread):
        started(job_id, job)   a job left the queue and began running
        progress(Progress)     a denoising step finished (coalesced, see the module doc)
        finished(Result)       a job ended: image, error, or cancellation (exactly once per job)
        queue_changed()        the set of queued / running jobs changed
        busy_changed(bool)     whether any job is queued or running changed
        models_unloaded(int)   `unload_models` ran on the worker; how many models it freed
        warmed_up()            the warm-up for diffusers models ran on the worker (see the module doc)
    """

    started = Signal(int, object)
    progress = Signal(object)
    finished = Signal(object)
    queue_changed = Signal()
    busy_changed = Signal(bool)
    models_unloaded = Signal(int)
    warmed_up = Signal()

    # Private: emitted from the worker (or a helper) thread, delivered to our slots in the GUI thread.
    _started_from_worker = Signal(int, object)
    _progress_from_worker = Signal()
    _result_from_worker = Signal(object)
    _command_done = Signal(str, object)

    def __init__(
        self,
        engine: Any = None,
        parent: QObject | None = None,
        *,
        worker_factory: WorkerFactory | None = None,
        warm_up: bool = True,
        torch_threads: int | None = None,
    ):
        """Start a worker thread owned by this bridge.

        `engine` is handed to the worker (None: a default `inference.engine.Engine`).
        `worker_factory(engine=..., on_progress=..., on_result=..., on_started=...)` builds the
        worker if something other than `inference.worker.Worker` is wanted (tests, a worker
        set up elsewhere); it must return an object with Worker's API.
        `torch_threads` sets torch's intra-op threads on the worker thread when it warms up
        (None: torch's default, one per core; measured to keep the GUI smooth, see the module doc).
        `warm_up=False`: no warm-up imports and no gc.freeze(), even for a diffusers model.

        Constructing it imports neither torch nor diffusers: they come with the first diffusers
        model (see the module doc).
        """
        super().__init__(parent)
        for signal, slot in (
            (self._started_from_worker, self._on_started),
            (self._progress_from_worker, self._on_progress),
            (self._result_from_worker, self._on_result),
            (self._command_done, self._on_command_done),
        ):
            signal.connect(slot, Qt.ConnectionType.QueuedConnection)

        # GUI-side mirror of the queue: changed only in the GUI thread.
        self._queued: dict[int, Job] = {}
        self._running: tuple[int, Job] | None = None
        self._busy = False
        self._closed = False
        # Progress waiting for the GUI thread; filled by the worker thread.
        self._pending: list[Progress] = []
        self._pending_lock = threading.Lock()
        # Counters for tests and diagnostics: updates received from the worker / delivered.
        self.progress_received = 0
        self.progress_delivered = 0

        # The warm-up: what it does, whether it is still to do (read and set on the worker
        # thread only, where it runs), and whether the GUI asked for it already.
        self._warm_imports = warm_up
        self._torch_threads = torch_threads
        self._warm_pending = bool(warm_up or torch_threads)
        self._warm_requested = False

        factory = worker_factory or _default_worker_factory
        self._worker = factory(
            engine=engine,
            on_progress=self._progress_in_worker,
            on_result=self._result_in_worker,
            on_started=self._started_in_worker,
        )

    # ------------------------------------------------------------------ public API (GUI thread)

    @property
    def worker(self) -> Any:
        return self._worker

    def submit(self, job: Job) -> int:
        """Queue `job`; returns its id at once. `finished` will come for it exactly once."""
        if self._closed:
            raise RuntimeError("the job bridge has been shut down")
        job_id = self._worker.submit(job)
        # The worker may already have started it: its `started` is queued behind this call.
        self._queued[job_id] = job
        self.queue_changed.emit()
        self._update_busy()
        return job_id

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job. Its `finished` (cancelled) follows from the event loop.

        A running job stops at the end of its current step and skips the decoder.
        """
        return bool(self._worker.cancel(job_id))

    def cancel_running(self) -> bool:
        """Cancel the job now running on the worker (the worker's view, which may be ahead of ours)."""
        running = self._worker.running
        if running is None:
            return False
        return self.cancel(running[0])

    def cancel_all(self) -> int:
        return int(self._worker.cancel_all())

    def remove_queued(self, job_id: int) -> bool:
        """Take a job that has not started (as far as the GUI knows) out of the queue.

        It disappears from `queued()` at once; its cancelled `finished` follows. If the worker
        started it a moment ago (its `started` not yet delivered), it is cancelled instead: either
        way it does not run to the end.
        """
        if job_id not in self._queued:
            return False
        ok = bool(self._worker.cancel(job_id))
        if ok:
            del self._queued[job_id]
            self.queue_changed.emit()
            self._update_busy()
        return ok

    def queued(self) -> list[tuple[int, Job]]:
        """Jobs waiting, oldest first, as the GUI has been told so far."""
        return list(self._queued.items())

    def running(self) -> tuple[int, Job] | None:
        return self._running

    @property
    def is_busy(self) -> bool:
        return self._busy

    def warm_up(self) -> bool:
        """Warm up for a diffusers model now, on the worker after what is queued (see the module
        doc); `warmed_up` follows when it ran. False when it was asked for already, is not
        wanted (`warm_up=False`), or the bridge is shut down."""
        if self._closed or self._warm_requested or not self._warm_pending:
            return False
        self._warm_requested = True
        self._run_on_worker("warm_up", self._warm_up_once)
        return True

    def warm_up_for(self, source: str | None) -> bool:
        """Warm up if the model `source` (the Model panel's choice) runs on diffusers; the
        built-in model needs none of it. Returns whether a warm-up was asked for."""
        if not source or self._warm_requested or not self._warm_pending:
            return False
        from inference.backends import serving

        return serving(source) == "diffusers" and self.warm_up()

    def unload_models(self, source: str | None = None) -> None:
        """Free loaded models (one by source, or all) on the worker thread, after queued jobs.

        Returns at once; `models_unloaded(count)` follows when it is done.
        """
        if self._closed:
            return
        engine = self._worker.engine
        self._run_on_worker("unload", lambda: int(engine.unload(source)))

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel everything and stop the worker thread (connect to QApplication.aboutToQuit).

        Blocks until the running job stops at the end of its current step (one step of a large
        model on a slow CPU can take several seconds), at most `timeout` seconds. The thread is a
        daemon, so a longer step does not keep the process alive, but an interpreter exiting under
        a thread that is inside torch may abort ("terminate called without an active exception"),
        hence the generous default.
        """
        if self._closed:
            return
        self._closed = True
        self._worker.shutdown(cancel=True, timeout=timeout)

    # ------------------------------------------------------------------ worker thread side

    def _warm_up_once(self) -> bool:
        """The warm-up, on the worker thread, the first time it is called; whether it ran."""
        if not self._warm_pending:
            return False
        self._warm_pending = False
        if self._torch_threads:
            import torch

            torch.set_num_threads(self._torch_threads)  # on the thread that runs the jobs
        if self._warm_imports:
            warm_up_imports(self._worker.engine)
        return True

    def _run_on_worker(self, name: str, action: Callable[[], object]) -> None:
        """Run `action` on the worker thread after what is queued; report via `_command_done`.

        `Worker.call` waits for its command, so the waiting happens on a small helper thread,
        never in the GUI thread.
        """
        worker = self._worker

        def wait_for_it() -> None:
            try:
                value = worker.call(action)
            except Exception as exc:
                log.exception("%s on the worker failed", name)
                value = exc
            self._emit_safely(self._command_done, name, value)

        threading.Thread(target=wait_for_it, name=f"quickbrush-{name}", daemon=True).start()

    def _emit_safely(self, signal: Any, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the bridge's C++ object is gone (app quitting)
            pass

    def _started_in_worker(self, job_id: int, job: Job) -> None:
        self._emit_safely(self._started_from_worker, job_id, job)
        if self._warm_pending:
            # The first diffusers job, unless the GUI asked first: warm up before its model loads.
            from inference.backends import serving

            model = getattr(job, "model", None)
            if model is not None and serving(model.source) == "diffusers" and self._warm_up_once():
                self._emit_safely(self._command_done, "warm_up", True)

    def _progress_in_worker(self, update: Progress) -> None:
        with self._pending_lock:
            self.progress_received += 1
            pending = self._pending
            was_empty = not pending
            last = pending[-1] if pending else None
            if (
                last is not None
                and last.job_id == update.job_id
                and last.stage == update.stage
                and last.step < last.total
            ):
                pending[-1] = update  # a newer step of the same stage: drop the stale one
            else:
                pending.append(update)
        if was_empty:  # one delivery in flight at most; it takes whatever is pending then
            self._emit_safely(self._progress_from_worker)

    def _result_in_worker(self, result: Result) -> None:
        # Called on the worker thread, or synchronously in the GUI thread when a queued job is
        # cancelled; the queued connection defers delivery in both cases.
        self._emit_safely(self._result_from_worker, result)

    # ------------------------------------------------------------------ GUI thread slots

    @Slot(int, object)
    def _on_started(self, job_id: int, job: Job) -> None:
        self._queued.pop(job_id, None)
        self._running = (job_id, job)
        self.started.emit(job_id, job)
        self.queue_changed.emit()
        self._update_busy()

    @Slot()
    def _on_progress(self) -> None:
        with self._pending_lock:
            updates, self._pending = self._pending, []
        for update in updates:
            self.progress_delivered += 1
            self.progress.emit(update)

    @Slot(object)
    def _on_result(self, result: Result) -> None:
        # Progress is posted before the result, so it has been delivered already; drain anyway
        # so no step of this job can ever arrive after its `finished`.
        self._on_progress()
        changed = self._queued.pop(result.job_id, None) is not None
        if self._running is not None and self._running[0] == result.job_id:
            self._running = None
            changed = True
        self.finished.emit(result)
        if changed:
            self.queue_changed.emit()
        self._update_busy()

    @Slot(str, object)
    def _on_command_done(self, name: str, value: object) -> None:
        if name == "unload":
            self.models_unloaded.emit(value if isinstance(value, int) else 0)
        elif name == "warm_up" and value is True:
            self.warmed_up.emit()

    def _update_busy(self) -> None:
        busy = bool(self._queued) or self._running is not None
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)
