# Two commands on a fresh machine: `make up` (the whole system on a local AWS emulator) and
# `make test` (every test). Both install what they need: Python tools go into a project-local
# venv; Rust builds go to a persistent CARGO_TARGET_DIR outside the clone.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
export CARGO_TARGET_DIR ?= $(HOME)/.cache/tenant-control-plane/target
export MOTO_PYTHON ?= $(CURDIR)/$(VENV)/bin/python
CARGO ?= cargo

.PHONY: help up test watch-test soak bench bench-peer venv docs-tools contract-tools contract security-lint build-tools toolchain features-check build fmt fmt-check clippy lint-templates sam-build clean

help:
	@echo "make up     run the control plane locally on moto server"
	@echo "make test   run every test (unit, emulator, lint)"
	@echo "make soak   run the long reliability suite (RELIABILITY.md)"
	@echo "make bench  run the benchmarks (BENCHMARKS.md)"
	@echo "make watch-test  invoke functions under cargo lambda watch (docs/testing.md: Invoking a function by hand)"
	@echo "make sam-build   build the Lambda artefacts (arm64, release) for sam deploy"

## Tools -------------------------------------------------------------------------------------------

# uv installs the Python tools: itself a wheel from PyPI, installed into the venv by pip (no
# other download), then every requirement from PyPI, wheels only, in one resolver pass, with the
# versions requirements-local.lock pins. From nothing, 13 s where pip took 61 s (medians of 3 fresh
# directories, no cache either way; pip 23 fetches one wheel at a time and compiles every module).
# The lock pins the docs' AWS CLI too (docs-tools), so that both installs agree on botocore.
# After changing requirements-local.txt or requirements-docs.txt, pin anew (the lock's header):
#   .venv/bin/uv pip compile --universal --only-binary :all: --python-version 3.11 requirements-local.txt requirements-docs.txt -o requirements-local.lock
# Behind a package mirror, set UV_INDEX_URL (uv does not read pip's settings).
UV_VERSION ?= 0.13.8
UV_INSTALL = $(VENV)/bin/uv pip install --quiet --only-binary :all:

venv: $(VENV)/.installed

$(VENV)/.installed: requirements-local.txt requirements-local.lock
	@command -v $(PYTHON) >/dev/null || { echo "python3 is required (apt-get install python3 python3-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --only-binary :all: uv==$(UV_VERSION)
	$(UV_INSTALL) --python $(VENV)/bin/python -r requirements-local.txt -c requirements-local.lock
	@touch $@

build-tools: $(VENV)/.build-tools

$(VENV)/.build-tools: requirements-build.txt | venv
	$(UV_INSTALL) --python $(VENV)/bin/python -r requirements-build.txt
	@touch $@

# The AWS CLI (v1, as `pip install awscli` gives it) the docs' examples run with
# (tests/docs_examples.rs): one resolver pass with the venv's own tools, since it pins botocore.
docs-tools: $(VENV)/.docs-tools

$(VENV)/.docs-tools: requirements-docs.txt requirements-local.txt requirements-local.lock | venv
	@command -v jq >/dev/null && command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq jq curl; }
	$(UV_INSTALL) --python $(VENV)/bin/python -r requirements-local.txt -r requirements-docs.txt -c requirements-local.lock
	@touch $@

contract-tools: $(VENV)/.contract-tools

$(VENV)/.contract-tools: requirements-contract.txt | venv
	$(UV_INSTALL) --python $(VENV)/bin/python -r requirements-contract.txt
	@touch $@

