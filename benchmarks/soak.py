"""Does memory grow over many jobs? Consecutive built-in-model jobs of every kind, one at a time.

Runs generate, vary, inpaint, outpaint and edit in turn (round robin) through
`inference.worker.Worker` on the shipped built-in model (assets/models/builtin, `ModelRef("builtin")`),
each job submitted when the one before it has given its Result, as a designer clicking Generate
again and again would. Sources are a 128 px transparent emoji-like disc, its mask a square on it.

Resident memory (psutil) is read after job 1 and after a quarter, half and all of the jobs (1, 50,
100, 200 by default), each time after `gc.collect()`, so garbage not yet collected does not read as
growth. The issue's bar (16): growth from job 1 to the last job under 50 MB.

Prints one JSON object:
    jobs, kinds           how many jobs ran, and the kinds in their order
    rss_mb                {"1": MB, "50": MB, "100": MB, "200": MB} after those jobs
    growth_mb             rss after the last job minus rss after job 1
    limit_mb, under_limit 50, and whether growth_mb stays under it
    failed, first_error   jobs that gave an error instead of an image (0, null when all worked)
    median_ms             per kind, the wall time from submit to Result
    seconds               the whole soak, model load included
    cpu                   core count, model name and the vector extensions onnxruntime can use

Exit status 0 when every job worked and growth stayed under the limit, else 1.

    python benchmarks/soak.py                 # 200 jobs, one to two minutes on 2 cores
    python benchmarks/soak.py --jobs 20       # a quick look
    python benchmarks/soak.py --steps 1       # the model's fewest steps
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("generate", "vary", "inpaint", "outpaint", "edit")
LIMIT_MB = 50
# Instruction-set extensions that change how fast onnxruntime's kernels run on this CPU.
_VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_tile",
                 "asimd", "sve")


def cpu_info() -> dict:
    info = {"count": os.cpu_count(), "model": platform.processor() or platform.machine(), "flags": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            info["model"] = value.strip()
        elif key.strip() in ("flags", "Features"):
            present = set(value.split())
            info["flags"] = [flag for flag in _VECTOR_FLAGS if flag in present]
            break
    return info


def checkpoints(jobs: int) -> list[int]:
    """Job numbers after which memory is read: 1 and a quarter, half and all of the jobs."""
    return sorted({1, max(1, jobs // 4), max(1, jobs // 2), jobs})


def sources():
    """A 128 px transparent disc (what the built-in model knows: an emoji on transparency) and a mask."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((20, 20, 108, 108), fill=(230, 60, 40, 255))
    mask = Image.new("L", image.size, 0)
    mask.paste(255, (48, 48, 80, 80))
    return image, mask


def make_job(kind: str, number: int, steps: int | None, image, mask):
    from inference.jobs import Edit, Generate, Inpaint, ModelRef, Outpaint, Vary

    common = {"model": ModelRef("builtin"), "seed": number, "steps": steps}
    if kind == "generate":
        return Generate(prompt="red apple", **common)
    if kind == "vary":
        return Vary(prompt="red apple", image=image, strength=0.6, **common)
    if kind == "inpaint":
        return Inpaint(prompt="smiling face", image=image, mask=mask, **common)
    if kind == "outpaint":
        return Outpaint(prompt="red apple", image=image, right=32, **common)
    return Edit(prompt="make it blue", image=image, **common)


def rss_mb(process) -> float:
    gc.collect()
    return round(process.memory_info().rss / 2**20, 1)


def soak(jobs: int, steps: int | None) -> dict:
    import psutil

    from inference.worker import Worker

    process = psutil.Process()
    image, mask = sources()
    done = threading.Event()
    box: dict = {}

    def on_result(result) -> None:
        box["result"] = result  # only the latest: the benchmark must not hold 200 images itself
        done.set()

    worker = Worker(on_result=on_result, name="soak-worker")
    readings: dict[str, float] = {}
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    failed, first_error = 0, None
    wanted = set(checkpoints(jobs))
    started = time.perf_counter()
    try:
        for number in range(1, jobs + 1):
            kind = KINDS[(number - 1) % len(KINDS)]
            done.clear()
            t0 = time.perf_counter()
            worker.submit(make_job(kind, number, steps, image, mask))
            if not done.wait(300):
                raise SystemExit(f"job {number} ({kind}) gave no result in 300 s")
            times[kind].append(time.perf_counter() - t0)
            result = box.pop("result")
            if not result.ok:
                failed += 1
                first_error = first_error or f"job {number} ({kind}): {getattr(result.error, 'message', result.error)}"
            del result
            if number in wanted:
                readings[str(number)] = rss_mb(process)
    finally:
        worker.shutdown()
    seconds = time.perf_counter() - started
    growth = round(readings[str(jobs)] - readings["1"], 1)
    return {
        "model": "builtin",
        "jobs": jobs,
        "steps": steps,
        "kinds": list(KINDS),
        "rss_mb": readings,
        "growth_mb": growth,
        "limit_mb": LIMIT_MB,
        "under_limit": growth < LIMIT_MB,
        "failed": failed,
        "first_error": first_error,
        "median_ms": {kind: round(statistics.median(t) * 1000, 1) for kind, t in times.items() if t},
        "seconds": round(seconds, 1),
        "cpu": cpu_info(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200, help="how many jobs (default 200)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's own)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the built-in model needs no network; never wait on one
    sys.path.insert(0, str(ROOT))
    report = soak(args.jobs, args.steps)
    print(json.dumps(report, indent=2))
    return 0 if report["failed"] == 0 and report["under_limit"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
