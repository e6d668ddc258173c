"""Every case of the bad-input corpus (tests/bad_inputs.py) gives what a designer expects.

Each case goes through its real entry point: images and masks through `inference.images`,
documents through `editor.ora.load_ora`, recipes through `read_recipe` + `job_from_recipe`, model
files through a Worker running a job on them, job parameters through the Job constructors and
`Job.from_dict` (and, for sizes, the built-in model). Every file case is also opened in a
MainWindow holding a painted document: the window stays up, the banner shows the message, and on
failure the document is the same object with the same pixels, mask and undo step. A few recipes
also go through `quickbrush-cli rerun` in a subprocess: non-zero exit, one line, no traceback.

Whatever the route, nothing may log a traceback, print one, hang (a watchdog turns a hang into a
failure) or, for files, hold more than PEAK_MB of memory on the way (a ceiling keeps a file that
expands to gigabytes from taking the machine down while it fails the check).
"""

from __future__ import annotations

import contextlib
import logging
import resource
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bad_inputs
import numpy as np
import pytest
from bad_inputs import Case, Fails, Works, unreadable
from PIL import Image
from watchdog import Hung, watchdog

from inference.jobs import (
    JOB_KINDS,
    BadInput,
    Generate,
    Inpaint,
    Job,
    JobError,
    LoraRef,
    MaskOptions,
    ModelRef,
)

CASES = bad_inputs.cases()
WATCHDOG_S = 30  # per route; the slowest sound case (a 9000 x 9000 inpaint) takes a few seconds
CLI_TIMEOUT_S = 60
PEAK_MB = 512  # opening any corpus file (all are small on disk) may take this much more memory
CEILING_MB = 2048  # beyond this an allocation fails (MemoryError) instead of exhausting the machine


def test_the_corpus_is_large_enough_and_covers_every_family():
    routes = {case.route for case in CASES}
    assert len(CASES) >= 60
    assert routes == {"image", "mask", "document", "recipe", "model", "job"}
    assert sum(case.cli is not None for case in CASES) >= 3


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """The corpus, written once per session."""
    root = tmp_path_factory.mktemp("bad-inputs")
    bad_inputs.build(root)
    return root


class Collector:
    """Results and progress of the corpus's Worker, by job id (callbacks arrive on its thread)."""

    def __init__(self) -> None:
        self.results: dict[int, Any] = {}
        self.steps: dict[int, int] = {}
        self.cond = threading.Condition()

    def on_progress(self, update: Any) -> None:
        if getattr(update, "stage", "denoise") != "denoise" or update.step < 1:
            return  # "loading the model" and the like: not a denoising step
        with self.cond:
            self.steps[update.job_id] = self.steps.get(update.job_id, 0) + 1

    def on_result(self, result: Any) -> None:
        with self.cond:
            self.results[result.job_id] = result
            self.cond.notify_all()


@pytest.fixture(scope="session")
def corpus_worker():
    from inference.worker import Worker

    collector = Collector()
    worker = Worker(on_progress=collector.on_progress, on_result=collector.on_result, name="corpus-worker")
    yield worker, collector
    worker.shutdown()


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    """One MainWindow for every file case (a window per case would cost seconds); each case
    opens a fresh painted document in it first. Modal dialogs fail instead of blocking."""
    from PySide6.QtCore import QSettings, QStandardPaths
    from PySide6.QtWidgets import QDialog, QMessageBox

    from editor import main_window as mw
    from editor.jobs import JobBridge
    from editor.settings import Settings

    def no_modal(*_args: Any, **_kwargs: Any) -> int:
        raise AssertionError("a modal dialog opened while a file was being opened")

    QStandardPaths.setTestModeEnabled(True)  # as tests/editor/conftest.py: never the user's folders
    patch = pytest.MonkeyPatch()
    patch.setattr(mw, "ask_unsaved", lambda parent, name, unapplied: "discard", raising=False)
    patch.setattr(mw, "confirm_discard", lambda parent, name: True, raising=False)
    patch.setattr(QMessageBox, "exec", no_modal)
    patch.setattr(QDialog, "exec", no_modal)
    folder = tmp_path_factory.mktemp("corpus-window")
    base = folder / "painting.png"
    y, x = np.mgrid[0:48, 0:64]
    Image.fromarray(np.stack([x * 4, y * 5, (x + y) % 256], -1).astype("uint8")).save(base)
    settings = Settings(QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat))
    win = mw.MainWindow(settings=settings, bridge=JobBridge(warm_up=False))
    win.show()
    win.base_painting = base
    yield win
    win.bridge.shutdown()
    win.close()
    win.deleteLater()
    patch.undo()


# --------------------------------------------------------------------------- guards


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith(key)))


