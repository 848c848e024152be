# Everything runs in a local virtualenv built from nothing: `make demo`, `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,viz,pyg

.PHONY: demo test test-all bench install

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/hookgnn demo

# -n auto: one pytest worker per core (pytest-xdist); the suite sets 1 torch thread per worker.
test: $(VENV)/.installed
	$(PY) -m pytest -q -n auto -m "not slow" --doctest-modules hookgnn tests

test-all: $(VENV)/.installed
	$(PY) -m pytest -q -n auto --doctest-modules hookgnn tests
