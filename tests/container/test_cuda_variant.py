"""The CUDA variant (`--build-arg TORCH_SPEC=...`) builds, with its own torch and tts-api's model.

No CUDA wheel index can be reached by name here, so a CPU torch of the same release stands in for the CUDA
one (tests/container/build.py CUDA_STANDIN_SPEC; TTS_TEST_CUDA_TORCH_SPEC names a real one): it takes the
Dockerfile's path for another torch (it replaces the model's in the venv), while the model stage is reused,
not rebuilt.
"""

from __future__ import annotations

import json

import pytest

from tests.container.build import BuildResult
from tests.container.engine import Podman

pytestmark = pytest.mark.slow

PROBE = (
    "import json, torch, tts_api\n"
    "manifest = json.load(open('/opt/tts-api/model/manifest.json'))\n"
    "print(json.dumps([torch.__version__, manifest]))"
)


def _probe(podman: Podman, tag: str) -> tuple[str, dict[str, object]]:
    done = podman.run("run", "--rm", "--entrypoint=python", tag, "-c", PROBE)
    version, manifest = json.loads(done.stdout)
    return version, manifest


def test_the_cuda_variant_builds_its_own_torch_around_the_same_model(
    image: BuildResult, cuda_variant: BuildResult, podman: Podman
) -> None:
    spec = cuda_variant.build_args["TORCH_SPEC"]
    version, manifest = _probe(podman, cuda_variant.tag)
    named = spec.split()[0].removeprefix("torch==")
    assert version.startswith(named), (spec, version)  # the torch TORCH_SPEC named (+cu... for CUDA)
    _, image_manifest = _probe(podman, image.tag)
    # The same build of the model (its time to the second and its weights), not a second one.
    assert manifest == image_manifest
    layers = [
        podman.run("image", "inspect", "--format={{json .RootFS.Layers}}", tag).stdout
        for tag in (image.tag, cuda_variant.tag)
    ]
    assert cuda_variant.image_id != image.image_id and layers[0] != layers[1]
