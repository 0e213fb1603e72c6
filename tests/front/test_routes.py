"""/health says why the server cannot serve, in JSON, whatever the shared state does."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tts_api.front.routes import add_routes
from tts_api.ipc.counters import Counters
from tts_api.ipc.manager import Shared
from tts_api.ipc.streams import StreamBoard
from tts_api.schemas import RequestContext
from tts_api.voices import VoiceCatalogue

CONTEXT = RequestContext(VoiceCatalogue(["af_heart"]), max_input_chars=1000, languages=frozenset("a"))


class GoneBoard(StreamBoard):
    """The board as a proxy sees it once the manager process is gone."""

    def draining(self) -> bool:
        raise ConnectionRefusedError(111, "Connection refused")

    def size(self) -> int:
        raise BrokenPipeError(32, "Broken pipe")


async def get(path: str, board: StreamBoard) -> httpx.Response:
    app = FastAPI()
    add_routes(app, context=CONTEXT, shared=Shared(board, Counters()), workers=lambda: {"speech_0": "ready"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get(path)


@pytest.mark.anyio
async def test_health_is_ready_with_a_working_board() -> None:
    response = await get("/health", StreamBoard())
    assert (response.status_code, response.json()["status"]) == (200, "ready")


@pytest.mark.anyio
async def test_a_dead_manager_makes_health_unavailable_and_says_why() -> None:
    response = await get("/health", GoneBoard())
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable" and "gone" in response.json()["reason"]
    metrics = await get("/metrics", GoneBoard())
    assert metrics.status_code == 503 and metrics.json()["error"]["message"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
