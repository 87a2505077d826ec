# Spacedock: `make run` starts the product on embedded defaults, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install run test lint unit integration e2e bench bench-scale deps services clean

# pip is quiet unless a target asks otherwise: `make run` shows its progress (a fresh
# install takes about a minute), `make test` keeps its log to the tests.
PIP_OUTPUT := --quiet

$(STAMP): pyproject.toml
	@echo "==> creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> installing Spacedock and its dependencies into $(VENV) (about a minute the first time)"
	$(BIN)/pip install $(PIP_OUTPUT) --upgrade pip
	$(BIN)/pip install $(PIP_OUTPUT) -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: PIP_OUTPUT := --progress-bar on
run: install
	@echo "==> starting registry, builder and reaper in one process (spacedock serve; Ctrl-C stops)"
	$(BIN)/spacedock serve

deps:
	bash infra/dev/install-test-deps.sh

services: deps
	bash infra/dev/start-services.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit

integration: install services
	$(BIN)/pytest tests/integration

e2e: install services
	$(BIN)/pytest tests/e2e

test: install services lint
	$(BIN)/pytest tests/unit tests/integration tests/e2e

bench: install deps services
	$(BIN)/python -m tests.bench

bench-scale: install deps services
	$(BIN)/python -m tests.bench --only scale

clean:
	rm -rf $(VENV) .spacedock .pytest_cache .mypy_cache .ruff_cache
