"""Does batching pay? k chunks synthesized one by one against one `front_batch` + `decode_batch`, on the CPU.

Both paths run what the torch engine runs for a chunk (front, edge trim, the decoder with the sine source's
draws from a seeded generator); only the grouping differs. The front and the decoder are timed apart:
they batch differently. Times are medians of a few repeats, the two paths taking turns.
"""

from __future__ import annotations

import argparse
import statistics
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from kokoro import KModel

from tts_api.formats import SAMPLE_RATE
from tts_api.model.batched import decode_batch, front_batch
from tts_api.model.edges import trim_edges
from tts_api.model.g2p import g2p_pipeline
from tts_api.model.kmodel import load_model
from tts_api.model.layout import ModelDir
from tts_api.model.vocoder import DecoderInputs, NoiseDecoder, draw_noise, front
from tts_api.settings import Settings
from tts_api.synth.vocoders import EDGE_TRIM

from .client import VOICE
from .quality import score_clip
from .texts import TEXTS

__all__ = ["CHUNK_TEXTS", "format_table", "measure_batched_quality", "measure_batching"]

CHUNK_CHARS = 100
CHUNK_TEXTS = tuple(textwrap.wrap(TEXTS["long"], CHUNK_CHARS))  # lines of at most 100 characters
SEED = 0
PATHS = ("one_by_one", "batched")

Chunk = tuple[torch.Tensor, torch.Tensor]  # input ids [1, tokens], voice vector [1, 256]
Noise = tuple[torch.Tensor, torch.Tensor]


def measure_batching(
    model_dir: Path,
    sizes: Sequence[int] = (1, 2, 4, 8),
    texts: Sequence[str] = CHUNK_TEXTS,
    repeats: int = 3,
    threads: int = 1,
) -> list[dict[str, Any]]:
    """Per k: seconds (front, decoder, both; wall and CPU) and audio seconds per second, for both paths."""
    torch.set_num_threads(threads)
    files = ModelDir(model_dir).require()
    model = load_model(files, "cpu")
    decoder = NoiseDecoder(model.decoder).eval()
    chunks = _chunks(model, files, texts)
    rows = []
    for k in sizes:
        group = [chunks[i % len(chunks)] for i in range(k)]
        timings = _timed(repeats, _Path(model, decoder, group, batched=False), _Path(model, decoder, group))
        audio_s = sum(a.numel() for a in timings[0].audio) / SAMPLE_RATE
        row: dict[str, Any] = {"k": k, "audio_s": audio_s, "threads": threads}
        for name, timing in zip(PATHS, timings, strict=True):
            row |= {f"{name}_{stage}": value for stage, value in timing.seconds.items()}
            row[f"{name}_audio_s_per_s"] = audio_s / timing.seconds["s"]
        for stage in ("s", "front_s", "decoder_s", "cpu_s"):
            row[f"gain_{stage}"] = row[f"one_by_one_{stage}"] / row[f"batched_{stage}"]
        row["max_abs_diff"] = max(
            float((a - b).abs().max()) for a, b in zip(timings[0].audio, timings[1].audio, strict=True)
        )
        rows.append(row)
    return rows


def measure_batched_quality(
    model_dir: Path, sentences: Sequence[tuple[str, str]], group: int = 4, threads: int = 1
) -> dict[str, Any]:
    """Figure 11's sentences (as written, as heard) through both paths, `group` at a time, each sentence one
    chunk with its own seeded noise: each clip scored (DNSMOS, PocketSphinx WER), and the largest sample
    difference between the two paths' audio (each path runs its own front: on long clips the sine source
    carries its F0's rounding into the phase)."""
    torch.set_num_threads(threads)
    files = ModelDir(model_dir).require()
    model = load_model(files, "cpu")
    decoder = NoiseDecoder(model.decoder).eval()
    chunks = _chunks(model, files, [text for text, _ in sentences])
    clips: dict[str, list[np.ndarray]] = {name: [] for name in PATHS}
    for start in range(0, len(chunks), group):
        members = chunks[start : start + group]
        for name, path in zip(
            PATHS,
            (_Path(model, decoder, members, batched=False), _Path(model, decoder, members)),
            strict=True,
        ):
            clips[name] += [a.flatten().numpy() for a in path.decode(path.front())]
    return {
        "sentences": [text for text, _ in sentences],
        "group": group,
        "max_abs_diff": max(
            float(np.abs(a - b).max()) for a, b in zip(clips["one_by_one"], clips["batched"], strict=True)
        ),
        **{
            name: [
                score_clip(audio, expected)
                for audio, (_, expected) in zip(clips[name], sentences, strict=True)
            ]
            for name in PATHS
        },
    }


