# The two commands: `make demo` runs the main job, `make test` runs the tests. Each builds .venv/ when needed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrap-stamp

.PHONY: help demo test test-all bench lint clean

help:
	@echo "make demo   - the main job: a synthetic camera bag replayed with the bundled model (out/demo/)"
	@echo "make test   - ruff, then the fast test suite (what CI runs)"
	@echo "make bench  - print the benchmark tables"
	@echo "make lint   - ruff"

$(STAMP): requirements.txt setup.py scripts/bootstrap.sh
	bash scripts/bootstrap.sh "$(PYTHON)" "$(VENV)"
	@touch $@

demo: $(STAMP)
	$(PY) -m vb_perception.cli demo --out out/demo

test: $(STAMP)
	$(VENV)/bin/ruff check vb_perception test bench scripts
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest --run-slow

bench: $(STAMP)
	$(PY) bench/codecs.py
	$(PY) bench/node.py
	$(PY) bench/runtime.py --res 64

lint: $(STAMP)
	$(VENV)/bin/ruff check vb_perception test bench scripts

clean:
	rm -rf out build install log *.egg-info .pytest_cache .hypothesis
