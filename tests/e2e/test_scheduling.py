"""Many streams on one worker, against a real server: interleaving, per-request randomness, metrics."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import httpx
import pytest

from tests.rawclient import RawRequest, metrics, wait_for
from tests.servers import shared_server
from tts_api.processes import ServerProcess

pytestmark = pytest.mark.server
SPEECH = "/v1/audio/speech"
LONG_TEXT = " ".join(
    f"This is sentence number {i} of a long story that one listener is hearing." for i in range(24)
)


def _first_audio(url: str, text: str) -> float:
    """Send `text` and read it to the end; when its first audio arrived."""
    with httpx.stream(
        "POST", url + SPEECH, json={"input": text, "response_format": "pcm"}, timeout=300
    ) as response:
        assert response.status_code == 200
        first = None
        for _ in response.iter_raw():
            first = first or time.monotonic()
    assert first is not None
    return first


def _short_during_long(server: ServerProcess) -> bool:
    """Send a short request while a long stream plays; whether its first audio came before the long stream
    ended. The long stream's client leaves then (cancelling the rest), so the test need not wait for it."""
    long = RawRequest(server.url + SPEECH, {"input": LONG_TEXT, "response_format": "pcm"})
    long.read_until_body()  # the long stream is playing
    ended = threading.Event()

    def long_listener() -> None:
        with contextlib.suppress(OSError):
            while long.sock.recv(1 << 16):
                pass
        ended.set()  # the server finished it (or the test closed it below)

    listener = threading.Thread(target=long_listener, daemon=True)
    listener.start()
    _first_audio(server.url, "A short question?")
    heard_first = not ended.is_set()
    long.sock.shutdown(socket.SHUT_RDWR)
    long.close()
    listener.join(30)
    wait_for(lambda: metrics(server.url)["tts_cancel_board_entries"] == 0, 60, "an empty board")
    return heard_first


# A worker slower than real time (0.7 audio seconds per second), whose long stream runs dry whatever happens.
slow_server = shared_server("slow_server", "--engine", "emulated:0.7", scope="function")


@pytest.fixture(params=["tiny_server", "slow_server"], ids=["tiny model", "emulated, slower than real time"])
def any_speed(request: pytest.FixtureRequest) -> ServerProcess:
    """The tiny model's worker, and one slower than real time."""
    server: ServerProcess = request.getfixturevalue(request.param)
    return server


def test_a_short_request_is_heard_before_a_long_stream_ends_whatever_the_worker_speed(
    any_speed: ServerProcess,
) -> None:
    """One worker: with one stream at a time the short request would wait for the whole long stream."""
    assert _short_during_long(any_speed), "the short request waited for the whole long stream"


# Two workers that each feed fewer than two listeners, one HTTP process.
two_slow_workers = shared_server(
    "two_slow_workers",
    "--engine",
    "emulated:1.5",
    "--workers-per-device",
    "2",
    "--api-servers",
    "1",
    scope="function",
)


def _active(url: str) -> dict[str, float]:
    values = metrics(url)
    return {k: v for k, v in values.items() if k.startswith("tts_streams{") and 'state="active"' in k}


def test_a_request_a_busy_worker_cannot_start_goes_to_its_idle_sibling(
    two_slow_workers: ServerProcess,
) -> None:
    url = two_slow_workers.url
    first = RawRequest(url + SPEECH, {"input": LONG_TEXT, "response_format": "pcm"})
    first.read_until_body()
    second = RawRequest(url + SPEECH, {"input": LONG_TEXT, "response_format": "pcm"})
    second.read_until_body()  # its first audio came: it did not wait behind the first stream
    busy = wait_for(lambda: (a := _active(url)) and sum(a.values()) == 2 and a, 10, "both streams active")
    assert sorted(busy.values()) == [1.0, 1.0], f"one worker holds both streams: {busy}"
    first.close()
    second.close()
    wait_for(lambda: metrics(url)["tts_cancel_board_entries"] == 0, 30, "an empty board")


small_lead = shared_server(
    "small_lead", "--engine", "emulated:1.5", "--max-lead", "3", "--idle-timeout", "600", scope="function"
)


def test_a_stream_paused_for_a_slow_reader_does_not_block_a_newcomer(small_lead: ServerProcess) -> None:
    """Its client stops reading: once the socket buffers are full the stream pauses at the lead cap and
    stops counting, and a newcomer on this worker (slower than two listeners) is served meanwhile."""
    url = small_lead.url
    body = json.dumps({"input": LONG_TEXT * 3, "response_format": "pcm"}).encode()
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill the buffers sooner
    slow.connect(("127.0.0.1", small_lead.port))
    slow.sendall(
        f"POST {SPEECH} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert slow.recv(1024)  # it started; the client reads nothing more
    paused = 'tts_streams{state="paused",worker="0"}'
    wait_for(lambda: metrics(url).get(paused) == 1, 120, "the stream to pause at the lead cap")
    _first_audio(url, "A newcomer's question, answered while the other stream waits for its reader.")
    after = metrics(url)
    assert after["tts_requests_completed_total"] == 1, "the newcomer was not served to its end"
    assert after["tts_cancel_board_entries"] == 1, "the slow reader's stream ended meanwhile"
    slow.close()
    wait_for(lambda: metrics(url)["tts_cancel_board_entries"] == 0, 30, "an empty board")


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
