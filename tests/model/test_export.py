"""The ONNX export of the decoder on the tiny model: verified against torch, cached, chosen, or refused.

The tiny model has random weights, so what PocketSphinx hears is not compared here (the real-weights
build does that); the sample-level checks are the same.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from kokoro import KModel

from tts_api.model import export as export_module
from tts_api.model.assets import export_engine
from tts_api.model.export import MIN_SNR_DB, ensure_export, export_path, verified_export
from tts_api.model.kmodel import load_model
from tts_api.model.layout import ModelDir
from tts_api.synth import vocoders
from tts_api.synth.race import RACE_PAIRS, Race
from tts_api.synth.vocoders import bf16_unavailable, choose_vocoder


def test_the_export_is_verified_against_torch_and_recorded(tiny_onnx_model_dir: Path) -> None:
    files = ModelDir(tiny_onnx_model_dir)
    record = verified_export(files)
    assert record is not None and record["verified"] and export_path(files).stat().st_size > 0
    assert len(record["checks"]) == 3
    for check in record["checks"]:
        assert check["snr_db"] >= MIN_SNR_DB and check["logspec_corr"] >= 0.999 and check["deterministic"]
        assert check["audio_s"] > 1
    assert record["largest_sample_difference"] == max(c["max_diff"] for c in record["checks"])


def test_the_export_is_readable_like_the_files_beside_it(tiny_onnx_model_dir: Path) -> None:
    """Not mkstemp's 0600: the image's server runs as another user than the build that exported it."""
    files = ModelDir(tiny_onnx_model_dir)
    assert export_path(files).stat().st_mode & 0o777 == files.config.stat().st_mode & 0o777


def test_a_current_export_is_not_made_again(tiny_onnx_model_dir: Path) -> None:
    files = ModelDir(tiny_onnx_model_dir)
    before = export_path(files).stat().st_mtime_ns
    ensure_export(files, lambda message: None, listen=False)
    assert export_path(files).stat().st_mtime_ns == before


def test_auto_picks_the_verified_export_on_a_cpu_without_bf16(
    tiny_onnx_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    files = ModelDir(tiny_onnx_model_dir)
    model = load_model(files, "cpu")
    monkeypatch.setattr(vocoders, "bf16_unavailable", lambda device: "no bfloat16 kernels on this CPU")
    with caplog.at_level(logging.INFO, logger=vocoders.__name__):
        assert choose_vocoder("auto", model, files, 1).name == "onnx"
    assert "timed the decoders" not in caplog.text
    assert choose_vocoder("torch", model, files, 1).name == "torch"


def _conv_hooks(model: KModel) -> int:
    return sum(len(m._forward_pre_hooks) for m in model.decoder.modules())


@pytest.mark.parametrize("winner", ["onnx", "bf16"])
def test_auto_keeps_the_decoder_the_race_kept_and_says_so(
    tiny_onnx_model_dir: Path, winner: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    files = ModelDir(tiny_onnx_model_dir)
    model = load_model(files, "cpu")
    hooks = _conv_hooks(model)
    monkeypatch.setattr(vocoders, "bf16_unavailable", lambda device: None)

    def rigged(chunks, incumbent, challenger):  # type: ignore[no-untyped-def]
        assert (incumbent.name, challenger.name) == ("onnx", "bf16") and len(chunks) == RACE_PAIRS
        return Race(incumbent if winner == "onnx" else challenger, {"onnx": 1.25, "bf16": 0.5}, 0.4)

    monkeypatch.setattr(vocoders, "faster", rigged)
    with caplog.at_level(logging.INFO, logger=vocoders.__name__):
        assert choose_vocoder("auto", model, files, 1).name == winner
    assert f"onnx 1.25 s, bf16 0.50 s per chunk (bf16 / onnx, median: 0.40); using {winner}" in caplog.text
    # The decoder not kept leaves no stop checks behind on the model's convolutions; the one kept has its own.
    assert _conv_hooks(model) == hooks if winner == "onnx" else _conv_hooks(model) > hooks


@pytest.mark.skipif(
    bf16_unavailable(torch.device("cpu")) is not None, reason="no bfloat16 kernels on this CPU"
)
def test_auto_times_both_decoders_where_bf16_can_run(
    tiny_onnx_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = ModelDir(tiny_onnx_model_dir)
    with caplog.at_level(logging.INFO, logger=vocoders.__name__):
        kept = choose_vocoder("auto", load_model(files, "cpu"), files, 1).name
    assert kept in ("onnx", "bf16")
    assert f"engine: auto timed the decoders on {RACE_PAIRS} chunks of ~1.5 s of audio" in caplog.text
    assert caplog.text.rstrip().endswith(f"using {kept}")


def test_without_an_export_the_engine_is_torch_and_says_why_once(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = ModelDir(tiny_model_dir)
    with caplog.at_level(logging.WARNING):
        vocoder = choose_vocoder("auto", load_model(files, "cpu"), files, 1)
    assert vocoder.name == "torch"
    lines = [r.getMessage() for r in caplog.records if "onnx decoder is not available" in r.getMessage()]
    assert len(lines) == 1 and "make model" in lines[0]


def test_a_damaged_export_falls_back_to_torch(
    tiny_onnx_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = tmp_path / "model"
    shutil.copytree(tiny_onnx_model_dir, damaged)
    export_path(ModelDir(damaged)).write_bytes(b"not an onnx file")
    files = ModelDir(damaged)
    with caplog.at_level(logging.WARNING):
        vocoder = choose_vocoder("onnx", load_model(files, "cpu"), files, 1)
    assert vocoder.name == "torch"
    assert any("failed to load" in r.getMessage() for r in caplog.records)


def test_an_export_that_does_not_verify_is_not_kept(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)

    def broken_export(module: torch.nn.Module, args: object, path: str, **kwargs: object) -> None:
        Path(path).write_bytes(b"\x08\x07garbage")  # what a broken exporter might leave

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    messages: list[str] = []
    assert not export_engine(model_dir, messages.append)
    assert any("not kept" in m and "torch" in m for m in messages)
    assert not export_path(ModelDir(model_dir)).exists()
    assert not list(model_dir.glob(".decoder-*")), "no temporary file is left behind"


def test_a_record_from_another_recipe_is_not_trusted(tiny_onnx_model_dir: Path, tmp_path: Path) -> None:
    stale = tmp_path / "model"
    shutil.copytree(tiny_onnx_model_dir, stale)
    record_path = stale / "decoder.onnx.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "recipe": export_module.EXPORT_RECIPE - 1}))
    assert verified_export(ModelDir(stale)) is None
