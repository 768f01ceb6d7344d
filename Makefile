# The two set-up commands (see README.md): `make lab` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
# Builds are cached outside the clone so a fresh clone reuses them; override freely.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/security-runbook/target
DEBUG_BIN := $(CARGO_TARGET_DIR)/debug/runbook-kernel
RELEASE_BIN := $(CARGO_TARGET_DIR)/release/runbook-kernel
# The peer the Rust-cells benchmark measures against, from crates.io (its own lock
# file, so its pinned rust-analyzer crates); built once, about 20 min on 2 cores.
EVCXR_ROOT := $(HOME)/.cache/security-runbook/evcxr-jupyter
EVCXR_JUPYTER := $(EVCXR_ROOT)/bin/evcxr_jupyter
# Jupyter refuses to run as root (containers, CI machines) unless told.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: help lab kernel test rust-checks python-tests venv bench chromium

help:
	@echo "make lab   - build the kernel, install it into .venv and open JupyterLab on notebooks/ (sandbox)"
	@echo "make test  - run the whole test suite (format, lint, Rust unit tests, end-to-end tests)"
	@echo "make bench - print the benchmark figures (not part of the test suite)"

$(VENV)/.installed: requirements.txt papermill-runbook/pyproject.toml papermill-runbook/papermill_runbook/__init__.py
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# The lab kernel is the dev build `make test` also makes and tests (13 min cold on
# 2 cores, 4.5 of them evcxr for Rust cells; release takes far longer; it waits
# on AWS and models, not the CPU). The venv installs while it compiles. `make bench` measures release.
lab:
	$(MAKE) -j2 kernel venv
	$(DEBUG_BIN) install --prefix $(VENV)
	RUNBOOK_BACKEND=sandbox $(VENV)/bin/jupyter lab --notebook-dir=notebooks $(ALLOW_ROOT)

kernel:
	cargo build --locked -p runbook-kernel

# Clippy lints our crates inside the test build itself (clippy-driver as the
# workspace wrapper, which is what `cargo clippy` sets up, in check mode only), so
# the dependencies are compiled once, not once more in check mode: that saved
# minutes of a cold run. Dependencies are never wrapped, so they stay shared with
# every other dev build. The venv and Chromium install while Rust compiles.
CLIPPY_DRIVER := $(shell rustc --print sysroot 2>/dev/null)/bin/clippy-driver
test rust-checks python-tests: export RUSTC_WORKSPACE_WRAPPER := $(CLIPPY_DRIVER)
test rust-checks python-tests: export CLIPPY_ARGS := -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__

test:
	$(MAKE) -j3 rust-checks venv chromium
	$(MAKE) python-tests

rust-checks:
	@test -x $(CLIPPY_DRIVER) || { echo "clippy is not installed: rustup component add clippy"; exit 1; }
	cargo fmt --all -- --check
	cargo test --locked --workspace --all-targets --no-run
	cargo test --locked --workspace

# The browser test (tests/test_browser.py) drives Debian's Chromium through
# Playwright; install the package when it is missing (CI runs as root).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing chromium (Debian package) for the browser test"; \
	    $(SUDO) apt-get update -qq >/dev/null && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else \
	    echo "no $(CHROMIUM) and no apt-get: install Chromium there for tests/test_browser.py"; \
	  fi; \
	fi

python-tests: venv chromium
	cargo build --locked -p runbook-kernel
	$(DEBUG_BIN) install --prefix $(VENV)
	RUNBOOK_KERNEL_BIN=$(DEBUG_BIN) $(PY) -m pytest tests -n 4 --dist loadgroup

bench: venv $(EVCXR_JUPYTER)
	cargo build --release --locked -p runbook-kernel
	$(RELEASE_BIN) install --prefix $(VENV)
	RUNBOOK_KERNEL_BIN=$(RELEASE_BIN) $(PY) bench/bench_kernel.py
	$(PY) bench/bench_findings_fetch.py
	$(PY) bench/bench_findings_fetch.py --accounts 20 --regions 4
	$(PY) bench/bench_findings_fetch.py --findings 3000 --latency 0.3
	$(PY) bench/bench_findings_counts.py
	$(PY) bench/bench_member_session.py
	$(PY) bench/bench_rollout.py
	cargo bench --locked -p runbook-kernel --bench render_listing
	cargo bench --locked -p runbook --bench kb_index
	cargo bench --locked -p runbook --bench audit_append
	$(PY) bench/bench_audit_sink.py
	RUNBOOK_KERNEL_BIN=$(RELEASE_BIN) $(PY) bench/bench_rust_cells.py --evcxr $(EVCXR_JUPYTER)

$(EVCXR_JUPYTER):
	CARGO_TARGET_DIR=$(EVCXR_ROOT)/target cargo install evcxr_jupyter --version 0.22.0 --locked --root $(EVCXR_ROOT)
