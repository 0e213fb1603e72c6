"""Dequantize the published Kokoro-82M int8 ONNX into a fp32 `KModel` state dict.

The kokoro-onnx export (`kokoro-v1.0.int8.onnx`) quantized every weight of the model:
- ConvInteger weights: uint8, one scale and zero point per tensor;
- MatMulInteger weights (Linear layers): int8, one scale per output channel, zero point 0;
- embeddings: int8 Gather + DequantizeLinear, per tensor;
- LSTMs: DynamicQuantizeLSTM with int8 W/R, one scale and zero point per direction;
everything else (biases, norms, Snake alphas, ConvTranspose, conv_post) stayed float.
Weight norm was folded into the conv weights at export; we fold it back (`weight_v = W`,
`weight_g = |W|`). Module paths come from the ONNX node names and every produced tensor is checked
against the name and shape a real `KModel` expects, so a mapping slip fails loudly here instead of
loading silently as random weights (KModel falls back to `strict=False`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import torch
from onnx import numpy_helper

__all__ = ["SUBMODULES", "ConversionError", "dequantize_onnx", "fold_weight_norm"]

# The top-level attributes of KModel whose state dicts make up a `.pth` checkpoint.
SUBMODULES = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")

# Parameters the ONNX graph does not carry, and why leaving them at their init is exact:
# the ALBERT pooler is unused by KModel.forward; AdaIN's InstanceNorm1d(affine=True) inits to
# weight 1 / bias 0, which is the plain instance norm the ONNX graph computes.
_NOT_IN_ONNX = re.compile(r"^bert\.pooler\.|\.norm\.(weight|bias)$")

# ONNX LSTM gates are stacked i, o, f, c; torch stacks i, f, g(=c), o.
_LSTM_GATE_ORDER = [0, 2, 3, 1]

_Array = npt.NDArray[np.float32]


class ConversionError(RuntimeError):
    """Raised when the ONNX graph does not map onto the Kokoro-82M KModel layout."""


def _module_path(dotted: str) -> str:
    """Translate an ONNX-side dotted path (`decoder.decoder.decode.0.conv1`) to a KModel path."""
    for onnx_prefix, kmodel_prefix in (
        ("encoder.bert_encoder", "bert_encoder"),
        ("encoder.bert", "bert"),
        ("encoder.text_encoder", "text_encoder"),
        ("encoder.predictor", "predictor"),
        ("encoder", "predictor"),  # F0.k, N.k and shared are scoped directly under /encoder
        ("decoder.decoder", "decoder"),
    ):
        if dotted == onnx_prefix or dotted.startswith(onnx_prefix + "."):
            return kmodel_prefix + dotted[len(onnx_prefix) :]
    raise ConversionError(f"no KModel module for ONNX name {dotted!r}")


def _node_module(node_name: str) -> str:
    """KModel path of the module a node belongs to, from its scope (`/decoder/decoder/encode/conv1/Conv`)."""
    scopes = node_name.strip("/").split("/")[:-1]  # the last part is the op itself
    # Unrolled copies of the shared ALBERT layer are scoped `attention_3/query_1`.
    scopes = [re.sub(r"_\d+$", "", s) for s in scopes]
    # A child's scope repeats its parent's: `cnn.0/cnn.0.0` is the module `cnn.0.0`.
    kept = [s for s, child in zip(scopes, [*scopes[1:], ""], strict=True) if not child.startswith(s + ".")]
    return _module_path(".".join(kept))


def fold_weight_norm(weight: torch.Tensor, g_shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (weight_g, weight_v) that weight-norm back to exactly `weight`.

    Quantization zeroed some output channels entirely; `v = 0` would make `v / |v|` NaN, so those
    rows get `v = 1` and keep `g = 0`, which still yields a zero weight.
    """
    dims = [d for d, n in enumerate(g_shape) if n == 1]
    g = torch.linalg.vector_norm(weight, dim=dims, keepdim=True)
    v = weight.clone()
    v[(g == 0).expand_as(v)] = 1.0
    return g, v


