# Brink: `make run` to try it, `make test` to check it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test unit lint migrate clean eval deploy-check browser

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

.env: | $(STAMP)
	$(BIN)/brink init-env

run: $(STAMP) .env
	$(BIN)/brink run

migrate: $(STAMP) .env
	$(BIN)/brink migrate

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# promtool (Debian package 'prometheus'), check-jsonschema, kubernetes-validate and hadolint on deploy/.
# Also part of 'make test', which runs every test under tests/ including tests/deploy.
deploy-check: $(STAMP)
	$(BIN)/python -m pytest -q tests/deploy

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# Diagnosis: how often the rules agree with the labelled scenarios (services/diagnosis/evaluation/).
eval: $(STAMP)
	$(BIN)/python -m services.diagnosis.evaluation.run

# The rescue desk in a real browser: Debian's Chromium driven by Playwright; screenshots in test-artifacts/desk/.
browser: $(STAMP)
	@test -x /usr/bin/chromium || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)
	$(BIN)/python -m pytest -q tests/browser

clean:
	rm -rf $(VENV) brink.db brink.db-wal brink.db-shm .pytest_cache
