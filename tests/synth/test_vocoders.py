"""The decoder engines on the tiny model: the same audio for the same seed, and a stop mid-chunk."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tts_api.model.export import MIN_SNR_DB, snr_db
from tts_api.model.kmodel import load_model, load_plain_model
from tts_api.model.layout import ModelDir
from tts_api.synth import vocoders
from tts_api.synth.engine import KokoroEngine
from tts_api.synth.speech import Interrupted, speak_all
from tts_api.synth.vocoders import SpeechModel, TorchVocoder, bf16_unavailable, choose_vocoder
from tts_api.voices import VoiceCatalogue
from tts_api.worker.watch import ChunkWatch

# The tiny model gave 16.9 dB on an AMX Xeon (bf16 rounding differs by CPU); the real weights ~26 dB.
BF16_MIN_SNR_DB = 10.0

NO_BF16 = bf16_unavailable(torch.device("cpu"))
needs_bf16 = pytest.mark.skipif(NO_BF16 is not None, reason=f"bf16 falls back to torch here: {NO_BF16}")
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")),
]

# One chunk of about 360 weighted characters: seconds of work, so a stop can land inside it.
LONG_CHUNK = (
    "The lighthouse keeper counted every step on the way up and every step on the way down and "
    "wrote the numbers in a book that nobody else ever read although he kept it on the table by the "
    "door where any visitor could see it and wonder what it was for and why it mattered so much"
)


@pytest.fixture(scope="module")
def engines(tiny_onnx_model_dir: Path) -> dict[str, KokoroEngine]:
    names = ("torch", "onnx", "bf16")
    return {name: KokoroEngine(tiny_onnx_model_dir, "cpu", engine=name) for name in names}  # type: ignore[misc]


def voice(engine: KokoroEngine):  # type: ignore[no-untyped-def]
    return VoiceCatalogue.from_dir(engine.files.voices).resolve("af_heart")


def test_each_engine_is_what_was_asked_for(engines: dict[str, KokoroEngine]) -> None:
    assert {name: engine.name for name, engine in engines.items()} == {
        "torch": "torch",
        "onnx": "onnx",
        "bf16": "bf16" if NO_BF16 is None else "torch",
    }


def test_a_torch_without_onednn_is_not_offered_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    reason = bf16_unavailable(torch.device("cpu"))
    assert reason is not None and "bfloat16" in reason


def test_bf16_falls_back_to_torch_with_a_log_line_where_it_would_not_pay(
    tiny_onnx_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    files = ModelDir(tiny_onnx_model_dir)
    model = load_model(files, "cpu")
    monkeypatch.setattr(vocoders, "bf16_unavailable", lambda device: "no bfloat16 kernels on this CPU")
    with caplog.at_level(logging.WARNING, logger=vocoders.__name__):
        assert choose_vocoder("bf16", model, files, 1).name == "torch"
    assert "bf16 decoder is not available (no bfloat16 kernels on this CPU); using torch" in caplog.text
    monkeypatch.setattr(vocoders, "bf16_unavailable", lambda device: None)
    assert choose_vocoder("bf16", model, files, 1).name == "bf16"


def test_the_engines_say_the_same_thing_for_the_same_seed(engines: dict[str, KokoroEngine]) -> None:
    text = "Both engines, one seed."
    audio = {
        name: np.concatenate([c.audio for c in speak_all(engine, text, voice(engine), seed=11)])
        for name, engine in engines.items()
    }
    assert len(audio["torch"]) == len(audio["onnx"])
    assert snr_db(audio["torch"], audio["onnx"]) >= MIN_SNR_DB
    again = np.concatenate(
        [c.audio for c in speak_all(engines["onnx"], text, voice(engines["onnx"]), seed=11)]
    )
    assert np.array_equal(again, audio["onnx"])


@pytest.mark.parametrize("device", DEVICES)
def test_a_seed_gives_kokoros_own_audio_with_the_noise_drawn_where_the_model_runs(
    tiny_model_dir: Path, device: str
) -> None:
    """A request's generator lives on its model's device (on a GPU, drawing on the CPU was half the time),
    and with seed s the draws are those of kokoro's own forward after torch.manual_seed(s) there."""
    files = ModelDir(tiny_model_dir)
    kmodel = load_model(files, device)
    ours = SpeechModel(kmodel, TorchVocoder(kmodel), trim=None)
    generator = ours.generator(7)
    assert generator.device.type == device
    phonemes = "ðə kwˈɪk bɹˈWn fˈɑks"
    ref_s = torch.load(files.voice("af_heart"), weights_only=True)[len(phonemes) - 1]
    audio = ours(phonemes, ref_s, 1.0, generator).audio.numpy()
    plain = load_plain_model(files, device)
    kokoro = {}
    for seed in (7, 8):
        torch.manual_seed(seed)
        kokoro[seed] = plain(phonemes, ref_s, 1.0, return_output=True).audio.cpu().numpy()
    assert snr_db(kokoro[7], audio) >= MIN_SNR_DB
    assert snr_db(kokoro[8], audio) < MIN_SNR_DB / 4  # another seed's noise is not close


