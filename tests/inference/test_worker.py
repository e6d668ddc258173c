"""The background worker on a real (tiny, random-weight) diffusers model."""

import threading

import numpy as np
import pytest
import torch

from inference import engine as engine_module
from inference.backends import diffusers_backend
from inference.jobs import Cancelled, Generate, JobError, ModelMissing, ModelRef, OutOfMemory
from inference.worker import Worker


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
    updates = [p for p in collector.progress if p.job_id == job_id]
    assert [p.step for p in updates] == [1, 2, 3]
    assert all(p.total == 3 for p in updates)
    assert updates[-1].preview is not None and updates[-1].preview.mode == "RGB"
    assert updates[1].eta is not None


def test_cancel_running_job_stops_within_one_step_and_skips_decoder(worker, collector, tiny_sd, monkeypatch):
    decodes = []
    real_decode = diffusers_backend.decode
    monkeypatch.setattr(diffusers_backend, "decode", lambda *a: decodes.append(1) or real_decode(*a))
    cancel_at = {}

    def cancel_on_first_step(update):
        if update.step == 1:
            cancel_at["id"] = update.job_id
            worker.cancel(update.job_id)

    job_id = worker.submit(_job(tiny_sd, steps=40), on_progress=cancel_on_first_step)
    result = collector.wait(job_id)
    assert result.cancelled and isinstance(result.error, Cancelled)
    steps_seen = [p.step for p in collector.progress if p.job_id == job_id]
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

    monkeypatch.setattr(engine_module.backend, "run", oom)
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
