"""Kokoro's synthesis split in two, with its randomness made explicit: what both engines run.

`front` is everything of `KModel.forward_with_tokens` before the decoder (ALBERT, the prosody predictor,
durations, alignment, F0 and energy): about a tenth of the work, always in torch. The decoder (iSTFTNet
vocoder) is the rest; `NoiseDecoder` runs it with the two random tensors kokoro draws inside (the sine
source's initial phase and its additive noise) passed in instead, so that a request's own generator
decides them (seeds reproduce audio however requests interleave) and the ONNX export takes them as
inputs. With the same draws, front + NoiseDecoder equals kokoro's own forward bit for bit.

`ExactSTFT` is `torch.stft`/`torch.istft` (what KModel runs) built from convolutions, so that it exports
to ONNX; kokoro's own exportable `CustomSTFT` computes a different inverse (bands ±2-4 dB off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MethodType
from typing import Any

import torch
import torch.nn.functional as F
from kokoro import KModel

__all__ = ["DecoderInputs", "ExactSTFT", "NoiseDecoder", "draw_noise", "front", "use_exact_stft"]

HARMONICS = 9  # kokoro's SineGen: the fundamental and 8 overtones


@dataclass(frozen=True)
class DecoderInputs:
    """What the front hands the decoder, for one chunk (batch of one)."""

    asr: torch.Tensor  # [1, 512, frames]
    f0: torch.Tensor  # [1, 2 * frames]
    energy: torch.Tensor  # [1, 2 * frames]
    style: torch.Tensor  # [1, 128], the decoder half of the voice vector
    pred_dur: torch.Tensor  # frames per input token

    @property
    def samples(self) -> int:
        """Audio samples the decoder will make: 300 per F0 point (600 per frame at 24 kHz)."""
        return self.f0.shape[-1] * 300


@torch.no_grad()
def front(model: KModel, input_ids: torch.Tensor, ref_s: torch.Tensor, speed: float) -> DecoderInputs:
    """KModel.forward_with_tokens up to the decoder (kokoro 0.9.4, batch of one)."""
    tokens = input_ids.shape[1]
    lengths = torch.full((1,), tokens, dtype=torch.long, device=input_ids.device)
    text_mask = torch.gt(torch.arange(tokens, device=input_ids.device).unsqueeze(0) + 1, lengths.unsqueeze(1))
    bert = model.bert(input_ids, attention_mask=(~text_mask).int())
    d_en = model.bert_encoder(bert).transpose(-1, -2)
    style = ref_s[:, 128:]
    d = model.predictor.text_encoder(d_en, style, lengths, text_mask)
    x, _ = model.predictor.lstm(d)
    duration = torch.sigmoid(model.predictor.duration_proj(x)).sum(dim=-1) / speed
    pred_dur = torch.round(duration).clamp(min=1).long().squeeze()
    indices = torch.repeat_interleave(torch.arange(tokens, device=input_ids.device), pred_dur)
    alignment = torch.zeros((tokens, indices.shape[0]), device=input_ids.device)
    alignment[indices, torch.arange(indices.shape[0])] = 1
    alignment = alignment.unsqueeze(0)
    f0, energy = model.predictor.F0Ntrain(d.transpose(-1, -2) @ alignment, style)
    asr = model.text_encoder(input_ids, lengths, text_mask) @ alignment
    return DecoderInputs(asr, f0, energy, ref_s[:, :128].contiguous(), pred_dur)


def draw_noise(f0_points: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The sine source's random initial phase [1, 9] and noise [1, 9, samples], drawn like kokoro draws them.

    Same order and memory layout as SineGen (its randn_like fills a transposed view, which torch fills
    with a different sampler than a contiguous tensor), so the global generator seeded s gives kokoro's
    own audio for seed s. The draws are made on the generator's device: a CUDA generator draws on the GPU.
    """
    device = generator.device if generator is not None else None
    rand_ini = torch.rand(1, HARMONICS, generator=generator, device=device)
    rand_ini[:, 0] = 0
    noise = (
        torch.empty(1, HARMONICS, f0_points * 300, device=device).transpose(1, 2).normal_(generator=generator)
    )
    return rand_ini, noise.transpose(1, 2).contiguous()


