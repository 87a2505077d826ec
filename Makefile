# Spacedock: `make run` starts the product on embedded defaults, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install run test lint unit integration e2e bench bench-scale deps services clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
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
