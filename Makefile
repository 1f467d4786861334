# Two commands set up everything on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export STARS_DATA_DIR ?= $(CURDIR)/data

.PHONY: venv demo test dev bench clean dashboard api bench-api

$(STAMP): pyproject.toml sim/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e ./sim
	touch $(STAMP)

venv: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m stars_sim.demo

# The screenshot test drives Debian's Chromium and the API tests start a throwaway PostgreSQL server;
# install them when the machine lacks them. ruff (lint and format, configured in pyproject.toml) runs first.
test: $(STAMP)
	{ command -v chromium >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { apt-get update -qq && apt-get install -y -qq chromium postgresql >/dev/null; }
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# Daily partitions start where the data folder's deliveries do (recorded by `make demo`), else on the measurement year's first day.
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	STARS_FIRST_DELIVERY_DATE=$$(cat $(STARS_DATA_DIR)/first_delivery_date 2>/dev/null) $(BIN)/dagster dev -w workspace.yaml

# The Stars dashboard over the published lake, on http://127.0.0.1:$(DASHBOARD_PORT) (beside `make dev` on :3000).
DASHBOARD_PORT ?= 8501
dashboard: $(STAMP)
	$(BIN)/python -m stars_assets.dashboard --port $(DASHBOARD_PORT)

# A full delivery day at the payer's volume (28.6 million outreach rows); ARGS="--rows-per-day 300000" for a quick run.
bench: $(STAMP)
	$(BIN)/python -m stars_sim.bench $(ARGS)

# The member outreach API on http://127.0.0.1:8000 (OpenAPI docs at /docs); STARS_DOCUMENT_STORE_URL picks the store.
api: $(STAMP)
	$(BIN)/python -m stars_assets.api $(ARGS)

# Document build and API latency on 100,000 members, on SQLite and PostgreSQL; ARGS="--members 20000" for a quick run.
bench-api: $(STAMP)
	$(BIN)/python -m stars_sim.bench_api $(ARGS)

clean:
	rm -rf $(DAGSTER_HOME) $(STARS_DATA_DIR)/landing $(STARS_DATA_DIR)/warehouse.duckdb $(STARS_DATA_DIR)/alerts $(STARS_DATA_DIR)/lake $(STARS_DATA_DIR)/documents.sqlite* $(STARS_DATA_DIR)/first_delivery_date
