"""The GPU check's luggage: what a CUDA machine that has PyTorch but reaches no package registry needs to
run `python -m bench.gpu_check`, cut into numbered parts small enough to carry one at a time.

`python -m bench.gpu_pack --present FILE --python-version 3.12 --out .gpu` writes `part-000`, `part-001`, …:
one tar stream, cut every `--part-mb`, holding

- `wheels/`: a wheel for each distribution the check imports (measured: this module imports the check and
  runs G2P once in a child process, then maps the modules it loaded to their distributions) that FILE does
  not list. FILE is what the target already has: its `pip freeze`, or names separated by commas or lines.
  Same versions as here, built for the target's Python (pip download; a pure-Python one with no wheel is
  built here).
- `model/`: config.json, the voice and the weights, as fp16 unless `--fp32` (half the bytes; KModel widens
  them back to fp32 as it loads them, so the figures are speed's, not the exact audio's).

On the target, from the repository root: `sh bench/gpu_device.sh PACK_DIR [gpu_check arguments]` joins the
parts, installs the wheels beside the machine's own packages and runs the check on the carried model.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

import torch

from tts_api.model.layout import ModelDir
from tts_api.settings import Settings

from .gpu_check import VOICE

__all__ = ["PartWriter", "check_distributions", "main", "parse_present", "to_carry"]

PLATFORMS = (  # what a current Linux x86-64 machine accepts; pip matches each tag exactly
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_34_x86_64",
)
# The child's work: import the check, run G2P once (spaCy loads its model and espeak its library only then),
# and print the distributions of every module it loaded.
_PROBE = """
import importlib.metadata as md, json, sys
import bench.gpu_check
from tts_api.model.g2p import g2p_pipeline
for _ in g2p_pipeline("a")("Hello there, Dr. Smith: it's 3:30."):
    pass
owners = md.packages_distributions()
found = {}
for module in list(sys.modules):
    for name in owners.get(module.split(".")[0], ()):
        found[name] = md.version(name)
print(json.dumps(found))
"""
OURS = "tts-api"  # its source travels with the repository


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_present(text: str) -> set[str]:
    """Names from a `pip freeze` or a list separated by commas or lines (versions and extras dropped)."""
    names = set()
    for item in re.split(r"[,\n]", text):
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", item)
        if match and not item.strip().startswith("#"):
            names.add(_normalize(match.group(1)))
    return names


def check_distributions() -> dict[str, str]:
    """Every distribution the GPU check loads, with its version here (measured in a child process)."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], check=True, capture_output=True, text=True, env=_offline()
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def to_carry(loaded: Mapping[str, str], present: Iterable[str]) -> dict[str, str]:
    """What the target lacks: the loaded distributions it does not list, ours apart."""
    have = {_normalize(name) for name in present} | {OURS}
    return {name: version for name, version in sorted(loaded.items()) if _normalize(name) not in have}


def fetch_wheels(wanted: Mapping[str, str], python_version: str, into: Path) -> None:
    """A wheel of each for the target's Python: downloaded where one exists, else built here."""
    into.mkdir(parents=True, exist_ok=True)
    abi = "cp" + python_version.replace(".", "")
    for name, version in wanted.items():
        download = [
            *(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"),
            *("--python-version", python_version, "--implementation", "cp", "--abi", abi, "--abi", "abi3"),
            *("--abi", "none"),
            *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
            *("--platform", "any", "-d", str(into), f"{name}=={version}"),
        ]
        if subprocess.run(download, capture_output=True).returncode == 0:
            continue
        # No wheel for it (an sdist only): pure Python builds here into one any Python takes.
        build = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(into),
            f"{name}=={version}",
        ]
        subprocess.run(build, check=True)
        built = [p.name for p in into.glob(f"{_normalize(name).replace('-', '_')}-*.whl")]
        if not built or not all(n.endswith("-none-any.whl") for n in built):
            raise SystemExit(f"{name}=={version}: no wheel for Python {python_version}, and not pure Python")
        print(f"gpu-pack: built {name}=={version} here (no wheel published)", file=sys.stderr)


class PartWriter(io.RawIOBase):
    """A byte stream written as files `part-000`, `part-001`, … of at most `part_bytes` each."""

    def __init__(self, out: Path, part_bytes: int) -> None:
        self.out, self.part_bytes = out, part_bytes
        self.parts: list[Path] = []
        self._file: IO[bytes] | None = None
        self._left = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        while view:
            if self._file is None or self._left == 0:
                self._next()
            assert self._file is not None
            n = min(self._left, len(view))
            self._file.write(view[:n])
            view, self._left = view[n:], self._left - n
        return len(data)

    def _next(self) -> None:
        if self._file is not None:
            self._file.close()
        path = self.out / f"part-{len(self.parts):03d}"
        self.parts.append(path)
        self._file, self._left = path.open("wb"), self.part_bytes

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()


def write_model(files: ModelDir, voice: str, into: Path, *, fp16: bool) -> None:
    """The model directory the check needs: config, one voice, the weights (fp16 if asked)."""
    (into / "voices").mkdir(parents=True)
    (into / "config.json").write_bytes(files.config.read_bytes())
    (into / "voices" / f"{voice}.pt").write_bytes(files.voice(voice).read_bytes())
    if not fp16:
        (into / files.weights.name).write_bytes(files.weights.read_bytes())
        return
    checkpoint = torch.load(files.weights, map_location="cpu", weights_only=True)
    halved = {
        key: {name: t.half() if t.is_floating_point() else t for name, t in state.items()}
        for key, state in checkpoint.items()
    }
    torch.save(halved, into / files.weights.name)


def pack(
    model_dir: Path,
    out: Path,
    present: Iterable[str],
    python_version: str,
    part_mb: float,
    *,
    fp16: bool = True,
    voice: str = VOICE,
) -> list[Path]:
    """Write the parts into `out` (emptied of earlier parts first); returns them."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part-*"):
        old.unlink()
    wanted = to_carry(check_distributions(), present)
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        fetch_wheels(wanted, python_version, staging / "wheels")
        write_model(ModelDir(model_dir).require(), voice, staging / "model", fp16=fp16)
        writer = PartWriter(out, int(part_mb * 2**20))
        with writer, tarfile.open(fileobj=writer, mode="w|") as tar:
            for name in ("wheels", "model"):
                tar.add(staging / name, arcname=name)
    return writer.parts


def _offline() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".gpu"))
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument(
        "--present", type=Path, help="what the target has: its `pip freeze`, or names by commas or lines"
    )
    parser.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}")
    parser.add_argument("--part-mb", type=float, default=56.0, help="the largest part, in MiB")
    parser.add_argument("--fp32", action="store_true", help="carry the weights as they are (twice the bytes)")
    parser.add_argument("--voice", default=VOICE, help="the voice to carry (the check's --voice)")
    args = parser.parse_args(argv)
    present = parse_present(args.present.read_text()) if args.present else set()
    parts = pack(
        args.model_dir,
        args.out,
        present,
        args.python_version,
        args.part_mb,
        fp16=not args.fp32,
        voice=args.voice,
    )
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 2**20:.1f} MiB" for p in parts)
    print(f"gpu-pack: {len(parts)} parts in {args.out}: {sizes}")


if __name__ == "__main__":
    main()
