# `make test` and `make demo` work on a fresh clone: they create .venv and install.
# TORCH: what pip installs before this package. The default pair is the one the tests run
# with; from PyPI on Linux it is the CUDA build. On a machine without a GPU:
#   make demo TORCH="torch torchvision --index-url https://download.pytorch.org/whl/cpu"
# (README.md#install). Any torch >= 2.4 works.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.14.1 torchvision==0.29.1
# Optional extras of pyproject.toml, besides `test` (which every install has), e.g.
# make install EXTRAS=postgres; several: EXTRAS=postgres,other.
EXTRAS ?=
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DEMO := demo-out
# Ray's token authentication stays on: a local study's Ray listens on every interface
# (docs/failures.md#who-can-reach-a-studys-ray).
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: install compile test test-fast lint demo bench bench-cache bench-scale clean

install: $(VENV)/.installed
ifneq ($(strip $(EXTRAS)),)
	$(PY) -m pip install -q -e ".[$(strip $(EXTRAS))]"
endif

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# The tiers (docs/development.md#the-test-tiers). `make test`: every test in JOBS parallel
# processes, each test module in one of them (its module-scoped studies are made once),
# the modules with slow tests first (tests/conftest.py orders them; pytest-xdist would
# otherwise start the modules with the most tests first, the quick ones).
# `make test-fast`: what is not slow, and the slow tests marked essential.
JOBS ?= 4
test: install compile
	$(PY) -m pytest -q -n $(JOBS) --dist loadscope --no-loadscope-reorder tests

test-fast: install compile
	$(PY) -m pytest -q -n $(JOBS) -m "not slow or essential" tests

# The checkout's modules compiled once, before the tests and the demo start their hundreds
# of Python processes (drivers, Ray workers, commands): where PYTHONDONTWRITEBYTECODE is
# set, as in many container images, no process writes a .pyc and each would compile them
# again (docs/development.md#where-the-cpu-goes). compileall writes them all the same.
compile: install
	$(PY) -m compileall -q fsvae fsvae_study results search_spaces study tests/helpers

# ruff (lint and format) and mypy, configured in pyproject.toml, on the whole tree.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Generated data -> a smoke study on local Ray with the embedded MLflow store -> Table 2,
# all under $(DEMO)/ (README.md#five-minutes-the-demo).
demo: install compile
	rm -rf $(DEMO)
	$(BIN)/fsvae-study demo-data $(DEMO)/data --per-class 40 --defects
	$(BIN)/fsvae-study run --space search_spaces/smoke.yaml --data $(DEMO)/data \
		--storage $(DEMO)/studies --name demo
	$(BIN)/fsvae-study table --experiment demo --storage $(DEMO)/studies

# The harness's own cost per trial against plain Ray Tune, without a searcher and with Ray's
# OptunaSearch (in-memory storage), on 40 sub-second smoke-search trials, 2 at a time, once
# (bench/overhead.py; bench/README.md has the figures). On the 2-core CPU sandbox: under 2
# min quiet, under 6 min at a load average of 11-13. PYTHONPATH: this checkout's code, in
# the studies too.
OVERHEAD_ARGS ?= --trials 40 --repeats 1
bench: install
	PYTHONPATH=$(CURDIR) $(PY) bench/overhead.py --out bench-out/overhead $(OVERHEAD_ARGS)

# The stage cache's speed-up and the harness's share of real trials (bench/bench.py).
# BENCH_ARGS="--per-class 160": the same studies on 4x the generated data.
bench-cache: install
	$(PY) bench/bench.py --out bench-out $(BENCH_ARGS)

# 1,000 synthetic trials through the harness beside plain Ray Tune, then `resume`, `table`
# and `analyze` over that study and over 10,000 runs written straight to the record
# (bench/scale.py). Long: on the 2-core CPU sandbox the 1,000-trial study took 2.5 min
# quiet (af7c79e; 22 min loaded at 9812abb), writing the 10,000 runs 29 min and `analyze`
# over them 25 min (9812abb, which fitted fANOVA twice per scope where main fits it once).
SCALE_ARGS ?= --sizes 100,1000 --synthetic 10000
bench-scale: install
	PYTHONPATH=$(CURDIR) $(PY) bench/scale.py --out bench-out/scale $(SCALE_ARGS)

clean:
	rm -rf $(DEMO) bench-out runs .pytest_cache
