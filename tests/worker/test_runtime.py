"""A worker's start-up calibration: measured once per kind of worker, taken by the workers that replace it."""

from __future__ import annotations

import pytest

from tts_api.ipc.calibrations import Calibrations
from tts_api.settings import EmulatedSpec
from tts_api.synth.emulated import EmulatedEngine
from tts_api.synth.speech import SpeechEngine, time_text
from tts_api.voices import VoiceBlend, VoiceCatalogue
from tts_api.worker import runtime
from tts_api.worker.runtime import CALIBRATION_TEXTS, WARMUP_TEXT, calibrate


def test_a_replacement_worker_takes_the_speed_its_predecessor_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spoken: list[str] = []

    def timed(engine: SpeechEngine, text: str, voice: VoiceBlend) -> tuple[float, float]:
        spoken.append(text)
        return time_text(engine, text, voice)

    monkeypatch.setattr(runtime, "time_text", timed)
    engine = EmulatedEngine(EmulatedSpec(50.0, 0.001))
    catalogue, known = VoiceCatalogue(["af_heart"]), Calibrations()

    first, reused = calibrate(engine, catalogue, known, "cpu torch 1 threads")
    assert not reused and spoken == [WARMUP_TEXT, *CALIBRATION_TEXTS]
    spoken.clear()
    second, reused = calibrate(engine, catalogue, known, "cpu torch 1 threads")
    assert reused and spoken == [WARMUP_TEXT]  # warmed up, not measured again
    assert (second.capacity, second.overhead_s) == (first.capacity, first.overhead_s)
    spoken.clear()
    calibrate(engine, catalogue, known, "cpu torch 2 threads")
    assert spoken == [WARMUP_TEXT, *CALIBRATION_TEXTS]  # another kind of worker measures itself
