"""The load-testing engine through a real server: `--engine emulated:N` sleeps instead of synthesizing, and
everything else is the real serving path (front, board, relay, scheduler, seams, timestamps, encoders)."""

from __future__ import annotations

import base64
import json
import threading
import time

import httpx
import numpy as np
import pytest

from tests.rawclient import RawRequest, metrics, wait_for
from tests.servers import shared_server
from tts_api.processes import ServerProcess

pytestmark = pytest.mark.server
SPEECH = "/v1/audio/speech"
PCM_BYTES_PER_S = 48_000
STORY = " ".join(
    f"Sentence {i} of a story told to many listeners at once, one chunk at a time." for i in range(8)
)


emulated_server = shared_server("emulated_server", "--engine", "emulated:8")


def test_health_info_and_the_log_say_the_engine_is_emulated(emulated_server: ServerProcess) -> None:
    health = httpx.get(emulated_server.url + "/health", timeout=10).json()
    assert health["engine"] == "emulated:8" and health["emulated"] is True
    assert httpx.get(emulated_server.url + "/info", timeout=10).json()["engine"] == "emulated:8"
    assert "EMULATED engine" in emulated_server.log()


def test_the_audio_is_real_sound_of_the_planned_length_with_timed_words(
    emulated_server: ServerProcess,
) -> None:
    text = "Hello there, listener. This is not speech, only tones of the right length."
    events = []
    with httpx.stream(
        "POST",
        emulated_server.url + SPEECH,
        json={"input": text, "response_format": "pcm", "stream_format": "sse"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "speech.audio.done"
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    assert 3.0 < len(audio) / 24_000 < 8.0  # about 15 characters per second, like Kokoro
    assert np.abs(audio).max() > 0.1  # tones, not silence
    words = [w for e in events if e["type"] == "speech.word_timestamps" for w in e["words"]]
    assert [w["word"] for w in words] == [w.strip(",.") for w in text.split()]
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and words[-1]["end"] <= len(audio) / 24_000


def _listen(url: str, text: str, heard: dict[str, object]) -> None:
    """A player that starts at the first byte: its first audio and the longest it ran dry."""
    started = time.monotonic()
    arrivals: list[tuple[float, float]] = []
    received = 0
    with httpx.stream(
        "POST", url + SPEECH, json={"input": text, "response_format": "pcm"}, timeout=120
    ) as response:
        for piece in response.iter_raw():
            received += len(piece)
            arrivals.append((time.monotonic() - started, received / PCM_BYTES_PER_S))
    runs_out, buffered, underrun = arrivals[0][0], 0.0, 0.0
    for at, audio in arrivals:
        if at > runs_out and buffered > 0:
            underrun, runs_out = max(underrun, at - runs_out), at
        runs_out += audio - buffered
        buffered = audio
    heard.update(first=arrivals[0][0], underrun=underrun, audio_s=received / PCM_BYTES_PER_S)


def test_listeners_below_its_capacity_each_get_all_their_audio_without_gaps(
    emulated_server: ServerProcess,
) -> None:
    """Four listeners on a worker that feeds eight: every one complete, none running dry."""
    outcomes: list[dict[str, object]] = [{} for _ in range(4)]
    threads = [
        threading.Thread(target=_listen, args=(emulated_server.url, STORY[: 200 + 60 * i], outcomes[i]))
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for heard in outcomes:
        assert heard["audio_s"] > 10.0  # type: ignore[operator]
        assert heard["underrun"] <= 0.1, heard  # type: ignore[operator]


def test_a_client_that_leaves_stops_its_emulated_synthesis(emulated_server: ServerProcess) -> None:
    before = metrics(emulated_server.url)
    client = RawRequest(emulated_server.url + SPEECH, {"input": STORY * 4, "response_format": "pcm"})
    client.read_until_body()
    client.close()
    cancelled = 'tts_requests_cancelled_total{stage="streaming"}'
    wait_for(
        lambda: metrics(emulated_server.url).get(cancelled, 0) > before.get(cancelled, 0), 30, "a cancel"
    )
    assert wait_for(
        lambda: metrics(emulated_server.url)["tts_cancel_board_entries"] == 0, 10, "an empty board"
    )


batching_server = shared_server("batching_server", "--engine", "emulated:8:0.05:64", "--max-pending", "128")


def test_a_burst_of_64_listeners_is_served_in_batched_steps_and_each_gets_all_its_audio(
    batching_server: ServerProcess,
) -> None:
    """`emulated:8:0.05:64`: a step carries up to 64 streams' chunks and costs its longest member's. A burst
    of 64 gets its first chunks together and every listener all its audio (the 1-s first audio and the
    gaps are figure 13's, measured in `make bench`; on the fake clock in tests/worker/test_scheduler.py)."""
    assert "steps up to" in batching_server.log() and "of up to 64 streams" in batching_server.log()
    before = metrics(batching_server.url)
    outcomes: list[dict[str, object]] = [{} for _ in range(64)]
    threads = [
        threading.Thread(target=_listen, args=(batching_server.url, STORY[: 300 + i], outcomes[i]))
        for i in range(64)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    after = metrics(batching_server.url)
    for heard in outcomes:
        assert heard["audio_s"] > 15.0, heard  # type: ignore[operator]
    steps = after["tts_batched_steps_total"] - before.get("tts_batched_steps_total", 0)
    chunks = after["tts_batched_chunks_total"] - before.get("tts_batched_chunks_total", 0)
    assert steps > 0 and chunks / steps >= 8, (steps, chunks)
    assert wait_for(
        lambda: metrics(batching_server.url)["tts_cancel_board_entries"] == 0, 10, "an empty board"
    )


queue_bound_server = shared_server(
    "queue_bound_server", "--engine", "emulated:4", "--max-streams-per-worker", "1", "--max-queue-wait", "2"
)


def _read_until_stopped(url: str, text: str, got: dict[str, int], stop: threading.Event) -> None:
    """Stream `text` as pcm, reading as fast as it comes, until it ends or `stop` is set (then leave)."""
    with httpx.stream("POST", url + SPEECH, json={"input": text, "response_format": "pcm"}, timeout=120) as r:
        for chunk in r.iter_bytes():
            got["bytes"] = got.get("bytes", 0) + len(chunk)
            if stop.is_set():
                return


def test_a_request_with_no_audio_after_the_queue_wait_bound_gets_503_and_leaves_no_trace(
    queue_bound_server: ServerProcess,
) -> None:
    """One stream at a time, and it is taken by a long story read as fast as it comes: the next request
    hears 503 + Retry-After once it has waited `--max-queue-wait` with no audio (not when its client gives
    up), and its place comes back; the story is not disturbed, and a request after it is served."""
    url = queue_bound_server.url
    got: dict[str, int] = {}
    stop = threading.Event()
    story = threading.Thread(target=_read_until_stopped, args=(url, STORY * 3, got, stop))
    story.start()
    try:
        wait_for(lambda: got.get("bytes", 0) > 0, 60, "the story's first audio")
        asked = time.monotonic()
        refused = httpx.post(url + SPEECH, json={"input": "Is there room for me?"}, timeout=60)
        waited = time.monotonic() - asked
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "server_overloaded"
        assert int(refused.headers["retry-after"]) >= 1
        assert 2.0 <= waited < 20.0, waited  # the bound, not the story's end (about 30 s of synthesis)
        heard = got["bytes"]
        wait_for(lambda: got["bytes"] > heard + PCM_BYTES_PER_S, 30, "more of the story")
    finally:
        stop.set()
        story.join(60)
    assert wait_for(lambda: metrics(url)["tts_cancel_board_entries"] == 0, 30, "an empty board")
    served = httpx.post(url + SPEECH, json={"input": "Now there is.", "response_format": "wav"}, timeout=60)
    assert served.status_code == 200 and len(served.content) > PCM_BYTES_PER_S // 2
