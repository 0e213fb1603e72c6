"""Where a worker's own thread spends CPU per second of audio, the model apart: what a GPU worker's one
Python thread must do besides launching work, and how much audio that thread could feed at most; and what
encoding costs the HTTP processes, where each request's audio is encoded (front/encoding.py).

Each part is measured alone, in this process, on one thread, as CPU time (`time.thread_time`), so a busy
machine slows it less than it slows wall time:

- G2P: kokoro's English pipeline (misaki and spaCy) on the listeners' texts, cut into the chunks the
  planner gives a lone stream; per second of the audio those characters make (15 per second at speed 1).
- scheduling: one batched pick among `streams` playing streams and one admission test of a newcomer
  beside them, on a cost model of a GPU worker; per step, and per audio second when each step carries
  `batch` members of `chunk_s` seconds.
- quantizing: the model's float samples to the 16-bit PCM that frames carry.
- hand-over: putting each member's frames on a Manager queue (the transport LitServe's loop sends
  frames on) in frames of 0.5 s of pcm.
- encoding (in an HTTP process, not the worker): each response format's encoder (the server's own) fed
  one second at a time; the audio per second one HTTP process could encode at most.

`python -m bench.worker_cpu [--streams 64] [--batch 16] [--chunk-s 4] [--out FILE]`; JSON on stdout.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tts_api.encoders import open_encoder, to_pcm16
from tts_api.formats import RESPONSE_FORMATS, SAMPLE_RATE
from tts_api.synth.costs import TYPICAL_CHARS_PER_AUDIO_S, CostModel
from tts_api.text.planning import plan_chunks
from tts_api.worker.scheduler import Scheduler, StreamView

from .report import print_json
from .texts import LISTENER_TEXTS

__all__ = ["main", "measure_worker_cpu"]

FRAME_S = 0.5  # audio per frame handed over
ENCODED_S = 30  # seconds of audio each encoder is fed
GPU_CAPACITY = 200.0  # audio seconds per second of the cost model the scheduler plans on (emulated:200)
GPU_OVERHEAD_S = 0.04  # its fixed cost per step (a launch-bound front: ~40 ms on an H200)


def _cpu(work: Callable[[], object], repeats: int = 1) -> float:
    """CPU seconds of this thread for `repeats` runs of `work`."""
    started = time.thread_time()
    for _ in range(repeats):
        work()
    return time.thread_time() - started


def _g2p(texts: list[str]) -> dict[str, float]:
    from tts_api.model.g2p import g2p_pipeline

    pipeline = g2p_pipeline("a")
    chunks = [c.text for text in texts for c in plan_chunks(text) if c.text]
    list(pipeline(chunks[0]))  # spaCy's first call loads lazily
    chars = sum(len(c) for c in chunks)
    cpu_s = _cpu(lambda: [list(pipeline(c)) for c in chunks])
    audio_s = chars / TYPICAL_CHARS_PER_AUDIO_S
    return {"chunks": len(chunks), "chars": chars, "cpu_ms_per_audio_s": 1000 * cpu_s / audio_s}


def _encoding() -> dict[str, float]:
    rng = np.random.default_rng(0)
    second = (0.1 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
    result: dict[str, float] = {}
    for fmt in RESPONSE_FORMATS:

        def encode(fmt: Any = fmt) -> None:
            with open_encoder(fmt) as encoder:
                for _ in range(ENCODED_S):
                    encoder.write(second)
                encoder.finish()

        encode()  # the codec's first open pays for lazy set-up
        result[fmt] = 1000 * _cpu(encode) / ENCODED_S
    return result


def _quantizing() -> dict[str, float]:
    second = (0.1 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)).astype(np.float32)
    repeats = 200
    return {"cpu_ms_per_audio_s": 1000 * _cpu(lambda: to_pcm16(second), repeats) / repeats}


def _views(streams: int, now: float) -> list[StreamView]:
    """Playing streams at spread buffers and lengths, as a busy worker holds them."""
    views = []
    for i in range(streams):
        view = StreamView(f"s{i}", arrived_s=0.0, remaining_chars=300 + 37 * i % 900)
        view.admitted_s, view.first_audio_s = 0.0, 1.0 + i % 7
        view.sent_audio_s = now - view.first_audio_s + 0.5 + (i % 11) * 0.4
        view.delivered_audio_s = view.sent_audio_s
        views.append(view)
    return views


def _scheduling(streams: int, batch: int, chunk_s: float) -> dict[str, float]:
    per_char = 1.0 / TYPICAL_CHARS_PER_AUDIO_S / GPU_CAPACITY
    scheduler = Scheduler(CostModel(compute_s_per_char=per_char, overhead_s=GPU_OVERHEAD_S), batch=batch)
    now = 20.0
    views = _views(streams, now)
    newcomer = StreamView("new", arrived_s=now, remaining_chars=250, admitted_s=now)
    repeats = 20
    pick_s = _cpu(lambda: scheduler.pick_batch(now, views), repeats) / repeats
    admit_s = _cpu(lambda: scheduler.admits(now, views, newcomer), repeats) / repeats
    step_s = pick_s + admit_s
    return {
        "pick_ms": 1000 * pick_s,
        "admission_ms": 1000 * admit_s,
        "cpu_ms_per_audio_s": 1000 * step_s / (batch * chunk_s),
    }


def _hand_over() -> dict[str, float]:
    frame = bytes(int(2 * SAMPLE_RATE * FRAME_S))
    with multiprocessing.Manager() as manager:
        queue = manager.Queue()
        frames = 200
        cpu_s = _cpu(lambda: queue.put(("uid", (frame, 0, 0, 0))), frames)
    return {"frame_bytes": len(frame), "cpu_ms_per_audio_s": 1000 * cpu_s / (frames * FRAME_S)}


def measure_worker_cpu(
    streams: int = 64, batch: int = 16, chunk_s: float = 4.0, texts: list[str] | None = None
) -> dict[str, Any]:
    """Every part's CPU per audio second; the audio per second a worker's thread doing its parts would feed
    at most, and one HTTP process encoding each format would carry at most."""
    g2p = _g2p(texts or list(LISTENER_TEXTS))
    scheduling = _scheduling(streams, batch, chunk_s)
    quantizing = _quantizing()
    hand_over = _hand_over()
    encoding = _encoding()
    worker = sum(part["cpu_ms_per_audio_s"] for part in (g2p, scheduling, quantizing, hand_over))
    return {
        "streams": streams,
        "batch": batch,
        "chunk_s": chunk_s,
        "g2p": g2p,
        "scheduling": scheduling,
        "quantizing": quantizing,
        "hand_over": hand_over,
        "worker_ceiling_audio_s_per_s": 1000 / worker,
        "encoding_cpu_ms_per_audio_s": encoding,
        "http_process_ceiling_audio_s_per_s": {fmt: 1000 / encoding[fmt] for fmt in ("pcm", "mp3", "opus")},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--chunk-s", type=float, default=4.0, help="audio per member of a step")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = measure_worker_cpu(args.streams, args.batch, args.chunk_s)
    print_json(result, args.out)


if __name__ == "__main__":
    main()
