# Brink: `make run` to try it, `make test` to check it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Exact versions with hashes: requirements.lock for the image, requirements-dev.lock (with the dev extra) here.
LOCK     := requirements.lock
DEV_LOCK := requirements-dev.lock
UV       := $(BIN)/uv

.PHONY: install lock audit system-tools run test unit lint migrate clean eval deploy-check bench bench-against soak browser chaos cluster-chaos

$(STAMP): pyproject.toml $(DEV_LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

# After changing dependencies in pyproject.toml: both lock files again. Versions already locked are kept
# unless the ranges exclude them (UPGRADE=--upgrade takes the newest allowed), so a re-lock is small.
UPGRADE ?=
LOCK_FLAGS = --quiet --generate-hashes --universal --python-version 3.11 --custom-compile-command 'make lock' $(UPGRADE)
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install --quiet 'uv>=0.13,<0.14'
	$(UV) pip compile pyproject.toml $(LOCK_FLAGS) -o $(LOCK)
	$(UV) pip compile pyproject.toml $(LOCK_FLAGS) --extra dev -o $(DEV_LOCK)

# Known vulnerabilities in every locked version (PyPI's advisory database, through pip-audit). --strict: a
# package that could not be looked up fails the audit rather than passing unexamined.
audit: $(STAMP)
	$(BIN)/pip-audit --strict --disable-pip --require-hashes -r $(LOCK)
	$(BIN)/pip-audit --strict --disable-pip --require-hashes -r $(DEV_LOCK)

.env: | $(STAMP)
	$(BIN)/brink init-env

# A fresh checkout also gets a first admin for the rescue desk; how to sign in is printed before the logs.
run: $(STAMP) .env
	$(BIN)/brink migrate
	$(BIN)/brink users first-admin
	$(BIN)/brink run

migrate: $(STAMP) .env
	$(BIN)/brink migrate

# The checks that keep the code honest: lint, format, types and the import contracts.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# What the tests drive besides Python, from Debian: Chromium (the desk in a real browser) and promtool (package
# prometheus, for deploy/). Installed when missing, as root (as .ci/run does); otherwise one line says what to add.
system-tools:
	@missing=""; test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "make: installing$$missing (Debian)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
			if command -v systemctl >/dev/null; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi; \
		else echo "make: the tests need$$missing: apt-get install$$missing"; fi; \
	fi

test: lint system-tools
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# promtool (Debian package 'prometheus'), check-jsonschema, kubernetes-validate and hadolint on deploy/.
# Also part of 'make test', which runs every test under tests/ including tests/deploy.
deploy-check: $(STAMP)
	$(BIN)/python -m pytest -q tests/deploy

# Fault injection on a private RabbitMQ node and PostgreSQL cluster (never the shared ones).
CHAOS_SCALE ?= full
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos.run --scale $(CHAOS_SCALE)

# The same against a private three-node RabbitMQ cluster: leader-node SIGKILL, rolling restart, a 20 s partition
# (nftables rules on loopback; installs Debian's nftables when missing), service instances killed. Needs root.
# CHAOS_SCALE=ci is the form .ci/run runs: every fault, on a lighter stream (at least 1,500 events at 12/s).
cluster-chaos: $(STAMP)
	@command -v nft >/dev/null || { apt-get install -y -qq nftables || { apt-get update -qq && apt-get install -y -qq nftables; }; } >/dev/null
	$(BIN)/python -m tests.chaos.cluster_run --scale $(CHAOS_SCALE)

# No services: the broker and database addresses point nowhere, and CI=true makes a test that needs them fail.
unit: $(STAMP)
	CI=true BRINK_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:1/ \
		BRINK_TEST_POSTGRES_ADMIN_URL=postgresql://postgres@127.0.0.1:1/postgres $(BIN)/python -m pytest -q tests/unit

# Diagnosis: how often the rules agree with the labelled scenarios (services/diagnosis/evaluation/).
# FROM_DB=1 scores the rules on the cases closed with a confirmed root cause in BRINK_DATABASE_URL instead
# (make takes no --from-db of its own: `python -m services.diagnosis.evaluation.run --from-db` is the same).
eval: $(STAMP)
	$(BIN)/python -m services.diagnosis.evaluation.run $(if $(FROM_DB),--from-db)

# The rescue desk in a real browser: Debian's Chromium driven by Playwright; screenshots in test-artifacts/desk/.
browser: $(STAMP) system-tools
	$(BIN)/python -m pytest -q tests/browser

# The benchmark needs PostgreSQL and RabbitMQ running; BENCH_SCALE=short for a quick check of the harness.
BENCH_SCALE  ?= full
BENCH_STAMP  := $(VENV)/.bench-stamp

$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP)
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		{ apt-get install -y -qq wrk || { apt-get update -qq && apt-get install -y -qq wrk; }; } >/dev/null 2>&1; } || \
		echo "bench: wrk not installed; skipping the wrk ceiling"
	$(BIN)/python -m bench --scale $(BENCH_SCALE)

# CPU per cancellation of HEAD against another commit (the issue's own code by default), alternated on this machine.
BENCH_BASE ?=
BENCH_RUNS ?= 2
bench-against: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m bench.against $(BENCH_BASE) --runs $(BENCH_RUNS) --scale short

# A million cancellations at a steady rate with retention biting (bench/soak.py); SOAK_EVENTS for fewer.
SOAK_EVENTS ?= 1000000
SOAK_RATE   ?= 200
soak: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m bench.soak --events $(SOAK_EVENTS) --rate $(SOAK_RATE)

clean:
	rm -rf $(VENV) brink.db brink.db-wal brink.db-shm .pytest_cache
