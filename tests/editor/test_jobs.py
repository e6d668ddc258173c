"""JobBridge: the worker's callbacks as Qt signals in the GUI thread, on a real tiny model.

Deterministic parts (coalescing, queued jobs) keep the worker busy or use a fake engine instead
of timing anything; nothing here sleeps.
"""

from __future__ import annotations

import threading
import time

import pytest
from PIL import Image
from PySide6.QtCore import QThread, QTimer

from editor.jobs import JobBridge
from inference.jobs import Generate, ModelRef, Progress

WAIT_MS = 120_000  # a tiny model job is well under a second; a busy 2-core CI box is not


# ----------------------------------------------------------------------------- helpers


class Recorder:
    """Everything a bridge emits, with the thread each signal arrived in."""

    def __init__(self, bridge: JobBridge, app):
        self.app = app
        self.events: list[tuple] = []
        self.progress: list[Progress] = []
        self.results = {}
        self.started: list[int] = []
        self.busy: list[bool] = []
        self.queue_changes = 0
        self.wrong_thread: list[str] = []
        bridge.started.connect(self._on_started)
        bridge.progress.connect(self._on_progress)
        bridge.finished.connect(self._on_finished)
        bridge.queue_changed.connect(self._on_queue_changed)
        bridge.busy_changed.connect(self._on_busy)

    def _check_thread(self, what: str) -> None:
        if QThread.currentThread() != self.app.thread() or threading.current_thread() is not threading.main_thread():
            self.wrong_thread.append(what)

    def _on_started(self, job_id, job):
        self._check_thread("started")
        self.started.append(job_id)
        self.events.append(("started", job_id))

    def _on_progress(self, update):
        self._check_thread("progress")
        self.progress.append(update)
        self.events.append(("progress", update.job_id, update.step))

    def _on_finished(self, result):
        self._check_thread("finished")
        self.results[result.job_id] = result
        self.events.append(("finished", result.job_id))

    def _on_queue_changed(self):
        self._check_thread("queue_changed")
        self.queue_changes += 1

    def _on_busy(self, busy):
        self._check_thread("busy_changed")
        self.busy.append(busy)

    def steps(self, job_id):
        return [p.step for p in self.progress if p.job_id == job_id and p.stage == "denoise"]


def wait_result(qtbot, rec: Recorder, job_id: int, timeout: int = WAIT_MS):
    qtbot.waitUntil(lambda: job_id in rec.results, timeout=timeout)
    return rec.results[job_id]


def occupy(qtbot, bridge: JobBridge):
    """Keep the worker thread busy with a command (not a job) until the returned gate is set.

    The waiting happens on a helper thread, as the bridge itself does it.
    """
    gate, entered = threading.Event(), threading.Event()
    helper = threading.Thread(target=lambda: bridge.worker.call(lambda: entered.set() or gate.wait(60)), daemon=True)
    helper.start()
    qtbot.waitUntil(entered.is_set, timeout=WAIT_MS)
    return gate


def make_bridge(qtbot, **kwargs) -> JobBridge:
    bridge = JobBridge(**kwargs)
    if kwargs.get("warm_up", True):
        # These tests run a diffusers model: warm up as the window does when one is chosen.
        with qtbot.waitSignal(bridge.warmed_up, timeout=WAIT_MS):
            assert bridge.warm_up()
    return bridge


@pytest.fixture
def bridge(qtbot):
    b = make_bridge(qtbot)
    yield b
    b.shutdown()


@pytest.fixture
def rec(bridge, qapp):
    return Recorder(bridge, qapp)


def job(model, **kw):
    kw.setdefault("steps", 2)
    kw.setdefault("seed", 1)
    kw.setdefault("scheduler", "euler")
    # The bridge is under test, not the runtime choice: torch, so that where OpenVINO is installed
    # no first-use probe (its "prepare" progress, a minute of timing) comes into the counts.
    kw.setdefault("runtime", "torch")
    return Generate(prompt="a red apple", model=ModelRef(str(model)), **kw)


