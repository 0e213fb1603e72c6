"""Request ids and the API key, as ASGI middlewares around a trivial app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tts_api.front.auth import ApiKeyAuth, RequestIds, ticket_of


def call(app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, dict, dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers or []}
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], dict(sent[0]["headers"]), json.loads(body) if body else {}


async def echo_request_id(scope: dict, receive: Any, send: Any) -> None:
    body = json.dumps({"request_id": ticket_of(scope).request_id}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("path", ["/v1/audio/speech", "/v1/models", "/info"])
def test_a_configured_key_protects_the_api(path: str) -> None:
    app = ApiKeyAuth(echo_request_id, api_key="s3cret")
    status, _, body = call(app, path)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert call(app, path, [(b"authorization", b"Bearer wrong")])[0] == 401
    assert call(app, path, [(b"authorization", b"Bearer s3cret")])[0] == 200


@pytest.mark.parametrize("path", ["/health", "/metrics", "/"])
def test_probes_scrapers_and_the_page_need_no_key(path: str) -> None:
    assert call(ApiKeyAuth(echo_request_id, api_key="s3cret"), path)[0] == 200


def test_without_a_key_everything_is_open() -> None:
    assert call(ApiKeyAuth(echo_request_id, api_key=None), "/v1/models")[0] == 200


def test_every_response_names_the_request_the_app_saw() -> None:
    _, headers, body = call(RequestIds(echo_request_id), "/health")
    assert headers[b"x-request-id"].decode() == body["request_id"] and body["request_id"].startswith("req_")


def test_a_sane_client_request_id_is_kept_and_an_odd_one_replaced() -> None:
    _, headers, _ = call(RequestIds(echo_request_id), "/health", [(b"x-request-id", b"trace-42")])
    assert headers[b"x-request-id"] == b"trace-42"
    _, headers, _ = call(RequestIds(echo_request_id), "/health", [(b"x-request-id", b"bad id\n")])
    assert headers[b"x-request-id"].startswith(b"req_")


def test_a_401_also_carries_the_request_id() -> None:
    _, headers, _ = call(RequestIds(ApiKeyAuth(echo_request_id, api_key="k")), "/v1/models")
    assert headers[b"x-request-id"].startswith(b"req_")