@contextlib.contextmanager
def memory_watch(what: str) -> Iterator[None]:
    """Fail when opening a file peaks PEAK_MB above where it started; cap the data segment at
    CEILING_MB more, so a file that expands to gigabytes fails here rather than taking the
    machine (and the other tests on it) down.

    Why by hand: no library measures one call's peak resident memory. Linux resets the peak
    (VmHWM) when "5" is written to /proc/self/clear_refs, and RLIMIT_DATA bounds heap and
    private mappings alike; where either is missing the watch is skipped."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        start_kb = _status_kb("VmRSS")
        data_kb = _status_kb("VmData")
    except OSError:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    ceiling = (data_kb + CEILING_MB * 1024) * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (ceiling if hard == resource.RLIM_INFINITY else min(ceiling, hard),
                                              hard))
    try:
        yield
    finally:  # a refusal that came after decoding gigabytes fails too, whatever it raised
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
        peak_mb = (_status_kb("VmHWM") - start_kb) / 1024
        assert peak_mb <= PEAK_MB, f"{what} took {peak_mb:.0f} MB more memory (the budget is {PEAK_MB} MB)"


def attempt(what: str, action: Callable[[], Any], memory: bool = False) -> Any:
    """The value `action` returns, or the JobError it raises. Any other exception is a defect a
    designer would meet as a crash or a traceback, so it fails the test, named."""
    guard = memory_watch(what) if memory else contextlib.nullcontext()
    try:
        with watchdog(what, WATCHDOG_S), guard:
            return action()
    except JobError as error:
        return error
    except Hung as hung:
        pytest.fail(str(hung))
    except AssertionError:  # the memory watch's verdict
        raise
    except Exception as error:  # noqa: BLE001 - the point is to report it
        pytest.fail(f"{what} raised {type(error).__name__}: {str(error)[:300]} (not a JobError: the designer "
                    f"would see a crash or a traceback)")


# --------------------------------------------------------------------------- verdicts


def check_message(message: Any, outcome: Fails, path: Path | None, where: str, details: str = "") -> None:
    problems = unreadable(message)
    assert not problems, f"{where}: {'; '.join(problems)}: {str(message)[:300]!r}"
    low = message.lower()
    for needle in outcome.needles:
        assert needle.lower() in low, f"{where}: the message should say {needle!r}: {message!r}"
    if outcome.names_file and path is not None:
        assert path.name in message, f"{where}: the message should name {path.name}: {message!r}"
    for word in outcome.absent:
        assert word.lower() not in (message + " " + (details or "")).lower(), \
            f"{where}: the message or its details say {word!r}: {message!r}"


def verify(outcome: Works | Fails, got: Any, case: Case, path: Path | None, where: str) -> None:
    if isinstance(outcome, Works):
        if isinstance(got, JobError):
            pytest.fail(f"{where}: expected it to work ({outcome.what}); it failed with "
                        f"{type(got).__name__}: {got.message}")
        if outcome.check is not None:
            try:
                outcome.check(got)
            except AssertionError as error:
                pytest.fail(f"{where}: expected {outcome.what}; {error}")
        return
    if not isinstance(got, JobError):
        pytest.fail(f"{where}: expected it to fail with {outcome.kind.__name__}; it was accepted")
    assert isinstance(got, outcome.kind), \
        f"{where}: expected {outcome.kind.__name__}, got {type(got).__name__}: {got.message}"
    check_message(got.message, outcome, path, where, got.details)


# --------------------------------------------------------------------------- routes


def _images(spec: dict[str, tuple]) -> dict[str, Image.Image]:
    """The images a job or recipe case needs: a red object in the middle of grey paper (half the
    picture, at most 256 px: a logo on a banner), as the built-in model wants something to work
    on, and a mask painted in `box` (by default a square in the middle; None: nothing painted)."""
    made: dict[str, Image.Image] = {}
    for key, value in spec.items():
        width, height = value[:2]
        if key == "image":
            image = Image.new("RGB", (width, height), (200, 200, 200))
            if width and height:
                w, h = max(1, min(width // 2, 256)), max(1, min(height // 2, 256))
                left, top = (width - w) // 2, (height - h) // 2
                image.paste((200, 30, 30), (left, top, left + w, top + h))
            made[key] = image
            continue
        side = max(1, min(width, height) // 4)
        box = value[2] if len(value) > 2 else ((width - side) // 2, (height - side) // 2,
                                              (width + side) // 2, (height + side) // 2)
        mask = Image.new("L", (width, height), 0)
        if box is not None:
            mask.paste(255, box)
        made[key] = mask
    return made


def _construct(data: dict[str, Any], images: dict[str, Image.Image]) -> Job:
    """The job built with its class's constructor, as the editor and the CLI build them."""
    kwargs = {key: value for key, value in data.items() if key != "kind"}
    if isinstance(kwargs.get("model"), dict):
        model = kwargs["model"]
        kwargs["model"] = ModelRef(model["source"], loras=tuple(LoraRef(lora["source"], lora.get("scale", 1.0))
                                                                for lora in model.get("loras", ())))
    if isinstance(kwargs.get("mask_options"), dict):
        kwargs["mask_options"] = MaskOptions(**kwargs["mask_options"])
    return JOB_KINDS[data["kind"]](**kwargs, **images)


