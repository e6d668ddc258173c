"""The background worker on a real (tiny, random-weight) diffusers model."""

import threading

import numpy as np
import pytest
import torch

from inference import engine as engine_module
from inference.backends import diffusers_backend
from inference.jobs import Cancelled, Generate, JobError, ModelMissing, ModelRef, OutOfMemory
from inference.worker import Worker, WorkerStopped


class Collector:
    """Gathers callbacks from the worker thread; tests wait on `done` rather than sleeping."""

    def __init__(self):
        self.progress = []
        self.results = {}
        self.started = []
        self._cond = threading.Condition()

    def on_progress(self, update):
        self.progress.append(update)

    def on_result(self, result):
        with self._cond:
            self.results[result.job_id] = result
            self._cond.notify_all()

    def on_started(self, job_id, job):
        self.started.append(job_id)

    def wait(self, job_id, timeout=120):
        with self._cond:
            assert self._cond.wait_for(lambda: job_id in self.results, timeout), "no result in time"
            return self.results[job_id]


@pytest.fixture
def collector():
    return Collector()


@pytest.fixture
def worker(collector):
    w = Worker(on_progress=collector.on_progress, on_result=collector.on_result, on_started=collector.on_started)
    yield w
    w.shutdown()


def _occupy(worker):
    """Keep the worker thread busy with a command until the returned gate is set."""
    gate, entered = threading.Event(), threading.Event()
    t = threading.Thread(target=lambda: worker.call(lambda: entered.set() or gate.wait()))
    t.start()
    assert entered.wait(30)
    return gate, t


def _job(model, **kw):
    kw.setdefault("steps", 2)
    kw.setdefault("scheduler", "euler")
    return Generate(prompt="a red apple", model=ModelRef(str(model)), **kw)


def test_generate_is_deterministic_for_a_seed(worker, collector, tiny_sd):
    a = collector.wait(worker.submit(_job(tiny_sd, seed=7)))
    b = collector.wait(worker.submit(_job(tiny_sd, seed=7)))
    c = collector.wait(worker.submit(_job(tiny_sd, seed=8)))
    assert a.ok and b.ok and c.ok
    assert a.image.size == (64, 64)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_result_records_the_exact_recipe(worker, collector, tiny_sd):
    result = collector.wait(worker.submit(_job(tiny_sd, steps=None, scheduler=None, seed=-1)))
    assert result.ok
    job = result.job
    assert 0 <= job.seed < 2**32
    assert job.steps == 20 and job.guidance == 7.0 and job.scheduler == "dpmpp_2m_karras"
    assert (job.width, job.height) == (64, 64)
    assert job.device == "cpu" and job.dtype == "float32"
    assert job.model.sha256 and len(job.model.sha256) == 64
    assert set(result.timings) >= {"load", "encode", "denoise", "decode", "total"}


def test_progress_count_equals_steps_with_previews(worker, collector, tiny_sd):
    job_id = worker.submit(_job(tiny_sd, steps=3))
    assert collector.wait(job_id).ok
    # A "load" stage may come first, when the model had to be loaded.
    updates = [p for p in collector.progress if p.job_id == job_id and p.stage == "denoise"]
    assert [p.step for p in updates] == [1, 2, 3]
    assert all(p.total == 3 for p in updates)
    assert updates[-2].preview is not None and updates[-2].preview.mode == "RGB"
    assert updates[-1].preview is None  # the last step's would be replaced by the image at once
    assert updates[1].eta is not None


