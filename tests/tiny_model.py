"""A tiny random-weight Kokoro model directory, built at test time through the real KModel code.

Kokoro hard-codes several widths (hidden 512, style 128, the decoder's 1024 channels), so "tiny"
still has ~59M parameters; what shrinks is ALBERT, the layer counts and the resblocks. Its generator
runs at a lower rate than the real one (x2, x3, x5 and an iSTFT hop of 10 where the real model has x10,
x6 and a hop of 5; 300 samples per frame it is given either way): its convolutions at the upsampled rates
are most of the compute, and every server test pays for them. Three stages, not two, put the last one
(where Kokoro's kernel-11 noise block runs, at the output rate) at 64 channels instead of 128: tiny
synthesis ~25 % faster. A larger hop needs a larger FFT, whose
near-silent bins have phases that ONNX Runtime and torch round apart: the export check fails. Durations
are pinned (random weights would predict ~24 frames per phoneme): every token lasts exactly
FRAMES_PER_TOKEN frames of 600 samples, so the audio length of a chunk is known in advance.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import torch

REPO_ID = "hexgrad/Kokoro-82M"
FRAMES_PER_TOKEN = 2
SAMPLES_PER_FRAME = 600
# The 54 ids of Kokoro-82M v1.0, with random packs: the tiny server knows the same voices as the real one.
VOICES = (
    "af_alloy af_aoede af_bella af_heart af_jessica af_kore af_nicole af_nova af_river af_sarah af_sky "
    "am_adam am_echo am_eric am_fenrir am_liam am_michael am_onyx am_puck am_santa bf_alice bf_emma "
    "bf_isabella bf_lily bm_daniel bm_fable bm_george bm_lewis ef_dora em_alex em_santa ff_siwis hf_alpha "
    "hf_beta hm_omega hm_psi if_sara im_nicola jf_alpha jf_gongitsune jf_nezumi jf_tebukuro jm_kumo pf_dora "
    "pm_alex pm_santa zf_xiaobei zf_xiaoni zf_xiaoxiao zf_xiaoyi zm_yunjian zm_yunxi zm_yunxia zm_yunyang"
).split()
SUBMODULES = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")

TINY_CONFIG = {
    "istftnet": {
        # With the hop, 600 samples per duration frame at 24 kHz, as in the real model. (kernel - rate) is
        # even: each frame becomes exactly `rate` frames.
        "upsample_kernel_sizes": [4, 5, 7],
        "upsample_rates": [2, 3, 5],
        "gen_istft_hop_size": 10,
        "gen_istft_n_fft": 20,
        "resblock_dilation_sizes": [[1, 3, 5]],
        "resblock_kernel_sizes": [3],
        "upsample_initial_channel": 512,
    },
    "dim_in": 64,
    "dropout": 0.2,
    "hidden_dim": 512,
    "max_conv_dim": 512,
    "max_dur": 50,
    "multispeaker": True,
    "n_layer": 1,
    "n_mels": 80,
    "n_token": 178,
    "style_dim": 128,
    "text_encoder_kernel_size": 5,
    "plbert": {
        "hidden_size": 64,
        "num_attention_heads": 2,
        "intermediate_size": 128,
        "max_position_embeddings": 512,
        "num_hidden_layers": 1,
        "dropout": 0.1,
    },
}


def tiny_config() -> dict:
    real = json.loads((resources.files("tts_api") / "data" / "kokoro-config.json").read_text())
    return {**TINY_CONFIG, "vocab": real["vocab"]}


def random_kmodel(config: dict, workdir: Path, *, seed: int = 0, frames_per_token: int = FRAMES_PER_TOKEN):
    """A randomly initialised KModel (no hub, no weights read) with pinned durations."""
    from kokoro import KModel

    torch.manual_seed(seed)
    empty = workdir / "empty.pth"
    torch.save({}, empty)
    model = KModel(repo_id=REPO_ID, config=config, model=str(empty))
    empty.unlink()
    linear = model.predictor.duration_proj.linear_layer
    with torch.no_grad():
        # duration = sum(sigmoid(b)) over max_dur outputs; +0.1 keeps rounding away from the edge.
        linear.weight.zero_()
        linear.bias.fill_(math.log(frames_per_token / (config["max_dur"] - frames_per_token)) + 0.1)
    return model


def build_tiny_model_dir(root: Path, *, seed: int = 0) -> Path:
    """Write config.json, kokoro-v1_0.pth and voices/*.pt for a tiny model into `root`."""
    root.mkdir(parents=True, exist_ok=True)
    config = tiny_config()
    (root / "config.json").write_text(json.dumps(config))
    model = random_kmodel(config, root, seed=seed)
    torch.save({name: getattr(model, name).state_dict() for name in SUBMODULES}, root / "kokoro-v1_0.pth")
    voices = root / "voices"
    voices.mkdir(exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    for voice in VOICES:
        torch.save(torch.randn(510, 1, 256, generator=generator) * 0.1, voices / f"{voice}.pt")
    return root


def expected_samples(phoneme_count: int, speed: float = 1.0) -> int:
    """Audio samples the tiny model produces for one chunk of `phoneme_count` vocab symbols."""
    frames = max(1, round(FRAMES_PER_TOKEN / speed))
    return (phoneme_count + 2) * frames * SAMPLES_PER_FRAME  # +2: the BOS/EOS tokens


def tiny_samples(quiet_pipeline, text: str, *, speed: float = 1.0, normalize: bool = True) -> int:  # type: ignore[no-untyped-def]
    """What the server sends for `text` on the tiny model: planned chunks, pinned durations, exact gaps.

    The tiny model is loud in every 5 ms frame, so the engine trims nothing: each piece is its raw
    audio, preceded by the gap the plan owes after the previous chunk (pauses are exact silence).
    """
    from tts_api.synth.seams import silence
    from tts_api.text.planning import GAP_AFTER_S, plan_chunks

    vocab = tiny_config()["vocab"]
    total, gap = 0, 0.0
    for chunk in plan_chunks(text, normalize=normalize):
        if chunk.is_pause:
            total += len(silence(gap + chunk.pause_s))
            gap = 0.0
            continue
        for result in quiet_pipeline(chunk.text, split_pattern=None):
            total += len(silence(gap)) + expected_samples(sum(ch in vocab for ch in result.phonemes), speed)
            gap = GAP_AFTER_S["clause"] / speed
        gap = chunk.gap_after_s / speed
    return total
