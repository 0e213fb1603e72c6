"""bench/worker_cpu.py: each part of a worker's own CPU and of encoding is measured, and the ceilings
follow from them."""

from __future__ import annotations

import pytest

from bench.worker_cpu import measure_worker_cpu


def test_every_part_of_a_workers_own_cpu_is_measured_and_the_ceiling_follows() -> None:
    text = "Hello there. How are you today? The weather is fine, and the trains are running on time."
    result = measure_worker_cpu(streams=8, batch=4, chunk_s=2.0, texts=[text])
    assert result["g2p"]["chunks"] >= 2  # a lone stream's plan: a short first chunk, then the rest
    parts = [
        result["g2p"]["cpu_ms_per_audio_s"],
        result["scheduling"]["cpu_ms_per_audio_s"],
        result["quantizing"]["cpu_ms_per_audio_s"],
        result["hand_over"]["cpu_ms_per_audio_s"],
    ]
    assert all(part > 0 for part in parts)
    assert result["worker_ceiling_audio_s_per_s"] == pytest.approx(1000 / sum(parts))
    encoding = result["encoding_cpu_ms_per_audio_s"]
    assert set(encoding) == {"mp3", "opus", "aac", "flac", "wav", "pcm", "ulaw"}
    assert encoding["mp3"] > encoding["pcm"] > 0  # a lossy codec does real work; pcm only converts
    for fmt in ("pcm", "mp3", "opus"):
        assert result["http_process_ceiling_audio_s_per_s"][fmt] == pytest.approx(1000 / encoding[fmt])
