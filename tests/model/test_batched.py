"""Batched synthesis: each member of a batch gets the durations, decoder inputs and audio it gets alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from kokoro import KModel

from tts_api.model.batched import decode_batch, front_batch
from tts_api.model.kmodel import load_model
from tts_api.model.layout import ModelDir
from tts_api.model.vocoder import DecoderInputs, NoiseDecoder, draw_noise, front

TOKENS = (5, 23, 61)  # quite different lengths: most of a batch is padding for the short ones
VOICES = ("af_heart", "am_adam", "bf_emma")
SPEEDS = (1.0, 1.25, 0.8)
# Of each tensor's largest magnitude (F0 is in Hz on the real weights). Measured: at most 2e-6 on the tiny
# model, 2.4e-6 on the real one: the batched LSTMs and linear layers round apart.
INPUTS_TOLERANCE = 1e-5
# From the same inputs. Measured: at most 3e-6 on the tiny model (peaks ~2.6), 1.5e-5 on the real one.
AUDIO_TOLERANCE = 1e-4

Member = tuple[torch.Tensor, torch.Tensor, float]  # input ids [1, tokens], voice vector [1, 256], speed


def members(files: ModelDir, tokens: tuple[int, ...] = TOKENS) -> list[Member]:
    generator = torch.Generator().manual_seed(0)
    chosen = []
    for count, voice, speed in zip(tokens, VOICES, SPEEDS, strict=False):  # the first len(tokens)
        ids = torch.randint(1, 178, (1, count), generator=generator)
        ids[0, 0] = ids[0, -1] = 0  # BOS and EOS, as the engine adds them
        pack = torch.load(files.voice(voice), weights_only=True)
        chosen.append((ids, pack[count - 3], speed))  # the pack's row for count - 2 phonemes
    return chosen


def alone(model: KModel, chosen: list[Member]) -> list[DecoderInputs]:
    return [front(model, ids, ref, speed) for ids, ref, speed in chosen]


def batched(model: KModel, chosen: list[Member]) -> list[DecoderInputs]:
    return front_batch(model, [c[0] for c in chosen], [c[1] for c in chosen], [c[2] for c in chosen])


def noises(inputs: list[DecoderInputs]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [draw_noise(m.f0.shape[-1], torch.Generator().manual_seed(i)) for i, m in enumerate(inputs)]


def decode_alone(decoder: NoiseDecoder, inputs: list[DecoderInputs]) -> list[torch.Tensor]:
    with torch.no_grad():
        return [
            decoder(m.asr, m.f0, m.energy, m.style, *n)[0]
            for m, n in zip(inputs, noises(inputs), strict=True)
        ]


def assert_same_inputs(got: DecoderInputs, want: DecoderInputs) -> None:
    assert torch.equal(got.pred_dur, want.pred_dur)  # the word timings derive from it
    assert torch.equal(got.style, want.style)
    for name in ("asr", "f0", "energy"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.shape == b.shape, name
        assert float((a - b).abs().max()) <= INPUTS_TOLERANCE * max(1.0, float(b.abs().max())), name


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a busy 2-core machine two spin against each other (this module ran 8x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tiny_model_dir: Path) -> ModelDir:
    return ModelDir(tiny_model_dir)


@pytest.fixture(scope="module")
def model(files: ModelDir) -> KModel:
    """The tiny model with durations that vary by token, voice and speed (the fixture's are pinned)."""
    model = load_model(files, "cpu")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.predictor.duration_proj.linear_layer.weight.normal_(0, 0.1, generator=generator)
    return model


def test_each_member_gets_the_decoder_inputs_it_gets_alone(model: KModel, files: ModelDir) -> None:
    chosen = members(files)
    want = alone(model, chosen)
    assert len({tuple(m.pred_dur.unique().tolist()) for m in want}) > 1  # durations differ: a real test
    for got, expected in zip(batched(model, chosen), want, strict=True):
        assert_same_inputs(got, expected)


def test_each_member_gets_the_audio_it_gets_alone(model: KModel, files: ModelDir) -> None:
    inputs = alone(model, members(files))
    decoder = NoiseDecoder(model.decoder).eval()
    for got, want, member in zip(
        decode_batch(decoder, inputs, noises(inputs)), decode_alone(decoder, inputs), inputs, strict=True
    ):
        assert got.shape == want.shape == (member.samples,)
        assert float((got - want).abs().max()) < AUDIO_TOLERANCE


def test_a_batch_of_one_is_the_unbatched_path_bit_for_bit(model: KModel, files: ModelDir) -> None:
    chosen = members(files, tokens=(23,))
    (got,), (want,) = batched(model, chosen), alone(model, chosen)
    for name in ("asr", "f0", "energy", "style", "pred_dur"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    decoder = NoiseDecoder(model.decoder).eval()
    assert torch.equal(decode_batch(decoder, [want], noises([want]))[0], decode_alone(decoder, [want])[0])


@pytest.mark.slow
def test_the_real_weights_give_each_member_its_own_inputs_and_audio(real_model_dir: Path) -> None:
    files = ModelDir(real_model_dir)
    model = load_model(files, "cpu")
    chosen = members(files, tokens=(8, 20, 40))
    want = alone(model, chosen)
    for got, expected in zip(batched(model, chosen), want, strict=True):
        assert_same_inputs(got, expected)
    decoder = NoiseDecoder(model.decoder).eval()
    for got_audio, want_audio in zip(
        decode_batch(decoder, want, noises(want)), decode_alone(decoder, want), strict=True
    ):
        assert got_audio.shape == want_audio.shape
        assert float((got_audio - want_audio).abs().max()) < AUDIO_TOLERANCE