class FakeEngine:
    """Emits a burst of progress (per stage) as fast as it can, then returns a small image."""

    def __init__(self, stages=(("denoise", 50),)):
        self.stages = stages
        self.emitted = threading.Event()

    def run(self, job_id, job, on_progress, cancelled):
        for stage, total in self.stages:
            for step in range(1, total + 1):
                on_progress(Progress(job_id, step, total, 0.0, preview=Image.new("RGB", (8, 8)), stage=stage))
        self.emitted.set()
        return Image.new("RGB", (8, 8)), job, {"total": 0.0}, {}

    def unload(self, source=None):
        return 0

    def loaded_models(self):
        return []


# ----------------------------------------------------------------------------- the tiny model


def test_generate_delivers_started_progress_and_finished_in_the_gui_thread(bridge, rec, qtbot, tiny_sd):
    the_job = job(tiny_sd, steps=3)
    with qtbot.waitSignal(bridge.finished, timeout=WAIT_MS) as finished:
        job_id = bridge.submit(the_job)
    result = finished.args[0]

    assert result.job_id == job_id and result.ok, result.error
    assert result.image.size == (64, 64)
    assert rec.started == [job_id]
    # The model was loaded for this job (one "load" update first), then every step was reported
    # (the GUI was idle, so nothing needed coalescing), in order, all before `finished`.
    assert bridge.progress_received == 4
    assert rec.progress[0].stage == "load"
    denoise = [p for p in rec.progress if p.stage == "denoise"]
    steps = [p.step for p in denoise]
    assert steps == sorted(set(steps)) and steps[-1] == 3
    assert all(p.total == 3 for p in denoise)
    assert rec.events[0] == ("started", job_id) and rec.events[-1] == ("finished", job_id)
    assert rec.wrong_thread == []
    assert bridge.running() is None and bridge.queued() == [] and not bridge.is_busy


class SpyBridge(JobBridge):
    """Records the thread in which the worker callbacks and the bridge's own slots run."""

    def __init__(self, *args, **kwargs):
        self.threads: list[tuple[str, str, bool]] = []
        super().__init__(*args, **kwargs)

    def _note(self, where):
        self.threads.append((where, threading.current_thread().name, self._in_gui()))

    @staticmethod
    def _in_gui():
        from PySide6.QtWidgets import QApplication

        return QThread.currentThread() == QApplication.instance().thread()

    def _progress_in_worker(self, update):
        self._note("callback")
        super()._progress_in_worker(update)

    def _on_progress(self):
        self._note("slot")
        super()._on_progress()


def test_worker_callbacks_hop_to_the_gui_thread(qtbot, tiny_sd):
    """The worker calls back on its own thread; the bridge's queued slot runs in the GUI thread."""
    bridge = SpyBridge()
    try:
        with qtbot.waitSignal(bridge.finished, timeout=WAIT_MS):
            bridge.submit(job(tiny_sd, steps=2))
    finally:
        bridge.shutdown()
    callbacks = {(name, in_gui) for where, name, in_gui in bridge.threads if where == "callback"}
    slots = {(name, in_gui) for where, name, in_gui in bridge.threads if where == "slot"}
    assert callbacks == {("quickbrush-worker", False)}
    assert slots == {(threading.main_thread().name, True)}


def test_cancel_running_job_ends_it_with_a_cancelled_result(bridge, rec, qtbot, tiny_sd):
    job_id = bridge.submit(job(tiny_sd, steps=200))
    qtbot.waitUntil(lambda: len(rec.steps(job_id)) >= 1, timeout=WAIT_MS)
    assert bridge.running() == (job_id, bridge.running()[1])
    assert bridge.cancel_running()
    result = wait_result(qtbot, rec, job_id)

    assert result.cancelled and not result.ok and result.image is None
    assert bridge.progress_received < 200  # it stopped within a step or so, long before the end
    assert rec.events[-1] == ("finished", job_id)  # no progress after finished
    assert not bridge.is_busy and bridge.running() is None
    assert not bridge.cancel_running()  # nothing left to cancel


