"""Kokoro's front and decoder over a batch of chunks, each member getting what it would get alone.

Members are right-padded, and padding never reaches a member: ALBERT's attention is masked, every LSTM is
packed, every instance norm (AdaIN) runs per member on its own frames, and what a convolution reads past a
member's end is zero, as alone (the norms leave zeros there, which the activations keep; what an upsampling
leaves there is re-zeroed). What is exact only on a member's own length runs per member: the sine source
(its interpolation clamps at the end), the STFT of its output (reflect padding) and the inverse STFT (its
window envelope); they are elementwise or FFTs, and the convolutions, nearly all of the work, run batched.

A batch of one is the unbatched path bit for bit. In larger batches kokoro's LSTMs and linear layers round
differently (~1e-6 of F0), and the sine source integrates F0 into its phase: a long chunk's samples then
differ by ~1e-2, as they do alone between 1 and 2 torch threads. Durations (word timings) were identical
in every case measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from kokoro import KModel
from torch import nn

from .vocoder import DecoderInputs, NoiseDecoder

__all__ = ["decode_batch", "front_batch"]


@torch.no_grad()
def front_batch(
    model: KModel, inputs: Sequence[torch.Tensor], refs: Sequence[torch.Tensor], speeds: Sequence[float]
) -> list[DecoderInputs]:
    """`front` for each member ([1, tokens] ids, [1, 256] voice vector, speed) in one pass."""
    device = model.device
    lengths = [ids.shape[-1] for ids in inputs]
    ids = nn.utils.rnn.pad_sequence([i.reshape(-1) for i in inputs], batch_first=True).to(device)
    text_mask = ~_valid(lengths, ids.shape[1], device)[:, 0]  # True past each member's end, as in `front`
    ref = torch.cat(list(refs)).to(device)
    style = ref[:, 128:]
    bert = model.bert(ids, attention_mask=(~text_mask).int())
    d_en = model.bert_encoder(bert).transpose(-1, -2)
    # kokoro's own text encoders mask and pack, batch or not.
    d = model.predictor.text_encoder(d_en, style, torch.tensor(lengths), text_mask)
    x = _packed(model.predictor.lstm, d, lengths)
    duration = torch.sigmoid(model.predictor.duration_proj(x)).sum(dim=-1)
    # Per member, as `front` divides: by the Python float, the expression it rounds.
    pred_durs = [
        torch.round(duration[b : b + 1, :n] / speed).clamp(min=1).long().squeeze()
        for b, (n, speed) in enumerate(zip(lengths, speeds, strict=True))
    ]
    alignment = _alignment(pred_durs, ids.shape[1], device)
    frames = [int(p.sum()) for p in pred_durs]
    f0, energy = _f0_energy(model.predictor, d.transpose(-1, -2) @ alignment, style, frames)
    asr = model.text_encoder(ids, torch.tensor(lengths), text_mask) @ alignment
    return [
        DecoderInputs(
            asr[b : b + 1, :, :n].contiguous(),
            f0[b : b + 1, : 2 * n].contiguous(),
            energy[b : b + 1, : 2 * n].contiguous(),
            ref[b : b + 1, :128].contiguous(),
            pred_durs[b],
        )
        for b, n in enumerate(frames)
    ]


@torch.no_grad()
def decode_batch(
    decoder: NoiseDecoder,
    members: Sequence[DecoderInputs],
    noises: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> list[torch.Tensor]:
    """`decoder(...)` for each member with its own (rand_ini, noise) draws, in one pass: audio [samples]."""
    body, generator = decoder.decoder, decoder.decoder.generator
    device = members[0].asr.device
    harmonics = [
        _harmonics(decoder, m.f0, rand_ini.to(device), noise.to(device))
        for m, (rand_ini, noise) in zip(members, noises, strict=True)
    ]
    style = torch.cat([m.style for m in members])
    x, lengths = _decoder_body(
        body,
        _pad([m.asr for m in members]),
        _pad([m.f0 for m in members]),
        _pad([m.energy for m in members]),
        style,
        [m.asr.shape[-1] for m in members],
    )
    har = _pad(harmonics)
    x, lengths = _generator_body(generator, x, style, har, lengths)
    bins = generator.post_n_fft // 2 + 1
    return [
        generator.stft.inverse(
            torch.exp(x[b : b + 1, :bins, :n]), torch.sin(x[b : b + 1, bins:, :n])
        ).reshape(-1)
        for b, n in enumerate(lengths)
    ]


def _valid(lengths: Sequence[int], size: int, device: torch.device) -> torch.Tensor:
    """[B, 1, size], True within each member's length."""
    return (torch.arange(size, device=device) < torch.tensor(lengths, device=device)[:, None])[:, None, :]


