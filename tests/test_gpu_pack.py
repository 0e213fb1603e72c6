"""The GPU check's luggage (bench/gpu_pack.py) and its script for the CUDA machine (bench/gpu_device.sh): the
parts join into what was packed, and the script runs the check from them. Offline: the target here already
has every distribution, so no wheel is fetched; the parts carry the tiny model."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import torch

from bench.gpu_pack import PartWriter, pack, parse_present, to_carry
from tts_api.processes import ROOT


def test_what_the_target_lists_is_not_carried_nor_our_own_source() -> None:
    present = parse_present("torch==2.11.0\nNumPy==2.5.2\n# a comment\nspacy-legacy @ file:///x\n")
    assert present == {"torch", "numpy", "spacy-legacy"}
    assert parse_present("torch, numpy,\nhuggingface_hub") == {"torch", "numpy", "huggingface-hub"}
    loaded = {"torch": "2.13.0", "spacy": "3.8.18", "Spacy_Legacy": "3.0.12", "tts-api": "0.1.0"}
    assert to_carry(loaded, present) == {"spacy": "3.8.18"}


def test_parts_are_no_larger_than_asked_and_join_into_the_stream(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    with PartWriter(tmp_path, 3_000) as writer:
        writer.write(data[:4_000])
        writer.write(data[4_000:])
    sizes = [p.stat().st_size for p in writer.parts]
    assert sizes == [3_000, 3_000, 3_000, 1_000]
    assert b"".join(p.read_bytes() for p in writer.parts) == data


def test_the_device_script_runs_the_check_from_the_parts(tmp_path: Path, tiny_model_dir: Path) -> None:
    here = {dist.metadata["Name"] for dist in md.distributions()}
    parts = pack(tiny_model_dir, tmp_path / "pack", here, "3.11", part_mb=0.25, voice="af_bella")
    assert len(parts) > 1 and all(p.stat().st_size <= 0.25 * 2**20 for p in parts)
    joined = tmp_path / "joined.tar"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(joined) as tar:
        names = set(tar.getnames())
    assert {"model/config.json", "model/voices/af_bella.pt", "model/kokoro-v1_0.pth"} <= names
    assert not [n for n in names if n.startswith("wheels/") and n != "wheels"]  # all here already
    with tarfile.open(joined) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    original = torch.load(tiny_model_dir / "kokoro-v1_0.pth", weights_only=True)
    halved = torch.load(tmp_path / "unpacked/model/kokoro-v1_0.pth", weights_only=True)
    assert halved.keys() == original.keys()
    for key, state in original.items():
        for name, tensor in state.items():
            assert halved[key][name].dtype == (torch.float16 if tensor.is_floating_point() else tensor.dtype)
            assert torch.allclose(halved[key][name].to(tensor.dtype), tensor, rtol=1e-3, atol=1e-4)

    env = {**os.environ, "PYTHON": sys.executable, "GPU_PACK_DEST": str(tmp_path / "dest")}
    args = ["--device", "cpu", "--streams", "2", "--batch", "2", "--budget-s", "60", "--text", "short"]
    done = subprocess.run(
        ["sh", "bench/gpu_device.sh", str(tmp_path / "pack"), *args, "--voice", "af_bella"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["lone"]["audio_s"] > 0 and result["lone"]["ratio"] > 0
    assert [(s["batch"], s["finished"]) for s in result["streams"]] == [(1, 2), (2, 2)]