class _Graph:
    """The initializers of the ONNX graph and the nodes that consume each of them."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        self.nodes = list(model.graph.node)
        for node in self.nodes:
            for name in node.input:
                self.consumers[name].append(node)

    def f32(self, name: str) -> _Array:
        return np.asarray(self.arrays[name], dtype=np.float32)

    def dequantized(self, weight: str, scale: str, zero_point: str) -> _Array:
        q = self.arrays[weight].astype(np.float32)
        zp = self.f32(zero_point) if zero_point else np.float32(0)
        return (q - zp) * self.f32(scale)


def _quantized_tensors(graph: _Graph) -> Iterable[tuple[str, _Array]]:
    """Yield (KModel parameter path, fp32 value) for every quantized weight in the graph."""
    seen: set[str] = set()
    for node in graph.nodes:
        op, inputs = node.op_type, list(node.input)
        if op == "ConvInteger":
            weight = inputs[1]
            if weight in seen:
                continue
            seen.add(weight)
            scale = weight.removesuffix("_quantized") + "_scale"
            yield _node_module(node.name) + ".weight", graph.dequantized(weight, scale, inputs[3])
        elif op == "MatMulInteger":
            weight = inputs[1]
            if weight in seen:
                continue
            seen.add(weight)
            scale = weight.removesuffix("_quantized") + "_scale"
            w = graph.dequantized(weight, scale, inputs[3])  # [in, out], per-output-channel scale
            yield _node_module(node.name) + ".weight", w.T
        elif op == "DynamicQuantizeLSTM":
            yield from _lstm_tensors(graph, node)


def _embedding_weights(graph: _Graph) -> Iterable[tuple[str, _Array]]:
    """Embedding tables: an int8 Gather whose output a DequantizeLinear scales per tensor."""
    for node in graph.nodes:
        table = node.input[0] if node.op_type == "Gather" else ""
        if not table.endswith(".weight_quantized"):
            continue
        (dequant,) = (n for n in graph.consumers[node.output[0]] if n.op_type == "DequantizeLinear")
        _, scale, zero_point = dequant.input
        yield _module_path(table.removesuffix("_quantized")), graph.dequantized(table, scale, zero_point)


def _lstm_tensors(graph: _Graph, node: onnx.NodeProto) -> Iterable[tuple[str, _Array]]:
    _, w, r, b, _, _, _, _, w_scale, w_zp, r_scale, r_zp = node.input
    module = _node_module(node.name)
    weights = {"ih": (w, w_scale, w_zp), "hh": (r, r_scale, r_zp)}
    bias = graph.f32(b)  # [directions, 8H] = [Wb | Rb]
    for d, suffix in enumerate(("", "_reverse")):
        for kind, (q, scale, zp) in weights.items():
            per_dir = (graph.arrays[q][d].astype(np.float32) - graph.f32(zp)[d]) * graph.f32(scale)[d]
            yield f"{module}.weight_{kind}_l0{suffix}", _reorder_gates(per_dir.T)
        wb, rb = np.split(bias[d], 2)
        yield f"{module}.bias_ih_l0{suffix}", _reorder_gates(wb)
        yield f"{module}.bias_hh_l0{suffix}", _reorder_gates(rb)


def _reorder_gates(t: _Array) -> _Array:
    return np.concatenate([np.split(t, 4, axis=0)[k] for k in _LSTM_GATE_ORDER], axis=0)


def _float_tensors(graph: _Graph) -> Iterable[tuple[str, _Array]]:
    """Yield the weights the export kept in float."""
    for name, array in graph.arrays.items():
        if array.dtype != np.float32:
            continue
        if name.startswith(("encoder.", "decoder.")) and not name.endswith(("_scale", "_zero_point")):
            yield _module_path(name), array  # original parameter names survived the export
    for node in graph.nodes:
        # Folded weight-norm products feeding float convs (ups.k, pool, conv_post): name by the node.
        if node.op_type in ("Conv", "ConvTranspose") and len(node.input) == 3:
            weight = node.input[1]
            if weight in graph.arrays and not weight.startswith(("encoder.", "decoder.")):
                yield _node_module(node.name) + ".weight", graph.f32(weight)
        # m_source.l_linear is a plain MatMul + Add on a float [in, out] weight.
        elif node.op_type == "MatMul" and node.input[1] in graph.arrays:
            yield _node_module(node.name) + ".weight", graph.f32(node.input[1]).T


def dequantize_onnx(
    onnx_path: Path,
    expected: Mapping[str, torch.Size],
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, dict[str, torch.Tensor]]:
    """Return a KModel checkpoint `{submodule: state_dict}` built from the int8 ONNX.

    `expected` is a real KModel's `state_dict()` shapes; every tensor must land on one of its keys
    with the right shape, and every key must be filled (except the documented `_NOT_IN_ONNX`).
    """
    progress(f"reading {onnx_path.name}")
    graph = _Graph(onnx.load(str(onnx_path)))
    flat: dict[str, torch.Tensor] = {}
    sources = (_quantized_tensors(graph), _embedding_weights(graph), _float_tensors(graph))
    for path, array in (item for source in sources for item in source):
        _place(flat, path, torch.from_numpy(np.array(array, dtype=np.float32)), expected)
    missing = sorted(k for k in expected if k not in flat and not _NOT_IN_ONNX.search(k))
    if missing:
        raise ConversionError(f"{len(missing)} KModel tensors have no source in the ONNX, e.g. {missing[:5]}")
    progress(f"mapped {len(flat)} of {len(expected)} tensors")
    checkpoint: dict[str, dict[str, torch.Tensor]] = {name: {} for name in SUBMODULES}
    for path, tensor in flat.items():
        submodule, _, key = path.partition(".")
        checkpoint[submodule][key] = tensor
    return checkpoint


def _place(
    flat: dict[str, torch.Tensor], path: str, tensor: torch.Tensor, expected: Mapping[str, torch.Size]
) -> None:
    """Store one tensor under its KModel key, folding weight norm back where the module has it."""
    if path.endswith(".weight") and path + "_g" not in expected and path + "_v" in expected:
        raise ConversionError(f"{path}: weight-normed module without weight_g")
    if path.endswith(".weight") and path + "_g" in expected:
        g, v = fold_weight_norm(tensor, expected[path + "_g"])
        targets = {path + "_g": g, path + "_v": v}
    else:
        targets = {path: tensor}
    for key, value in targets.items():
        if key not in expected:
            # Snake alphas, STFT bases and other graph constants the torch model computes itself.
            if _is_graph_constant(key):
                continue
            raise ConversionError(f"ONNX tensor maps to {key!r}, which KModel does not have")
        if value.shape != expected[key]:
            raise ConversionError(f"{key}: ONNX shape {tuple(value.shape)} != KModel {tuple(expected[key])}")
        if key in flat and not torch.equal(flat[key], value):
            raise ConversionError(f"{key}: two different ONNX tensors map to it")
        flat[key] = value


def _is_graph_constant(key: str) -> bool:
    return bool(re.search(r"\.(stft|istft)\.|inverse_basis|window_sum", key))
