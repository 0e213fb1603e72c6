"""The speech gateway on its own, around a scripted stand-in for LitServe's streaming endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable

import pytest

from tts_api.errors import InvalidRequest, Overloaded, TTSError
from tts_api.formats import WAV_HEADER_BYTES, wav_size_fields
from tts_api.front.auth import RequestIds
from tts_api.front.gateway import SpeechGateway
from tts_api.front.readrate import ReaderLimits
from tts_api.ipc.counters import Counters
from tts_api.ipc.frames import TICKET_KEY, Ticket
from tts_api.ipc.manager import Shared
from tts_api.ipc.streams import Admission, StreamBoard
from tts_api.ipc.workers import WorkerProcess
from tts_api.schemas import RequestContext
from tts_api.voices import VoiceCatalogue

CONTEXT = RequestContext(VoiceCatalogue(["af_heart"]), max_input_chars=1000, languages=frozenset("a"))
END, CUT = object(), object()


def litserve_like(script: list[object], seen: list[dict]) -> Callable:
    """An inner app that streams `script`: bytes as audio, END as the end frame, CUT as a crash."""

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        body = json.loads((await receive())["body"])
        seen.append(body)
        ticket = Ticket.from_dict(body[TICKET_KEY])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for item in script:
            if item is CUT:
                break
            if isinstance(item, TTSError):
                data = ticket.error_frame(item)
            elif item is END:
                data = ticket.end_frame(audio_seconds=1.0, usage={"input_tokens": 3})
            else:
                data = ticket.audio_frame(item, audio_end_s=len(item) / 48_000)
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def call(
    script: list[object], request: dict, headers: list | None = None, shared: Shared | None = None
) -> tuple[list[dict], list[dict]]:
    seen: list[dict] = []
    shared = shared or Shared(board=StreamBoard(), counters=Counters())
    sent = run_gateway(litserve_like(script, seen), request, shared, headers=headers, max_pending=2)
    return sent, seen


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Board updates are posted from a thread: wait for one to land."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def status_and_headers(sent: list[dict]) -> tuple[int, dict[bytes, bytes]]:
    return sent[0]["status"], dict(sent[0]["headers"])


def body_of(sent: list[dict]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent[1:])


def completed(sent: list[dict]) -> bool:
    return sent[-1]["type"] == "http.response.body" and not sent[-1].get("more_body", False)


def test_audio_streams_with_its_content_type_and_ends_cleanly() -> None:
    """The worker sends PCM; the front encodes it: a streamed WAV is a header of unknown sizes, then the
    samples as they came."""
    sent, seen = call([b"\x01\x00\x02\x00", b"\x03\x00", END], {"input": "hi", "response_format": "wav"})
    status, headers = status_and_headers(sent)
    assert status == 200 and headers[b"content-type"] == b"audio/wav"
    assert headers[b"x-request-id"].startswith(b"req_")
    body = body_of(sent)
    assert body[:4] == b"RIFF" and body[4:8] == b"\xff\xff\xff\xff" and len(body) == WAV_HEADER_BYTES + 6
    assert body[WAV_HEADER_BYTES:] == b"\x01\x00\x02\x00\x03\x00" and completed(sent)
    assert seen[0]["input"] == "hi" and TICKET_KEY in seen[0]


def test_a_worker_crash_mid_stream_cuts_the_connection_instead_of_ending_cleanly() -> None:
    sent, _ = call([b"first!", CUT], {"input": "hi", "response_format": "pcm"})
    assert body_of(sent) == b"first!"
    assert not completed(sent), "a truncated stream must not look complete"


def test_a_failure_before_any_audio_is_a_json_error_with_its_status() -> None:
    sent, _ = call([InvalidRequest("voice file vanished", param="voice")], {"input": "hi"})
    status, headers = status_and_headers(sent)
    assert status == 400 and headers[b"content-type"] == b"application/json"
    assert json.loads(body_of(sent))["error"]["message"] == "voice file vanished"


def test_a_workers_503_keeps_its_retry_after() -> None:
    sent, _ = call([Overloaded("the server is shutting down", retry_after_s=7)], {"input": "hi"})
    status, headers = status_and_headers(sent)
    assert status == 503 and headers[b"retry-after"] == b"7"
    assert json.loads(body_of(sent))["error"]["code"] == "server_overloaded"


def test_a_crash_before_any_audio_is_a_500_that_names_the_request() -> None:
    sent, _ = call([CUT], {"input": "hi"}, headers=[(b"x-request-id", b"r-42")])
    status, _ = status_and_headers(sent)
    assert status == 500
    assert "r-42" in json.loads(body_of(sent))["error"]["message"]


def test_sse_carries_base64_deltas_then_done() -> None:
    sent, _ = call(
        [b"\x01\x02", b"\x03\x04", END], {"input": "hi", "stream_format": "sse", "response_format": "pcm"}
    )
    _, headers = status_and_headers(sent)
    assert headers[b"content-type"] == b"text/event-stream"
    events = [json.loads(line[6:]) for line in body_of(sent).decode().split("\n\n") if line]
    assert [e["type"] for e in events] == ["speech.audio.delta", "speech.audio.delta", "speech.audio.done"]
    assert b"".join(base64.b64decode(e["audio"]) for e in events[:2]) == b"\x01\x02\x03\x04"
    assert completed(sent)


def test_sse_failure_after_start_is_an_error_event() -> None:
    sent, _ = call([b"\x01\x00", CUT], {"input": "hi", "stream_format": "sse", "response_format": "pcm"})
    events = [json.loads(line[6:]) for line in body_of(sent).decode().split("\n\n") if line]
    assert events[-1]["type"] == "error" and events[-1]["error"]["message"]
    assert completed(sent)


def test_stream_false_sends_one_body_with_content_length() -> None:
    """A whole WAV goes out once complete, its sizes written into the header the encoder gave first."""
    sent, _ = call([b"abcd", b"ef", END], {"input": "hi", "stream": False, "response_format": "wav"})
    status, headers = status_and_headers(sent)
    assert status == 200 and headers[b"content-type"] == b"audio/wav"
    body = body_of(sent)
    assert headers[b"content-length"] == str(WAV_HEADER_BYTES + 6).encode() and len(sent) == 2
    assert body[WAV_HEADER_BYTES:] == b"abcdef"
    assert [body[offset : offset + 4] for offset, _ in wav_size_fields(len(body))] == [
        data for _, data in wav_size_fields(len(body))
    ]


@pytest.mark.parametrize("script", [[CUT], [b"abc", CUT]])
def test_stream_false_failure_is_a_json_error(script: list[object]) -> None:
    sent, _ = call(script, {"input": "hi", "stream": False})
    assert status_and_headers(sent)[0] == 500


def test_invalid_requests_never_reach_litserve() -> None:
    sent, seen = call([END], {"input": "", "voice": "af_heart"})
    assert status_and_headers(sent)[0] == 400 and seen == []


def test_an_item_that_is_not_a_frame_of_this_request_is_a_failure() -> None:
    stranger = Ticket.issue()

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {
                "type": "http.response.body",
                "body": stranger.audio_frame(b"not yours", audio_end_s=0.1),
                "more_body": True,
            }
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    sent: list[dict] = []
    gateway = SpeechGateway(
        app, context=CONTEXT, shared=Shared(StreamBoard(), Counters()), path="/v1/audio/speech", max_pending=2
    )
    messages = [{"type": "http.request", "body": json.dumps({"input": "hi"}).encode(), "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # the client neither sends more nor leaves
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(
        gateway({"type": "http", "method": "POST", "path": "/v1/audio/speech", "headers": []}, receive, send)
    )
    assert status_and_headers(sent)[0] == 500
    assert b"not yours" not in body_of(sent)


def test_the_sse_done_event_carries_the_workers_usage() -> None:
    sent, _ = call([b"\x01\x00", END], {"input": "hi", "stream_format": "sse"})
    events = [json.loads(line[6:]) for line in body_of(sent).decode().split("\n\n") if line]
    assert events[-1] == {"type": "speech.audio.done", "usage": {"input_tokens": 3}}


def test_admission_is_refused_with_retry_after_when_the_board_is_full() -> None:
    shared = Shared(board=StreamBoard(), counters=Counters())
    assert shared.board.open("a", 2) == shared.board.open("b", 2) == "admitted"  # two in flight
    sent, seen = call([END], {"input": "hi"}, shared=shared)
    status, headers = status_and_headers(sent)
    assert status == 503 and headers[b"retry-after"] == b"2" and seen == []
    assert json.loads(body_of(sent))["error"]["code"] == "server_overloaded"


def test_a_completed_request_gives_its_place_back_even_if_its_worker_does_not() -> None:
    shared = Shared(board=StreamBoard(), counters=Counters())
    call([b"audio!", END], {"input": "hi"}, shared=shared)
    # The scripted worker never closes it (a real one always does; closing twice is harmless).
    assert eventually(lambda: shared.board.size() == 0)


def test_a_client_that_leaves_mid_stream_is_cancelled_on_the_board() -> None:
    shared = Shared(board=StreamBoard(), counters=Counters())
    seen: list[dict] = []
    sent: list[dict] = []

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        body = json.loads((await receive())["body"])
        seen.append(body)
        ticket = Ticket.from_dict(body[TICKET_KEY])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {
                "type": "http.response.body",
                "body": ticket.audio_frame(b"a", audio_end_s=0.1),
                "more_body": True,
            }
        )
        assert (await receive())["type"] == "http.disconnect"  # what StreamingResponse listens for

    messages = [
        {"type": "http.request", "body": json.dumps({"input": "hi"}).encode(), "more_body": False},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    gateway = SpeechGateway(app, context=CONTEXT, shared=shared, path="/v1/audio/speech", max_pending=2)
    asyncio.run(
        gateway({"type": "http", "method": "POST", "path": "/v1/audio/speech", "headers": []}, receive, send)
    )
    key = seen[0][TICKET_KEY]["key"]
    assert eventually(lambda: shared.board.poll([key])[key].reason == "client")


def run_gateway(
    app: Callable,
    request: dict,
    shared: Shared,
    headers: list | None = None,
    takes: int | None = None,
    **options: object,
) -> list[dict]:
    """Drive the gateway around `app` for one request whose client never disconnects; with `takes`, the
    client stops reading after that many messages (its socket is full: nothing more is taken)."""
    sent: list[dict] = []
    gateway = RequestIds(
        SpeechGateway(
            app, context=CONTEXT, shared=shared, path="/v1/audio/speech", **{"max_pending": 4, **options}
        )
    )
    messages = [{"type": "http.request", "body": json.dumps(request).encode(), "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if takes is not None and message["type"] == "http.response.body" and len(sent) >= takes:
            await asyncio.sleep(3600)
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/audio/speech", "headers": headers or []}
    asyncio.run(asyncio.wait_for(gateway(scope, receive, send), 10))
    return sent


def test_a_draining_server_refuses_new_requests_with_503() -> None:
    shared = Shared(board=StreamBoard(), counters=Counters())
    shared.board.drain()
    sent, seen = call([END], {"input": "hi"}, shared=shared)
    status, headers = status_and_headers(sent)
    assert status == 503 and b"retry-after" in headers and seen == []
    assert "shutting down" in json.loads(body_of(sent))["error"]["message"]


def test_the_board_learns_how_much_audio_the_client_has_taken() -> None:
    shared = Shared(board=StreamBoard(), counters=Counters())
    learned: list[float] = []

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        ticket = Ticket.from_dict(json.loads((await receive())["body"])[TICKET_KEY])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for end_s in (0.5, 1.75):
            frame = ticket.audio_frame(b"\x00" * 10, audio_end_s=end_s)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        for _ in range(500):  # while the request is in flight (its end gives the place back)
            learned[:] = [shared.board.poll([ticket.key])[ticket.key].delivered_s]
            if learned == [1.75]:
                break
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": ticket.end_frame(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    run_gateway(app, {"input": "hi", "response_format": "pcm"}, shared)
    assert learned == [1.75]


def test_a_client_that_reads_nothing_for_the_idle_timeout_is_cut_and_cancelled() -> None:
    shared = Shared(board=StreamBoard(), counters=Counters())
    keys: list[str] = []

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        ticket = Ticket.from_dict(json.loads((await receive())["body"])[TICKET_KEY])
        keys.append(ticket.key)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            frame = ticket.audio_frame(b"\x00" * 10, audio_end_s=0.1)
            await send({"type": "http.response.body", "body": frame, "more_body": True})

    sent = run_gateway(app, {"input": "hi"}, shared, takes=3, limits=ReaderLimits(idle_timeout_s=0.3))
    assert not completed(sent)
    assert eventually(lambda: shared.board.poll(keys)[keys[0]].reason == "idle")


@pytest.mark.parametrize("audio_first", [False, True], ids=["before-audio", "mid-stream"])
def test_a_request_whose_worker_process_died_fails_visibly_within_seconds(audio_first: bool) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    shared = Shared(board=StreamBoard(), counters=Counters())

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        ticket = Ticket.from_dict(json.loads((await receive())["body"])[TICKET_KEY])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {
                "type": "http.response.body",
                "body": ticket.start_frame(WorkerProcess(dead.pid, 1.0)),
                "more_body": True,
            }
        )
        if audio_first:
            frame = ticket.audio_frame(b"\x01\x02", audio_end_s=0.1)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await asyncio.sleep(3600)  # LitServe would wait forever for a worker that is gone

    started = time.monotonic()
    sent = run_gateway(app, {"input": "hi", "response_format": "pcm"}, shared)
    assert time.monotonic() - started < 5
    if audio_first:
        assert body_of(sent) == b"\x01\x02" and not completed(sent)  # an aborted transfer
    else:
        status, headers = status_and_headers(sent)
        assert status == 503 and b"retry-after" in headers
        assert json.loads(body_of(sent))["error"]["code"] == "worker_lost"
    assert eventually(lambda: shared.board.size() == 0)  # nothing left on the board


class SlowBoard(StreamBoard):
    """A board whose manager answers admissions late (busy, swapping, stopped for a moment)."""

    def open(self, key: str, limit: int, max_wait_s: float = 0.0) -> Admission:
        time.sleep(0.5)
        return super().open(key, limit, max_wait_s)


def test_an_admission_answered_after_the_deadline_gives_its_place_back() -> None:
    shared = Shared(board=SlowBoard(), counters=Counters())
    seen: list[dict] = []
    gateway = RequestIds(
        SpeechGateway(
            litserve_like([END], seen), context=CONTEXT, shared=shared, path="/v1/audio/speech", max_pending=1
        )
    )
    gateway.app.ipc.timeout_s = 0.05  # the client is answered 503 long before the board answers
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": json.dumps({"input": "hi"}).encode(), "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/audio/speech", "headers": []}
    asyncio.run(gateway(scope, receive, send))
    assert status_and_headers(sent)[0] == 503 and seen == []
    time.sleep(0.6)  # the late "admitted" lands
    assert eventually(lambda: shared.board.size() == 0), "the late admission kept a place nobody uses"


def test_a_stalled_client_whose_worker_dies_gives_its_place_back() -> None:
    """The error for a dead worker cannot reach a client that reads nothing: the place goes back anyway."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    shared = Shared(board=StreamBoard(), counters=Counters())

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        ticket = Ticket.from_dict(json.loads((await receive())["body"])[TICKET_KEY])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {
                "type": "http.response.body",
                "body": ticket.start_frame(WorkerProcess(dead.pid, 1.0)),
                "more_body": True,
            }
        )
        frame = ticket.audio_frame(b"\x01\x02", audio_end_s=0.1)
        await send({"type": "http.response.body", "body": frame, "more_body": True})
        await asyncio.sleep(3600)  # LitServe would wait forever for a worker that is gone

    request = {"input": "hi", "stream_format": "sse", "response_format": "pcm"}
    sent = run_gateway(app, request, shared, takes=2, max_pending=1, limits=ReaderLimits(idle_timeout_s=0.3))
    assert not completed(sent)
    assert eventually(lambda: shared.board.size() == 0), "the dead worker's place was never given back"


