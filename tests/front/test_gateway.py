"""The speech gateway on its own, around a scripted stand-in for LitServe's streaming endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable

import pytest

from tts_api.errors import InvalidRequest
from tts_api.front.gateway import SpeechGateway
from tts_api.ipc.board import CancelBoard
from tts_api.ipc.counters import Counters
from tts_api.ipc.frames import TICKET_KEY, Ticket
from tts_api.ipc.manager import Shared
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
            if isinstance(item, InvalidRequest):
                data = ticket.error_frame(item)
            elif item is END:
                data = ticket.end_frame(audio_seconds=1.0, usage={"input_tokens": 3})
            else:
                data = ticket.audio_frame(item)
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def call(
    script: list[object], request: dict, headers: list | None = None, shared: Shared | None = None
) -> tuple[list[dict], list[dict]]:
    seen: list[dict] = []
    shared = shared or Shared(board=CancelBoard(), counters=Counters())
    gateway = SpeechGateway(
        litserve_like(script, seen), context=CONTEXT, shared=shared, path="/v1/audio/speech", max_pending=2
    )
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": json.dumps(request).encode(), "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/audio/speech", "headers": headers or []}
    asyncio.run(gateway(scope, receive, send))
    return sent, seen


def status_and_headers(sent: list[dict]) -> tuple[int, dict[bytes, bytes]]:
    return sent[0]["status"], dict(sent[0]["headers"])


def body_of(sent: list[dict]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent[1:])


def completed(sent: list[dict]) -> bool:
    return sent[-1]["type"] == "http.response.body" and not sent[-1].get("more_body", False)


def test_audio_streams_with_its_content_type_and_ends_cleanly() -> None:
    sent, seen = call([b"RIFF", b"more", END], {"input": "hi", "response_format": "wav"})
    status, headers = status_and_headers(sent)
    assert status == 200 and headers[b"content-type"] == b"audio/wav"
    assert headers[b"x-request-id"].startswith(b"req_")
    assert body_of(sent) == b"RIFFmore" and completed(sent)
    assert seen[0]["input"] == "hi" and TICKET_KEY in seen[0]


def test_a_worker_crash_mid_stream_cuts_the_connection_instead_of_ending_cleanly() -> None:
    sent, _ = call([b"first", CUT], {"input": "hi", "response_format": "pcm"})
    assert body_of(sent) == b"first"
    assert not completed(sent), "a truncated stream must not look complete"


def test_a_failure_before_any_audio_is_a_json_error_with_its_status() -> None:
    sent, _ = call([InvalidRequest("voice file vanished", param="voice")], {"input": "hi"})
    status, headers = status_and_headers(sent)
    assert status == 400 and headers[b"content-type"] == b"application/json"
    assert json.loads(body_of(sent))["error"]["message"] == "voice file vanished"


def test_a_crash_before_any_audio_is_a_500_that_names_the_request() -> None:
    sent, _ = call([CUT], {"input": "hi"}, headers=[(b"x-request-id", b"r-42")])
    status, _ = status_and_headers(sent)
    assert status == 500
    assert "r-42" in json.loads(body_of(sent))["error"]["message"]


def test_sse_carries_base64_deltas_then_done() -> None:
    sent, _ = call(
        [b"\x01\x02", b"\x03", END], {"input": "hi", "stream_format": "sse", "response_format": "pcm"}
    )
    _, headers = status_and_headers(sent)
    assert headers[b"content-type"] == b"text/event-stream"
    events = [json.loads(line[6:]) for line in body_of(sent).decode().split("\n\n") if line]
    assert [e["type"] for e in events] == ["speech.audio.delta", "speech.audio.delta", "speech.audio.done"]
    assert b"".join(base64.b64decode(e["audio"]) for e in events[:2]) == b"\x01\x02\x03"
    assert completed(sent)


def test_sse_failure_after_start_is_an_error_event() -> None:
    sent, _ = call([b"\x01", CUT], {"input": "hi", "stream_format": "sse"})
    events = [json.loads(line[6:]) for line in body_of(sent).decode().split("\n\n") if line]
    assert events[-1]["type"] == "error" and events[-1]["error"]["message"]
    assert completed(sent)


def test_stream_false_sends_one_body_with_content_length() -> None:
    sent, _ = call([b"abc", b"def", END], {"input": "hi", "stream": False, "response_format": "flac"})
    status, headers = status_and_headers(sent)
    assert status == 200 and headers[b"content-length"] == b"6" and headers[b"content-type"] == b"audio/flac"
    assert body_of(sent) == b"abcdef" and len(sent) == 2


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
            {"type": "http.response.body", "body": stranger.audio_frame(b"not yours"), "more_body": True}
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    sent: list[dict] = []
    gateway = SpeechGateway(
        app, context=CONTEXT, shared=Shared(CancelBoard(), Counters()), path="/v1/audio/speech", max_pending=2
    )
    body = {"type": "http.request", "body": json.dumps({"input": "hi"}).encode(), "more_body": False}

    async def receive() -> dict:
        return body

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(
        gateway({"type": "http", "method": "POST", "path": "/v1/audio/speech", "headers": []}, receive, send)
    )
    assert status_and_headers(sent)[0] == 500
    assert b"not yours" not in body_of(sent)


def test_the_sse_done_event_carries_the_workers_usage() -> None:
    sent, _ = call([b"\x01", END], {"input": "hi", "stream_format": "sse"})
    events = [json.loads(line[6:]) for line in body_of(sent).decode().split("\n\n") if line]
    assert events[-1] == {"type": "speech.audio.done", "usage": {"input_tokens": 3}}


def test_admission_is_refused_with_retry_after_when_the_board_is_full() -> None:
    shared = Shared(board=CancelBoard(), counters=Counters())
    assert shared.board.open("a", 2) and shared.board.open("b", 2)  # two requests in flight
    sent, seen = call([END], {"input": "hi"}, shared=shared)
    status, headers = status_and_headers(sent)
    assert status == 503 and headers[b"retry-after"] == b"2" and seen == []
    assert json.loads(body_of(sent))["error"]["code"] == "server_overloaded"


def test_an_admitted_request_is_on_the_board_until_the_worker_closes_it() -> None:
    shared = Shared(board=CancelBoard(), counters=Counters())
    call([b"audio", END], {"input": "hi"}, shared=shared)
    assert shared.board.size() == 1  # the scripted worker never closes it; a real one always does


def test_a_client_that_leaves_mid_stream_is_cancelled_on_the_board() -> None:
    shared = Shared(board=CancelBoard(), counters=Counters())
    seen: list[dict] = []
    sent: list[dict] = []

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        body = json.loads((await receive())["body"])
        seen.append(body)
        ticket = Ticket.from_dict(body[TICKET_KEY])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": ticket.audio_frame(b"a"), "more_body": True})
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
    assert shared.board.is_cancelled(key)
