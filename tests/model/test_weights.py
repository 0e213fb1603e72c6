"""The int8-ONNX -> KModel converter, on a tiny model quantized into the real export's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tests.fake_export import _effective_weight, export_int8
from tests.tiny_model import REPO_ID, SUBMODULES, random_kmodel, tiny_config
from tts_api.model.weights import ConversionError, dequantize_onnx, fold_weight_norm


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    return random_kmodel(tiny_config(), tmp_path_factory.mktemp("orig")).eval()


@pytest.fixture(scope="module")
def converted(original: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Checkpoint converted from the fake int8 export, saved, and loaded back through KModel."""
    from kokoro import KModel

    root = tmp_path_factory.mktemp("converted")
    onnx_path = root / "fake.onnx"
    onnx.save(export_int8(original), onnx_path)
    expected = {k: v.shape for k, v in original.state_dict().items()}
    checkpoint = dequantize_onnx(onnx_path, expected)
    (root / "config.json").write_text(__import__("json").dumps(tiny_config()))
    torch.save(checkpoint, root / "model.pth")
    loaded = KModel(repo_id=REPO_ID, config=str(root / "config.json"), model=str(root / "model.pth")).eval()
    return {"checkpoint": checkpoint, "model": loaded, "onnx": onnx_path, "expected": expected}


def test_every_tensor_loads_through_kmodels_strict_path(converted: dict) -> None:
    loaded = converted["model"]
    for submodule, state in converted["checkpoint"].items():
        live = getattr(loaded, submodule).state_dict()
        assert set(state) <= set(live), f"{submodule}: keys KModel does not have"
        for key, tensor in state.items():
            assert torch.equal(live[key], tensor), f"{submodule}.{key} did not load as saved"


def test_checkpoint_covers_every_submodule(converted: dict) -> None:
    assert set(converted["checkpoint"]) == set(SUBMODULES)
    filled = sum(len(sd) for sd in converted["checkpoint"].values())
    not_in_onnx = [k for k in converted["expected"] if k.startswith("bert.pooler.") or ".norm." in k]
    assert filled == len(converted["expected"]) - len(not_in_onnx)


def test_weights_are_within_quantization_error(original: torch.nn.Module, converted: dict) -> None:
    loaded = converted["model"]
    checked = 0
    for (name, a), (_, b) in zip(original.named_modules(), loaded.named_modules(), strict=True):
        if (
            type(a).__name__ not in ("Conv1d", "ConvTranspose1d", "Linear", "Embedding")
            or name == "bert.pooler"
        ):
            continue  # the pooler is unused by KModel and absent from the export
        wa, wb = _effective_weight(a).detach(), _effective_weight(b).detach()
        # Half a quantization step: int8 symmetric steps are max|w| / 127, uint8 steps are smaller.
        assert torch.allclose(wa, wb, atol=float(wa.abs().max()) / 254 + 1e-6), name
        checked += 1
    assert checked > 50


def test_lstm_gates_are_reordered_back_to_torch_order(original: torch.nn.Module, converted: dict) -> None:
    x = torch.randn(1, 7, original.predictor.lstm.input_size)
    with torch.no_grad():
        want, _ = original.predictor.lstm(x)
        got, _ = converted["model"].predictor.lstm(x)
    # A wrong gate order gives a completely different output; int8 weights only a small error.
    assert torch.corrcoef(torch.stack([want.flatten(), got.flatten()]))[0, 1] > 0.99


def test_converted_model_speaks_like_the_original(original: torch.nn.Module, converted: dict) -> None:
    phonemes, style = "həlˈO wˈɜɹld", torch.randn(1, 256) * 0.1
    torch.manual_seed(0)
    want = original(phonemes, style, return_output=True)
    torch.manual_seed(0)
    got = converted["model"](phonemes, style, return_output=True)
    assert torch.equal(want.pred_dur, got.pred_dur)
    assert want.audio.shape == got.audio.shape
    assert np.isfinite(got.audio.numpy()).all()


def test_zero_norm_channels_fold_back_without_nan() -> None:
    weight = torch.randn(4, 3, 5)
    weight[1] = 0.0  # quantization zeroed this output channel
    g, v = fold_weight_norm(weight, torch.Size([4, 1, 1]))
    rebuilt = torch._weight_norm(v, g, 0)
    assert torch.isfinite(rebuilt).all()
    assert torch.allclose(rebuilt, weight, atol=1e-6)


def test_a_tensor_with_no_home_in_kmodel_is_rejected(converted: dict, tmp_path: Path) -> None:
    model = onnx.load(converted["onnx"])
    model.graph.initializer.append(
        onnx.numpy_helper.from_array(np.zeros(3, np.float32), "decoder.decoder.bogus")
    )
    onnx.save(model, tmp_path / "extra.onnx")
    with pytest.raises(ConversionError, match="bogus"):
        dequantize_onnx(tmp_path / "extra.onnx", converted["expected"])


def test_a_missing_weight_is_reported(converted: dict, tmp_path: Path) -> None:
    model = onnx.load(converted["onnx"])
    keep = [i for i in model.graph.initializer if i.name != "decoder.decoder.generator.conv_post.bias"]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    onnx.save(model, tmp_path / "missing.onnx")
    with pytest.raises(ConversionError, match=r"conv_post\.bias"):
        dequantize_onnx(tmp_path / "missing.onnx", converted["expected"])


def test_a_shape_mismatch_is_reported(converted: dict) -> None:
    expected = dict(converted["expected"])
    expected["bert_encoder.weight"] = torch.Size([1, 1])
    with pytest.raises(ConversionError, match=r"bert_encoder\.weight"):
        dequantize_onnx(converted["onnx"], expected)