def test_a_whole_file_is_built_on_disk_not_in_memory() -> None:
    """50 MB of audio in 200 frames: the HTTP process holds a few MB of it at most, never the file."""
    piece = bytes(range(256)) * 1024  # 256 KiB
    frames = 200

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        ticket = Ticket.from_dict(json.loads((await receive())["body"])[TICKET_KEY])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(frames):
            frame = ticket.audio_frame(piece, audio_end_s=(i + 1) * len(piece) / 48_000)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": ticket.end_frame(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    received = {"bytes": 0, "messages": 0, "ok": True}

    async def client_send(message: dict) -> None:  # a client that checks and drops what it gets
        if message["type"] == "http.response.start":
            received["length"] = int(dict(message["headers"])[b"content-length"])
            return
        body = message.get("body", b"")
        received["ok"] = received["ok"] and all(
            body[i : i + len(piece)] == piece[: len(body) - i] for i in range(0, len(body), len(piece))
        )
        received["bytes"] += len(body)
        received["messages"] += 1

    tracemalloc.start()
    try:
        run_with_send(app, {"input": "hi", "stream": False, "response_format": "pcm"}, client_send)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    total = frames * len(piece)
    assert peak < 16 * 1024 * 1024, f"{peak / 2**20:.0f} MiB held for a {total / 2**20:.0f} MiB file"
    assert received["length"] == received["bytes"] == total and received["ok"]
    assert received["messages"] > 1  # sent in pieces as the client takes them


