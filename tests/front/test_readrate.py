"""The read-rate floor on its own, on a fake clock: who waits on whom, and how much audio was taken."""

from __future__ import annotations

import pytest

from tts_api.front.readrate import ReadRate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def read(rate: ReadRate, clock: Clock, seconds: float, *, audio_per_s: float, blocked_share: float) -> bool:
    """Run `seconds` in 0.1 s sends: the server waits on the client `blocked_share` of each, and the client
    takes `audio_per_s`; whether the floor was ever crossed."""
    cut = False
    for _ in range(round(seconds * 10)):
        rate.blocked()
        clock.now += 0.1 * blocked_share
        rate.unblocked()
        rate.took(rate._taken_s + 0.1 * audio_per_s)
        clock.now += 0.1 * (1 - blocked_share)
        cut = cut or rate.too_slow()
    return cut


@pytest.mark.parametrize(
    ("audio_per_s", "blocked_share", "cut"),
    [
        (1.0, 1.0, False),  # a real-time player, the server far ahead: never cut
        (1 / 48, 1.0, True),  # 1 KB/s of 24 kHz pcm: cut
        (0.4, 1.0, True),  # under the floor of 0.5
        (0.1, 0.3, False),  # slow only because the server is: it never waited on the client
    ],
    ids=["real-time", "1-KB-per-s", "under-the-floor", "slow-server"],
)
def test_only_a_client_the_server_waits_on_is_held_to_the_floor(
    audio_per_s: float, blocked_share: float, cut: bool
) -> None:
    clock = Clock()
    rate = ReadRate(0.5, 10.0, clock)
    assert read(rate, clock, 60.0, audio_per_s=audio_per_s, blocked_share=blocked_share) is cut


def test_no_judgement_before_a_whole_window_and_a_long_blocked_send_counts() -> None:
    clock = Clock()
    rate = ReadRate(0.5, 10.0, clock)
    rate.blocked()  # one send that the client never finishes taking
    clock.now = 9.0
    assert not rate.too_slow()
    clock.now = 10.5
    assert rate.too_slow()


def test_a_zero_floor_never_cuts() -> None:
    clock = Clock()
    rate = ReadRate(0.0, 1.0, clock)
    assert not read(rate, clock, 30.0, audio_per_s=0.0, blocked_share=1.0)