def test_cancel_running_job_stops_within_one_step_and_skips_decoder(worker, collector, tiny_sd, monkeypatch):
    decodes = []
    real_decode = diffusers_backend.decode
    monkeypatch.setattr(diffusers_backend, "decode", lambda *a: decodes.append(1) or real_decode(*a))
    cancel_at = {}

    def cancel_on_first_step(update):
        if update.stage == "denoise" and update.step == 1:
            cancel_at["id"] = update.job_id
            worker.cancel(update.job_id)

    job_id = worker.submit(_job(tiny_sd, steps=40), on_progress=cancel_on_first_step)
    result = collector.wait(job_id)
    assert result.cancelled and isinstance(result.error, Cancelled)
    steps_seen = [p.step for p in collector.progress if p.job_id == job_id and p.stage == "denoise"]
    assert steps_seen == [1], "no step may be reported after the cancel"
    assert decodes == []
    # The worker lives on.
    assert collector.wait(worker.submit(_job(tiny_sd))).ok


def test_cancel_queued_job_never_starts(worker, collector, tiny_sd):
    gate, t = _occupy(worker)
    queued = worker.submit(_job(tiny_sd))
    later = worker.submit(_job(tiny_sd))
    assert [jid for jid, _ in worker.queued()] == [queued, later]
    assert worker.cancel(queued)
    assert collector.results[queued].cancelled  # reported at once, before the thread is free
    gate.set()
    t.join()
    assert collector.wait(later).ok
    assert queued not in collector.started
    assert not worker.cancel(queued)


def test_failing_job_becomes_an_error_result_and_the_worker_lives(worker, collector, tiny_sd, tmp_path):
    missing = collector.wait(worker.submit(Generate(prompt="x", model=ModelRef(str(tmp_path / "nope")))))
    assert isinstance(missing.error, ModelMissing) and not missing.ok
    assert "not found" in missing.error.message.lower()
    assert collector.wait(worker.submit(_job(tiny_sd))).ok
    assert worker.alive


def test_unexpected_exception_becomes_error_result(worker, collector, tiny_sd, monkeypatch):
    def boom(*_a, **_k):
        raise ZeroDivisionError("kaboom")

    monkeypatch.setattr(worker.engine, "run", boom)
    result = collector.wait(worker.submit(_job(tiny_sd)))
    assert type(result.error) is JobError and "kaboom" in result.error.message
    assert "Traceback" in result.error.details
    monkeypatch.undo()
    assert collector.wait(worker.submit(_job(tiny_sd))).ok


