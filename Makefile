# Everything runs in a local virtualenv built from nothing: `make demo`, `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,viz,pyg

.PHONY: demo demo-check test test-portable test-all bench bench-quick install tutorials docs

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/hookgnn demo

# `hookgnn demo` prints the README's block (tests/data/demo_stdout.txt) bit for bit on two CPU code paths
# (ATEN_CPU_CAPABILITY unset and =default) and thread counts, in fresh interpreters (~30 s on 2 cores)
demo-check: $(VENV)/.installed
	$(PY) -m pytest -q tests/test_demo.py -k "readme_block or readme_shows"

lint: $(VENV)/.installed ; $(VENV)/bin/lint-imports  # the layout: import-linter contracts in pyproject.toml
# -n auto: one pytest worker per core (pytest-xdist); the suite sets 1 torch thread per worker.
test: $(VENV)/.installed
	$(PY) -m pytest -q -n auto -m "not slow" --doctest-modules hookgnn tests

# The suite again on other code paths, so that a test passing only on this machine's kernels cannot
# land (CI runs it after `make test`): ATEN_CPU_CAPABILITY=default, torch's portable CPU kernels
# instead of the AVX2/AVX512 ones `make test` picks; HOOKGNN_SCATTER_BACKEND=torch, scatter max/min
# in plain torch instead of the compiled kernel (tests that name a backend keep it). Left out: the
# README, demo and tutorial runs (subprocesses and notebooks that take a minute and check no number
# a code path changes) and the two doctests that show the backend with the variable unset.
PORTABLE_ENV := ATEN_CPU_CAPABILITY=default HOOKGNN_SCATTER_BACKEND=torch
PORTABLE_SKIP := --ignore=tests/test_readme.py --ignore=tests/test_demo.py --ignore=tests/test_tutorials.py \
	--deselect hookgnn/ops/backend.py::hookgnn.ops.backend \
	--deselect hookgnn/ops/backend.py::hookgnn.ops.backend.set_backend

test-portable: $(VENV)/.installed
	$(PORTABLE_ENV) $(PY) -m pytest -q -n auto -m "not slow" --doctest-modules hookgnn tests $(PORTABLE_SKIP)

test-all: $(VENV)/.installed
	$(PY) -m pytest -q -n auto --doctest-modules hookgnn tests

# every tutorial's quick setting, executed as a notebook (a CI step of its own: a few minutes);
# the executed notebooks (outputs and figures) are kept in out/notebooks/ for the docs site
NOTEBOOKS := out/notebooks
TUTORIAL_SOURCES := $(wildcard tutorials/*.py)

tutorials: $(VENV)/.installed
	rm -rf $(NOTEBOOKS)
	HOOKGNN_RUN_TUTORIALS=1 HOOKGNN_TUTORIAL_NOTEBOOKS=$(CURDIR)/$(NOTEBOOKS) $(PY) -m pytest -q -m "not slow" tests/test_tutorials.py
	mkdir -p $(NOTEBOOKS) && touch $(NOTEBOOKS)/.executed

# make docs executes the tutorials only when make tutorials has not (or a tutorial changed since)
$(NOTEBOOKS)/.executed: $(TUTORIAL_SOURCES)
	$(MAKE) tutorials

# the API reference and the tutorials as pages, built strictly (a broken reference fails), after
# checking that every public name of docs/api/index.md has typed parameters, a parameter list and an
# example; then the built site is checked (docs/check_site.py)
$(VENV)/.docs-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[docs]"
	touch $@

docs: $(VENV)/.docs-installed $(NOTEBOOKS)/.executed
	$(PY) docs/check_public_api.py
	HOOKGNN_RUN_DOC_EXAMPLES=1 $(PY) -m pytest -q -n auto -p no:cacheprovider tests/test_readme.py tests/test_docs.py  # every page's examples; the docs tools (need the docs extra)
	$(VENV)/bin/mkdocs build --strict --site-dir site
	$(PY) docs/check_site.py site  # tutorials show figures; maths typeset offline (headless Chromium)

# every benchmark, one table (out/bench.md); bench-quick: the short settings (< 10 min on 2 cores)
bench: $(VENV)/.installed
	$(PY) benchmarks/run_all.py --json out/bench.json

bench-quick: $(VENV)/.installed
	$(PY) benchmarks/run_all.py --quick --json out/bench-quick.json
