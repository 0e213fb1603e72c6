"""synth/race.py: which decoder `auto` keeps, on a fake clock (each fake decoder advances it by its cost per
frame), and the chunks it races on from the tiny model's own front."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tts_api.model.kmodel import load_model
from tts_api.model.layout import ModelDir
from tts_api.model.vocoder import DecoderInputs
from tts_api.synth.race import CLEAR_WIN, RACE_FRAMES, RACE_PAIRS, WARM_FRAMES, faster, race_chunks


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeDecoder:
    def __init__(
        self, name: str, seconds_per_frame: float, clock: Clock, calls: list[tuple[str, int]]
    ) -> None:
        self.name, self.per_frame, self.clock, self.calls = name, seconds_per_frame, clock, calls

    def decode(self, inputs: DecoderInputs, rand_ini: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        frames = inputs.asr.shape[-1]
        assert noise.shape[-1] == inputs.samples  # its own chunk's draws
        self.calls.append((self.name, frames))
        self.clock.now += frames * self.per_frame
        return torch.zeros(inputs.samples)


def chunks(*frames: int) -> list[DecoderInputs]:
    return [
        DecoderInputs(
            torch.zeros(1, 512, f),
            torch.zeros(1, 2 * f),
            torch.zeros(1, 2 * f),
            torch.zeros(1, 128),
            torch.ones(f),
        )
        for f in frames
    ]


def race(
    incumbent_cost: float, challenger_cost: float, slow: dict[tuple[str, int], float] | None = None
) -> tuple[str, dict[str, float], float, list[tuple[str, int]]]:
    """A race on chunks of 100, 99 and 98 frames; `slow[(name, frames)]`: that decode took so many times
    longer (the machine slowed down while it ran)."""
    clock, calls = Clock(), []
    spells = slow or {}

    class Drifting(FakeDecoder):
        def decode(self, inputs: DecoderInputs, rand_ini: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
            frames = inputs.asr.shape[-1]
            self.clock.now += frames * self.per_frame * (spells.get((self.name, frames), 1.0) - 1.0)
            return super().decode(inputs, rand_ini, noise)

    incumbent = Drifting("onnx", incumbent_cost, clock, calls)
    challenger = Drifting("bf16", challenger_cost, clock, calls)
    result = faster(chunks(100, 99, 98), incumbent, challenger, clock)
    return result.kept.name, result.seconds, result.ratio, calls


def test_a_clearly_faster_challenger_is_kept_and_each_is_timed_per_chunk() -> None:
    kept, seconds, ratio, _ = race(0.010, 0.007)
    assert kept == "bf16"
    assert seconds == pytest.approx({"onnx": 0.010 * 99, "bf16": 0.007 * 99})
    assert ratio == pytest.approx(0.7)


@pytest.mark.parametrize("share", [1.2, 1.0, CLEAR_WIN + 0.01])
def test_the_incumbent_stays_unless_the_challenger_wins_clearly(share: float) -> None:
    assert race(0.010, 0.010 * share)[0] == "onnx"


def test_one_slow_spell_decides_nothing() -> None:
    """One decode 3x slower (the VM slowed down while it ran) turns a mean around, not the median ratio."""
    kept, seconds, ratio, _ = race(0.010, 0.010, slow={("onnx", 100): 3.0})
    assert seconds["bf16"] < 0.9 * seconds["onnx"]  # the means alone would keep bf16
    assert kept == "onnx" and ratio == pytest.approx(1.0)
    kept, seconds, ratio, _ = race(0.010, 0.007, slow={("bf16", 99): 3.0})
    assert seconds["bf16"] > 0.9 * seconds["onnx"]  # and here they would keep onnx
    assert kept == "bf16" and ratio == pytest.approx(0.7)


def test_both_warm_up_untimed_then_take_turns_going_first_on_new_lengths() -> None:
    _, _, _, calls = race(0.010, 0.007)
    assert calls == [
        ("onnx", WARM_FRAMES),
        ("bf16", WARM_FRAMES),
        ("onnx", 100),
        ("bf16", 100),
        ("bf16", 99),
        ("onnx", 99),
        ("onnx", 98),
        ("bf16", 98),
    ]


def test_a_slow_warm_up_does_not_count() -> None:
    clock, calls = Clock(), []

    class SlowStart(FakeDecoder):
        def decode(self, inputs: DecoderInputs, rand_ini: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
            if inputs.asr.shape[-1] == WARM_FRAMES:
                self.clock.now += 100.0  # lazy set-up
            return super().decode(inputs, rand_ini, noise)

    result = faster(
        chunks(100, 99),
        FakeDecoder("onnx", 0.010, clock, calls),
        SlowStart("bf16", 0.007, clock, calls),
        clock,
    )
    assert result.kept.name == "bf16"


def test_the_race_chunks_come_from_the_models_front(tiny_model_dir: Path) -> None:
    model = load_model(ModelDir(tiny_model_dir), "cpu")
    made = race_chunks(model)
    assert [c.asr.shape[-1] for c in made] == [RACE_FRAMES - i for i in range(RACE_PAIRS)]
    first = made[0]
    assert first.f0.shape[-1] == 2 * RACE_FRAMES and first.energy.shape == first.f0.shape
    assert first.style.shape == (1, 128)
    assert torch.isfinite(first.f0).all() and first.f0.abs().sum() > 0
