"""Edge silence is never synthesized, on both engines: the tiny model given Kokoro-like quiet padding.

The tiny model's durations are pinned and its predicted energy sits near 0 (loud), so by itself it has no
silence to cut. These tests give every chunk PAD_LEAD quiet frames before its speech (the leading pad
token) and PAD_TAIL after (the last token), as the real model does, and check what the decoder makes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tts_api.model.edges import LOUD_ENERGY
from tts_api.model.export import MIN_SNR_DB, snr_db
from tts_api.model.vocoder import DecoderInputs
from tts_api.synth import vocoders
from tts_api.synth.engine import KokoroEngine
from tts_api.synth.speech import SpeechChunk, speak_all
from tts_api.synth.vocoders import EDGE_TRIM
from tts_api.voices import VoiceBlend

PAD_LEAD, PAD_TAIL = 20, 24  # frames of 25 ms: more than the margins kept
QUIET = LOUD_ENERGY - 3
VOICE = VoiceBlend((("af_heart", 1.0),))
SAMPLES_PER_FRAME = 600
TEXT = "Trim the quiet edges."


def _padded(front: Callable[..., DecoderInputs]) -> Callable[..., DecoderInputs]:
    def padded_front(*args: object) -> DecoderInputs:
        inputs = front(*args)
        asr, f0, energy = inputs.asr, inputs.f0, inputs.energy
        durations = inputs.pred_dur.clone()
        durations[0] += PAD_LEAD
        durations[-1] += PAD_TAIL
        return DecoderInputs(
            asr=torch.cat(
                [asr[..., :1].repeat(1, 1, PAD_LEAD), asr, asr[..., -1:].repeat(1, 1, PAD_TAIL)], -1
            ),
            f0=torch.cat([torch.zeros(1, 2 * PAD_LEAD), f0, torch.zeros(1, 2 * PAD_TAIL)], -1),
            energy=torch.cat(
                [torch.full((1, 2 * PAD_LEAD), QUIET), energy, torch.full((1, 2 * PAD_TAIL), QUIET)], -1
            ),
            style=inputs.style,
            pred_dur=durations,
        )

    return padded_front


@pytest.fixture(scope="module")
def engines(tiny_onnx_model_dir: Path) -> dict[tuple[str, bool], KokoroEngine]:
    return {
        (name, trim): KokoroEngine(tiny_onnx_model_dir, "cpu", engine=name, trim_silence=trim)  # type: ignore[arg-type]
        for name in ("torch", "onnx")
        for trim in (True, False)
    }


@pytest.fixture
def padded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(vocoders, "front", _padded(vocoders.front))
    yield


def speak(engine: KokoroEngine, text: str = TEXT, seed: int = 3) -> list[SpeechChunk]:
    return list(speak_all(engine, text, VOICE, seed=seed))


def test_the_tiny_model_alone_has_nothing_to_trim(
    engines: dict[tuple[str, bool], KokoroEngine], tiny_expected: Callable[..., int]
) -> None:
    trimmed, untrimmed = speak(engines["onnx", True]), speak(engines["onnx", False])
    assert sum(len(c.audio) for c in trimmed) == tiny_expected(TEXT)
    assert np.array_equal(
        np.concatenate([c.audio for c in trimmed]), np.concatenate([c.audio for c in untrimmed])
    )


@pytest.mark.usefixtures("padded")
@pytest.mark.parametrize("name", ["torch", "onnx"])
def test_the_decoder_makes_only_the_speech_and_the_margins(
    engines: dict[tuple[str, bool], KokoroEngine], tiny_expected: Callable[..., int], name: str
) -> None:
    (trimmed,), (untrimmed,) = speak(engines[name, True]), speak(engines[name, False])
    speech = tiny_expected(TEXT)  # the tiny model is loud in every frame: the seams cut nothing here
    assert len(untrimmed.audio) == speech + (PAD_LEAD + PAD_TAIL) * SAMPLES_PER_FRAME
    assert len(trimmed.audio) == speech + (EDGE_TRIM.lead_frames + EDGE_TRIM.tail_frames) * SAMPLES_PER_FRAME
    assert trimmed.frames == untrimmed.frames - (PAD_LEAD - EDGE_TRIM.lead_frames) - (
        PAD_TAIL - EDGE_TRIM.tail_frames
    )


@pytest.mark.usefixtures("padded")
@pytest.mark.parametrize("name", ["torch", "onnx"])
def test_word_times_move_with_the_cut_lead(engines: dict[tuple[str, bool], KokoroEngine], name: str) -> None:
    (trimmed,), (untrimmed,) = speak(engines[name, True]), speak(engines[name, False])
    cut_s = (PAD_LEAD - EDGE_TRIM.lead_frames) / 40
    assert [w.word for w in trimmed.words] == ["Trim", "the", "quiet", "edges"]
    assert [w.word for w in trimmed.words] == [w.word for w in untrimmed.words]
    for kept, whole in zip(trimmed.words, untrimmed.words, strict=True):
        assert kept.start == pytest.approx(whole.start - cut_s, abs=1e-9)
        assert kept.end == pytest.approx(whole.end - cut_s, abs=1e-9)
    assert trimmed.words[-1].end <= len(trimmed.audio) / 24_000


@pytest.mark.usefixtures("padded")
def test_both_engines_make_the_same_trimmed_audio_for_a_seed(
    engines: dict[tuple[str, bool], KokoroEngine],
) -> None:
    text = "Both engines trim alike. Then a second chunk follows it."
    audio = {
        name: np.concatenate([c.audio for c in speak(engines[name, True], text, seed=11)])
        for name in ("torch", "onnx")
    }
    assert len(audio["torch"]) == len(audio["onnx"])
    assert snr_db(audio["torch"], audio["onnx"]) >= MIN_SNR_DB
