"""The real server on the tiny model: health, streaming, whole files, errors (stopping: test_resilience)."""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Callable

import httpx
import numpy as np
import pytest
import soundfile

from tts_api.processes import ServerProcess
from tts_api.text.planning import plan_chunks

pytestmark = pytest.mark.server
SPEECH = "/v1/audio/speech"
THREE_LINES = "The first line is here.\nA second line follows it.\nAnd the third line ends it."


# Lengths are exact for seeded requests: they keep the lone-stream chunk plan (plan_chunks), while
# unseeded ones adapt their chunks to the worker's load, which moves the gaps between chunks.


def post(server: ServerProcess, body: dict, **kwargs: object) -> httpx.Response:
    return httpx.post(server.url + SPEECH, json=body, timeout=120, **kwargs)


def test_health_says_ready_once_the_model_is_loaded(tiny_server: ServerProcess) -> None:
    response = httpx.get(tiny_server.url + "/health")
    assert response.status_code == 200
    assert response.headers["x-request-id"].startswith("req_")


def test_pcm_streams_one_piece_per_synthesized_chunk(
    tiny_server: ServerProcess, tiny_expected: Callable[..., int]
) -> None:
    pieces = []
    with httpx.stream(
        "POST", tiny_server.url + SPEECH, json={"input": THREE_LINES, "response_format": "pcm", "seed": 1}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("audio/pcm")
        assert r.headers["transfer-encoding"] == "chunked"
        for piece in r.iter_raw():
            pieces.append(piece)
    assert len(plan_chunks(THREE_LINES)) == 3
    assert len(pieces) >= 2, "audio arrived in one piece: it was not streamed"
    assert sum(len(p) for p in pieces) == 2 * tiny_expected(THREE_LINES)


def test_wav_stream_has_an_unknown_length_header_and_decodes(
    tiny_server: ServerProcess, tiny_expected: Callable[..., int]
) -> None:
    response = post(tiny_server, {"input": THREE_LINES, "response_format": "wav", "seed": 1})
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    riff_size, data_size = (
        struct.unpack("<I", response.content[4:8])[0],
        struct.unpack("<I", response.content[40:44])[0],
    )
    assert riff_size == data_size == 0xFFFFFFFF
    samples, rate = soundfile.read(io.BytesIO(response.content), dtype="float32")
    assert rate == 24_000 and samples.ndim == 1
    assert len(samples) == tiny_expected(THREE_LINES)
    assert np.isfinite(samples).all()


def test_stream_false_returns_a_whole_wav_with_true_sizes(
    tiny_server: ServerProcess, tiny_expected: Callable[..., int]
) -> None:
    text = "A complete file, please."
    response = post(tiny_server, {"input": text, "response_format": "wav", "stream": False, "seed": 1})
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24_000, 1, 2)
        assert wav.getnframes() == tiny_expected(text)


def test_speed_changes_the_length(tiny_server: ServerProcess, tiny_expected: Callable[..., int]) -> None:
    text = "Faster please. The gaps shrink too."
    response = post(tiny_server, {"input": text, "response_format": "pcm", "speed": 2.0, "seed": 1})
    assert len(response.content) == 2 * tiny_expected(text, speed=2.0)
    assert tiny_expected(text, speed=2.0) < tiny_expected(text)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 400, "input"),
        ({"input": "hi", "voice": "af_nobody"}, 400, "voice"),
        ({"input": "hi", "voice": "../../etc/passwd"}, 400, "voice"),
        ({"input": "hi", "response_format": "ogg"}, 400, "response_format"),
        ({"input": "hi", "speed": 4.5}, 400, "speed"),
        ({"input": "x" * 50_001}, 413, "input"),
    ],
)
def test_bad_input_gets_a_4xx_json_error_and_the_server_stays_up(
    tiny_server: ServerProcess, body: dict, status: int, param: str
) -> None:
    response = post(tiny_server, body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
    assert post(tiny_server, {"input": "Still here.", "response_format": "pcm"}).status_code == 200


def test_a_non_json_body_is_a_400(tiny_server: ServerProcess) -> None:
    response = httpx.post(tiny_server.url + SPEECH, content=b"{oops", timeout=30)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_the_client_request_id_is_echoed(tiny_server: ServerProcess) -> None:
    response = post(
        tiny_server, {"input": "Tagged.", "response_format": "pcm"}, headers={"X-Request-Id": "abc-123"}
    )
    assert response.headers["x-request-id"] == "abc-123"
