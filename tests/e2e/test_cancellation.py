"""Cancellation on a real server process (tiny model): the worker stops when the client leaves.

Proven on the worker side, through the counters the workers keep, not by the client merely
leaving. Bound: after a disconnect the worker may finish the chunk it is synthesizing (a tiny-model
line takes well under 3 s on a 2-core CI machine) and must then stop; we wait up to CANCEL_BOUND_S,
ten times that, for the cancellation to show, and require at most one more chunk synthesized.
"""

from __future__ import annotations

import re

import httpx
import psutil
import pytest

from tests.rawclient import RawRequest, metrics, wait_for, worker_logged
from tts_api.processes import ServerProcess

pytestmark = pytest.mark.server
SPEECH = "/v1/audio/speech"
CANCEL_BOUND_S = 30.0
CHUNKS = "tts_chunks_synthesized_total"
QUEUED = 'tts_requests_cancelled_total{stage="queued"}'
STREAMING = 'tts_requests_cancelled_total{stage="streaming"}'
BOARD = "tts_cancel_board_entries"
ENCODERS = "tts_open_encoders"
# One pipeline chunk per line: a long request is many chunks.
LONG_TEXT = "\n".join(
    f"This is line number {i} of a long text that keeps the worker busy." for i in range(40)
)


@pytest.fixture
def server(any_server: ServerProcess) -> ServerProcess:
    return any_server


def worker_count(server: ServerProcess) -> int:
    return sum("spawn_main" in " ".join(p.cmdline()) for p in server.tree())


def settled(server: ServerProcess) -> dict[str, float]:
    """Metrics once nothing is in flight (previous tests' cancelled jobs have wound down)."""
    return wait_for(
        lambda: (m := metrics(server.url))[BOARD] == 0 and m[ENCODERS] == 0 and m,
        CANCEL_BOUND_S,
        "an idle server",
    )


def start_long(server: ServerProcess, request_id: str, **fields: object) -> RawRequest:
    body = {"input": LONG_TEXT, "response_format": "pcm", **fields}
    return RawRequest(server.url + SPEECH, body, headers={"X-Request-Id": request_id})


def test_a_client_leaving_mid_stream_stops_the_worker_within_one_chunk(server: ServerProcess) -> None:
    before = settled(server)
    client = start_long(server, "mid-stream-1")
    client.read_until_body(min_body_bytes=1)
    client.close()
    at_disconnect = metrics(server.url)[CHUNKS]
    after = wait_for(
        lambda: (m := metrics(server.url))[STREAMING] > before[STREAMING] and m,
        CANCEL_BOUND_S,
        "the cancellation",
    )
    settled(server)
    assert metrics(server.url)[CHUNKS] - at_disconnect <= 1
    assert after[CHUNKS] - before[CHUNKS] < 40, "the whole text was synthesized"
    assert worker_logged(server.log(), "mid-stream-1"), "the cancel does not name its request"


def test_a_request_abandoned_in_the_queue_synthesizes_nothing(server: ServerProcess) -> None:
    before = settled(server)
    workers = worker_count(server)
    busy = [start_long(server, f"busy-{i}") for i in range(workers)]
    for client in busy:
        client.read_until_body()  # every worker is now synthesizing
    queued = start_long(server, "queued-1")
    wait_for(lambda: metrics(server.url)[BOARD] == workers + 1, CANCEL_BOUND_S, "the request to be queued")
    queued.close()
    third = RawRequest(server.url + SPEECH, {"input": "The third request.", "response_format": "pcm"})
    for client in busy:
        client.close()  # free the workers: they stop within a chunk and take the queue
    third.read_until_body()
    third.close()
    after = wait_for(
        lambda: (m := metrics(server.url))[QUEUED] > before[QUEUED] and m, CANCEL_BOUND_S, "the queued cancel"
    )
    assert after[QUEUED] - before[QUEUED] == 1
    # Which request synthesized nothing is only in the worker's line about it (the counters are shared).
    assert any(re.search(r"\b0 chunks\b", line) for line in worker_logged(server.log(), "queued-1"))
    settled(server)


def test_a_whole_file_request_whose_client_leaves_stops_too(server: ServerProcess) -> None:
    before = settled(server)
    client = start_long(server, "whole-file-1", stream=False)
    wait_for(lambda: metrics(server.url)[CHUNKS] >= before[CHUNKS] + 2, CANCEL_BOUND_S, "synthesis to start")
    client.close()
    at_disconnect = metrics(server.url)[CHUNKS]
    wait_for(lambda: metrics(server.url)[STREAMING] > before[STREAMING], CANCEL_BOUND_S, "the cancellation")
    settled(server)
    assert metrics(server.url)[CHUNKS] - at_disconnect <= 1
    assert worker_logged(server.log(), "whole-file-1"), "the cancel does not name its request"


def worker_fds(server: ServerProcess) -> dict[int, int]:
    workers = [p for p in server.tree() if "spawn_main" in " ".join(p.cmdline())]
    return {p.pid: p.num_fds() for p in workers}


def test_fifty_mixed_requests_leave_no_flag_encoder_or_descriptor_behind(server: ServerProcess) -> None:
    for fmt in ("mp3", "opus", "aac", "flac", "wav", "pcm"):  # warm every lazily opened codec and file
        httpx.post(server.url + SPEECH, json={"input": "Warm up.", "response_format": fmt}, timeout=120)
    settled(server)
    baseline = worker_fds(server)
    formats = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
    for i in range(50):
        fmt = formats[i % len(formats)]
        kind = i % 5
        if kind == 0:  # completed, streamed
            r = httpx.post(
                server.url + SPEECH, json={"input": f"Request {i}.", "response_format": fmt}, timeout=120
            )
            assert r.status_code == 200
        elif kind == 1:  # completed, whole file
            body = {"input": f"Request {i}.", "response_format": fmt, "stream": False}
            assert httpx.post(server.url + SPEECH, json=body, timeout=120).status_code == 200
        elif kind == 2:  # cancelled mid-stream
            client = start_long(server, f"leak-{i}", response_format=fmt)
            client.read_until_body()
            client.close()
        elif kind == 3:  # rejected before queueing
            assert (
                httpx.post(server.url + SPEECH, json={"input": "", "response_format": fmt}).status_code == 400
            )
        else:  # cancelled before its first byte (queued or just started)
            start_long(server, f"leak-{i}", response_format=fmt).close()
    final = settled(server)
    assert final[BOARD] == 0 and final[ENCODERS] == 0
    assert worker_fds(server) == baseline
    assert all(psutil.pid_exists(pid) for pid in baseline)
