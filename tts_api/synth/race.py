"""Which decoder `auto` keeps on a CPU that has two: timed at start-up, on this machine, not assumed.

ONNX Runtime (fp32) and torch under bfloat16 autocast trade places by CPU: on a 2-vCPU Zen 4 with
AVX512-BF16, bf16 decoded 1.24x faster than ONNX Runtime over 24 chunks of 3-30 words, and made a long text
in the server 1.3x faster; on an AMX Xeon it ran slower than ONNX Runtime in the server's worker. So the
worker decodes a few young-stream chunks with each, the two back to back on each chunk and taking turns to
go first, and keeps the challenger only where the median of its per-chunk time ratios says it is clearly
faster: a pair's two decodes are seconds apart, so a VM that slows down for a while (this project's 2-vCPU
machines drift by tens of percent) moves both, and one slow pair cannot decide. Two pairs of 3-s chunks
were not enough: five runs on one machine gave ratios of 0.68 to 1.24.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from kokoro import KModel

from ..model.vocoder import DecoderInputs, draw_noise, front

__all__ = ["CLEAR_WIN", "RACE_FRAMES", "RACE_PAIRS", "Race", "Racer", "faster", "race_chunks"]

# The start-up calibration's middle sentence, as kokoro's English G2P spells it.
RACE_PHONEMES = "ðˌɪs sˈɛntᵊns ɪz sˈɪnθəsˌIzd æt stˈɑɹtˌʌp, tə mˈɛʒəɹ hˌW fˈæst ðɪs wˈɜɹkəɹ spˈiks."
RACE_FRAMES = 60  # 1.5 s of audio: a young stream's chunk; ~0.5 s per decode on 2 vCPUs
RACE_PAIRS = 5  # chunks each decoder makes, timed (one frame shorter each: lengths neither has seen)
WARM_FRAMES = 20  # each decoder's first call pays for lazy set-up; it is not timed
STYLE_SCALE = 0.15  # about a voice vector's spread
# The challenger replaces the incumbent only when its median time ratio is at most this: a near tie is
# noise, and the incumbent is the one `make model` verified.
CLEAR_WIN = 0.9


class Racer(Protocol):
    name: str

    def decode(self, inputs: DecoderInputs, rand_ini: torch.Tensor, noise: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Race:
    """What the race measured: each decoder's mean seconds per chunk, and the median challenger ÷ incumbent
    time ratio over the chunks."""

    kept: Racer
    seconds: dict[str, float]
    ratio: float


def race_chunks(model: KModel) -> list[DecoderInputs]:
    """RACE_PAIRS chunks of RACE_FRAMES, RACE_FRAMES - 1, ... frames (fewer if the sentence is shorter), from
    kokoro's own front on a fixed sentence and a fixed random voice vector."""
    ids = [i for i in (model.vocab.get(p) for p in RACE_PHONEMES) if i is not None]
    style = torch.randn(1, 256, generator=torch.Generator().manual_seed(0)) * STYLE_SCALE
    with torch.no_grad():
        inputs = front(model, torch.LongTensor([[0, *ids, 0]]).to(model.device), style.to(model.device), 1.0)
    return [_first(inputs, RACE_FRAMES - i) for i in range(RACE_PAIRS)]


def _first(inputs: DecoderInputs, frames: int) -> DecoderInputs:
    return DecoderInputs(
        inputs.asr[..., :frames],
        inputs.f0[..., : 2 * frames],
        inputs.energy[..., : 2 * frames],
        inputs.style,
        inputs.pred_dur,
    )


def faster(
    chunks: Sequence[DecoderInputs],
    incumbent: Racer,
    challenger: Racer,
    clock: Callable[[], float] = time.perf_counter,
) -> Race:
    """Which decoder to keep (see the module docstring). Each chunk has a length neither decoder has seen, as
    a stream's chunks mostly do: one bf16 had not seen cost it more than a repeated one."""
    generator = torch.Generator().manual_seed(0)
    warm = _first(chunks[0], WARM_FRAMES)
    for racer in (incumbent, challenger):
        racer.decode(warm, *draw_noise(warm.f0.shape[-1], generator))
    times: dict[str, list[float]] = {incumbent.name: [], challenger.name: []}
    for turn, chunk in enumerate(chunks):
        noise = draw_noise(chunk.f0.shape[-1], generator)
        for racer in (incumbent, challenger) if turn % 2 == 0 else (challenger, incumbent):
            started = clock()
            racer.decode(chunk, *noise)
            times[racer.name].append(clock() - started)
    ratio = statistics.median(
        c / max(i, 1e-9) for i, c in zip(times[incumbent.name], times[challenger.name], strict=True)
    )
    seconds = {name: sum(t) / len(t) for name, t in times.items()}
    return Race(challenger if ratio <= CLEAR_WIN else incumbent, seconds, ratio)
