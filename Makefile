# kvmgen: every entry point; CI (.ci/run) and the README call these targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE ?= traces/qemu-boot-smm.yaml
KERNEL ?= 4.19

.PHONY: help install run test test-all lint bench conformance conformance-vmm clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@# An editable install compiles no bytecode; every kvmgen command would compile its
	@# modules from source at start-up where PYTHONDONTWRITEBYTECODE is set.
	$(BIN)/python -m compileall -q kvmgen >/dev/null
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install kvmgen with its test tools

run: $(STAMP) ## Replay the bundled sample trace, historical bias and none side by side
	$(BIN)/kvmgen replay $(SAMPLE) --kernel $(KERNEL)

test: $(STAMP) ## Run the test suite (unit, property, golden, CLI)
	$(BIN)/pytest -m "not slow and not realvm" $(if $(TESTS),-x -k "$(TESTS)")

test-all: $(STAMP) ## The test suite including slow tests (not the real-VM boots)
	$(BIN)/pytest -m "not realvm"

lint: $(STAMP) ## ruff format check, ruff lint and mypy
	$(BIN)/ruff format --check kvmgen tests bench
	$(BIN)/ruff check kvmgen tests bench
	$(BIN)/mypy

conformance: $(STAMP) ## Real-kernel probe past the first wrap (root, /dev/kvm, tracefs; ~40 s)
	$(BIN)/kvmgen probe --full -o $(or $(CONFORMANCE_OUT),$${TMPDIR:-/tmp}/kvmgen-conformance.yaml)

conformance-vmm: $(STAMP) ## Real QEMU boots recorded by kvmgen record vs the model (root, /dev/kvm; ~2 min)
	@if [ "$$(id -u)" = 0 ] && ! { command -v qemu-system-x86_64 && command -v strace; } >/dev/null; then \
	  echo "installing qemu-system-x86, ovmf and strace (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-x86 ovmf strace >/dev/null; \
	fi
	$(BIN)/pytest -m realvm tests/realvm -v -p no:cacheprovider

bench: $(STAMP) ## Benchmarks: ratios measured in one run (writes bench/results/)
	$(BIN)/python bench/run.py

clean: ## Remove the venv, caches and numba cache files
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -name '__pycache__' -type d -prune -exec rm -rf {} +
	find . -name '*.nbi' -delete -o -name '*.nbc' -delete