def test_out_of_memory_is_reported_and_models_are_freed(worker, collector, tiny_sd, monkeypatch):
    assert collector.wait(worker.submit(_job(tiny_sd))).ok

    def oom(*_a, **_k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(diffusers_backend, "run", oom)
    result = collector.wait(worker.submit(_job(tiny_sd)))
    assert isinstance(result.error, OutOfMemory)
    assert "smaller size" in result.error.message
    assert worker.call(worker.engine.loaded_models) == []


def test_unload_and_cache_limit(collector, tiny_sd, tiny_sd_inpaint):
    worker = Worker(engine_module.Engine(max_models=1), on_result=collector.on_result)
    try:
        assert collector.wait(worker.submit(_job(tiny_sd))).ok
        assert collector.wait(worker.submit(_job(tiny_sd_inpaint))).ok
        loaded = worker.call(worker.engine.loaded_models)
        assert [m.ref.source for m in loaded] == [str(tiny_sd_inpaint)]
        assert worker.unload() == 1
        assert worker.call(worker.engine.loaded_models) == []
    finally:
        worker.shutdown()


def test_shutdown_cancels_queued_jobs(collector, tiny_sd):
    worker = Worker(on_result=collector.on_result)
    gate, t = _occupy(worker)
    ids = [worker.submit(_job(tiny_sd)) for _ in range(3)]
    threading.Timer(0.2, gate.set).start()
    worker.shutdown()
    t.join()
    assert all(collector.results[i].cancelled for i in ids)
    assert not worker.alive


# --------------------------------------------------------------------------- a stopped worker


def _returns_within(seconds, action):
    """What `action()` returned or raised, run on a helper thread; fails if it is still waiting
    after `seconds` (a watchdog: the bug was waiting for ever)."""
    outcome = {}

    def target():
        try:
            outcome["value"] = action()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "still waiting on a stopped worker"
    return outcome


def test_call_and_unload_after_shutdown_fail_at_once():
    worker = Worker()
    worker.shutdown()
    for action in (lambda: worker.call(lambda: 1), worker.unload, lambda: worker.unload("x")):
        outcome = _returns_within(30, action)
        assert isinstance(outcome.get("error"), WorkerStopped)
        assert "stopped" in outcome["error"].message
    with pytest.raises(RuntimeError):  # WorkerStopped is one, as submit raised before
        worker.submit(Generate(prompt="x"))
    assert worker.wait_idle(timeout=30)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_whose_thread_died_ends_what_was_queued(monkeypatch):
    results = []

    def on_result(result):
        results.append(result)
        if len(results) == 1:
            raise SystemExit  # a listener that ends the thread (a plain Exception is caught)

    worker = Worker(on_result=on_result)
    monkeypatch.setattr(worker.engine, "run", lambda job_id, job, *_: (None, job, {}, {}))
    gate, t = _occupy(worker)
    first, second = worker.submit(Generate(prompt="a")), worker.submit(Generate(prompt="b"))
    waiting = threading.Thread(target=lambda: results.append(_returns_within(30, lambda: worker.call(lambda: 1))))
    waiting.start()
    while len(worker._queue) < 3:  # the call is queued behind the two jobs (internal, but no sleep)
        threading.Event().wait(0.01)
    gate.set()
    t.join()
    waiting.join(60)
    worker.shutdown(timeout=30)  # joins the ending thread
    assert not worker.alive
    call = next(r for r in results if isinstance(r, dict))
    assert isinstance(call.get("error"), WorkerStopped)
    ends = {r.job_id: r for r in results if not isinstance(r, dict)}
    assert set(ends) == {first, second}, "every job ends in exactly one Result"
    assert isinstance(ends[second].error, WorkerStopped)
    assert isinstance(_returns_within(30, lambda: worker.call(lambda: 1)).get("error"), WorkerStopped)
    assert worker.wait_idle(timeout=30)


def test_call_from_the_worker_thread_is_refused_not_a_deadlock():
    worker = Worker()
    try:
        outcome = _returns_within(30, lambda: worker.call(lambda: worker.call(lambda: 2)))
        assert isinstance(outcome.get("error"), RuntimeError) and "own thread" in str(outcome["error"])
    finally:
        worker.shutdown()


@pytest.fixture(scope="module")
def tiny_sd_with_taesd(tiny_sd, tmp_path_factory):
    """A copy of tiny_sd with its own tiny decoder (the shared fixture folder stays as it is)."""
    import shutil

    from diffusers import AutoencoderTiny

    folder = tmp_path_factory.mktemp("tiny_sd_taesd") / "model"
    shutil.copytree(tiny_sd, folder)
    AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8), num_encoder_blocks=(1, 1),
                    num_decoder_blocks=(1, 1), latent_channels=4).save_pretrained(folder / "vae_tiny")
    return folder


def test_a_fast_decoded_result_keeps_its_latents_for_refine(worker, collector, tiny_sd_with_taesd):
    from inference.jobs import Refine, Target

    model = ModelRef(str(tiny_sd_with_taesd))
    target = Target((4, 4, 68, 68))
    fast = collector.wait(worker.submit(Generate(prompt="apple", model=model, steps=2, seed=3, runtime="torch",
                                                 decoder="tiny", target=target)))
    assert fast.ok and fast.job.decoder == "tiny"
    assert isinstance(fast.latents, np.ndarray) and fast.latents.shape == (1, 4, 32, 32)
    full = collector.wait(worker.submit(Generate(prompt="apple", model=model, steps=2, seed=3, runtime="torch")))
    assert full.ok and full.latents is None, "decoded in full: nothing kept"

    refined = collector.wait(worker.submit(Refine.of(fast.job, fast.latents)))
    assert refined.ok and refined.latents is None and refined.target == target
    assert np.array_equal(np.asarray(refined.image), np.asarray(full.image)), "the same picture, decoded in full"
