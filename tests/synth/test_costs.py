"""The cost model's curve: what a chunk costs by its size, learned from measured chunks (synth/costs.py)."""

from __future__ import annotations

import pytest

from tts_api.synth.costs import CostModel

# The real model on a 2-vCPU Zen 4 (onnx engine, 2 threads): characters, compute s, audio s.
# Start-up's four calibration chunks (one text each, in process)...
ZEN4_START = [(13, 0.419, 0.97), (25, 0.505, 1.27), (90, 1.487, 5.76), (345, 4.818, 21.79)]
# ...then a voice agent's reply as the server cut it (the debug log's steps; 15 and 18 are first chunks).
ZEN4_AGENT = [(18, 0.44, 1.32), (24, 0.48, 1.61), (51, 0.68, 2.75), (27, 0.46, 1.79), (42, 0.57, 2.42),
              (33, 0.51, 2.23), (15, 0.44, 1.10), (98, 1.37, 5.78), (65, 0.88, 3.60), (14, 0.37, 1.09),
              (30, 0.52, 1.88), (28, 0.54, 1.81)]  # fmt: skip


def test_a_chunk_costs_what_chunks_of_about_its_size_cost_where_no_line_fits_them_all() -> None:
    """Kokoro's small chunks cost about the same whatever their size: a line through a reply's chunks puts
    its first few words ~1.25x under what they took, and admission planned every chunk at that miss. The
    curve, after one reply, predicts each chunk within 20 %, and still knows what a long chunk costs."""
    cost = CostModel.fit(ZEN4_START)
    for chars, compute_s, audio_s in ZEN4_AGENT * 2:
        cost.learn(chars, 1.0, compute_s, audio_s)
    misses = []
    for chars, compute_s, audio_s in ZEN4_AGENT:
        misses.append(compute_s / cost.cost(chars, 1.0))
        cost.learn(chars, 1.0, compute_s, audio_s)
    assert min(misses) >= 0.8 and max(misses) <= 1.2
    assert 0.44 / cost.line_cost(15) >= 1.2  # the line through the same chunks
    assert cost.cost(345, 1.0) == pytest.approx(4.818, rel=0.1)


def test_the_largest_chunk_within_a_budget_is_the_inverse_of_its_cost() -> None:
    cost = CostModel.fit(ZEN4_START)
    for chars, compute_s, audio_s in ZEN4_AGENT:
        cost.learn(chars, 1.0, compute_s, audio_s)
    for budget_s in (0.05, 0.3, 0.45, 0.7, 1.5, 5.0, 9.0):
        for speed in (0.5, 1.0, 2.0):
            chars = cost.chars_for(budget_s, speed)
            assert chars == 0 or cost.cost(chars, speed) <= budget_s  # 0: not even one character fits
            assert budget_s < cost.cost(chars + 1, speed)


def test_until_a_chunk_is_measured_a_chunk_costs_what_the_line_says() -> None:
    cost = CostModel(compute_s_per_char=0.01, overhead_s=0.1)
    assert cost.cost(100, 1.0) == pytest.approx(1.1)
    assert cost.cost(100, 2.0) == pytest.approx(0.6)
    assert cost.chars_for(1.1 + 1e-9, 1.0) == 100


@pytest.mark.parametrize("chars", [4, 1500])
def test_chunks_smaller_or_larger_than_any_knot_are_learned_too(chars: int) -> None:
    """A four-character ending, or a 360-character chunk at speed 0.25 (1,440 characters' worth of audio):
    off the curve's knots, their cost is still what they measured once a few came."""
    cost = CostModel.fit(ZEN4_START)
    truth = 0.3 + 0.02 * chars
    for _ in range(12):
        cost.learn(chars, 1.0, truth, chars / 15)
    assert cost.cost(chars, 1.0) == pytest.approx(truth, rel=0.02)