def run_with_send(
    app: Callable, request: dict, send: Callable, shared: Shared | None = None, **options: object
) -> None:
    shared = shared or Shared(board=StreamBoard(), counters=Counters())
    gateway = SpeechGateway(
        app, context=CONTEXT, shared=shared, path="/v1/audio/speech", **{"max_pending": 1, **options}
    )
    messages = [{"type": "http.request", "body": json.dumps(request).encode(), "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/v1/audio/speech", "headers": []}
    asyncio.run(gateway(scope, receive, send))


def _streaming_app(shared: Shared, keys: list[str], frames: int, audio_s: float) -> Callable:
    """A worker stand-in that streams `frames` frames of `audio_s` each, then ends; it stops early, as a
    worker does, once the board says the request was cancelled."""

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        ticket = Ticket.from_dict(json.loads((await receive())["body"])[TICKET_KEY])
        keys.append(ticket.key)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(frames):
            if shared.board.poll([ticket.key])[ticket.key].stopped:
                break
            frame = ticket.audio_frame(b"\x00" * 480, audio_end_s=(i + 1) * audio_s)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        else:
            await send({"type": "http.response.body", "body": ticket.end_frame(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


@pytest.mark.parametrize(("send_s", "cut"), [(0.2, True), (0.05, False)], ids=["half-real-time", "2x"])
def test_a_client_that_takes_audio_slower_than_the_floor_is_cut_and_its_place_given_back(
    send_s: float, cut: bool
) -> None:
    """A slow reader never stalls a send for the idle timeout, but it would keep its place on the board for
    its whole stream: held to the floor (here real time, over a 1 s window), it is cut within seconds."""
    shared = Shared(board=StreamBoard(), counters=Counters())
    keys: list[str] = []
    sent: list[dict] = []

    async def slow_client(message: dict) -> None:
        await asyncio.sleep(send_s)  # each 0.1 s of audio takes the client this long to take
        sent.append(message)

    limits = ReaderLimits(idle_timeout_s=10.0, min_read_rate=1.0, read_window_s=1.0)
    started = time.monotonic()
    request = {"input": "hi", "response_format": "pcm"}
    run_with_send(_streaming_app(shared, keys, 60, 0.1), request, slow_client, shared, limits=limits)
    assert completed(sent) is not cut
    if cut:
        assert time.monotonic() - started < 4  # a 6 s stream, cut after about one window
        assert eventually(lambda: shared.board.poll(keys)[keys[0]].reason == "slow")


def test_a_client_that_leaves_while_queued_is_cancelled_whatever_the_app_inside_listens_for() -> None:
    """Starlette's StreamingResponse calls `receive()` (and so hears the disconnect) only under ASGI spec
    < 2.4, and a queued request sends nothing that could fail: the gateway's own watch must notice."""
    shared = Shared(board=StreamBoard(), counters=Counters())
    keys: list[str] = []

    async def queued(scope: dict, receive: Callable, send: Callable) -> None:
        ticket = Ticket.from_dict(json.loads((await receive())["body"])[TICKET_KEY])
        keys.append(ticket.key)
        # LitServe under ASGI 2.4: no listener; the request waits in the queue until a worker drops it.
        while not shared.board.poll([ticket.key])[ticket.key].stopped:
            await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    messages = [{"type": "http.request", "body": json.dumps({"input": "hi"}).encode(), "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.2)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        pass

    gateway = SpeechGateway(queued, context=CONTEXT, shared=shared, path="/v1/audio/speech", max_pending=2)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "method": "POST",
        "path": "/v1/audio/speech",
        "headers": [],
    }
    asyncio.run(asyncio.wait_for(gateway(scope, receive, send), 5))
    assert shared.board.poll(keys)[keys[0]].reason == "client"


def test_a_wall_clock_step_while_a_stream_plays_fails_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An NTP step or a VM resume moves psutil's boot time by the step: a request in flight must not read
    its (live) worker as dead and fail with worker_lost."""
    import psutil

    shared = Shared(board=StreamBoard(), counters=Counters())
    booted = psutil.boot_time()

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        ticket = Ticket.from_dict(json.loads((await receive())["body"])[TICKET_KEY])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        start = ticket.start_frame(WorkerProcess.current())  # this process plays the worker
        await send({"type": "http.response.body", "body": start, "more_body": True})
        for i, step_s in enumerate((3600.0, -3600.0, 0.0)):
            for clock in (psutil, psutil._pslinux):
                monkeypatch.setattr(clock, "boot_time", lambda step_s=step_s: booted + step_s)
            await asyncio.sleep(1.2)  # more than the gateway's look at its worker
            frame = ticket.audio_frame(b"\x01\x02", audio_end_s=i + 1.0)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": ticket.end_frame(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    sent = run_gateway(app, {"input": "hi", "response_format": "pcm"}, shared)
    assert completed(sent) and body_of(sent) == b"\x01\x02" * 3
