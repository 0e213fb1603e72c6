"""Find a chunk's silent edges from the predicted energy, and cut them before the decoder makes them.

Kokoro gives the leading pad token 0.3-0.45 s and leaves 0.2-0.5 s of silence after the speech (in the
last phonemes' and the final punctuation's durations); the server keeps 40 ms and 120 ms of it. The
decoder's own energy input says where the speech is: over 957 clips (every English, Spanish, French,
Hindi, Italian and Portuguese voice; one-word to one-sentence texts; speeds 0.7, 1 and 1.6) the first
frame whose predicted energy exceeds LOUD_ENERGY came at most 0.8 frame after the audio's first frame
over -45 dBFS, and the last such frame at most 0.4 frame before the audio's last. Cutting the alignment
outside those frames, plus margins, leaves the decoder (about 90 % of the work) only frames that are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .vocoder import DecoderInputs

__all__ = ["LOUD_ENERGY", "EdgeTrim", "keep_range", "trim_edges"]

LOUD_ENERGY = -6.0  # predicted energy (Kokoro's N) of a frame that holds speech; silence sits at -7 to -10
# misaki's word timestamps start 3 frames before the leading pad token ends (KPipeline.join_timestamps);
# keeping at least that much of it keeps every timestamp an exact shift of the untrimmed one.
MIN_LEAD_PAD_FRAMES = 3


@dataclass(frozen=True)
class EdgeTrim:
    """Frames of silence to keep around the speech for the decoder: what the seams keep, plus frames the
    decoder's convolutions need to settle next to an edge."""

    lead_frames: int
    tail_frames: int


def keep_range(inputs: DecoderInputs, trim: EdgeTrim) -> tuple[int, int]:
    """The frames [start, end) to decode: the loud frames plus the margins, never cutting a token but
    the leading pad (at the start) and whatever follows the last loud frame (at the end)."""
    frames = inputs.asr.shape[-1]
    per_frame = inputs.energy.reshape(-1, 2).amax(dim=1)  # two energy points per frame
    loud = torch.nonzero(per_frame > LOUD_ENERGY).flatten()
    if loud.numel() == 0:
        return 0, frames
    lead_pad = int(inputs.pred_dur.reshape(-1)[0])
    start = max(0, min(int(loud[0]) - trim.lead_frames, lead_pad - MIN_LEAD_PAD_FRAMES))
    end = min(frames, int(loud[-1]) + 1 + trim.tail_frames)
    return start, max(end, start + 1)


def trim_edges(inputs: DecoderInputs, trim: EdgeTrim) -> DecoderInputs:
    """`inputs` with only the frames of `keep_range`, and durations that add up to them (so that word
    timestamps computed from them match the audio the decoder makes)."""
    frames = inputs.asr.shape[-1]
    start, end = keep_range(inputs, trim)
    if (start, end) == (0, frames):
        return inputs
    durations = inputs.pred_dur.clone().reshape(-1)
    durations[0] -= start
    owed = frames - end
    for token in range(len(durations) - 1, -1, -1):  # the tail comes off the last tokens first
        taken = min(owed, int(durations[token]))
        durations[token] -= taken
        owed -= taken
        if owed == 0:
            break
    return replace(
        inputs,
        asr=inputs.asr[..., start:end].contiguous(),
        f0=inputs.f0[..., 2 * start : 2 * end].contiguous(),
        energy=inputs.energy[..., 2 * start : 2 * end].contiguous(),
        pred_dur=durations.reshape(inputs.pred_dur.shape),
    )
