"""Write the shipped model folder: diffusers/model2vec folders, weights stored as int8.

Quantisation is per output channel and symmetric (scale = max|w| / 127) for every weight of two
or more dimensions (convolutions, linear and attention projections); norms and biases stay in
float16, which they tolerate. Loading dequantises to float32 (inference.builtin.load_int8), so
the speed is float32's and the size is a quarter of it: the installer carries about 12 MB.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from inference.builtin import INT8_WEIGHTS, BuiltinModel


def quantize_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, w in state.items():
        w = w.detach().float()
        if w.ndim >= 2 and w.numel() >= 256:
            flat = w.reshape(w.shape[0], -1)
            scale = flat.abs().amax(1).clamp_min(1e-12) / 127
            out[name + ".int8"] = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(w.shape)
            out[name + ".scale"] = scale.to(torch.float32)
        else:
            out[name] = w.to(torch.float16)
    return out


def _write_int8(module, folder: Path) -> None:
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    save_file(quantize_state_dict(module.state_dict()), folder / INT8_WEIGHTS, metadata={"format": "quickbrush-int8"})


def export(model: BuiltinModel, out: Path, int8: bool = True) -> Path:
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    if int8:
        _write_int8(model.unet, tmp / "unet")
        _write_int8(model.autoencoder, tmp / "autoencoder")
        # model2vec's embedding table: int8 by the same rule, read back by load_int8 too.
        text_dir = tmp / "text_encoder"
        from safetensors.torch import load_file

        table = load_file(text_dir / "model.safetensors")
        (text_dir / "model.safetensors").unlink()
        save_file(quantize_state_dict(table), text_dir / INT8_WEIGHTS, metadata={"format": "quickbrush-int8"})
    config = json.loads((tmp / "quickbrush_builtin.json").read_text())
    config["int8"] = int8
    (tmp / "quickbrush_builtin.json").write_text(json.dumps(config, indent=2) + "\n")
    # Replace the model's own files only: DATA.md and LICENSE beside them stay.
    out.mkdir(parents=True, exist_ok=True)
    for item in tmp.iterdir():
        target = out / item.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        item.rename(target)
    tmp.rmdir()
    return out
