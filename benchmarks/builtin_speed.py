"""Speed, load time and memory of the built-in model on this machine's CPU.

Each variant runs in its own fresh Python process (so resident memory is that variant's alone,
and nothing is warm from another), through the real loading code and sampler:
  onnx-int8     what ships and what the app runs: onnxruntime, int8 weights folded to float32
                at session start (inference/builtin_onnx.py); no torch or diffusers imported
  onnx-fp32     the same graphs exported with float32 weights (the int8-storage baseline)
  torch-fp32    the torch modules in float32 (inference/builtin.py), diffusers imported
  torch-int8-dynamic  the torch modules with dynamic int8 quantisation of every Linear layer

Prints one JSON object: per variant load_s, the median and p90 of text to image at native size
in the model's steps end to end (prompt to RGBA pixels), per stage medians, and max_rss_mb of the
process (the inference side alone: no Qt is imported). Targets (issue 4): median <= 150 ms,
load < 1 s, rss < 500 MB.

    python benchmarks/builtin_speed.py                          # assets/models/builtin
    python benchmarks/builtin_speed.py --model DIR --runs 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, statistics, sys, time
sys.path.insert(0, sys.argv[1])
folder, variant, runs = sys.argv[2], sys.argv[3], int(sys.argv[4])
started = time.perf_counter()
if variant.startswith("onnx"):
    from inference.builtin_onnx import OnnxBuiltin
    model = OnnxBuiltin(folder)
    steps, guidance, size = model.steps, model.guidance, model.size
else:
    import torch
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "0")) or torch.get_num_threads())
    from inference.builtin import BuiltinModel
    model = BuiltinModel.load(folder)
    if variant == "torch-int8-dynamic":
        model.unet = torch.ao.quantization.quantize_dynamic(model.unet, {torch.nn.Linear}, dtype=torch.qint8)
    steps, guidance, size = model.cfg.steps, model.cfg.guidance, model.cfg.size
load_s = time.perf_counter() - started
prompts = ["red apple", "smiling cat face", "blue heart", "pizza", "racing car", "thumbs up"]
for p in prompts[:2]:
    model.sample(p, seed=0)  # warm-up: first-call allocations and kernel selection
totals, stages = [], {"encode_s": [], "denoise_s": [], "decode_s": []}
for i in range(runs):
    t0 = time.perf_counter()
    out, timings = model.sample(prompts[i % len(prompts)], seed=i)
    totals.append(time.perf_counter() - t0)
    for k in stages:
        stages[k].append(timings[k])
totals.sort()
print(json.dumps({
    "load_s": round(load_s, 3),
    "median_ms": round(statistics.median(totals) * 1000, 1),
    "p90_ms": round(totals[int(0.9 * (len(totals) - 1))] * 1000, 1),
    "stage_median_ms": {k: round(statistics.median(v) * 1000, 1) for k, v in stages.items()},
    "steps": steps, "guidance": guidance, "size": size,
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report the
    # benchmark parent's peak (which held the float32 torch model) instead of its own.
    "max_rss_mb": round(int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM"))) / 1024, 1),
    "imported": sorted(m for m in ("torch", "diffusers", "transformers", "PySide6") if m in sys.modules),
}))
"""


def fp32_copy(folder: Path, out: Path) -> Path:
    """The same weights saved as float32, torch modules and ONNX graphs (the baselines)."""
    sys.path.insert(0, str(ROOT))
    from inference.builtin import BuiltinModel
    from training.export import export_onnx

    model = BuiltinModel.load(folder)
    model.save(out)
    export_onnx(model, out / "onnx", int8=False)
    return out


def run_variant(folder: Path, variant: str, runs: int) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(folder), variant, str(runs)],
                            capture_output=True, text=True, env=env, timeout=900)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "assets" / "models" / "builtin")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        baseline = fp32_copy(args.model, Path(tmp) / "fp32")
        results = {
            "onnx-int8": run_variant(args.model, "onnx-int8", args.runs),
            "onnx-fp32": run_variant(baseline, "onnx-fp32", args.runs),
            "torch-fp32": run_variant(baseline, "torch-fp32", args.runs),
            "torch-int8-dynamic": run_variant(args.model, "torch-int8-dynamic", args.runs),
        }
    size_mb = sum(f.stat().st_size for f in args.model.rglob("*") if f.is_file()) / 2**20
    shipped = results["onnx-int8"]
    report = {
        "model": args.model.name, "cpu_threads": os.cpu_count(), "runs": args.runs,
        "variants": results, "shipped_size_mb": round(size_mb, 1),
        "int8_vs_fp32_speed": round(results["onnx-fp32"].get("median_ms", 0) / max(shipped.get("median_ms", 1), 1e-9), 2),
        "targets": {"median_ms<=150": shipped.get("median_ms", 1e9) <= 150, "load_s<1": shipped.get("load_s", 1e9) < 1,
                    "rss_mb<500": shipped.get("max_rss_mb", 1e9) < 500, "size_mb<=60": size_mb <= 60},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