def run_on_worker(corpus_worker, job: Job, what: str, outcome: Works | Fails) -> Any:
    """The job's Result (or its error) from the corpus's Worker; a failure must come before any step."""
    worker, collector = corpus_worker
    job_id = worker.submit(job)
    with watchdog(what, WATCHDOG_S), collector.cond:
        try:
            done = collector.cond.wait_for(lambda: job_id in collector.results, WATCHDOG_S + 5)
        except Hung as hung:
            pytest.fail(str(hung))
    assert done, f"{what}: no result in {WATCHDOG_S} s"
    assert worker.alive, f"{what}: the worker thread died"
    result = collector.results[job_id]
    if result.error is None:
        return result
    if isinstance(outcome, Fails) and outcome.before_work:
        steps = collector.steps.get(job_id, 0)
        assert steps == 0, f"{what}: {steps} denoising steps ran before it failed: {result.error.message}"
    return result.error


def entry_point(case: Case, path: Path | None, request) -> list[tuple[str, Any]]:
    """(where, value or JobError) for the case's own entry point(s)."""
    from editor.ora import load_ora
    from inference.images import open_image, open_mask
    from inference.metadata import job_from_recipe, read_recipe

    images = _images(case.images)
    if case.route == "image":
        return [("open_image", attempt("open_image", lambda: open_image(path), memory=True))]
    if case.route == "mask":
        def mask_then_job() -> Any:
            mask = open_mask(path)
            if "image" in images:  # the mask is then used: an Inpaint with that image
                Inpaint(prompt="a hat", image=images["image"], mask=mask)
            return mask

        return [("open_mask", attempt("open_mask", mask_then_job, memory=True))]
    if case.route == "document":
        request.getfixturevalue("qapp")  # a Document is a QObject
        return [("load_ora", attempt("load_ora", lambda: load_ora(path), memory=True))]
    if case.route == "recipe":
        def recipe_then_job() -> Any:
            recipe = read_recipe(path)
            return None if recipe is None else job_from_recipe(recipe, **images)

        return [("read_recipe + job_from_recipe", attempt("read_recipe", recipe_then_job, memory=True))]
    worker = request.getfixturevalue("corpus_worker")
    if case.route == "model":
        use = case.data["as"]
        if use == "builtin":
            ref = ModelRef("builtin")
        elif use == "lora":
            ref = ModelRef(str(request.getfixturevalue("tiny_sd")), loras=(LoraRef(str(path), 1.0),))
        else:
            ref = ModelRef(str(path))
        job = Generate(prompt="red apple", model=ref, steps=1, seed=1)
        return [("a Worker running a job on it", run_on_worker(worker, job, "the model job", case.expect))]
    # job parameters
    built: list[tuple[str, Any]] = []
    if case.data["kind"] in JOB_KINDS:
        built.append(("the Job constructor", attempt("the Job constructor", lambda: _construct(case.data, images))))
    built.append(("Job.from_dict", attempt("Job.from_dict", lambda: Job.from_dict(case.data, **images))))
    if not case.engine:
        return built
    outcomes = [(where, got) for where, got in built if isinstance(got, JobError)]
    accepted = [got for _where, got in built if not isinstance(got, JobError)]
    if accepted:
        outcomes.append(("the built-in model", run_on_worker(worker, accepted[0], "the job", case.expect)))
    return outcomes


def _snapshot(document: Any) -> dict[str, Any]:
    return {
        "layers": [(id(layer), layer.pixels.copy(), layer.x, layer.y) for layer in document.layers],
        "mask": np.array(document.mask, copy=True),
        "undo": (document.undo_stack.index(), document.undo_stack.count()),
    }


