"""Choose the shipped guidance scales and time shift on *training* captions (held-out ones stay unseen).

    python -m training.tune --model assets/models/builtin --captions 400 --seeds 2 --write

Generates images for a sample of training captions for each time shift and guidance scale at 4
steps, then, at the best shift, for each scale at 1 and 2 steps; classifies them with the quality
benchmark's subgroup classifier (trained and cached by `benchmarks/builtin_quality.py
--classifier-only`) and scores each setting by subgroup plus group accuracy, the two things the
benchmark's bars ask for. Prints JSON; `--write` stores the winners in the model's
quickbrush_builtin.json: `shift`, `guidance_by_steps` (one scale per step count) and `guidance`
(the one for the default step count).

One scale per step count rather than one for all: a single step over-saturates at a scale that
4 steps need to follow the prompt, so a shared scale is a compromise that serves neither.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "assets" / "models" / "builtin")
    parser.add_argument("--captions", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=2, help="images per caption")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0, 4.0])
    parser.add_argument("--shifts", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch
    from builtin_quality import _net, generate, predict

    from inference.builtin_onnx import OnnxBuiltin
    from training import data

    config_file = args.model / "quickbrush_builtin.json"
    config = json.loads(config_file.read_text())
    path = data.prepare(size=config["size"], sources=data.sources_of(config))
    ds = data.load(path)
    classes = sorted(set(ds.subgroup))
    sub_id = {c: i for i, c in enumerate(classes)}
    group_of = {s: g for s, g in zip(ds.subgroup, ds.group)}
    cached = sorted(data.cache_dir().glob(f"classifier-{path.stem}-*.pt"), key=lambda p: p.stat().st_mtime)
    if not cached:
        raise SystemExit("No classifier yet: run benchmarks/builtin_quality.py --classifier-only first.")
    net = _net(len(classes))
    net.load_state_dict(torch.load(cached[-1], weights_only=True))
    net.eval()
    first: dict[str, int] = {}
    for i in ds.train_indices():
        first.setdefault(str(ds.captions[i]), int(i))
    rng = np.random.default_rng(0)
    captions = sorted(rng.choice(sorted(first), size=min(args.captions, len(first)), replace=False))
    labels = np.tile([sub_id[ds.subgroup[first[c]]] for c in captions], args.seeds)
    groups = np.array([group_of[s] for s in classes])
    model = OnnxBuiltin(args.model)
    report: dict = {"captions": len(captions), "seeds": args.seeds, "split": "train"}

    def score(steps: int, scale: float) -> dict[str, float]:
        images = generate(model, captions, steps, args.seeds, guidance=scale)
        pred = predict(net, images)[0]
        return {"subgroup": round(float((pred == labels).mean()), 4),
                "group": round(float((groups[pred] == groups[labels]).mean()), 4)}

    def best(results: dict) -> float:
        return max(results, key=lambda k: results[k]["subgroup"] + results[k]["group"])

    grid: dict[float, dict[float, dict]] = {}
    for shift in args.shifts:
        model.shift = shift
        grid[shift] = {scale: score(4, scale) for scale in args.scales}
        report[f"steps_4_shift_{shift:g}"] = {f"{s:g}": r for s, r in grid[shift].items()}
    shift = max(grid, key=lambda s: max(r["subgroup"] + r["group"] for r in grid[s].values()))
    model.shift = shift
    chosen = {4: best(grid[shift])}
    for steps in (1, 2):
        results = {scale: score(steps, scale) for scale in args.scales}
        report[f"steps_{steps}_shift_{shift:g}"] = {f"{s:g}": r for s, r in results.items()}
        chosen[steps] = best(results)
    report["best"] = {"shift": shift, "guidance_by_steps": {str(k): v for k, v in sorted(chosen.items())}}
    if args.write:
        config["shift"] = shift
        config["guidance_by_steps"] = {str(k): v for k, v in sorted(chosen.items())}
        config["guidance"] = chosen.get(int(config["steps"]), chosen[4])
        config_file.write_text(json.dumps(config, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
