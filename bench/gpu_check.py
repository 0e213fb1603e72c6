"""The GPU check: one bounded run of the product's synthesis path on a device, printing the issue's figures.

`python -m bench.gpu_check --device cuda` (or `make gpu-check`) on a machine with the package installed and
the model built (`make model`, or the model directory copied there). It runs in process, not through the
HTTP server: the engine the worker runs (`KokoroEngine`: the lone-stream plan, trimmed edges, the torch
decoder, noise drawn on the device) and its batched step (`render_batch`), against kokoro's own pipeline
on the same device. It prints one JSON object:

- `lone`: one long text alone, product vs bare `KPipeline` (seconds, and the ratio; the issue's target is
  at most 1.1);
- `streams`: N long streams started at once and driven as a worker drives them, most-behind first, in
  steps of up to `batch` streams and of one stream, each its own run: audio seconds per second, first
  audio p50/p95, and the longest any player would have run dry (started at its first audio);
- what it ran on (device name, torch, the path taken).

Bounded: `--budget-s` stops a streams run early (it reports how far it got). On a CPU it runs too (the
tests run it on the tiny model), but its figures are a GPU's question.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tts_api.formats import SAMPLE_RATE
from tts_api.model.g2p import g2p_pipeline, offline_spacy
from tts_api.model.kmodel import REPO_ID, load_plain_model
from tts_api.model.layout import ModelDir
from tts_api.settings import Settings
from tts_api.synth.engine import KokoroEngine
from tts_api.synth.speech import RenderJob, Utterance, speak_all
from tts_api.text.planning import ChunkCursor
from tts_api.text.segmentation import segment
from tts_api.voices import VoiceBlend

from .texts import TEXTS

__all__ = ["lone_stream", "main", "many_streams"]

VOICE = "af_heart"


@dataclass
class _Listener:
    utterance: Utterance
    started: float
    first_s: float | None = None
    runs_dry: float = 0.0
    worst_dry_s: float = 0.0
    audio_s: float = 0.0
    done: bool = False
    order: int = field(default=0)

    def heard(self, now: float, seconds: float) -> None:
        if self.first_s is None:
            self.first_s, self.runs_dry = now - self.started, now
        elif now > self.runs_dry:
            self.worst_dry_s, self.runs_dry = max(self.worst_dry_s, now - self.runs_dry), now
        self.runs_dry += seconds
        self.audio_s += seconds


def lone_stream(
    engine: KokoroEngine, model_dir: Path, device: str, text: str, voice: str = VOICE
) -> dict[str, float]:
    """One text alone through the product's plan and through kokoro's own pipeline, same device."""
    from kokoro import KPipeline

    _sync(device)
    started = time.perf_counter()
    audio = sum(len(p.audio) for p in speak_all(engine, text, _blend(voice), seed=0)) / SAMPLE_RATE
    _sync(device)
    product = time.perf_counter() - started
    files = ModelDir(model_dir).require()
    with offline_spacy():  # misaki would download spaCy's model, which is installed under another name
        bare = KPipeline(lang_code="a", repo_id=REPO_ID, model=load_plain_model(files, device))
    pack = torch.load(files.voice(voice), weights_only=True).to(device)
    for _ in bare(text[:100], voice=pack):  # warm-up
        pass
    _sync(device)
    started = time.perf_counter()
    for _ in bare(text, voice=pack):
        pass
    _sync(device)
    plain = time.perf_counter() - started
    return {"audio_s": audio, "product_s": product, "bare_s": plain, "ratio": product / plain}


def many_streams(
    engine: KokoroEngine,
    device: str,
    text: str,
    streams: int,
    batch: int,
    budget_s: float,
    voice: str = VOICE,
) -> dict[str, Any]:
    """`streams` copies of `text` started at once, stepped most-behind first, `batch` streams per step."""
    listeners = [
        _Listener(
            engine.utterance(ChunkCursor(segment(text)), _blend(voice), speed=1.0, lang_code="a", seed=i),
            0.0,
            order=i,
        )
        for i in range(streams)
    ]
    _sync(device)
    started = time.perf_counter()
    for listener in listeners:
        listener.started = started
    steps = 0
    while (live := [x for x in listeners if not x.done]) and time.perf_counter() - started < budget_s:
        # Newcomers first, then the players that run dry soonest (what the scheduler's pick does).
        live.sort(key=lambda x: (x.first_s is not None, x.runs_dry, x.order))
        jobs: list[tuple[_Listener, RenderJob]] = []
        for listener in live[:batch]:
            work = listener.utterance.prepare(listener.utterance.budget)
            if isinstance(work, RenderJob):
                jobs.append((listener, work))
            elif work is None:
                listener.done = True
            else:
                listener.heard(time.perf_counter(), len(work.audio) / SAMPLE_RATE)
        if not jobs:
            continue
        outputs = engine.render_batch([job for _, job in jobs]) if batch > 1 else None
        for index, (listener, job) in enumerate(jobs):
            pieces = outputs[index] if outputs is not None else job.render(job.text)
            piece = listener.utterance.rendered(pieces)
            _sync(device)
            listener.heard(time.perf_counter(), len(piece.audio) / SAMPLE_RATE)
        steps += 1
    wall = time.perf_counter() - started
    for listener in listeners:
        listener.utterance.close()
    firsts = sorted(x.first_s for x in listeners if x.first_s is not None)
    return {
        "streams": streams,
        "batch": batch,
        "steps": steps,
        "finished": sum(x.done for x in listeners),
        "wall_s": wall,
        "audio_s_per_s": sum(x.audio_s for x in listeners) / wall,
        "first_audio_p50_s": statistics.median(firsts) if firsts else None,
        "first_audio_p95_s": firsts[min(len(firsts) - 1, int(0.95 * len(firsts)))] if firsts else None,
        "worst_dry_s": max(x.worst_dry_s for x in listeners),
    }


def _blend(voice: str) -> VoiceBlend:
    return VoiceBlend(((voice, 1.0),))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(
    model_dir: Path,
    device: str,
    streams: Sequence[int],
    batch: int,
    budget_s: float,
    text_name: str = "long",
    voice: str = VOICE,
) -> dict[str, Any]:
    text = TEXTS[text_name]
    g2p_pipeline("a")  # G2P loads once, outside every timing
    engine = KokoroEngine(model_dir, device, engine="torch", batch=batch)
    for _ in speak_all(engine, text[:200], _blend(voice), seed=0):  # warm-up
        pass
    result: dict[str, Any] = {
        "path": "in-process engine (KokoroEngine, render_batch), no HTTP server",
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
        "torch": torch.__version__,
        "lone": lone_stream(engine, model_dir, device, text, voice),
        "streams": [],
    }
    for count in streams:
        for size in sorted({1, batch}):
            result["streams"].append(many_streams(engine, device, text, count, size, budget_s, voice))
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--streams", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--budget-s", type=float, default=60.0, help="the longest one streams run may take")
    parser.add_argument("--text", choices=sorted(TEXTS), default="long", help="what every stream reads")
    parser.add_argument("--voice", default=VOICE)
    args = parser.parse_args(argv)
    result = run(args.model_dir, args.device, args.streams, args.batch, args.budget_s, args.text, args.voice)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
