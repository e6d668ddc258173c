"""How long does the GUI thread stall while a real-size model runs on the worker?

Builds a Stable Diffusion 1.5-sized pipeline with random weights (the UNet, VAE and CLIP text
encoder at SD 1.5's real configs: 860M + 84M + 123M parameters; nothing is downloaded), saves it
with ``save_pretrained`` into a temporary folder, and runs a short job on it through
``editor.jobs.JobBridge`` in an offscreen QApplication. The job loads the model through the real
loading code, encodes the prompt, denoises and decodes, exactly as in the editor.

Meanwhile a 10 ms QTimer in the GUI thread records the gaps between its ticks; a gap well above
10 ms is time the GUI could not paint or react. The same timer is first measured with no job
running (the baseline), in the same process.

Prints one JSON object:
    max_gap_ms, p99_gap_ms          during the whole job (load + encode + denoise + decode)
    load_max_gap_ms                 part of it before the first denoising step (loading, encoding)
    run_max_gap_ms, run_p99_gap_ms  from the first denoising step to the result
    baseline_max_gap_ms, baseline_p99_gap_ms   no job running
    ratio                           max_gap_ms / baseline_max_gap_ms
    job_seconds, timings            wall time of the job as the GUI saw it; the Result's timings
    warm_up_seconds, warm_up_max_gap_ms   JobBridge's start-up warm-up on the worker (the timer runs
                                    through it, as the app's GUI does right after launch)

Usage:
    python benchmarks/gui_stall.py                      # 256x256, 2 steps, ~1-2 min on 2 cores
    python benchmarks/gui_stall.py --size 512 --steps 4
    python benchmarks/gui_stall.py --keep /tmp/sd15-random   # reuse the built folder next time
    python benchmarks/gui_stall.py --torch-threads 1    # cap torch's threads on the worker
    python benchmarks/gui_stall.py --no-warm-up         # without the bridge's gc warm-up
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

TIMER_MS = 10


def build_sd15_random(folder: Path) -> Path:
    """Save an SD 1.5-shaped StableDiffusionPipeline with random weights into `folder`."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from architectures import build

    return build(folder, "sd15", tiny_decoder=False)


def gaps_ms(ticks: list[float]) -> list[float]:
    return [(b - a) * 1000.0 for a, b in zip(ticks, ticks[1:])]


def summary(gaps: list[float]) -> dict[str, float | None]:
    if not gaps:
        return {"max": None, "p99": None, "mean": None, "n": 0}
    ordered = sorted(gaps)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"max": round(ordered[-1], 2), "p99": round(p99, 2), "mean": round(statistics.fmean(gaps), 2),
            "n": len(gaps)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps (default 2)")
    parser.add_argument("--baseline-seconds", type=float, default=3.0)
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the model into this folder (reused if it already holds one)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch intra-op threads on the worker (default: torch's, one per core)")
    parser.add_argument("--no-warm-up", action="store_true",
                        help="JobBridge(warm_up=False): no start-up imports, no gc.freeze()")
    parser.add_argument("--build-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.build_only is not None:
        build_sd15_random(args.build_only)
        return 0

    tmp = None
    if args.keep is not None and (args.keep / "model_index.json").exists():
        folder, build_seconds = args.keep, 0.0
    else:
        if args.keep is not None:
            folder = args.keep
        else:
            tmp = tempfile.mkdtemp(prefix="quickbrush-sd15-random-")
            folder = Path(tmp) / "sd15"
        # Built in a child process, so this one starts as the app does (nothing of diffusers
        # imported, no model's objects on the heap), and flushed to disk, so writing 4 GB back
        # does not compete with the job.
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--build-only", str(folder)], check=True)
        os.sync()
        build_seconds = time.perf_counter() - start

    import torch

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from editor.jobs import JobBridge
    from inference.jobs import Generate, ModelRef

    app = QApplication.instance() or QApplication([])
    default_threads = torch.get_num_threads()
    ticks: list[float] = []
    timer = QTimer(app)
    timer.setInterval(TIMER_MS)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

    # Start-up, as in the app: the bridge is made, and warms up on the worker while the GUI runs.
    timer.start()
    start = time.perf_counter()
    bridge = JobBridge(warm_up=not args.no_warm_up, torch_threads=args.torch_threads)
    construct_seconds = time.perf_counter() - start
    warm_up_seconds = None
    if not args.no_warm_up or args.torch_threads:
        loop = QEventLoop()
        bridge.warmed_up.connect(loop.quit)
        bridge.warm_up()  # as the window does when a diffusers model is chosen
        loop.exec()
        warm_up_seconds = time.perf_counter() - start
    timer.stop()
    warm = summary(gaps_ms(ticks))
    try:
        ticks.clear()

        # Baseline: the same timer, nothing running.
        loop = QEventLoop()
        QTimer.singleShot(int(args.baseline_seconds * 1000), loop.quit)
        timer.start()
        loop.exec()
        timer.stop()
        baseline = summary(gaps_ms(ticks))

        # The job.
        ticks.clear()
        marks: dict[str, float] = {}
        results = []
        loop = QEventLoop()

        def on_progress(update) -> None:
            marks.setdefault("first_step", time.perf_counter())

        def on_finished(result) -> None:
            results.append(result)
            marks["finished"] = time.perf_counter()
            loop.quit()

        bridge.progress.connect(on_progress)
        bridge.finished.connect(on_finished)
        job = Generate(prompt="a lighthouse on a cliff at dusk", model=ModelRef(str(folder)), steps=args.steps,
                       seed=1, scheduler="euler", width=args.size, height=args.size)
        timer.start()
        start = time.perf_counter()
        bridge.submit(job)
        loop.exec()
        timer.stop()
        job_seconds = time.perf_counter() - start
        result = results[0]

        all_gaps = gaps_ms(ticks)
        first_step = marks.get("first_step", float("inf"))
        load_gaps = gaps_ms([t for t in ticks if t <= first_step])
        run_gaps = gaps_ms([t for t in ticks if t >= first_step])
        whole, load, run = summary(all_gaps), summary(load_gaps), summary(run_gaps)
        report = {
            "max_gap_ms": whole["max"],
            "p99_gap_ms": whole["p99"],
            "mean_gap_ms": whole["mean"],
            "load_max_gap_ms": load["max"],
            "run_max_gap_ms": run["max"],
            "run_p99_gap_ms": run["p99"],
            "baseline_max_gap_ms": baseline["max"],
            "baseline_p99_gap_ms": baseline["p99"],
            "ratio": round(whole["max"] / baseline["max"], 2) if whole["max"] and baseline["max"] else None,
            "timer_ms": TIMER_MS,
            "ticks": whole["n"],
            "job_seconds": round(job_seconds, 2),
            "job_ok": result.ok,
            "job_error": None if result.error is None else str(result.error),
            "timings": {k: round(v, 3) for k, v in result.timings.items()},
            "size": args.size,
            "steps": args.steps,
            "torch_threads_default": default_threads,
            "torch_threads": args.torch_threads or default_threads,
            "warm_up": not args.no_warm_up,
            "warm_up_seconds": None if warm_up_seconds is None else round(warm_up_seconds, 2),
            "warm_up_max_gap_ms": warm["max"],
            "bridge_construct_ms": round(construct_seconds * 1000, 1),
            "cpu_count": os.cpu_count(),
            "build_seconds": round(build_seconds, 1),
        }
        print(json.dumps(report, indent=2))
        return 0 if result.ok else 1
    finally:
        bridge.shutdown()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