def _masked(x: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """`x` with zeros past each member's end: what a convolution reads there when the member runs alone."""
    return x.masked_fill(~_valid(lengths, x.shape[-1], x.device), 0.0)


def _pad(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Batch-of-one tensors [1, ..., length] right-padded with zeros into [B, ..., max length]."""
    size = max(t.shape[-1] for t in tensors)
    return torch.cat([F.pad(t, (0, size - t.shape[-1])) for t in tensors])


def _packed(lstm: nn.LSTM, x: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """A batch-first LSTM over [B, T, C] that never runs into a member's padding: [B, T, hidden]."""
    packed = nn.utils.rnn.pack_padded_sequence(
        x, torch.tensor(lengths), batch_first=True, enforce_sorted=False
    )
    out, _ = lstm(packed)
    return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


def _alignment(pred_durs: Sequence[torch.Tensor], tokens: int, device: torch.device) -> torch.Tensor:
    """[B, tokens, max frames]: member b's token t covers its pred_dur[t] frames, as in `front`."""
    frames = max(int(p.sum()) for p in pred_durs)
    alignment = torch.zeros((len(pred_durs), tokens, frames), device=device)
    for b, dur in enumerate(pred_durs):
        indices = torch.repeat_interleave(torch.arange(dur.numel(), device=device), dur.reshape(-1))
        alignment[b, indices, torch.arange(indices.shape[0], device=device)] = 1
    return alignment


def _f0_energy(
    predictor: Any, en: torch.Tensor, s: torch.Tensor, frames: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """kokoro's ProsodyPredictor.F0Ntrain over [B, channels, frames]: F0 and energy [B, 2 * frames]."""
    x = _packed(predictor.shared, en.transpose(-1, -2), frames).transpose(-1, -2)
    curves = []
    for blocks, projection in ((predictor.F0, predictor.F0_proj), (predictor.N, predictor.N_proj)):
        curve, lengths = x, frames
        for block in blocks:
            curve, lengths = _adain_resblk(block, curve, s, lengths)
        curves.append(projection(curve).squeeze(1))  # a 1x1 convolution
    return curves[0], curves[1]


def _conv_length(conv: nn.Conv1d | nn.ConvTranspose1d, length: int) -> int:
    """A member's length after `conv`, had it run alone."""
    (k,), (s,), (d,) = conv.kernel_size, conv.stride, conv.dilation
    (p,) = cast(tuple[int], conv.padding)  # kokoro's are numbers, never "same"
    if isinstance(conv, nn.ConvTranspose1d):
        return (length - 1) * s - 2 * p + d * (k - 1) + conv.output_padding[0] + 1
    return (length + 2 * p - d * (k - 1) - 1) // s + 1


def _adain(adain: Any, x: torch.Tensor, s: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """kokoro's AdaIN1d, the module itself on each member's own frames; zeros past each member's end.

    Statistics over the member's frames alone, by the very kernel that computes them alone: bit for bit
    its own (a masked sum rounds differently, and F0's rounding accumulates in the sine source's phase).
    """
    out = x.new_zeros(x.shape[0], adain.norm.num_features, x.shape[-1])
    for b, n in enumerate(lengths):
        out[b : b + 1, :, :n] = adain(x[b : b + 1, :, :n], s[b : b + 1])
    return out


def _adain_resblk(
    block: Any, x: torch.Tensor, s: torch.Tensor, lengths: list[int]
) -> tuple[torch.Tensor, list[int]]:
    """kokoro's AdainResBlk1d (inference: dropout is the identity); returns the output and its lengths."""
    r = block.actv(_adain(block.norm1, x, s, lengths))  # zero past the ends: the activations keep 0 at 0
    if block.upsample_type != "none":
        lengths = [_conv_length(block.pool, n) for n in lengths]
        r = _masked(block.pool(r), lengths)  # its bias lands past the ends
    r = block.conv1(r)
    r = block.conv2(block.actv(_adain(block.norm2, r, s, lengths)))
    shortcut = block.upsample(x)  # nearest-neighbour and a 1x1 convolution: no neighbour is read
    if block.learned_sc:
        shortcut = block.conv1x1(shortcut)
    return (r + shortcut) * torch.rsqrt(torch.tensor(2)), lengths


def _snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return x + (1 / alpha) * (torch.sin(alpha * x) ** 2)


def _adain_resblock1(block: Any, x: torch.Tensor, s: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """kokoro's AdaINResBlock1 (the generator's dilated residual stack); the snake keeps 0 at 0."""
    for c1, c2, n1, n2, a1, a2 in zip(
        block.convs1, block.convs2, block.adain1, block.adain2, block.alpha1, block.alpha2, strict=True
    ):
        xt = c1(_snake(_adain(n1, x, s, lengths), a1))
        xt = c2(_snake(_adain(n2, xt, s, lengths), a2))
        x = xt + x
    return x


def _decoder_body(
    decoder: Any,
    asr: torch.Tensor,
    f0_curve: torch.Tensor,
    energy: torch.Tensor,
    s: torch.Tensor,
    frames: list[int],
) -> tuple[torch.Tensor, list[int]]:
    """kokoro's Decoder.forward before its generator: [B, channels, 2 * frames] and its lengths."""
    # Stride 2 over 2 * frames zero-padded points: a member's last output reads only its own points.
    f0 = decoder.F0_conv(f0_curve.unsqueeze(1))
    n = decoder.N_conv(energy.unsqueeze(1))
    x, lengths = _adain_resblk(decoder.encode, torch.cat([asr, f0, n], dim=1), s, frames)
    asr_res = decoder.asr_res(asr)
    res = True
    for block in decoder.decode:
        if res:
            x = torch.cat([x, asr_res, f0, n], dim=1)
        x, lengths = _adain_resblk(block, x, s, lengths)
        if block.upsample_type != "none":
            res = False
    return x, lengths


def _harmonics(
    decoder: NoiseDecoder, f0_curve: torch.Tensor, rand_ini: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """One member's harmonic source and its STFT, [1, n_fft + 2, stft frames], from its own draws."""
    generator = decoder.decoder.generator
    f0 = generator.f0_upsamp(f0_curve[:, None]).transpose(1, 2)
    # The draws reach the sine source the way NoiseDecoder.forward hands them over.
    decoder._sine._rand_ini, decoder._sine._noise = rand_ini, noise
    try:
        source, _, _ = generator.m_source(f0)
    finally:
        decoder._sine._rand_ini = decoder._sine._noise = None
    spec, phase = generator.stft.transform(source.transpose(1, 2).squeeze(1))
    return torch.cat([spec, phase], dim=1)


def _generator_body(
    generator: Any, x: torch.Tensor, s: torch.Tensor, har: torch.Tensor, lengths: list[int]
) -> tuple[torch.Tensor, list[int]]:
    """kokoro's Generator.forward up to conv_post, over the batch: [B, n_fft + 2, stft frames], lengths."""
    for i in range(generator.num_upsamples):
        x = F.leaky_relu(x, negative_slope=0.1)
        # har is zero past each member's end: its convolution reads the zeros it pads with alone.
        source = generator.noise_convs[i](har)
        x = generator.ups[i](_masked(x, lengths))
        lengths = [_conv_length(generator.ups[i], n) for n in lengths]
        if i == generator.num_upsamples - 1:
            x = generator.reflection_pad(x)  # on the left, where every member starts
            lengths = [n + 1 for n in lengths]
        x = x + _adain_resblock1(generator.noise_res[i], source, s, lengths)
        blocks = generator.resblocks[i * generator.num_kernels : (i + 1) * generator.num_kernels]
        xs = _adain_resblock1(blocks[0], x, s, lengths)
        for block in blocks[1:]:
            xs = xs + _adain_resblock1(block, x, s, lengths)
        x = xs / generator.num_kernels
    x = generator.conv_post(_masked(F.leaky_relu(x), lengths))
    return x, lengths
