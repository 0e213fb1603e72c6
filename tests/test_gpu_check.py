"""The GPU check (bench/gpu_check.py) runs its streams through the engine's batched step: on the tiny model
on a CPU, so that the script is ready when a GPU is at hand (its figures are the GPU's)."""

from __future__ import annotations

from pathlib import Path

from bench.gpu_check import many_streams
from tts_api.synth.engine import KokoroEngine


def test_streams_run_to_their_end_in_batched_steps_and_alone(tiny_model_dir: Path) -> None:
    engine = KokoroEngine(tiny_model_dir, "cpu", engine="torch", batch=2)
    text = "A few words for each listener, then a few more."
    batched = many_streams(engine, "cpu", text, streams=2, batch=2, budget_s=120, voice="af_bella")
    alone = many_streams(engine, "cpu", text, streams=2, batch=1, budget_s=120, voice="af_bella")
    for run in (batched, alone):
        assert run["finished"] == 2 and run["audio_s_per_s"] > 0 and run["first_audio_p95_s"] is not None
    assert batched["steps"] < alone["steps"]  # two streams per step, not one