@needs_bf16
def test_bf16_says_what_torch_says_in_fewer_bits(engines: dict[str, KokoroEngine]) -> None:
    """bfloat16 keeps 8 bits of mantissa: the audio is torch's to within rounding, not bit for bit."""
    text = "Both engines, one seed."
    audio = {
        name: np.concatenate([c.audio for c in speak_all(engines[name], text, voice(engines[name]), seed=11)])
        for name in ("torch", "bf16")
    }
    assert audio["bf16"].dtype == np.float32
    assert len(audio["bf16"]) == len(audio["torch"])
    ratio_db = snr_db(audio["torch"], audio["bf16"])
    print(f"bf16 against torch: {ratio_db:.1f} dB")
    assert BF16_MIN_SNR_DB <= ratio_db < 100  # close, and really computed in fewer bits


@pytest.mark.parametrize("name", ["torch", "onnx", pytest.param("bf16", marks=needs_bf16)])
def test_an_interrupt_stops_the_chunk_in_flight(engines: dict[str, KokoroEngine], name: str) -> None:
    engine = engines[name]
    started = time.perf_counter()
    list(speak_all(engine, LONG_CHUNK, voice(engine), seed=1))
    whole_s = time.perf_counter() - started
    engine.reset()
    stopper = threading.Timer(whole_s / 4, engine.interrupt)
    started = time.perf_counter()
    stopper.start()
    with pytest.raises(Interrupted):
        list(speak_all(engine, LONG_CHUNK, voice(engine), seed=1))
    stopped_after_s = time.perf_counter() - started
    stopper.join()
    assert stopped_after_s < whole_s  # it did not run to the end of the chunk
    engine.reset()
    assert len(list(speak_all(engine, "Still works.", voice(engine), seed=1))) == 1


class _Vocoder:
    """Records whether the decoder was reached; interrupts the model from inside the front's first layer."""

    name = "spy"

    def __init__(self) -> None:
        self.decoded = 0

    def decode(self, *args: object) -> torch.Tensor:
        self.decoded += 1
        return torch.zeros(1)

    def interrupt(self) -> None:
        pass

    def reset(self) -> None:
        pass


def test_an_interrupt_during_the_front_stops_before_the_vocoder(tiny_model_dir: Path) -> None:
    """The front (ALBERT, the predictor) is a good part of a short chunk on a CPU: a barge-in that lands
    there stops at its next layer, not once the vocoder starts."""
    files = ModelDir(tiny_model_dir)
    kmodel = load_model(files, "cpu")
    spy = _Vocoder()
    model = SpeechModel(kmodel, spy, trim=None)  # type: ignore[arg-type]
    layers: list[str] = []

    def interrupt_on_the_third(module: torch.nn.Module, args: object) -> None:
        layers.append(type(module).__name__)
        if len(layers) == 3:
            model.interrupt()

    hooks = [m.register_forward_pre_hook(interrupt_on_the_third) for m in kmodel.bert.modules()]
    phonemes = "ðə kwˈɪk bɹˈWn fˈɑks"
    ref_s = torch.load(files.voice("af_heart"), weights_only=True)[len(phonemes) - 1]
    with pytest.raises(Interrupted):
        model(phonemes, ref_s, 1.0, model.generator(1))
    assert spy.decoded == 0
    for hook in hooks:
        hook.remove()
    model.reset()
    model(phonemes, ref_s, 1.0, model.generator(1))
    assert spy.decoded == 1


class _Board:
    def __init__(self) -> None:
        self.stopped: set[str] = set()

    def poll(self, keys: list[str]):  # type: ignore[no-untyped-def]
        from tts_api.ipc.streams import StreamState

        return {k: StreamState("cancelled" if k in self.stopped else "open") for k in keys}


def test_the_chunk_watch_interrupts_only_the_chunk_whose_stream_stopped() -> None:
    board, calls = _Board(), []
    watch = ChunkWatch(board, lambda: calls.append("interrupt"), lambda: calls.append("reset"))  # type: ignore[arg-type]
    with watch.chunk("a"):
        time.sleep(0.2)
    assert calls == ["reset"]
    board.stopped.add("b")
    with watch.chunk("b"):
        deadline = time.monotonic() + 5
        while "interrupt" not in calls and time.monotonic() < deadline:
            time.sleep(0.01)
    assert calls == ["reset", "reset", "interrupt"]
    with watch.chunk("c"):
        time.sleep(0.2)
    assert calls[-1] == "reset" and calls.count("interrupt") == 1
