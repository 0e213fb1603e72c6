"""The synthesis engine on the tiny model: voices, blends, chunks, and a missing G2P model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from tts_api.model import g2p as g2p_module
from tts_api.model.g2p import G2PUnavailable
from tts_api.synth.engine import KokoroEngine
from tts_api.synth.speech import RenderJob, render_each, speak_all
from tts_api.text.planning import ChunkCursor, plan_chunks
from tts_api.text.segmentation import segment
from tts_api.voices import VoiceBlend, VoiceCatalogue


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> KokoroEngine:
    return KokoroEngine(tiny_model_dir, "cpu")


def test_weight_norm_is_folded_away_at_load(engine: KokoroEngine) -> None:
    assert not any(hasattr(m, "weight_g") for m in engine.model.model.modules())


def test_a_blend_is_the_weighted_mean_of_its_voices(engine: KokoroEngine, tiny_model_dir: Path) -> None:
    catalogue = VoiceCatalogue.from_dir(tiny_model_dir / "voices")
    bella, sky = (
        torch.load(tiny_model_dir / f"voices/{v}.pt", weights_only=True) for v in ("af_bella", "af_sky")
    )
    mixed = engine.voice(catalogue.resolve("af_bella(3)+af_sky(1)"))
    assert torch.allclose(mixed, 0.75 * bella + 0.25 * sky)
    assert engine.voice(catalogue.resolve("af_bella(6)+af_sky(2)")) is mixed  # cached by canonical key


def test_synthesis_follows_the_plan_with_exact_gaps(
    engine: KokoroEngine, tiny_expected: Callable[..., int]
) -> None:
    text = "One short sentence.\n\nA new paragraph [pause:0.5s] after a pause."
    chunks = list(speak_all(engine, text, VoiceBlend((("af_heart", 1.0),))))
    plan = plan_chunks(text)
    assert [c.graphemes for c in chunks] == [c.text for c in plan]
    assert sum(len(c.audio) for c in chunks) == tiny_expected(text)
    pause = chunks[2].audio
    assert len(pause) == round(0.5 * 24_000) and not pause.any()  # exact silence, no model call
    for chunk in chunks:
        assert chunk.audio.dtype == np.float32 and np.isfinite(chunk.audio).all()


def test_words_are_timed_in_order_inside_the_audio(engine: KokoroEngine) -> None:
    text = "Hello **world**, meet the engine.\n\nIt times every word."
    chunks = list(speak_all(engine, text, VoiceBlend((("af_heart", 1.0),))))
    words = [w for c in chunks for w in c.words]
    assert [w.word for w in words] == [
        "Hello",
        "world",
        "meet",
        "the",
        "engine",
        "It",
        "times",
        "every",
        "word",
    ]
    assert all(text[w.char_start : w.char_end] == w.word for w in words)
    total_s = sum(len(c.audio) for c in chunks) / 24_000
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(0 <= w.start <= w.end <= total_s for w in words)


def test_a_missing_spacy_model_is_explained_not_downloaded(
    engine: KokoroEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(g2p_module.SPACY_ALIASES, "en_core_web_sm", "en_core_web_sm_not_installed")
    with pytest.raises(G2PUnavailable, match="pip install en-core-web-sm-not-installed"):
        engine.pipeline("b")


def test_a_batched_step_gives_each_utterance_what_it_gets_alone(tiny_model_dir: Path) -> None:
    """Three utterances of different lengths, voices and speeds: synthesized in one batched pass, each chunk
    has the durations (so the word timings) it has alone, the same length, and its audio within rounding
    (the LSTMs round differently in a batch; the sine source adds that up over the chunk)."""
    engine = KokoroEngine(tiny_model_dir, "cpu", batch=3)
    cases = [
        ("Hi.", "af_bella", 1.0),
        ("The quick brown fox jumps over the lazy dog, twice.", "af_sky", 1.2),
        ("A middle one, of some length.", "af_bella", 0.8),
    ]

    def jobs() -> list[RenderJob]:
        made = []
        for text, voice, speed in cases:
            utterance = engine.utterance(
                ChunkCursor(segment(text)), VoiceBlend(((voice, 1.0),)), speed=speed, lang_code="a", seed=7
            )
            job = utterance.prepare(360)
            assert isinstance(job, RenderJob)
            made.append(job)
        return made

    alone = [list(pieces) for pieces in render_each(jobs())]
    passes: list[int] = []
    model_batch = engine.model.batch
    engine.model.batch = lambda pieces: passes.append(len(pieces)) or model_batch(pieces)  # type: ignore[method-assign]
    batched = [list(pieces) for pieces in engine.render_batch(jobs())]
    assert passes == [3]  # one pass for all three
    for (want,), (got,) in zip(alone, batched, strict=True):
        assert got.frames == want.frames and got.phonemes == want.phonemes
        assert [(t.start_ts, t.end_ts) for t in got.tokens] == [(t.start_ts, t.end_ts) for t in want.tokens]
        assert got.audio.shape == want.audio.shape
        assert float(np.abs(got.audio - want.audio).max()) < 0.02