def _chunks(model: KModel, files: ModelDir, texts: Sequence[str]) -> list[Chunk]:
    """Each text's phonemes as kokoro's pipeline makes them, as input ids with the voice vector for them."""
    pipeline = g2p_pipeline("a")
    pack = torch.load(files.voice(VOICE), weights_only=True)
    chunks: list[Chunk] = []
    for text in texts:
        phonemes = "".join(result.phonemes for result in pipeline(text, split_pattern=None))
        ids = [i for i in (model.vocab.get(p) for p in phonemes) if i is not None]
        chunks.append((torch.LongTensor([[0, *ids, 0]]), pack[len(phonemes) - 1]))
    return chunks


@dataclass
class _Path:
    """One way through k chunks: the front, then the decoder, one chunk at a time or batched."""

    model: KModel
    decoder: NoiseDecoder
    group: Sequence[Chunk]
    batched: bool = True

    def front(self) -> list[DecoderInputs]:
        if self.batched:
            ids, refs = [c[0] for c in self.group], [c[1] for c in self.group]
            inputs = front_batch(self.model, ids, refs, [1.0] * len(self.group))
        else:
            inputs = [front(self.model, ids, ref, 1.0) for ids, ref in self.group]
        return [trim_edges(m, EDGE_TRIM) for m in inputs]

    def decode(self, members: list[DecoderInputs]) -> list[torch.Tensor]:
        noises = [
            draw_noise(m.f0.shape[-1], torch.Generator().manual_seed(SEED + i)) for i, m in enumerate(members)
        ]
        if self.batched:
            return decode_batch(self.decoder, members, noises)
        with torch.no_grad():
            return [
                self.decoder(m.asr, m.f0, m.energy, m.style, *n)[0]
                for m, n in zip(members, noises, strict=True)
            ]


@dataclass
class _Timing:
    seconds: dict[str, float]  # medians over the repeats: wall (front_s, decoder_s, s) and CPU (cpu_s)
    audio: list[torch.Tensor]  # the last repeat's


def _timed(repeats: int, *paths: _Path) -> list[_Timing]:
    """Each path `repeats` times, taking turns (so a busy spell of a shared machine falls on both alike).
    CPU time is this process's: steadier than wall time there."""
    samples: list[dict[str, list[float]]] = [
        {"front_s": [], "decoder_s": [], "s": [], "cpu_s": []} for _ in paths
    ]
    audio: list[list[torch.Tensor]] = [[] for _ in paths]
    for _ in range(repeats):
        for i, path in enumerate(paths):
            cpu, started = time.process_time(), time.perf_counter()
            members = path.front()
            fronted = time.perf_counter()
            audio[i] = path.decode(members)
            done = time.perf_counter()
            for stage, value in (
                ("front_s", fronted - started),
                ("decoder_s", done - fronted),
                ("s", done - started),
                ("cpu_s", time.process_time() - cpu),
            ):
                samples[i][stage].append(value)
    return [
        _Timing({stage: statistics.median(values) for stage, values in s.items()}, a)
        for s, a in zip(samples, audio, strict=True)
    ]


COLUMNS: tuple[tuple[str, str, str], ...] = (  # header, row key, format
    ("k", "k", "3d"),
    ("audio s", "audio_s", "8.2f"),
    ("1-by-1 s", "one_by_one_s", "9.2f"),
    ("batch s", "batched_s", "8.2f"),
    ("1-by-1 x", "one_by_one_audio_s_per_s", "9.2f"),
    ("batch x", "batched_audio_s_per_s", "8.2f"),
    ("gain", "gain_s", "5.2f"),
    ("front gain", "gain_front_s", "10.2f"),
    ("decoder gain", "gain_decoder_s", "12.2f"),
    ("cpu gain", "gain_cpu_s", "8.2f"),
    ("max diff", "max_abs_diff", "8.1e"),
)


def format_table(rows: Sequence[dict[str, Any]], repeats: int) -> str:
    """The rows as a text table, with a line saying what its columns mean."""
    lines = [" ".join(f"{header:>{len(format(rows[0][key], fmt))}}" for header, key, fmt in COLUMNS)]
    lines += [" ".join(format(row[key], fmt) for _, key, fmt in COLUMNS) for row in rows]
    lines.append(
        f"(s: wall seconds, median of {repeats}; x: audio seconds per second; gain: 1-by-1 time over "
        f"batched; {rows[0]['threads']} torch thread(s) on the CPU)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rows = measure_batching(args.model_dir, args.sizes, repeats=args.repeats, threads=args.threads)
    print(format_table(rows, args.repeats))


if __name__ == "__main__":
    main()
