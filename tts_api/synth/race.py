"""Which decoder `auto` keeps on a CPU that has two: timed at start-up, on this machine, not assumed.

ONNX Runtime (fp32) and torch under bfloat16 autocast trade places by CPU: on a 2-vCPU Zen 4 with
AVX512-BF16, bf16 decoded 1.24x faster than ONNX Runtime over 24 chunks of 3-30 words, and made a long text in
the server 1.3x faster; on an AMX Xeon it ran slower than ONNX Runtime in the server's worker. So the worker
decodes two chunks with each, taking turns to go first (so a machine that speeds up or slows down meanwhile
favours neither), and keeps the challenger only where it is clearly faster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from kokoro import KModel

from ..model.vocoder import DecoderInputs, draw_noise, front

__all__ = ["CLEAR_WIN", "RACE_FRAMES", "Racer", "faster", "race_chunks"]

# The start-up calibration's middle sentence, as kokoro's English G2P spells it.
RACE_PHONEMES = "ðˌɪs sˈɛntᵊns ɪz sˈɪnθəsˌIzd æt stˈɑɹtˌʌp, tə mˈɛʒəɹ hˌW fˈæst ðɪs wˈɜɹkəɹ spˈiks."
RACE_FRAMES = 120  # 3 s of audio: a young stream's chunk; about a second per decode on 2 vCPUs
WARM_FRAMES = 20  # each decoder's first call pays for lazy set-up; it is not timed
STYLE_SCALE = 0.15  # about a voice vector's spread
# The challenger replaces the incumbent only when it takes at most this share of its time: a near tie is
# noise, and the incumbent is the one `make model` verified.
CLEAR_WIN = 0.9


class Racer(Protocol):
    name: str

    def decode(self, inputs: DecoderInputs, rand_ini: torch.Tensor, noise: torch.Tensor) -> torch.Tensor: ...


def race_chunks(model: KModel) -> list[DecoderInputs]:
    """Two chunks of RACE_FRAMES and one frame fewer (fewer if the sentence is shorter), from kokoro's own
    front on a fixed sentence and a fixed random voice vector."""
    ids = [i for i in (model.vocab.get(p) for p in RACE_PHONEMES) if i is not None]
    style = torch.randn(1, 256, generator=torch.Generator().manual_seed(0)) * STYLE_SCALE
    with torch.no_grad():
        inputs = front(model, torch.LongTensor([[0, *ids, 0]]).to(model.device), style.to(model.device), 1.0)
    return [_first(inputs, RACE_FRAMES), _first(inputs, RACE_FRAMES - 1)]


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
) -> tuple[Racer, dict[str, float]]:
    """The decoder to keep, and each one's mean seconds per chunk. Each chunk has a length neither decoder
    has seen (bf16's oneDNN kernels are made per shape: a new length cost it up to 2x a repeated one, and a
    stream's chunks are mostly new lengths); the two take turns going first."""
    generator = torch.Generator().manual_seed(0)
    warm = _first(chunks[0], WARM_FRAMES)
    for racer in (incumbent, challenger):
        racer.decode(warm, *draw_noise(warm.f0.shape[-1], generator))
    seconds = {incumbent.name: 0.0, challenger.name: 0.0}
    for turn, chunk in enumerate(chunks):
        noise = draw_noise(chunk.f0.shape[-1], generator)
        for racer in (incumbent, challenger) if turn % 2 == 0 else (challenger, incumbent):
            started = clock()
            racer.decode(chunk, *noise)
            seconds[racer.name] += (clock() - started) / len(chunks)
    kept = challenger if seconds[challenger.name] <= CLEAR_WIN * seconds[incumbent.name] else incumbent
    return kept, seconds
