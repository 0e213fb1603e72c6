"""Cutting a chunk's silent edges from the decoder's inputs: which frames stay, and durations that match."""

from __future__ import annotations

import torch

from tts_api.model.edges import LOUD_ENERGY, MIN_LEAD_PAD_FRAMES, EdgeTrim, keep_range, trim_edges
from tts_api.model.vocoder import DecoderInputs

QUIET, LOUD = LOUD_ENERGY - 3, LOUD_ENERGY + 10


def inputs(durations: list[int], loud: tuple[int, int]) -> DecoderInputs:
    """Decoder inputs for tokens of `durations` frames, loud in frames [loud[0], loud[1])."""
    frames = sum(durations)
    per_frame = torch.full((frames,), QUIET)
    per_frame[loud[0] : loud[1]] = LOUD
    energy = per_frame.repeat_interleave(2)[None, :]
    return DecoderInputs(
        asr=torch.arange(frames, dtype=torch.float32).expand(1, 512, frames),
        f0=torch.arange(2 * frames, dtype=torch.float32)[None, :],
        energy=energy,
        style=torch.zeros(1, 128),
        pred_dur=torch.tensor(durations),
    )


def test_only_the_loud_frames_and_the_margins_are_kept() -> None:
    # A 16-frame leading pad, speech in frames 14-40, 12 silent frames at the end (last phoneme, "!").
    full = inputs([16, 5, 5, 10, 8, 7, 1], loud=(14, 40))
    trimmed = trim_edges(full, EdgeTrim(lead_frames=4, tail_frames=6))
    assert keep_range(full, EdgeTrim(4, 6)) == (10, 46)
    assert trimmed.asr.shape[-1] == 36 and torch.equal(trimmed.asr[0, 0], torch.arange(10.0, 46.0))
    assert torch.equal(trimmed.f0[0], torch.arange(20.0, 92.0))  # two F0/energy points per frame
    assert trimmed.energy.shape[-1] == 72
    # The lead comes off the pad token, the tail off the last tokens first: EOS, "!", then the phoneme.
    assert trimmed.pred_dur.tolist() == [6, 5, 5, 10, 8, 2, 0]
    assert int(trimmed.pred_dur.sum()) == trimmed.asr.shape[-1]


def test_the_leading_pad_keeps_the_frames_word_timestamps_count_on() -> None:
    full = inputs([8, 5, 5, 2], loud=(8, 18))  # without a margin the cut would take the whole pad
    start, _ = keep_range(full, EdgeTrim(lead_frames=0, tail_frames=0))
    assert start == 8 - MIN_LEAD_PAD_FRAMES
    assert trim_edges(full, EdgeTrim(0, 0)).pred_dur[0] == MIN_LEAD_PAD_FRAMES


def test_nothing_is_cut_when_nothing_or_everything_is_loud() -> None:
    quiet = inputs([10, 5, 10], loud=(0, 0))
    assert trim_edges(quiet, EdgeTrim(2, 2)) is quiet
    loud = inputs([10, 5, 10], loud=(0, 25))
    assert trim_edges(loud, EdgeTrim(2, 2)) is loud


def test_margins_never_reach_past_the_chunk() -> None:
    full = inputs([6, 5, 3], loud=(5, 13))
    assert keep_range(full, EdgeTrim(lead_frames=40, tail_frames=40)) == (0, 14)