toolchain:
	@command -v $(CARGO) >/dev/null || { echo "cargo is required: install rustup (https://rustup.rs)"; exit 1; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy
	@$(CARGO) hakari --version >/dev/null 2>&1 || $(CARGO) install --locked --quiet cargo-hakari@0.9.39

# One feature set for every build: workspace-hack (cargo-hakari) unifies the dependencies'
# features, so `make test`, `make up` and `make bench` reuse one another's builds (a package
# built alone would otherwise resolve its own features and rebuild the AWS SDK). It fails when
# a dependency change was not folded in: run `cargo hakari generate && cargo hakari manage-deps`.
features-check: toolchain
	$(CARGO) hakari generate --diff
	$(CARGO) hakari manage-deps --dry-run

## Build and test ----------------------------------------------------------------------------------

build: toolchain
	$(CARGO) build --workspace --all-targets

fmt:
	$(CARGO) fmt --all

fmt-check: toolchain
	$(CARGO) fmt --all -- --check

clippy: toolchain
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings

export SAM_CLI_TELEMETRY = 0
lint-templates: venv
	$(VENV)/bin/cfn-lint template.yaml templates/*.yaml
	AWS_DEFAULT_REGION=us-east-1 $(VENV)/bin/sam validate --lint --template template.yaml

SECURITY_VENV ?= .venv-security

# Its own venv, installed by the main venv's uv.
$(SECURITY_VENV)/.installed: requirements-security.txt | venv
	$(PYTHON) -m venv $(SECURITY_VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(SECURITY_VENV); }
	$(UV_INSTALL) --python $(SECURITY_VENV)/bin/python -r requirements-security.txt
	@touch $@

# checkov on every template: zero failed checks; every skip is justified inline (Metadata).
security-lint: $(SECURITY_VENV)/.installed
	BC_SKIP_MAPPING=TRUE $(SECURITY_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
	  -f template.yaml -f templates/tenant-account-bootstrap.yaml -f templates/tenant-template.yaml \
	  -f templates/template-bucket.yaml

test: venv docs-tools build-tools toolchain features-check fmt-check clippy lint-templates security-lint
	$(CARGO) test --workspace
	$(MAKE) watch-test
	$(MAKE) contract

# The API against its contract: schemathesis (every check, as admin and as a tenant, stateful
# links) on a fresh local system of its own (own ports, own LOCAL_DIR), stopped afterwards.
# A fixed seed and SCHEMATHESIS_MAX_EXAMPLES per operation bound it (25: about 2 minutes on an idle 2-core machine, 4-5 while cargo builds beside it).
SCHEMATHESIS_MAX_EXAMPLES ?= 25
contract: venv contract-tools toolchain
	SCHEMATHESIS_MAX_EXAMPLES=$(SCHEMATHESIS_MAX_EXAMPLES) tests/contract/run-schemathesis

# docs/testing.md's "Invoking a function by hand", run as a user runs it: `cargo lambda watch
# --env-file` serves the stream handler, then the completion function, against a local system of
# its own (own ports and LOCAL_DIR); `cargo lambda invoke` sends each a sample event from events/
# (tests/watch/run-watch-test says what passes). Part of `make test`: watch runs `cargo run` on
# this CARGO_TARGET_DIR and the dev profile, so it builds only the function's own crate (2-3 s
# after `cargo test --workspace`; the test takes about 15 s, and build-tools about 13 s to install).
watch-test: venv build-tools toolchain
	tests/watch/run-watch-test

# The long version of the reliability suite (RELIABILITY.md): many more property and fuzz cases,
# and the load test at 250 tenants (about 10 minutes: moto slows as its table grows; 1,000
# tenants take hours there). Figures are printed (--nocapture).
SOAK_CASES ?= 20000
SOAK_TENANTS ?= 250
SOAK_SCHEMATHESIS_EXAMPLES ?= 500
soak: venv contract-tools toolchain
	PROPTEST_CASES=$(SOAK_CASES) $(CARGO) test -p controlplane --test convergence --test fuzz_stream -- --nocapture
	PROPTEST_CASES=$(SOAK_CASES) $(CARGO) test -p api --test fuzz_bodies -- --nocapture
	$(CARGO) test -p controlplane --test rollout -- --nocapture
	LOAD_TENANTS=$(SOAK_TENANTS) $(CARGO) test -p integration-tests --test load -- --nocapture
	SCHEMATHESIS_MAX_EXAMPLES=$(SOAK_SCHEMATHESIS_EXAMPLES) tests/contract/run-schemathesis

## Benchmarks ------------------------------------------------------------------------------------

# Completion lag on a simulated AWS (BENCHMARKS.md). Dev profile: the lag is measured in virtual
# time, so an optimised build would change nothing but the build time.
bench: venv toolchain
	$(CARGO) bench -p controlplane --bench completion_lag --profile dev
	$(CARGO) bench -p controlplane --bench rollout_makespan --profile dev
	$(CARGO) bench -p controlplane --bench rollout_makespan --profile dev -- --breach-at-seconds 403
	$(CARGO) bench -p controlplane --bench rollout_makespan --profile dev -- --breach-at-seconds 1003
	$(CARGO) bench -p controlplane --bench drift_sweep --profile dev
	$(CARGO) bench -p controlplane --bench drift_sweep --profile dev -- --concurrency 200
	$(CARGO) bench -p controlplane --bench sweep_scale --profile dev
	$(CARGO) bench -p local --bench api_latency --profile dev
	$(MAKE) bench-peer

## Benchmarks against the Python peer (bench/, BENCHMARKS.md) -----------------------------------------

# Release builds: cold start, memory and throughput are not measured on debug code.
PEER_BENCH_OUT ?= $(CARGO_TARGET_DIR)/peer-bench
PEER_BENCH = $(CARGO_TARGET_DIR)/release/peer-bench

$(VENV)/.bench-peer: bench/peer/requirements.txt | venv
	$(UV_INSTALL) --python $(VENV)/bin/python -r bench/peer/requirements.txt
	@touch $@

bench-peer: venv build-tools toolchain $(VENV)/.bench-peer
	@command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; } || $(CARGO) install --locked hyperfine
	@test -x /usr/bin/time || { apt-get update -qq && apt-get install -y -qq time; }
	$(CARGO) build --release -p peer-bench -p control-plane --bin peer-bench --bin cold-start --bin lambda-once --bin control-plane
	BENCH_OUT=$(PEER_BENCH_OUT) $(CARGO) bench -p peer-bench --bench decode_decide
	$(PEER_BENCH) cold --out $(PEER_BENCH_OUT)
	$(PEER_BENCH) e2e --tenants 500 --out $(PEER_BENCH_OUT)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 --output-format zip --bin control-plane
	$(PEER_BENCH) size --out $(PEER_BENCH_OUT)
	$(PEER_BENCH) report --dir $(PEER_BENCH_OUT)

## Ship ----------------------------------------------------------------------------------------------

# Release arm64 artefacts for every function, as `sam deploy` ships them (no Docker needed).
sam-build: build-tools
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" AWS_DEFAULT_REGION=us-east-1 $(VENV)/bin/sam build

## Run -----------------------------------------------------------------------------------------------

# tenantctl is built too: the banner puts it on PATH (one line to paste). docs-tools: the AWS CLI
# the README's examples use.
up: venv docs-tools toolchain
	$(CARGO) build --quiet -p tenantctl
	$(CARGO) run --quiet -p local --bin local-system -- $(if $(DEMO),--demo,)

clean:
	rm -rf $(VENV) $(SECURITY_VENV)
