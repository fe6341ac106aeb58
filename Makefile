# labelrouter: every target does its own set-up (a .venv with the project and its dev extras).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
UV_VERSION := 0.13.9
TEST_WORKERS ?= 2
export UV_PYTHON_DOWNLOADS := never

.PHONY: install run serve test test-unit lint format bench clean demo

$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv sync --frozen --extra dev --extra reference --inexact --python $(BIN)/python
	@touch $(STAMP)

install: $(STAMP) ## create .venv with the project and its dev extras

run: $(STAMP) ## the service on the embedded default (SQLite + in-process Redis + worker)
	$(BIN)/labelrouter serve

serve: run

test: $(STAMP) ## the whole suite (real Redis/PostgreSQL too when ROUTER_TEST_*_URL are set)
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not timing"
	$(BIN)/pytest -m timing

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check router workers tests bench
	$(BIN)/ruff format --check router workers tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format router workers tests bench
	$(BIN)/ruff check --fix router workers tests bench

bench: $(STAMP) ## benchmarks: print figures and write bench/results/*.json
	$(BIN)/uv sync --frozen --extra dev --extra reference --extra bench --inexact --python $(BIN)/python
	$(BIN)/python -m bench

demo: $(STAMP) ## the main job: a simulated campaign over the real API, report against baselines
	$(BIN)/labelrouter demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
