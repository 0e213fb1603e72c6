"""bench/listeners.py's open-loop arrivals, without a server (the quick bench runs them against one)."""

from __future__ import annotations

from typing import Any

import pytest

from bench import listeners
from bench.listeners import Listener, open_loop


class _Idle:
    url = "http://127.0.0.1:9"

    def wait_idle(self) -> None:
        pass


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each listener's text, as `listen` was called; no sleeping."""
    calls: list[str] = []

    def listen(url: str, text: str, **kwargs: Any) -> Listener:
        calls.append(text)
        return Listener(len(text), status=200, first_audio_s=0.1, audio_s=1.0, complete=True)

    monkeypatch.setattr(listeners, "listen", listen)
    monkeypatch.setattr(listeners.time, "sleep", lambda s: None)
    return calls


def test_a_rate_too_low_for_the_window_still_sends_one_listener(sent: list[str]) -> None:
    """A slow worker's capacity makes a low rate; a short run with no arrival would measure nothing (the
    quick bench once read 0 server CPU seconds for such a run on a slower CPU)."""
    run = open_loop(_Idle(), ["Hello."], rate_per_s=0.01, duration_s=1.0, bound_s=1.0, seed=0)  # type: ignore[arg-type]
    assert sent == ["Hello."]
    assert run["streams"] == 1 and run["good"] == 1


def test_arrivals_keep_to_the_window_when_the_rate_fills_it(sent: list[str]) -> None:
    run = open_loop(_Idle(), ["a", "b"], rate_per_s=50.0, duration_s=1.0, bound_s=1.0, seed=0)  # type: ignore[arg-type]
    assert 25 <= len(sent) <= 80 and run["streams"] == len(sent)
    assert sent[:4] == ["a", "b", "a", "b"]