def _same(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return (before["undo"] == after["undo"] and np.array_equal(before["mask"], after["mask"])
            and len(before["layers"]) == len(after["layers"])
            and all(a[0] == b[0] and a[2:] == b[2:] and np.array_equal(a[1], b[1])
                    for a, b in zip(before["layers"], after["layers"])))


def through_the_window(window, case: Case, path: Path, entry: Any) -> None:
    """Open the file in a window holding a painted document."""
    assert window.open_path(str(window.base_painting)), "the window could not open its own test painting"
    document = window.document
    document.begin_stroke()
    for x in range(12, 52, 4):
        document.stroke_to(x, 24, radius=6, hardness=1.0)
    document.end_stroke()
    assert document.has_mask()
    window.banner.dismiss()
    before = _snapshot(document)
    where = "the editor's Open"
    opened = attempt(where, lambda: window.open_path(str(path)), memory=True)
    assert window.isVisible(), f"{where}: the window went away"
    if opened is True:
        got: Any = window.document
        assert got is not document, f"{where}: said it opened {path.name} but kept the old document"
    else:
        assert opened is False, f"{where}: open_path returned {opened!r}"
        assert window.document is document, f"{where}: the open document was replaced"
        assert _same(before, _snapshot(document)), f"{where}: the open document changed (pixels, mask or undo)"
        assert not window.banner.isHidden(), f"{where}: refused {path.name} without a message"
        got = BadInput(window.banner.message.text())
    if isinstance(case.gui, Works):
        if opened is not True:
            pytest.fail(f"{where}: expected it to open ({case.gui.what}); the banner says: {got.message}")
        if case.route == "image" and not isinstance(entry, JobError):
            expected = np.asarray(entry.convert("RGBA"))
            assert np.array_equal(window.document.layers[0].pixels, expected), \
                f"{where}: the document does not show what open_image read"
        elif case.route == "document" and not isinstance(entry, JobError):
            assert window.document.size == entry[0].size and len(window.document.layers) == len(entry[0].layers), \
                f"{where}: the window's document differs from what load_ora read"
        return
    verify(case.gui, got, case, path, where)


def through_the_cli(case: Case, path: Path, corpus: Path) -> None:
    where = "quickbrush-cli rerun"
    command = [sys.executable, "-m", "inference.cli", "-q", "rerun", str(path), *case.cli_args]
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                              cwd=corpus)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{where}: still running after {CLI_TIMEOUT_S} s")
    assert done.returncode > 0, f"{where}: exit code {done.returncode} (expected a non-zero exit)\n{done.stderr}"
    assert "Traceback" not in done.stderr, f"{where}: printed a traceback:\n{done.stderr[-2000:]}"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"{where}: {len(lines)} lines on stderr (expected one):\n{done.stderr[-2000:]}"
    prefix = "quickbrush-cli: error: "
    assert lines[0].startswith(prefix), f"{where}: {lines[0]!r}"
    check_message(lines[0][len(prefix):], case.cli, path, where)


# --------------------------------------------------------------------------- the test


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, corpus: Path, request, caplog, capfd):
    caplog.set_level(logging.WARNING)
    path = None if case.path is None else corpus / case.path
    entries = entry_point(case, path, request)
    for where, got in entries:
        verify(case.expect, got, case, path, f"{case.about}: {where}")
    if case.gui is not None:
        through_the_window(request.getfixturevalue("window"), case, path, entries[0][1])
    if case.cli is not None:
        through_the_cli(case, path, corpus)
    if isinstance(case.expect, Fails) and case.expect.after is not None:
        case.expect.after(path)

    logged = [record for record in caplog.records
              if record.levelno >= logging.WARNING and (record.exc_info or "Traceback" in record.getMessage())]
    assert not logged, f"a traceback was logged: {logged[0].getMessage()[:300]}"
    _out, err = capfd.readouterr()
    assert "Traceback" not in err, f"a traceback was printed:\n{err[-2000:]}"


def test_the_memory_watch_fails_a_file_that_expands_even_when_it_is_refused():
    def expand_then_refuse() -> None:
        block = np.ones(PEAK_MB * 2**20 + 2**27, np.uint8)  # touched, so resident
        del block
        raise BadInput("big.ora is too large.")

    with pytest.raises(AssertionError, match="more memory"):
        attempt("opening big.ora", expand_then_refuse, memory=True)
    # Past the ceiling an allocation fails at once instead of taking the machine's memory.
    with pytest.raises(pytest.fail.Exception, match="MemoryError"):
        attempt("opening huge.ora", lambda: np.ones((CEILING_MB + 1) * 2**20, np.uint8), memory=True)


def test_designer_readable_catches_what_a_designer_should_not_read():
    assert bad_inputs.designer_readable("photo.png is too large: 100000 × 100000 pixels.")
    for bad in ("", "  ", "ValueError: bad", "Could not open x: [Errno 2] nope", "Guidance is None",
                "Something went wrong: <PIL.Image.Image image mode=RGB>", "line one\nline two",
                "Traceback (most recent call last)", "x" * 1000, "KeyError: 'steps'", "{'kind': 'x'}"):
        assert not bad_inputs.designer_readable(bad), bad
