"""The scheduling policy on its own, with a fake clock: deadline order, protection, fairness, admission."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tts_api.worker.scheduler import CostModel, Scheduler, StreamView

# A worker that makes 2.5 audio seconds per second: 1/15 s of audio per character, 1/37.5 s of compute.
COST = CostModel(compute_s_per_char=1 / 37.5, audio_s_per_char=1 / 15)


def scheduler(**kwargs: object) -> Scheduler:
    return Scheduler(CostModel(COST.compute_s_per_char, COST.audio_s_per_char), **kwargs)  # type: ignore[arg-type]


def playing(
    key: str, *, first_audio_s: float, sent: float, chars: int = 600, arrived: float = 0.0
) -> StreamView:
    return StreamView(key, arrived, remaining_chars=chars, first_audio_s=first_audio_s, sent_audio_s=sent)


def test_a_newcomer_is_due_at_once_and_goes_before_a_stream_with_a_lead() -> None:
    policy = scheduler()
    ahead = playing("ahead", first_audio_s=0.0, sent=20.0)
    newcomer = StreamView("new", arrived_s=5.0, remaining_chars=300)
    pick = policy.pick(5.0, [ahead, newcomer])
    assert pick is not None and pick.key == "new"
    assert pick.max_chars == policy.first_chunk_chars  # a few words first


def test_a_stream_about_to_run_dry_is_protected_from_first_audio_work() -> None:
    policy = scheduler()
    # Its audio runs out at 10.3 s: less than a first chunk plus its own next chunk away.
    dry = playing("dry", first_audio_s=0.0, sent=10.3)
    newcomer = StreamView("new", arrived_s=9.0, remaining_chars=300)
    pick = policy.pick(10.0, [dry, newcomer])
    assert pick is not None and pick.key == "dry"


def test_playing_streams_run_in_deadline_order() -> None:
    policy = scheduler()
    streams = [
        playing("later", first_audio_s=0.0, sent=30.0),
        playing("sooner", first_audio_s=0.0, sent=12.0),
        playing("middle", first_audio_s=0.0, sent=20.0),
    ]
    pick = policy.pick(10.0, streams)
    assert pick is not None and pick.key == "sooner"


def test_a_chunk_is_cut_short_so_the_others_stay_on_time() -> None:
    policy = scheduler()
    chosen = playing("chosen", first_audio_s=0.0, sent=11.0)
    other = playing("other", first_audio_s=0.0, sent=11.6)  # 1.1 s of slack past its margin
    pick = policy.pick(10.0, [chosen, other])
    assert pick is not None and pick.key == "chosen"
    assert pick.max_chars < COST.chars_for(policy.max_step_s, 1.0)
    assert policy.cost.cost(pick.max_chars, 1.0) <= max(
        policy.deadline(other) - 10.0, policy.cost.cost(policy.min_chunk_chars, 1.0)
    )


def test_a_lone_stream_gets_long_chunks_but_never_longer_than_a_newcomer_can_wait() -> None:
    policy = scheduler()
    pick = policy.pick(1.0, [playing("solo", first_audio_s=0.0, sent=10.0)])
    assert pick is not None
    assert policy.cost.cost(pick.max_chars, 1.0) == pytest.approx(policy.max_step_s, abs=0.05)


def test_a_young_stream_gets_a_chunk_that_lands_before_its_own_audio_runs_out() -> None:
    policy = scheduler(min_chunk_chars=60)
    # 1.3 s of audio sent at 10.0: the floor kept for the others' sake (60 characters, 1.6 s) would
    # leave this player dry; its own chunk fits in 80 % of what it still has.
    young = playing("young", first_audio_s=10.0, sent=1.3)
    other = playing("other", first_audio_s=0.0, sent=30.0)
    pick = policy.pick(10.0, [young, other])
    assert pick is not None and pick.key == "young"
    assert pick.max_chars < policy.min_chunk_chars
    assert policy.cost.cost(pick.max_chars, 1.0) <= 0.8 * 1.3


def test_a_player_that_ran_dry_gets_a_first_sized_chunk() -> None:
    policy = scheduler()
    dry = playing("dry", first_audio_s=0.0, sent=5.0)
    pick = policy.pick(6.0, [dry])
    assert pick is not None and pick.max_chars == policy.first_chunk_chars


def test_a_stream_far_ahead_of_its_reader_waits_for_the_reader() -> None:
    policy = scheduler(max_lead_s=30.0)
    far = playing("far", first_audio_s=0.0, sent=40.0)
    far.delivered_audio_s = 5.0
    assert policy.pick(1.0, [far]) is None
    far.delivered_audio_s = 15.0
    assert policy.pick(1.0, [far]) is not None


def test_fifo_runs_the_oldest_stream_to_its_end() -> None:
    policy = scheduler(policy="fifo")
    old = playing("old", first_audio_s=0.0, sent=50.0, arrived=0.0)
    old.delivered_audio_s = 45.0
    new = StreamView("new", arrived_s=1.0, remaining_chars=100)
    pick = policy.pick(2.0, [new, old])
    assert pick is not None and pick.key == "old"
    assert not policy.admits(2.0, [old], new)
    assert policy.admits(2.0, [], new)


def test_a_stream_is_admitted_alone_whatever_the_speed() -> None:
    slow = Scheduler(CostModel(compute_s_per_char=1.0, audio_s_per_char=1 / 15))  # 15x slower than real time
    assert slow.admits(0.0, [], StreamView("only", 0.0, remaining_chars=500))


def test_admission_stops_where_the_streams_would_start_to_stutter() -> None:
    """At 2.5 audio-s per s, two long streams fit in real time and a third does not."""
    policy = scheduler(max_active=8)
    first = playing("a", first_audio_s=0.0, sent=6.0, chars=600)
    second = playing("b", first_audio_s=0.5, sent=3.0, chars=600)
    assert policy.admits(1.0, [first], StreamView("b", 1.0, remaining_chars=600))
    assert not policy.admits(1.0, [first, second], StreamView("c", 1.0, remaining_chars=600))
    assert policy.worst_underrun(1.0, [first, second, StreamView("c", 1.0, remaining_chars=600)]) > 0


def test_a_short_newcomer_fits_beside_streams_that_have_a_lead() -> None:
    policy = scheduler(max_active=8)
    leads = [playing(k, first_audio_s=0.0, sent=25.0, chars=60) for k in "ab"]
    assert policy.admits(2.0, leads, StreamView("short", 2.0, remaining_chars=60))


def test_admission_respects_the_cap() -> None:
    policy = scheduler(max_active=2)
    leads = [playing(k, first_audio_s=0.0, sent=40.0, chars=10) for k in "ab"]
    assert not policy.admits(2.0, leads, StreamView("c", 2.0, remaining_chars=10))


def test_the_cost_model_learns_from_measured_chunks() -> None:
    cost = CostModel(compute_s_per_char=0.1, audio_s_per_char=0.05)
    for _ in range(40):
        cost.learn(chars=100, speed=1.0, compute_s=2.0, audio_s=6.0)
    assert cost.compute_s_per_char == pytest.approx(0.02, rel=1e-3)
    assert cost.capacity == pytest.approx(3.0, rel=1e-3)
    cost.learn(chars=0, speed=1.0, compute_s=1.0, audio_s=1.0)  # a pause teaches nothing
    assert cost.capacity == pytest.approx(3.0, rel=1e-3)


@dataclass
class _Run:
    """A worker simulated against a fake clock, stepping whatever the policy picks."""

    policy: Scheduler
    now: float = 0.0
    first_audio: dict[str, float] = field(default_factory=dict)
    worst_gap: dict[str, float] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def run(self, streams: list[StreamView], until: float = 600.0) -> None:
        while any(not s.finished for s in streams) and self.now < until:
            ready = [s for s in streams if s.arrived_s <= self.now]
            pick = self.policy.pick(self.now, ready)
            if pick is None:
                self.now += 0.05
                continue
            stream = next(s for s in ready if s.key == pick.key)
            chars = min(pick.max_chars, 120, stream.remaining_chars)
            self.now += self.policy.cost.cost(chars, stream.speed)
            if stream.first_audio_s is None:
                stream.first_audio_s = self.now
                self.first_audio[stream.key] = self.now - stream.arrived_s
            else:
                gap = self.now - (stream.first_audio_s + stream.sent_audio_s)
                self.worst_gap[stream.key] = max(self.worst_gap.get(stream.key, 0.0), gap)
            stream.sent_audio_s += self.policy.cost.audio(chars, stream.speed)
            stream.delivered_audio_s = stream.sent_audio_s  # a reader that keeps up
            stream.remaining_chars -= chars
            self.order.append(stream.key)


def test_no_stream_starves_and_newcomers_hear_audio_quickly() -> None:
    """Two long streams on a worker that can feed 2.5: both start fast, neither stutters, both finish."""
    run = _Run(scheduler())
    streams = [StreamView("a", 0.0, remaining_chars=400), StreamView("b", 0.5, remaining_chars=400)]
    run.run(streams)
    assert all(s.finished for s in streams)
    assert run.first_audio["b"] < 4.0  # not behind a's whole text (400 chars = 11 s of compute)
    assert max(run.worst_gap.values()) <= 0.0
    assert {"a", "b"} <= set(run.order[:4])  # interleaved from the start
