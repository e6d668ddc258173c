"""Train the flow model on a machine lent for minutes (a GPU) from a compact pack of a run.

    python -m training.pack write --run <cache>/run-all --out PACK              # here
    python -m training.pack train --pack PACK --out WEIGHTS --minutes 7 --batch 1024   # on the GPU
    python -m training.pack import --weights WEIGHTS --base <cache>/run-all --run <cache>/run-gpu
    python -m training.train export --run <cache>/run-gpu --out EXPORT          # here again

A lent GPU machine has torch but no data pipeline, no npm or Debian packages and no network, and
takes about 64 MB per call. The pack holds exactly what FlowTrainer draws from, and nothing else:

- the run's cached latents and edit pairs, int8 per channel (an rms error of about 0.01 on
  latents of unit scale), deduplicated (a skin-tone pair's source and target are data-set latents
  already) and lzma-compressed: 59,657 latents of the all-sources run in 37 MB;
- every caption and instruction as its model2vec token vectors (a table of distinct vectors
  plus indices), so the GPU side needs neither model2vec nor the tokenizer;
- the sampling shares and mirror flags the data set gives each image;
- the run's EMA UNet in the shipped int8 format, as the first weights.

`train` runs FlowTrainer there unchanged, sized to the minutes given: it times the first steps
and sets the learning-rate decay to end with the time. It writes the EMA weights in float16,
split into files small enough to come back (`weights-*.safetensors`), at every checkpoint, so a
call cut short still returns its latest state. `import` makes them a run folder here.
"""

from __future__ import annotations

import argparse
import json
import lzma
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from inference.builtin import BuiltinConfig, TextEncoder, load_int8, pool_sequences
from training.train import SEED_UNET, FlowTrainer, default_device, flow_texts, log

LATENTS = "latents.int8.xz"
INDEX = "index.npz"
UNET = "unet.int8.safetensors"
META = "pack.json"
WEIGHTS_FILE_LIMIT = 15 * 2**20  # what a lent machine hands back: 16 MiB a file


class PackedText:
    """The text encoder's output for a fixed set of prompts, read from the pack."""

    def __init__(self, sequences: dict[str, np.ndarray], dim: int):
        self.sequences, self.dim = sequences, dim

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return pool_sequences([self.sequences[p] for p in prompts], self.dim)


@dataclass
class Pack:
    cfg: BuiltinConfig
    latents: torch.Tensor
    captions: list[str]
    edits: tuple[torch.Tensor, torch.Tensor, list[str]] | None
    mirror: np.ndarray
    weights: np.ndarray | None
    text: PackedText
    unet: dict[str, torch.Tensor]
    meta: dict
    keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)