def test_cancel_and_remove_queued_jobs(bridge, rec, qtbot, tiny_sd):
    gate = occupy(qtbot, bridge)
    a = bridge.submit(job(tiny_sd))
    b = bridge.submit(job(tiny_sd, seed=2))
    c = bridge.submit(job(tiny_sd, seed=3))
    assert [i for i, _ in bridge.queued()] == [a, b, c]

    assert bridge.remove_queued(b)
    assert [i for i, _ in bridge.queued()] == [a, c]  # gone at once, before the event loop runs
    assert not bridge.remove_queued(b)  # already removed
    assert bridge.cancel(c)
    assert wait_result(qtbot, rec, b).cancelled
    assert wait_result(qtbot, rec, c).cancelled
    assert [i for i, _ in bridge.queued()] == [a]

    gate.set()
    assert wait_result(qtbot, rec, a).ok
    assert rec.started == [a]  # the removed and cancelled jobs never started
    assert rec.steps(b) == [] and rec.steps(c) == []
    assert not bridge.is_busy
    assert rec.wrong_thread == []


def test_cancel_all(bridge, rec, qtbot, tiny_sd):
    gate = occupy(qtbot, bridge)
    ids = [bridge.submit(job(tiny_sd, seed=s)) for s in (1, 2, 3)]
    assert bridge.cancel_all() == 3
    gate.set()
    for job_id in ids:
        assert wait_result(qtbot, rec, job_id).cancelled
    qtbot.waitUntil(lambda: not bridge.is_busy, timeout=WAIT_MS)
    assert bridge.queued() == [] and rec.started == []


def test_error_comes_back_as_a_result_and_the_bridge_keeps_working(bridge, rec, qtbot, tiny_sd, tmp_path):
    missing = job(tmp_path / "no-such-model")
    bad = bridge.submit(missing)
    result = wait_result(qtbot, rec, bad)
    assert not result.ok and result.error is not None and not result.cancelled
    assert result.error.message  # a line a designer can read
    assert not bridge.is_busy

    good = bridge.submit(job(tiny_sd))
    assert wait_result(qtbot, rec, good).ok
    assert rec.wrong_thread == []


def test_queue_changed_and_busy_changed(bridge, rec, qtbot, tiny_sd):
    gate = occupy(qtbot, bridge)
    assert not bridge.is_busy
    with qtbot.waitSignals([bridge.queue_changed, bridge.busy_changed], timeout=1000):
        first = bridge.submit(job(tiny_sd))
    assert rec.busy == [True] and bridge.is_busy
    second = bridge.submit(job(tiny_sd, seed=2))
    assert rec.busy == [True]  # still busy: no repeated signal
    changes = rec.queue_changes

    states = []
    bridge.started.connect(lambda job_id, j: states.append((job_id, bridge.running()[0], [i for i, _ in bridge.queued()])))
    gate.set()
    wait_result(qtbot, rec, second)
    qtbot.waitUntil(lambda: not bridge.is_busy, timeout=WAIT_MS)

    # In the started slot the bridge's picture already matches: the job runs, the rest waits.
    assert states == [(first, first, [second]), (second, second, [])]
    assert rec.busy == [True, False]
    assert rec.queue_changes >= changes + 4  # two starts, two finishes
    assert bridge.running() is None and bridge.queued() == []


