# Two commands: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PG_ADMIN_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: demo test bench bench-workers lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	FLOWFORGE_HOME=$${FLOWFORGE_HOME:-$(CURDIR)/.flowforge-demo} \
	  $(VENV)/bin/flowforge run examples/order_report/order_report.yaml -p order_ids='[1,2,3,4]'

# PostgreSQL half of the suite: on when PostgreSQL answers on 127.0.0.1:5432 (tests make and
# drop databases of their own); CI=true makes it mandatory.
test: $(VENV)/.installed-dev
	@if [ -z "$$FLOWFORGE_TEST_POSTGRES_URL" ] && $(PY) -c "import psycopg; psycopg.connect('$(PG_ADMIN_URL)', connect_timeout=3).close()" 2>/dev/null; then \
	  export FLOWFORGE_TEST_POSTGRES_URL=$(PG_ADMIN_URL); echo "PostgreSQL found: the suite runs on SQLite and PostgreSQL"; \
	else echo "FLOWFORGE_TEST_POSTGRES_URL=$${FLOWFORGE_TEST_POSTGRES_URL:-<unset: PostgreSQL tests will skip>}"; fi; \
	$(PY) -m pytest $(PYTEST_ARGS)

# the workloads of issue 2 against the floor and the peers, then control flow and workers
# (issue 3); see bench/README.md
bench: $(VENV)/.installed-dev
	$(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/control_flow.py
	$(PY) bench/workers.py

# flowforge worker processes on PostgreSQL (issue 3): W2 with 1/2/4 workers, start latency,
# idle load; see bench/README.md
bench-workers: $(VENV)/.installed-dev
	$(PY) bench/workers.py $(BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

clean:
	rm -rf $(VENV) .flowforge-demo .pytest_cache
