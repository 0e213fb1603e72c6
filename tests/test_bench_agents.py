"""bench/agents.py's agent: how it streams a reply and where it cuts in, against a fake socket (the figure
itself runs against a real server in tests/test_bench.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from bench import agents
from bench.agents import AgentSocket, Turn, stream_reply

SENTENCES = ["One two three four five.", "Six seven eight nine ten."]


class FakeSocket:
    """Records what the agent sends; audio comes right after message number `audio_at` is sent, or (None) a
    moment after the reply's last word."""

    def __init__(self, audio_at: int | None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.audio_at = audio_at

    async def send(self, turn: Turn, message: dict[str, Any]) -> float:
        self.sent.append(message)
        if turn.started_at is None:
            turn.started_at = time.monotonic()
        if len(self.sent) == self.audio_at:
            hear(turn)
        elif self.audio_at is None and message.get("text") == SENTENCES[-1].split()[-1] + " ":
            asyncio.get_running_loop().call_later(0.05, hear, turn)
        return time.monotonic()


def hear(turn: Turn) -> None:
    turn.hear(time.monotonic(), b"\0\0" * 100, ())


async def reply(audio_at: int | None, cut_after_words: int | None) -> tuple[bool, list[dict[str, Any]]]:
    sock, turn = FakeSocket(audio_at), Turn("c")
    agent = cast(AgentSocket, sock)  # the one method stream_reply uses
    cut = await asyncio.wait_for(stream_reply(agent, turn, SENTENCES, cut_after_words=cut_after_words), 5)
    return cut, sock.sent


@pytest.fixture(autouse=True)
def fast_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agents, "WORDS_PER_S", 1000.0)


def words(sent: list[dict[str, Any]]) -> list[str]:
    return [m["text"].strip() for m in sent if m.get("text", "").strip()]


def test_a_reply_ends_its_turn_with_a_flush_then_close() -> None:
    cut, sent = asyncio.run(reply(3, None))
    assert not cut
    assert sent[-2:] == [{"text": "", "flush": True}, {"close_context": True}]
    assert len(words(sent)) == 10


def test_a_barge_in_cuts_once_audio_came_and_words_are_out_unflushed() -> None:
    cut, sent = asyncio.run(reply(3, 3))
    assert cut and sent[-1] == {"close_context": True}
    assert words(sent) == ["One", "two", "three"]  # audio came after "two"; three words out, then the cut


def test_on_a_machine_slower_than_the_text_the_last_flush_waits_for_audio_and_the_reply_is_cut() -> None:
    """Closed after the last flush, the context would end the turn (speak it all): no barge-in at all."""
    cut, sent = asyncio.run(reply(None, 3))
    assert cut
    assert sent[-1] == {"close_context": True} and sent[-2] == {"text": "ten. "}
    assert len(words(sent)) == 10
