"""Build the image with podman as the README's `docker build -t tts-api .` does, on this machine.

`python -m tests.container.build OUT [--cuda-variant]` (what `make image` and the tests run): finds the flags
podman needs here (engine.py), a base to build FROM (base.py) and pip's configuration (pipconfig.py), builds
`tts-api` (left in the local store) and, with --cuda-variant, the CUDA variant; each build's outcome goes to
OUT/<name>.json as it ends, and everything said to OUT/build.log. The tests start it in the background and
read the JSON files (tests/container/conftest.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.container.base import default_base, ensure_base
from tests.container.engine import Podman, PodmanError
from tests.container.pipconfig import host_pip_settings, mounts_for
from tts_api.processes import ROOT

__all__ = ["CUDA_VARIANT", "IMAGE", "Build", "BuildResult", "build_all", "main"]

IMAGE = "tts-api"  # as the README tags it
CUDA_VARIANT = "localhost/tts-api-test:cuda-variant"  # a test's image: removed after its check
# The CUDA build's TORCH_SPEC. No CUDA wheel index can be named here (no host names in the code), and the
# index this machine's pip reaches serves torch's CUDA build only as ~3 GB of wheels: a CPU torch of the same
# release stands in, which takes the same path through the Dockerfile (another torch in place of the
# model's). A machine that can fetch the real one sets TTS_TEST_CUDA_TORCH_SPEC.
CUDA_STANDIN_SPEC = "torch==2.13.0+cpu"
BUILD_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Build:
    """One image to build: its name for the results, its tag and its build arguments."""

    name: str
    tag: str
    build_args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildResult:
    """How one build ended: `error` is None when the image is in the store under `tag`."""

    name: str
    tag: str
    seconds: float
    build_args: dict[str, str]
    size_bytes: int = 0
    image_id: str = ""
    error: str | None = None

    def save(self, out: Path) -> None:
        partial = out / f".{self.name}.json.partial"
        partial.write_text(json.dumps(asdict(self), indent=2))
        partial.rename(out / f"{self.name}.json")  # readers never see half a file

    @classmethod
    def load(cls, path: Path) -> BuildResult:
        return cls(**json.loads(path.read_text()))


def cuda_torch_spec() -> str:
    """The TORCH_SPEC of the CUDA variant's build (see CUDA_STANDIN_SPEC)."""
    return os.environ.get("TTS_TEST_CUDA_TORCH_SPEC", CUDA_STANDIN_SPEC)


def _build(podman: Podman, build: Build, volumes: tuple[str, ...], log: Path) -> BuildResult:
    args = [f"--build-arg={name}={value}" for name, value in build.build_args.items()]
    command = podman.command(
        "build",
        "--format=docker",  # podman's default (OCI) drops HEALTHCHECK, which Docker's format keeps
        "--network=host",  # the registries, through this machine's network and its proxy settings
        *[f"--volume={volume}" for volume in volumes],
        *args,
        f"--tag={build.tag}",
        str(ROOT),
    )
    start = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        return BuildResult(build.name, build.tag, seconds, build.build_args, error=f"exit {done.returncode}")
    inspected = podman.run("image", "inspect", "--format={{.Id}} {{.Size}}", build.tag).stdout.split()
    return BuildResult(build.name, build.tag, seconds, build.build_args, int(inspected[1]), inspected[0])


def build_all(out: Path, *, cuda_variant: bool) -> list[BuildResult]:
    """Build tts-api (then the CUDA variant), saving each result in `out` as it ends."""
    out = out.resolve()  # podman takes only absolute paths to mount
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"

    def say(message: str) -> None:
        with log.open("a") as f:
            f.write(f"[build] {message}\n")

    builds = [Build("tts-api", IMAGE)]
    if cuda_variant:
        builds.append(Build("cuda-variant", CUDA_VARIANT, {"TORCH_SPEC": cuda_torch_spec()}))
    start = time.monotonic()
    try:
        plain = Podman()
        base = ensure_base(plain, say)
        podman = plain.adapted_to(base)
        say(f"podman flags for this machine: {list(podman.flags()) or 'none'}")
        mounts = mounts_for(host_pip_settings(), out / "pip.conf")
        say(f"pip configuration passed to the build:\n{mounts.pip_conf}volumes: {list(mounts.volumes)}")
    except (PodmanError, subprocess.SubprocessError, OSError) as exc:
        failed = [
            BuildResult(b.name, b.tag, time.monotonic() - start, b.build_args, error=str(exc)) for b in builds
        ]
        for result in failed:
            result.save(out)
        return failed
    base_args = {} if base == default_base() else {"PYTHON_IMAGE": base}
    say(f"base ready in {time.monotonic() - start:.0f} s: {base}")
    results: list[BuildResult] = []
    for build in builds:
        build = Build(build.name, build.tag, {**base_args, **build.build_args})
        if results and results[0].error is not None:  # the variant would fail the same way
            result = BuildResult(build.name, build.tag, 0.0, build.build_args, error=f"{IMAGE} failed first")
        else:
            result = _build(podman, build, mounts.volumes, log)
        say(f"{build.tag}: {result.error or 'built'} in {result.seconds:.0f} s")
        result.save(out)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.container.build OUT [--cuda-variant]`."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.container.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out", type=Path, help="folder for build.log and one <name>.json per build")
    parser.add_argument("--cuda-variant", action="store_true", help="also build the CUDA variant")
    args = parser.parse_args(argv)
    results = build_all(args.out, cuda_variant=args.cuda_variant)
    for result in results:
        print(f"{result.tag}: {result.error or f'{result.size_bytes / 1e9:.2f} GB'} ({result.seconds:.0f} s)")
    return 0 if all(r.error is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
