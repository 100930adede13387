# callsync — `make demo` shows it working; `make test` is what CI runs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CARGO_TEST := $(shell cargo nextest --version >/dev/null 2>&1 && echo "cargo nextest run --workspace --no-fail-fast" || echo "cargo test --workspace --no-fail-fast")
FUNCTIONS := $(notdir $(wildcard functions/*))
LAMBDA_PACKAGES := $(addprefix --package ,$(FUNCTIONS))
DEV_MOTO_PORT ?= 5000
DEV_VAN_PORT ?= 7001
DEV_LIVEVOX_PORT ?= 7002

.PHONY: venv demo test bench lint unit dev-up dev-down lambda clean-local

## venv: the project-local Python tools (moto, cfn-lint, cargo-lambda), pinned.
venv: $(VENV)/.installed
$(VENV)/.installed: infra/requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-dev.txt
	touch $@

## demo: start moto and the fake VAN/LiveVox, seed a candidate, call configure and validate.
demo: venv
	cargo build --quiet -p callsync-tests --bin demo
	infra/with_moto.sh infra/with_databases.sh cargo run --quiet -p callsync-tests --bin demo

## test: formatting, lints, the template check, then every unit and integration test.
test: venv lint
	infra/with_moto.sh infra/with_databases.sh $(CARGO_TEST)

## bench: nightly runs over 100,000 and 1,000,000 calls on the in-memory stores (time and the
## run's own peak heap, the stores' copies counted apart),
## templates at their worst (result_codes checking by size, worst-case renders), and VAN's
## pace while a partner never answers (two lanes against one shared queue), CDR ingest against
## the csv crate, and delivery against VAN's rate limit with 1 to 8 workers.
bench:
	cargo bench -p callsync-tests --bench nights
	cargo bench -p callsync-tests --bench templates
	cargo bench -p callsync-tests --bench lanes
	cargo bench -p callsync-tests --bench ingest
	cargo bench -p callsync-tests --bench rate

lint: venv
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	$(VENV)/bin/cfn-lint infra/template.yaml

## dev-up: the local stack in the background for `cargo lambda watch`; writes .env.local.
dev-up: venv
	@mkdir -p .local
	cargo build --quiet -p callsync-tests --bin fakes
	$(VENV)/bin/moto_server -H 127.0.0.1 -p $(DEV_MOTO_PORT) > .local/moto.log 2>&1 & echo $$! > .local/moto.pid
	"$$(cargo metadata --format-version 1 --no-deps | $(PY) -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/fakes" \
	  --van-port $(DEV_VAN_PORT) --livevox-port $(DEV_LIVEVOX_PORT) > .local/fakes.log 2>&1 & echo $$! > .local/fakes.pid
	@for i in $$(seq 1 100); do curl -sf http://127.0.0.1:$(DEV_MOTO_PORT)/moto-api/ >/dev/null && break; sleep 0.1; done
	$(PY) infra/local_stack.py up --endpoint http://127.0.0.1:$(DEV_MOTO_PORT) --stack callsync-dev \
	  --env-file .env.local --secret ApiTokenSecret=dev-token \
	  --secret 'callsync/demo/van={"application_name":"callsync-demo","api_key":"demo-van-key"}' \
	  --secret 'callsync/demo/van-myc={"application_name":"callsync-demo","api_key":"demo-myc-key"}' \
	  --secret 'callsync/demo/livevox={"access_token":"demo-lv-access","client_name":"callsync-demo","user_name":"demo","password":"demo-password"}' \
	  --set CALLSYNC_VAN_BASE_URL=http://127.0.0.1:$(DEV_VAN_PORT)/v4 \
	  --set CALLSYNC_LIVEVOX_BASE_URL=http://127.0.0.1:$(DEV_LIVEVOX_PORT) \
	  --set CALLSYNC_LOCAL_ENDPOINTS=loopback > /dev/null
	@echo "local stack up: .env.local written (API token: dev-token). Stop it with: make dev-down"

dev-down:
	-@for p in .local/fakes.pid .local/moto.pid; do [ -f $$p ] && kill $$(cat $$p) 2>/dev/null; rm -f $$p; done
	@rm -f .env.local
	@echo "local stack stopped"

## lambda: every function's bootstrap.zip via cargo-lambda (x86-64; arm64 too when its std is installed).
lambda: venv
	rm -rf target/lambda
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release $(LAMBDA_PACKAGES) --x86-64 --output-format zip --lambda-dir target/lambda/x86_64
	@if rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu; then \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release $(LAMBDA_PACKAGES) --arm64 --output-format zip --lambda-dir target/lambda/arm64; \
	else echo "arm64: skipped (rustup target add aarch64-unknown-linux-gnu to build it)"; fi
	@find target/lambda -name bootstrap.zip -printf '%p\t%s bytes\n' | sort
