# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo

.PHONY: install postgres chromium demo test test-fast lint docs screenshots bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# The tests start a throw-away PostgreSQL cluster: Debian's server binaries are needed.
postgres:
	@if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "PostgreSQL's server is needed: sudo apt-get install postgresql"; exit 1; fi

# The link to a sweep's runs in the MLflow UI, from its results.yaml.
export RUNS_URL := import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["mlflow_runs_url"])

# The browser test drives Debian's Chromium through Playwright (which downloads no browser).
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "The browser test needs Chromium (sudo apt-get install chromium); it skips without it"; fi

# Runs an example sweep on the embedded defaults (SQLite files in $(DEMO_DIR)/).
demo: install
	mkdir -p $(DEMO_DIR)
	cd $(DEMO_DIR) && $(abspath $(PY)) $(abspath examples/train.py) -m hydra.sweep.dir=sweep \
		hydra.sweeper.mode=chain model=resnet,vit lr=1e-3_1e1:5.log dropout=0.0-0.2:3
	@echo
	@echo "Where to look (these commands work from here, $(CURDIR)):"
	@echo "  results:     cat $(DEMO_DIR)/sweep/results.yaml"
	@echo "  chain plot:  $(DEMO_DIR)/sweep/chain.png"
	@echo "  Optuna:      $(VENV)/bin/optuna-dashboard sqlite:///$(abspath $(DEMO_DIR))/optuna.db"
	@echo "  MLflow:      $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(abspath $(DEMO_DIR))/mlflow.db"
	@echo "  then open:   $$($(PY) -c "$$RUNS_URL" $(DEMO_DIR)/sweep/results.yaml)"
	@echo "               (the sweep's runs by score; elsewhere MLflow 3 starts on GenAI:"
	@echo "               press \"Model training\" at the top left)"
	@echo "Run make demo again: the same sweep resumes and finds nothing left to run."

# The whole suite, slow end-to-end tests included (as CI runs it).
test: install postgres chromium
	$(PY) -m pytest -n 2 -q --durations=25

# The quick part: pure core and doctests.
test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# The documentation site, into site/: broken links and missing references fail it.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# The how-to page's pictures of optuna-dashboard and the MLflow UI, on the demo's sweep.
screenshots: install chromium
	$(PY) benchmarks/screenshots.py --demo $(DEMO_DIR) --out shots
	mkdir -p docs/images && cp shots/optuna.png shots/mlflow.png docs/images/

# Hydra's Optuna sweeper pins optuna<3 (and needs SQLAlchemy 1.4): a venv of its own.
PEER := .venv-optuna-peer
$(PEER)/.installed:
	$(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install -q "hydra-core==1.3.8" "hydra-optuna-sweeper==1.2.0" "optuna<3" "sqlalchemy<2"
	touch $@

# Every figure of docs/explanation/speed.md (about 70 minutes on 2 cores).
bench: install postgres $(PEER)/.installed
	$(PY) benchmarks/bench_sweeper.py --optuna-python $(PEER)/bin/python
	$(PY) benchmarks/bench_workers.py
	$(PY) benchmarks/bench_journal.py
	$(PY) benchmarks/bench_pruning.py
	$(PY) benchmarks/bench_scale.py

clean:
	rm -rf $(DEMO_DIR) build site *.egg-info