def write(out: Path, cfg: BuiltinConfig, text: TextEncoder, unet: torch.nn.Module, latents: torch.Tensor,
          captions: list[str], edits: tuple[torch.Tensor, torch.Tensor, list[str]] | None,
          mirror: np.ndarray, weights: np.ndarray | None, meta: dict | None = None,
          keywords: Mapping[str, tuple[str, ...]] | None = None) -> Path:
    """The pack of one run's flow-training inputs (see the module docstring); returns `out`."""
    from safetensors.torch import save_file

    from training.export import quantize_state_dict

    out.mkdir(parents=True, exist_ok=True)
    src, dst, instructions = edits if edits is not None else (latents[:0], latents[:0], [])
    everything = torch.cat([latents, src, dst]).float()
    scale = everything.abs().amax(dim=(0, 2, 3)).clamp_min(1e-6) / 127
    q = torch.round(everything / scale[None, :, None, None]).clamp(-127, 127).to(torch.int8).numpy()
    rows, inverse = np.unique(q.reshape(len(q), -1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n, e = len(latents), len(src)
    keywords = {c: list(w) for c, w in sorted((keywords or {}).items())}
    texts = flow_texts(captions, instructions, keywords)
    text_id = {t: i for i, t in enumerate(texts)}
    sequences = text.sequences(texts)
    table, token_rows = np.unique(np.concatenate(sequences), axis=0, return_inverse=True)
    np.savez_compressed(
        out / INDEX, latent_scale=scale.numpy(), image_rows=inverse[:n], edit_src=inverse[n : n + e],
        edit_dst=inverse[n + e :], captions=np.array([text_id[c] for c in captions]),
        edit_text=np.array([text_id[t] for t in instructions], dtype=np.int64), mirror=np.asarray(mirror, bool),
        weights=np.zeros(0) if weights is None else np.asarray(weights, np.float64), token_table=table,
        token_rows=token_rows.reshape(-1), token_lengths=np.array([len(s) for s in sequences]))
    (out / LATENTS).write_bytes(lzma.compress(rows.tobytes()))
    save_file(quantize_state_dict(unet.state_dict()), out / UNET, metadata={"format": "quickbrush-int8"})
    (out / META).write_text(json.dumps({**(meta or {}), "config": cfg.to_json(), "latent_shape": list(latents.shape[1:]),
                                        "edits": edits is not None, "texts": texts, "keywords": keywords}, indent=1))
    log("packed", out=str(out), latents=n, edits=e, distinct=len(rows), texts=len(texts),
        mb=round(sum(f.stat().st_size for f in out.iterdir()) / 1e6, 1))
    return out


def load(folder: Path) -> Pack:
    """A pack as FlowTrainer takes it: float32 latents and edits, captions, and a PackedText."""
    meta = json.loads((folder / META).read_text())
    index = np.load(folder / INDEX)
    shape = meta["latent_shape"]
    rows = np.frombuffer(lzma.decompress((folder / LATENTS).read_bytes()), np.int8).reshape(-1, *shape)
    table = torch.from_numpy(rows.copy()).float() * torch.from_numpy(index["latent_scale"])[None, :, None, None]
    texts = meta["texts"]
    vectors = index["token_table"][index["token_rows"]]
    bounds = np.cumsum(index["token_lengths"])[:-1]
    cfg = BuiltinConfig.from_json(meta["config"])
    edits = None
    if meta["edits"]:
        edits = (table[index["edit_src"]], table[index["edit_dst"]], [texts[i] for i in index["edit_text"]])
    return Pack(cfg=cfg, latents=table[index["image_rows"]], captions=[texts[i] for i in index["captions"]],
                edits=edits, mirror=index["mirror"], weights=index["weights"] if len(index["weights"]) else None,
                text=PackedText(dict(zip(texts, np.split(vectors, bounds))), cfg.text_dim),
                unet=load_int8(folder / UNET), meta=meta,
                keywords={c: tuple(w) for c, w in meta.get("keywords", {}).items()})


def save_weights(unet: torch.nn.Module, out: Path, info: dict | None = None) -> list[Path]:
    """float16 weights in files of at most WEIGHTS_FILE_LIMIT, replacing any earlier set."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    parts: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, value in unet.state_dict().items():
        value = value.detach().to("cpu", torch.float16).contiguous()
        if parts[-1] and size + value.numel() * 2 > WEIGHTS_FILE_LIMIT:
            parts.append({})
            size = 0
        parts[-1][name] = value
        size += value.numel() * 2
    for old in out.glob("weights-*.safetensors"):
        old.unlink()
    files = [out / f"weights-{i}.safetensors" for i in range(len(parts))]
    for part, file in zip(parts, files):
        save_file(part, file)
    (out / "weights.json").write_text(json.dumps({"files": [f.name for f in files], **(info or {})}, indent=1))
    return files


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    names = json.loads((folder / "weights.json").read_text())["files"]
    state: dict[str, torch.Tensor] = {}
    for name in names:
        state.update({k: v.float() for k, v in load_file(str(folder / name)).items()})
    return state


def train(pack_dir: Path, run: Path, out: Path, minutes: float, batch: int, lr: float, decay_share: float = 0.3,
          precision: str = "auto", probe: int = 200, device: str | None = None,
          keyword_share: float = 0.0) -> FlowTrainer:
    """FlowTrainer on the pack for `minutes` in all: the first `probe` steps are timed, and the
    run is then sized so that its learning rate has decayed to zero when the time is up."""
    started = time.monotonic()
    pack = load(pack_dir)
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "flow.pt").exists():
        torch.save(pack.unet, run / SEED_UNET)
    device = device or default_device()
    trainer = FlowTrainer(pack.cfg, pack.text, pack.latents, pack.captions, pack.edits, run, lr=lr, device=device,
                          mirror=pack.mirror, weights=pack.weights, precision=precision,
                          keywords=pack.keywords, keyword_share=keyword_share)
    log("pack-loaded", seconds=round(time.monotonic() - started, 1), device=device, images=len(pack.latents))

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    first = trainer.step
    # Warm-up (allocator, kernel choice), then the timed steps; each capped at a tenth of the time.
    trainer.train(steps=first + probe // 4, batch=batch, minutes=minutes / 10, every=10**9)
    sync()
    timed, before = time.monotonic(), trainer.step
    trainer.train(steps=trainer.step + probe, batch=batch, minutes=minutes / 10, every=10**9)
    sync()
    per_step = (time.monotonic() - timed) / max(1, trainer.step - before)
    reserve = min(20.0, minutes * 6)  # the last save and the weights written out
    left = minutes * 60 - (time.monotonic() - started) - reserve
    total = trainer.step + max(0, int(left / per_step))
    log("pack-plan", s_per_step=round(per_step, 4), steps=total, images=total * batch)

    def write_out(t: FlowTrainer) -> None:
        save_weights(t.ema_unet(), out, {"step": t.step, "batch": batch, "lr": lr, "s_per_step": per_step,
                                          "images_seen": (t.step - first) * batch, "pack": pack.meta.get("run")})

    every = max(100, (total - first) // 6)
    trainer.train(steps=total, batch=batch, minutes=max(0.1, left / 60), decay=int(decay_share * (total - first)),
                  every=every, on_save=write_out)
    write_out(trainer)
    log("pack-trained", step=trainer.step, minutes=round((time.monotonic() - started) / 60, 2))
    return trainer


def import_weights(weights: Path, base: Path, run: Path) -> Path:
    """A run folder here from trained weights: the base run's autoencoder, latent scale, text
    encoder and config, with the weights as its UNet (what `train export` and `--run` resume read)."""
    if (run / "flow.pt").exists():
        raise SystemExit(f"{run} already holds a flow checkpoint")
    run.mkdir(parents=True, exist_ok=True)
    for name in ("autoencoder.pt", "latents.json", "config.json"):
        shutil.copy2(base / name, run / name)
    if (base / "text_encoder").exists():
        shutil.copytree(base / "text_encoder", run / "text_encoder", dirs_exist_ok=True)
    torch.save(load_weights(weights), run / SEED_UNET)
    shutil.copy2(weights / "weights.json", run / "trained.json")
    log("imported", run=str(run), **json.loads((weights / "weights.json").read_text()))
    return run


def write_run(run: Path, out: Path, shares: dict[str, float]) -> Path:
    """`write` for a run folder of this machine's data cache (its data set and EMA UNet)."""
    from training.train import assemble, flow_inputs, load_data, run_sources

    config = json.loads((run / "config.json").read_text())
    cfg = replace(BuiltinConfig.from_json(config), latent_std=1.0)
    sources = run_sources(run, None)
    ds, pairs = load_data(cfg.size, None, sources)
    text = TextEncoder.load(run / "text_encoder")
    # The keywords travel always (a few thousand short texts); `train --keyword-share` uses them.
    cfg, inputs, sampling = flow_inputs(run, cfg, ds, pairs, shares, keywords=True)
    model = assemble(run, cfg, text)
    step = torch.load(run / "flow.pt", weights_only=False, map_location="cpu")["step"] if (run / "flow.pt").exists() else 0
    return write(out, cfg, text, model.unet, *inputs, **sampling,
                 meta={"run": run.name, "step": step, "data_sources": list(sources), "shares": shares})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="pack a run of this machine's data cache")
    w.add_argument("--run", type=Path, required=True)
    w.add_argument("--out", type=Path, required=True)
    w.add_argument("--icon-share", type=float, default=0.3)
    w.add_argument("--clipart-share", type=float, default=0.25)
    t = sub.add_parser("train", help="train from a pack (on the lent GPU)")
    t.add_argument("--pack", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True, help="where the weights go")
    t.add_argument("--run", type=Path, default=None, help="checkpoint folder (default: OUT/../run)")
    t.add_argument("--minutes", type=float, required=True)
    t.add_argument("--batch", type=int, default=1024)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--decay-share", type=float, default=0.3)
    t.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    t.add_argument("--keyword-share", type=float, default=0.0,
                   help="how often an emoji is called by a CLDR keyword (train.py flow --keyword-share)")
    i = sub.add_parser("import", help="make trained weights a run folder here")
    i.add_argument("--weights", type=Path, required=True)
    i.add_argument("--base", type=Path, required=True, help="the run the pack was written from")
    i.add_argument("--run", type=Path, required=True, help="the new run folder")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.command == "write":
        write_run(args.run, args.out, {"icons": args.icon_share, "clipart": args.clipart_share})
    elif args.command == "train":
        train(args.pack, args.run or args.out.parent / "run", args.out, args.minutes, args.batch, args.lr,
              args.decay_share, args.precision, keyword_share=args.keyword_share)
    else:
        import_weights(args.weights, args.base, args.run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
