"""Text planning through the real server (tiny model): pauses, normalization, timestamps per mode."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from tts_api.processes import ServerProcess

pytestmark = pytest.mark.server
SPEECH = "/v1/audio/speech"


def pcm(server: ServerProcess, body: dict) -> np.ndarray:
    """The PCM samples of a seeded request (seeded requests keep the lone-stream plan: exact lengths)."""
    response = httpx.post(
        server.url + SPEECH, json={"response_format": "pcm", "seed": 1, **body}, timeout=120
    )
    assert response.status_code == 200, response.text
    return np.frombuffer(response.content, dtype="<i2")


def longest_silence(samples: np.ndarray) -> int:
    silent = np.concatenate([[0], (samples == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(silent))
    return int((edges[1::2] - edges[::2]).max()) if edges.size else 0


def test_a_pause_tag_inserts_exact_silence(
    tiny_server: ServerProcess, tiny_expected: Callable[..., int]
) -> None:
    text = "Before the pause. [pause:1.5s] After the pause."
    samples = pcm(tiny_server, {"input": text})
    assert len(samples) == tiny_expected(text)
    # The tiny model is never silent, so the only long run of zeros is the tag's 1.5 s (a pause tag
    # replaces the sentence gap), give or take the few samples the 5 ms fades round to zero.
    assert round(1.5 * 24_000) <= longest_silence(samples) <= round(1.51 * 24_000)


@pytest.mark.parametrize("tag", ["[pause:abc]", "[pause:-1s]", "[pause:11s]"])
def test_an_invalid_pause_tag_is_a_400_that_quotes_it(tiny_server: ServerProcess, tag: str) -> None:
    response = httpx.post(tiny_server.url + SPEECH, json={"input": f"Wait {tag} now."})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_pause_tag" and tag in error["message"]


def test_markdown_and_emoji_are_not_spoken_unless_normalization_is_off(
    tiny_server: ServerProcess, tiny_expected: Callable[..., int]
) -> None:
    text = "## Title\n\n**Bold** claim 🚀 with a [link](https://example.com/page)."
    assert len(pcm(tiny_server, {"input": text})) == tiny_expected(text)
    raw = pcm(tiny_server, {"input": text, "normalize": False})
    assert len(raw) == tiny_expected(text, normalize=False) != tiny_expected(text)


def test_only_emoji_is_no_speakable_text(tiny_server: ServerProcess) -> None:
    response = httpx.post(tiny_server.url + SPEECH, json={"input": "🚀🚀 ✨"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "input"


@pytest.mark.parametrize("stream_format", ["sse", "ndjson"])
def test_word_timestamps_stream_beside_the_audio(tiny_server: ServerProcess, stream_format: str) -> None:
    text = "Read **this** aloud.\n\nThen 42 more words, please."
    body = {"input": text, "response_format": "pcm", "stream_format": stream_format}
    with httpx.stream("POST", tiny_server.url + SPEECH, json=body, timeout=120) as response:
        media = "text/event-stream" if stream_format == "sse" else "application/x-ndjson"
        assert response.headers["content-type"] == media
        lines = [line for line in response.iter_lines() if line]
    events = [json.loads(line.removeprefix("data: ")) for line in lines]
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    words = [w for e in events if e["type"] == "speech.word_timestamps" for w in e["words"]]
    assert [w["word"] for w in words] == ["Read", "this", "aloud", "Then", "42", "more", "words", "please"]
    assert all(text[w["char_start"] : w["char_end"]] == w["word"] for w in words)
    duration = len(audio) / 2 / 24_000
    assert all(0 <= w["start"] <= w["end"] <= duration for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert events[-1]["type"] == "speech.audio.done"


def test_raw_audio_streams_carry_no_timestamps(
    tiny_server: ServerProcess, tiny_expected: Callable[..., int]
) -> None:
    text = "Just the audio."
    assert len(pcm(tiny_server, {"input": text})) == tiny_expected(text)
