"""Many streams on one worker, against a real server: interleaving, per-request randomness, metrics."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.rawclient import metrics
from tts_api.processes import ServerProcess

pytestmark = pytest.mark.server
SPEECH = "/v1/audio/speech"
LONG_TEXT = " ".join(
    f"This is sentence number {i} of a long story that one listener is hearing." for i in range(24)
)


def test_a_later_stream_hears_audio_before_an_earlier_long_stream_finishes(
    tiny_server: ServerProcess,
) -> None:
    """One worker: with one stream at a time the newcomer would wait for the whole long stream."""
    times: dict[str, float] = {}

    def long_listener() -> None:
        with httpx.stream(
            "POST", tiny_server.url + SPEECH, json={"input": LONG_TEXT, "response_format": "pcm"}, timeout=300
        ) as response:
            for index, _ in enumerate(response.iter_raw()):
                if index == 0:
                    times["long_first"] = time.monotonic()
        times["long_end"] = time.monotonic()

    listener = threading.Thread(target=long_listener)
    listener.start()
    while "long_first" not in times:  # the long stream is playing
        time.sleep(0.01)
    with httpx.stream(
        "POST",
        tiny_server.url + SPEECH,
        json={"input": "A short question?", "response_format": "pcm"},
        timeout=300,
    ) as response:
        for index, _ in enumerate(response.iter_raw()):
            if index == 0:
                times["short_first"] = time.monotonic()
    listener.join(300)
    assert times["short_first"] < times["long_end"], "the newcomer waited for the whole long stream"


def test_a_seed_reproduces_audio_and_unseeded_requests_stay_random(tiny_server: ServerProcess) -> None:
    """A seeded request must not leave the worker's own generator seeded for the requests after it."""

    def pcm(body: dict) -> bytes:
        response = httpx.post(
            tiny_server.url + SPEECH,
            json={"input": "Noise check.", "response_format": "pcm", **body},
            timeout=120,
        )
        assert response.status_code == 200
        return response.content

    seeded_1, after_1 = pcm({"seed": 5}), pcm({})
    seeded_2, after_2 = pcm({"seed": 5}), pcm({})
    assert seeded_1 == seeded_2
    assert after_1 != after_2


def test_the_scheduler_metrics_are_exported(tiny_server: ServerProcess) -> None:
    httpx.post(tiny_server.url + SPEECH, json={"input": "Metrics.", "response_format": "pcm"}, timeout=120)
    values = metrics(tiny_server.url)
    assert values['tts_streams{state="active",worker="0"}'] >= 0
    assert values["tts_worker_capacity"] > 0  # the one worker's, whatever its engine label
    assert "tts_load" in values and "tts_deadline_misses_total" in values
    assert values["tts_time_to_first_audio_seconds_count"] >= 1