def test_unload_models_returns_at_once_and_reports_back(bridge, qtbot, tiny_sd):
    with qtbot.waitSignal(bridge.finished, timeout=WAIT_MS):
        bridge.submit(job(tiny_sd))
    assert len(bridge.worker.engine.loaded_models()) == 1

    gate = occupy(qtbot, bridge)  # a busy worker must not make the GUI wait
    start = time.perf_counter()
    bridge.unload_models()
    assert time.perf_counter() - start < 0.05
    with qtbot.waitSignal(bridge.models_unloaded, timeout=WAIT_MS) as unloaded:
        gate.set()
    assert unloaded.args == [1]
    assert bridge.worker.engine.loaded_models() == []


def test_shutdown_cancels_and_stops_the_worker(qtbot, tiny_sd):
    bridge = make_bridge(qtbot, warm_up=False)
    running = []
    bridge.started.connect(lambda job_id, j: running.append(job_id))
    bridge.submit(job(tiny_sd, steps=200))
    bridge.submit(job(tiny_sd))
    try:
        qtbot.waitUntil(lambda: bool(running), timeout=WAIT_MS)
    finally:
        start = time.perf_counter()
        bridge.shutdown()
    assert time.perf_counter() - start < 10  # the running job stopped at its next step
    assert not bridge.worker.alive
    with pytest.raises(RuntimeError):
        bridge.submit(job(tiny_sd))
    bridge.shutdown()  # twice is harmless


# ----------------------------------------------------------------------------- coalescing


def test_progress_is_coalesced_when_the_gui_is_slow(qtbot, qapp):
    engine = FakeEngine(stages=(("denoise", 50),))
    bridge = make_bridge(qtbot, engine=engine, warm_up=False)
    try:
        rec = Recorder(bridge, qapp)
        job_id = bridge.submit(Generate(prompt="x", seed=1))
        # A slow GUI: the GUI thread is stuck while the worker reports all 50 steps.
        assert engine.emitted.wait(30)
        wait_result(qtbot, rec, job_id)

        steps = rec.steps(job_id)
        assert bridge.progress_received == 50
        assert len(steps) < 50, steps  # the stale previews were dropped, not queued up
        assert steps[-1] == 50  # never the last step
        assert steps == [50]  # the GUI was stuck throughout, so only the newest was pending
        assert rec.events[-1] == ("finished", job_id)  # and it came before finished
        assert rec.wrong_thread == []
    finally:
        bridge.shutdown()


def test_coalescing_keeps_the_last_step_of_every_stage(qtbot, qapp):
    engine = FakeEngine(stages=(("denoise", 20), ("refine", 5), ("denoise", 3)))
    bridge = make_bridge(qtbot, engine=engine, warm_up=False)
    try:
        rec = Recorder(bridge, qapp)
        job_id = bridge.submit(Generate(prompt="x", seed=1))
        assert engine.emitted.wait(30)
        wait_result(qtbot, rec, job_id)
        delivered = [(p.stage, p.step) for p in rec.progress]
        assert delivered == [("denoise", 20), ("refine", 5), ("denoise", 3)]
    finally:
        bridge.shutdown()


def test_a_gui_that_keeps_up_gets_every_step(qtbot, qapp):
    """Coalescing only drops what piled up: steps that are handled one by one all arrive."""
    handled = threading.Event()

    class Paced(FakeEngine):
        def run(self, job_id, job, on_progress, cancelled):
            for step in range(1, 6):
                handled.clear()
                on_progress(Progress(job_id, step, 5, 0.0))
                assert handled.wait(30)  # the next step only once the GUI showed this one
            return Image.new("RGB", (8, 8)), job, {}, {}

    bridge = make_bridge(qtbot, engine=Paced(), warm_up=False)
    try:
        rec = Recorder(bridge, qapp)
        bridge.progress.connect(lambda p: handled.set())
        job_id = bridge.submit(Generate(prompt="x", seed=1))
        wait_result(qtbot, rec, job_id)
        assert rec.steps(job_id) == [1, 2, 3, 4, 5]
    finally:
        bridge.shutdown()


# ----------------------------------------------------------------------------- the stall measure


