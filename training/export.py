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


def export(model: BuiltinModel, out: Path, int8: bool = True, onnx: bool = True,
           data_sources: tuple[str, ...] | None = None, data_versions: dict | None = None) -> Path:
    """The model folder: torch weights (int8 storage) for fine-tuning and tests, plus the ONNX
    graphs the app runs (inference/builtin_onnx.py). With `data_sources` (what it was trained on),
    quickbrush_builtin.json records them (the runtimes ignore the key; the benchmark reads it) and
    DATA.md gives their licences and attribution, and the package versions the data set recorded
    (`data_versions`, its meta["versions"]; default: the pins)."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    if onnx:
        export_onnx(model, tmp / "onnx", int8=int8)
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
    if data_sources is not None:
        from training.data import data_card

        config["data_sources"] = list(data_sources)
        (tmp / "DATA.md").write_text(data_card(data_sources, data_versions), encoding="utf-8")
    (tmp / "quickbrush_builtin.json").write_text(json.dumps(config, indent=2) + "\n")
    # Replace the model's own files only: anything else in the folder stays.
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


# --------------------------------------------------------------------------- ONNX (what ships)


class _UNetStep(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, tokens, pooled):
        return self.unet(x, t, tokens, class_labels=pooled).sample


class _Encoder(torch.nn.Module):
    def __init__(self, ae):
        super().__init__()
        self.ae = ae

    def forward(self, image):
        return self.ae.encode(image).latents


class _Decoder(torch.nn.Module):
    def __init__(self, ae):
        super().__init__()
        self.ae = ae

    def forward(self, latents):
        return self.ae.decode(latents).sample


def export_onnx(model: BuiltinModel, onnx_dir: Path, int8: bool = True) -> None:
    """unet/encoder/decoder.onnx with batch and spatial axes dynamic; int8 weights (QDQ) if asked."""
    import warnings

    onnx_dir.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    s, c = cfg.latent_size, cfg.latent_channels
    graphs = {
        "unet": (_UNetStep(model.unet), (torch.randn(2, cfg.in_channels, s, s), torch.full((2,), 500.0),
                                         torch.randn(2, 16, cfg.text_dim), torch.randn(2, cfg.text_dim)),
                 ["x", "t", "tokens", "pooled"], ["v"],
                 {"x": {0: "b", 2: "h", 3: "w"}, "t": {0: "b"}, "tokens": {0: "b"}, "pooled": {0: "b"},
                  "v": {0: "b", 2: "h", 3: "w"}}),
        "encoder": (_Encoder(model.autoencoder), (torch.randn(1, 4, cfg.size, cfg.size),), ["image"], ["latents"],
                    {"image": {0: "b", 2: "H", 3: "W"}, "latents": {0: "b", 2: "h", 3: "w"}}),
        "decoder": (_Decoder(model.autoencoder), (torch.randn(1, c, s, s),), ["latents"], ["image"],
                    {"latents": {0: "b", 2: "h", 3: "w"}, "image": {0: "b", 2: "H", 3: "W"}}),
    }
    for name, (module, args, inputs, outputs, axes) in graphs.items():
        path = onnx_dir / f"{name}.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
            torch.onnx.export(module.eval(), args, str(path), input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, dynamo=False, opset_version=17)
        if int8:
            int8_weights(path)


def int8_weights(path: Path) -> None:
    """Replace each large Conv/MatMul/Gemm weight by int8 + per-channel scale + DequantizeLinear.

    Storage only: onnxruntime folds the DequantizeLinear of a constant back into a float32
    weight when the session starts (with QDQ fusion disabled, see inference/builtin_onnx.py).
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    axis_of: dict[str, int] = {}
    for node in graph.node:
        if node.op_type == "Conv" and len(node.input) > 1:
            axis_of.setdefault(node.input[1], 0)
        elif node.op_type == "MatMul" and len(node.input) > 1:
            axis_of.setdefault(node.input[1], 1)  # B is [in, out]: one scale per output column
        elif node.op_type == "Gemm" and len(node.input) > 1:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            axis_of.setdefault(node.input[1], 0 if trans_b else 1)
    new_nodes = []
    for name, axis in axis_of.items():
        init = inits.get(name)
        if init is None:
            continue
        w = numpy_helper.to_array(init).astype(np.float32)
        if w.ndim < 2 or w.size < 256:
            continue
        moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
        scale = np.maximum(np.abs(moved).max(1), 1e-12) / 127
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(q, name + "_int8"),
                                  numpy_helper.from_array(scale.astype(np.float32), name + "_scale"),
                                  numpy_helper.from_array(np.zeros(len(scale), np.int8), name + "_zero")])
        new_nodes.append(helper.make_node("DequantizeLinear", [name + "_int8", name + "_scale", name + "_zero"],
                                          [name], axis=axis, name=name + "_dequantize"))
    # DequantizeLinear nodes first: the graph must stay topologically sorted.
    nodes = new_nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