def _sine_forward(self: Any, f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SineGen.forward with its two draws taken from `self._rand_ini` and `self._noise`."""
    harmonics = torch.arange(1, self.harmonic_num + 2, dtype=f0.dtype, device=f0.device)
    rad = (f0 * harmonics / self.sampling_rate) % 1
    rad = torch.cat([rad[:, :1, :] + self._rand_ini[:, None, :], rad[:, 1:, :]], dim=1)
    rad = F.interpolate(rad.transpose(1, 2), scale_factor=1 / self.upsample_scale, mode="linear")
    phase = torch.cumsum(rad.transpose(1, 2), dim=1) * 2 * torch.pi
    phase = F.interpolate(
        phase.transpose(1, 2) * self.upsample_scale, scale_factor=self.upsample_scale, mode="linear"
    ).transpose(1, 2)
    uv = (f0 > self.voiced_threshold).to(torch.float32)
    noise = (uv * self.noise_std + (1 - uv) * self.sine_amp / 3) * self._noise.transpose(1, 2)
    return torch.sin(phase) * self.sine_amp * uv + noise, uv, noise


def _source_forward(self: Any, f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SourceModuleHnNSF.forward without its third draw, whose result the generator never reads."""
    sine, uv, _ = self.l_sin_gen(f0)
    return self.l_tanh(self.l_linear(sine)), torch.zeros_like(uv), uv


class NoiseDecoder(torch.nn.Module):
    """decoder(asr, F0, N, style, rand_ini, noise) -> audio [1, samples].

    Replaces the forward of this decoder's own source modules (instance attributes: other models are
    untouched) so that they read the draws passed in.
    """

    def __init__(self, decoder: Any) -> None:
        super().__init__()
        self.decoder = decoder
        source = decoder.generator.m_source
        self._sine: Any = source.l_sin_gen
        self._sine.forward = MethodType(_sine_forward, self._sine)
        source.forward = MethodType(_source_forward, source)

    def forward(
        self,
        asr: torch.Tensor,
        f0: torch.Tensor,
        energy: torch.Tensor,
        style: torch.Tensor,
        rand_ini: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        self._sine._rand_ini, self._sine._noise = rand_ini, noise
        try:
            return self.decoder(asr, f0, energy, style).squeeze(1)
        finally:
            self._sine._rand_ini = self._sine._noise = None


class ExactSTFT(torch.nn.Module):
    """torch.stft/istft (hann, center, reflect padding) as convolutions: ONNX-exportable, dynamic length."""

    forward_re: torch.Tensor
    forward_im: torch.Tensor
    inverse_re: torch.Tensor
    inverse_im: torch.Tensor
    window_sq: torch.Tensor

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * bins * torch.arange(n_fft, dtype=torch.float64)[None, :] / n_fft
        sin = torch.sin(angle)
        sin[0] = sin[-1] = 0.0  # exact zeros at DC and Nyquist, as an FFT has
        weight = torch.full((n_fft // 2 + 1, 1), 2.0, dtype=torch.float64)
        weight[0] = weight[-1] = 1.0  # the one-sided inverse counts the other bins twice
        self.register_buffer("forward_re", (torch.cos(angle) * window).float()[:, None, :])
        self.register_buffer("forward_im", (-sin * window).float()[:, None, :])
        self.register_buffer("inverse_re", (weight * torch.cos(angle) * window / n_fft).float()[:, None, :])
        self.register_buffer("inverse_im", (weight * sin * window / n_fft).float()[:, None, :])
        self.register_buffer("window_sq", (window * window).float()[None, None, :])

    def transform(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T] -> magnitude, phase [B, bins, frames]."""
        x = F.pad(x[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        re = F.conv1d(x, self.forward_re, stride=self.hop)
        im = F.conv1d(x, self.forward_im, stride=self.hop)
        # torch.angle gives +pi on the negative real axis; ONNX's atan2 gives -pi there.
        phase = torch.where((im == 0) & (re < 0), torch.full_like(re, math.pi), torch.atan2(im, re))
        return torch.sqrt(re * re + im * im), phase

    def inverse(self, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """-> [B, 1, hop * (frames - 1)], normalized by the overlap-added squared window like istft."""
        y = F.conv_transpose1d(magnitude * torch.cos(phase), self.inverse_re, stride=self.hop)
        y = y - F.conv_transpose1d(magnitude * torch.sin(phase), self.inverse_im, stride=self.hop)
        envelope = F.conv_transpose1d(torch.ones_like(magnitude[:, :1, :]), self.window_sq, stride=self.hop)
        pad = self.n_fft // 2
        return (y / envelope)[..., pad:-pad]


def use_exact_stft(model: KModel) -> KModel:
    """Give `model`'s generator the exportable exact STFT (for the ONNX export); returns `model`."""
    generator = model.decoder.generator
    generator.stft = ExactSTFT(generator.post_n_fft, generator.stft.hop_length)
    return model
