"""The synthesis engine on the tiny model: voices, blends, chunks, and a missing G2P model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_model import FRAMES_PER_TOKEN, SAMPLES_PER_FRAME
from tts_api import engine as engine_module
from tts_api.engine import Engine, G2PUnavailable
from tts_api.voices import VoiceBlend, VoiceCatalogue


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    return Engine(tiny_model_dir, "cpu")


def test_weight_norm_is_folded_away_at_load(engine: Engine) -> None:
    assert not any(hasattr(m, "weight_g") for m in engine.model.modules())


def test_a_blend_is_the_weighted_mean_of_its_voices(engine: Engine, tiny_model_dir: Path) -> None:
    catalogue = VoiceCatalogue.from_dir(tiny_model_dir / "voices")
    bella, sky = (
        torch.load(tiny_model_dir / f"voices/{v}.pt", weights_only=True) for v in ("af_bella", "af_sky")
    )
    mixed = engine.voice(catalogue.resolve("af_bella(3)+af_sky(1)"))
    assert torch.allclose(mixed, 0.75 * bella + 0.25 * sky)
    assert engine.voice(catalogue.resolve("af_bella(6)+af_sky(2)")) is mixed  # cached by canonical key


def test_synthesis_yields_one_chunk_per_line_with_pinned_durations(engine: Engine) -> None:
    chunks = list(engine.synthesize("One line.\nAnother line.", VoiceBlend((("af_heart", 1.0),))))
    assert len(chunks) == 2
    for chunk in chunks:
        tokens = sum(ch in engine.model.vocab for ch in chunk.phonemes) + 2
        assert len(chunk.audio) == tokens * FRAMES_PER_TOKEN * SAMPLES_PER_FRAME
        assert chunk.audio.dtype == np.float32 and np.isfinite(chunk.audio).all()


def test_a_missing_spacy_model_is_explained_not_downloaded(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(engine_module.SPACY_ALIASES, "en_core_web_sm", "en_core_web_sm_not_installed")
    with pytest.raises(G2PUnavailable, match="pip install en-core-web-sm-not-installed"):
        engine.pipeline("b")