def test_gui_thread_does_not_stall_while_a_job_runs(bridge, rec, qtbot, tiny_sd, capsys):
    """A 10 ms timer in the GUI thread keeps ticking while the worker loads and runs a model."""
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    start = time.perf_counter()
    # 96 x 96 px, 30 steps: a couple of seconds on a 2-core CPU, model loading included.
    job_id = bridge.submit(job(tiny_sd, steps=30, width=96, height=96))
    result = wait_result(qtbot, rec, job_id)
    seconds = time.perf_counter() - start
    timer.stop()

    assert result.ok, result.error
    gaps = sorted((b - a) * 1000 for a, b in zip(ticks, ticks[1:]))
    max_gap = gaps[-1]
    p99 = gaps[min(len(gaps) - 1, round(0.99 * (len(gaps) - 1)))]
    with capsys.disabled():
        print(f"\n[gui stall] job {seconds:.2f} s, {len(gaps)} timer gaps: max {max_gap:.1f} ms, "
              f"p99 {p99:.1f} ms, steps received {bridge.progress_received}, delivered {bridge.progress_delivered}")
    assert seconds > 0.5 and len(gaps) > 30  # the timer really ran alongside the job
    # Behaviour, not a speed target: the GUI kept ticking through the job instead of freezing for
    # it (work on the GUI thread, or a lock it waits on, shows as one gap as long as the job). The
    # 50 ms target is measured by benchmarks/gui_stall.py; fixed bounds here (50 ms, then 250 ms)
    # failed whenever other work shared the 2-core machine.
    assert max_gap < 0.25 * seconds * 1000, f"the GUI thread froze for {max_gap:.0f} ms of a {seconds:.1f} s job"


def test_warm_up_keeps_full_garbage_collections_short(bridge, rec, qtbot, tiny_sd, capsys):
    """A full collection (it can start at any allocation, in any thread, holding the GIL) walks
    only what was created after the warm-up: a loaded model, not the ~500k objects of the imports.

    On a 2-core CPU a full collection of the imported torch/diffusers/transformers heap took
    80-250 ms and was the GUI's worst stall (benchmarks/gui_stall.py --no-warm-up).
    """
    import gc
    import sys

    assert gc.get_freeze_count() > 100_000
    assert "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion" in sys.modules
    wait_result(qtbot, rec, bridge.submit(job(tiny_sd)))  # a model is loaded and stays cached
    tracked = len(gc.get_objects())
    start = time.perf_counter()
    gc.collect()
    collect_ms = (time.perf_counter() - start) * 1000
    with capsys.disabled():
        print(f"\n[gc] frozen {gc.get_freeze_count()} objects, tracked {tracked}, full collection {collect_ms:.1f} ms")
    # What the collection walks, not how long it takes (benchmarks/gui_stall.py times it): the
    # machines are shared, and a timed assert failed at a load of 8 while the heap was right.
    assert tracked < gc.get_freeze_count()


# ----------------------------------------------------------------------------- warming up only for diffusers


def test_no_warm_up_for_the_builtin_model_and_one_before_the_first_diffusers_job(qtbot, qapp, tiny_builtin,
                                                                                   tiny_sd):
    bridge = JobBridge()
    rec = Recorder(bridge, qapp)
    warmed = []
    bridge.warmed_up.connect(lambda: warmed.append(len(rec.results)))
    try:
        assert not bridge.warm_up_for(str(tiny_builtin))
        assert wait_result(qtbot, rec, bridge.submit(job(tiny_builtin, scheduler=None))).ok
        assert warmed == []
        # Nobody asked for it: the first diffusers job warms up before it runs, and only it.
        first = bridge.submit(job(tiny_sd))
        assert wait_result(qtbot, rec, first).ok
        assert wait_result(qtbot, rec, bridge.submit(job(tiny_sd))).ok
        assert warmed == [1], "one warm-up, before the first diffusers job finished"
        assert not bridge.warm_up() and not bridge.warm_up_for(str(tiny_sd))
    finally:
        bridge.shutdown()


