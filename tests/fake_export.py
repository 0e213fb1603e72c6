"""Quantize a KModel into an ONNX graph laid out like kokoro-onnx's int8 export.

Only initializers and the weight-consuming nodes are written (nothing runs the graph): the naming
quirks of the real export are reproduced on purpose, because `tts_api.weights` must undo them:
anonymous weight names mapped through node scopes, nested scopes repeating their parent
(`cnn.0/cnn.0.0`), unrolled copies of the shared ALBERT layer (`attention_1/query_1`), F0/N/shared
scoped directly under `/encoder`, ONNX gate order i,o,f,c, uint8 per-tensor convs with zero points,
int8 per-channel matmuls, and float ConvTranspose/conv_post weights.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

_TORCH_TO_ONNX_GATES = [0, 3, 1, 2]  # torch i,f,g,o -> onnx i,o,f,c


def _scope(path: str) -> str:
    """KModel module path -> ONNX scope, e.g. text_encoder.cnn.0.0 -> /encoder/text_encoder/cnn.0/cnn.0.0."""
    parts: list[str] = []
    for token in path.split("."):
        if token.isdigit() and parts:
            previous = parts[-1]
            if re.search(r"\.\d+$", previous):
                parts.append(f"{previous}.{token}")  # nested numbered child repeats its parent
            else:
                parts[-1] = f"{previous}.{token}"
        else:
            parts.append(token)
    head, rest = parts[0], parts[1:]
    if head == "predictor" and rest and re.match(r"(F0|N)\.\d+$|shared$", rest[0]):
        return "/" + "/".join(["encoder", *rest])
    prefix = {"decoder": ["decoder", "decoder"]}.get(head, ["encoder", head])
    return "/" + "/".join([*prefix, *rest])


def _dotted(path: str) -> str:
    """KModel parameter path -> the original-name form the export kept for float tensors."""
    head, _, rest = path.partition(".")
    return ("decoder.decoder." if head == "decoder" else f"encoder.{head}.") + rest


class _Builder:
    def __init__(self) -> None:
        self.inits: list[onnx.TensorProto] = []
        self.nodes: list[onnx.NodeProto] = []
        self.count = 0

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], name: str) -> None:
        self.count += 1
        self.nodes.append(helper.make_node(op, inputs, [f"out{self.count}"], name=name, domain=""))

    def anonymous(self, stem: str) -> str:
        self.count += 1
        return f"onnx::{stem}_{self.count}"


def _uint8_per_tensor(w: np.ndarray) -> tuple[np.ndarray, np.float32, np.uint8]:
    lo, hi = min(float(w.min()), 0.0), max(float(w.max()), 0.0)
    scale = np.float32((hi - lo) / 255 or 1.0)
    zero = np.uint8(round(-lo / scale))
    return np.clip(np.round(w / scale) + zero, 0, 255).astype(np.uint8), scale, zero


def _int8_per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    reduce = tuple(d for d in range(w.ndim) if d != axis)
    scale = (np.abs(w).max(axis=reduce, keepdims=True) / 127).astype(np.float32)
    scale[scale == 0] = 1.0
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale.reshape(-1)


def export_int8(model: torch.nn.Module) -> onnx.ModelProto:
    """An int8 ONNX graph of `model`'s weights in kokoro-onnx's layout."""
    b = _Builder()
    done: set[str] = set()
    for path, module in model.named_modules():
        params = dict(module.named_parameters(recurse=False))
        if not path or not params or path == "bert.pooler":  # the pooler is not in the real export
            continue
        kind = type(module).__name__
        if kind == "LSTM":
            _lstm(b, path, module)
        elif kind == "Linear":
            _linear(b, path, module)
        elif kind == "Embedding":
            _embedding(b, path, module)
        elif kind in ("Conv1d", "ConvTranspose1d"):
            _conv(b, path, module)
        else:
            continue
        done |= {f"{path}.{name}" for name in params}
    for name, param in model.named_parameters():
        if name in done or name.startswith("bert.pooler.") or re.search(r"\.norm\.(weight|bias)$", name):
            continue
        b.init(_dotted(name), param.detach().numpy().astype(np.float32))
    graph = helper.make_graph(b.nodes, "kokoro-int8-fake", [], [], initializer=b.inits)
    return helper.make_model(graph)


def _lstm(b: _Builder, path: str, lstm: torch.nn.LSTM) -> None:
    def gates(t: torch.Tensor) -> np.ndarray:
        chunks = t.detach().numpy().reshape(4, -1, *t.shape[1:])
        return np.concatenate([chunks[k] for k in _TORCH_TO_ONNX_GATES])

    names = {}
    for kind in ("ih", "hh"):
        stacked = np.stack([gates(getattr(lstm, f"weight_{kind}_l0{s}")).T for s in ("", "_reverse")])
        q, scale = _int8_per_channel(stacked, axis=0)
        base = b.anonymous("LSTM")
        names[kind] = (b.init(base + "_quantized", q), b.init(base + "_scale", scale))
    bias = np.stack(
        [
            np.concatenate([gates(getattr(lstm, f"bias_{k}_l0{s}")) for k in ("ih", "hh")])
            for s in ("", "_reverse")
        ]
    )
    zp = b.init(b.anonymous("LSTM_zp"), np.zeros(2, np.int8))
    inputs = ["x", names["ih"][0], names["hh"][0], b.init(b.anonymous("LSTM"), bias), "", "h0", "c0", ""]
    b.node(
        "DynamicQuantizeLSTM", [*inputs, names["ih"][1], zp, names["hh"][1], zp], f"{_scope(path)}/LSTM_quant"
    )


def _linear(b: _Builder, path: str, linear: torch.nn.Linear) -> None:
    q, scale = _int8_per_channel(linear.weight.detach().numpy().T, axis=1)
    base = b.anonymous("MatMul")
    weight = b.init(base + "_quantized", q)
    b.init(base + "_scale", scale)
    zp = b.init(base + "_zero_point", np.zeros(q.shape[1], np.int8))
    scope = _scope(path)
    b.node("MatMulInteger", ["x", weight, "x_zp", zp], f"{scope}/MatMul_quant")
    if "/albert_layers.0/" in scope:  # the shared ALBERT layer is unrolled once per use
        unrolled = re.sub(r"/(attention|ffn|ffn_output)(/|$)", r"/\1_1\2", scope)
        b.node(
            "MatMulInteger",
            ["x", weight, "x_zp", zp],
            re.sub(r"/(\w+)$", r"/\1_1", unrolled) + "/MatMul_quant",
        )
    if linear.bias is not None:
        b.init(_dotted(f"{path}.bias"), linear.bias.detach().numpy())


def _embedding(b: _Builder, path: str, embedding: torch.nn.Embedding) -> None:
    w = embedding.weight.detach().numpy()
    scale = np.float32(np.abs(w).max() / 127 or 1.0)
    table = b.init(_dotted(f"{path}.weight") + "_quantized", np.round(w / scale).astype(np.int8))
    b.node("Gather", [table, "ids"], f"{_scope(path)}/Gather_quant")
    gathered = b.nodes[-1].output[0]
    zp = "shared_zero_point"  # zero points are deduplicated in the real export
    if not any(i.name == zp for i in b.inits):
        b.init(zp, np.int8(0))
    scale_name = b.init(_dotted(f"{path}.weight") + "_scale", scale)
    b.node("DequantizeLinear", [gathered, scale_name, zp], f"{_scope(path)}/Gather_quant_DequantizeLinear")


def _effective_weight(conv: torch.nn.Module) -> torch.Tensor:
    """The weight a module computes: g * v / |v| when weight-normed (its `.weight` may be stale)."""
    for hook in conv._forward_pre_hooks.values():
        if getattr(hook, "name", None) == "weight" and hasattr(hook, "dim"):
            return torch._weight_norm(conv.weight_v, conv.weight_g, hook.dim)
    return conv.weight


def _conv(b: _Builder, path: str, conv: torch.nn.Module) -> None:
    weight = _effective_weight(conv).detach().numpy()
    scope = _scope(path)
    bias = b.init(_dotted(f"{path}.bias"), conv.bias.detach().numpy()) if conv.bias is not None else ""
    if isinstance(conv, torch.nn.ConvTranspose1d) or path.endswith("conv_post"):
        folded = b.init(f"{scope.rsplit('/', 1)[0]}/Mul_{b.count}_output_0", weight.astype(np.float32))
        op = "ConvTranspose" if isinstance(conv, torch.nn.ConvTranspose1d) else "Conv"
        b.node(op, ["x", folded, bias], f"{scope}/{op}")
        return
    q, scale, zero = _uint8_per_tensor(weight)
    if hasattr(conv, "weight_g"):
        base = f"{scope.rsplit('/', 1)[0]}/Mul_{b.count}_output_0"  # named after the folding Mul
    else:
        base = _dotted(f"{path}.weight")
    b.init(base + "_scale", scale)
    zp = b.init(b.anonymous("zp"), zero)
    b.node("ConvInteger", ["x", b.init(base + "_quantized", q), "x_zp", zp], f"{scope}/Conv_quant")
