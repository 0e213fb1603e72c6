"""Figure 11: how the speech sounds, per engine variant, against the bare pipeline on the same sentences.

Each sentence is asked of a server as one whole WAV with seed i (the lone-stream plan), and the bare
KPipeline speaks it with `torch.manual_seed(i)`, as a kokoro user would. Both clips are scored alike
(tts_api.model.quality.speech_score: cut to their speech at the sample, DNSMOS OVRL, SIG and P.808
averaged over the same margins); PocketSphinx's transcript gives a word error rate against the sentence
as it should be heard.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import numpy.typing as npt
import soundfile

from tts_api.formats import SAMPLE_RATE
from tts_api.model.listening import transcribe
from tts_api.model.quality import speech_score

from .client import SPEECH_PATH, VOICE
from .processes import Service

if TYPE_CHECKING:
    from .baseline import BarePipeline

__all__ = ["score_bare", "score_clip", "score_server", "whole_wav", "word_error_rate", "words_of"]

REQUEST_TIMEOUT_S = 300.0


def word_error_rate(heard: str, expected: str) -> float:
    """Word-level edit distance over the expected words (PocketSphinx writes lower case, no punctuation)."""
    said, want = words_of(heard), words_of(expected)
    row = list(range(len(said) + 1))
    for i, word in enumerate(want, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(said, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1] / max(1, len(want))


def words_of(text: str) -> list[str]:
    """The words as PocketSphinx writes them: lower case, no punctuation."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def score_clip(audio: np.ndarray, expected: str) -> dict[str, Any]:
    """DNSMOS of the clip (cut to its speech) and PocketSphinx's word error against `expected`."""
    score = speech_score(audio, SAMPLE_RATE)
    heard = transcribe(audio, SAMPLE_RATE)
    return {
        "ovrl": score.ovrl,
        "sig": score.sig,
        "bak": score.bak,
        "p808": score.p808,
        "wer": word_error_rate(heard, expected),
        "heard": heard,
        "audio_s": len(audio) / SAMPLE_RATE,
    }


def score_server(server: Service, sentences: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """Each sentence as a whole WAV from `server` (seed = its index), scored."""
    scores = []
    for seed, (text, expected) in enumerate(sentences):
        server.wait_idle()
        scores.append(score_clip(whole_wav(server, text, seed), expected))
    return scores


def whole_wav(server: Service, text: str, seed: int) -> npt.NDArray[np.float32]:
    """`text` asked of `server` as one whole WAV (not streamed) with `seed`, decoded."""
    body = {"input": text, "voice": VOICE, "response_format": "wav", "stream": False, "seed": seed}
    response = httpx.post(server.url + SPEECH_PATH, json=body, timeout=REQUEST_TIMEOUT_S)
    response.raise_for_status()
    audio, rate = soundfile.read(io.BytesIO(response.content), dtype="float32")
    assert rate == SAMPLE_RATE, rate
    return np.asarray(audio, dtype=np.float32)


def score_bare(bare: BarePipeline, sentences: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """Each sentence from the bare pipeline (torch.manual_seed = its index), scored."""
    return [
        score_clip(bare.speak(text, seed=seed), expected) for seed, (text, expected) in enumerate(sentences)
    ]