def test_choosing_a_diffusers_model_warms_up_once(qtbot, tiny_sd):
    bridge = JobBridge()
    try:
        with qtbot.waitSignal(bridge.warmed_up, timeout=WAIT_MS):
            assert bridge.warm_up_for(str(tiny_sd))
        assert not bridge.warm_up_for(str(tiny_sd))
    finally:
        bridge.shutdown()
    unwanted = JobBridge(warm_up=False, worker_factory=lambda **kw: FakeWorker())
    assert not unwanted.warm_up_for(str(tiny_sd)) and not unwanted.warm_up()
    unwanted.shutdown()


class FakeWorker:
    engine = FakeEngine()

    def submit(self, job):
        return 1

    def shutdown(self, **kwargs):
        pass


def test_freezing_with_the_builtin_model_loaded_keeps_it_freeable(tiny_builtin, monkeypatch):
    """A designer who ran the built-in model, then chose a diffusers one, still gets the warm-up's
    gc.freeze(); and the built-in model, frozen with everything else, is freed when unloaded."""
    import gc
    import weakref

    from editor import jobs as jobs_module
    from inference.engine import Engine

    engine = Engine()
    loaded, _fresh = engine.model(ModelRef(str(tiny_builtin)))
    assert loaded.info()["runtime"] == "onnxruntime"
    model = weakref.ref(loaded.pipe)
    del loaded
    monkeypatch.setattr(jobs_module, "_frozen", False)
    monkeypatch.setattr(jobs_module, "_WARM_MODULES", ())
    monkeypatch.setattr(jobs_module, "_WARM_ATTRS", {})
    assert jobs_module.warm_up_imports(engine)
    assert engine.unload() == 1
    gc.collect()
    assert model() is None, "the frozen built-in model outlived its unloading"


def test_the_window_and_a_builtin_job_import_neither_torch_nor_diffusers(tiny_builtin, tmp_path):
    """Start-up as the app does it (a JobBridge, the MainWindow, the built-in model chosen), one
    Generate through the window: torch and diffusers stay unimported (seconds and hundreds of
    MB the built-in model does not need). In a fresh interpreter, since this one has them."""
    import json
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = textwrap.dedent(f"""
        import json, sys
        from PySide6.QtCore import QSettings, QStandardPaths, QTimer
        from PySide6.QtWidgets import QApplication

        QStandardPaths.setTestModeEnabled(True)
        app = QApplication([])
        from editor import main_window as mw
        from editor.jobs import JobBridge
        from editor.settings import Settings

        bridge = JobBridge()
        win = mw.MainWindow(settings=Settings(QSettings({str(tmp_path / "settings.ini")!r},
                                                        QSettings.Format.IniFormat)), bridge=bridge)
        win.show()
        results, warmed = [], []
        bridge.warmed_up.connect(lambda: warmed.append(1))
        # exit, not quit: quit closes the window, which asks about the unsaved result.
        bridge.finished.connect(lambda result: (results.append(result), app.exit(0)))
        win.prompt.prompt_edit.setPlainText("red apple")
        win.actions_["generate"].trigger()
        QTimer.singleShot(200_000, lambda: app.exit(0))
        app.exec()
        bridge.shutdown()
        result = results[0] if results else None
        print(json.dumps({{"ok": bool(result and result.ok), "error": str(result and result.error),
                          "model": result and result.job.model.source, "warmed": len(warmed),
                          "imported": [m for m in ("torch", "diffusers", "transformers") if m in sys.modules]}}))
        """)
    env = {**os.environ, "QUICKBRUSH_BUILTIN": str(tiny_builtin), "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["ok"], found["error"]
    assert found["model"] == "builtin" and found["warmed"] == 0
    assert found["imported"] == []
