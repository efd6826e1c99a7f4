# talkvid-assets: every target sets itself up first, so a fresh clone needs only `make demo`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 3000
export TALKVID_HOME ?= $(CURDIR)/data

.PHONY: setup demo test lint format dev bench bench-backends bench-scale clean system-deps

setup: $(STAMP)

# Re-installs when the pinned dependencies change. torch==2.13.0 resolves to the local CPU
# build here; nothing pulls CUDA packages. A pinned uv installs the set, where pip 26.3 took 46 s
# (and the pip a Python 3.11 venv starts with, 91 s). uv links files out of its cache and
# compiles nothing: Python compiles what a process imports, on first use. uv reads no pip
# configuration, so pip's local wheel folder is handed on to it. It tries its cache alone first
# (2 s): online, a registry that answers every revalidation as modified makes it download and
# build face_recognition_models' 100 MB sdist again each time (30 s); an empty or incomplete
# cache falls through to the online install.
UV_VERSION := 0.13.10
UV_INSTALL = $(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[dev,scale]"
export UV_FIND_LINKS ?= $(PIP_FIND_LINKS)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV_INSTALL) --offline 2>/dev/null || $(UV_INSTALL)
	touch $(STAMP)

demo: setup
	$(BIN)/talkvid demo

# PostgreSQL, Redis, Chromium and ffmpeg for the tests that need them: installed with apt when
# missing and root, else those tests skip with a printed reason.
system-deps:
	.ci/system-deps

# Test files run on TEST_WORKERS pytest-xdist workers, a whole file per worker (its module-wide
# homes are built once there; session-wide ones once per run, see conftest.py), files with slow
# tests handed out first; much of the suite's wall time is waiting on servers.
TEST_WORKERS ?= 4
# The suite starts a few hundred Python processes: each reads the bytecode the first compiled,
# even where the environment says not to write it (PYTHONDONTWRITEBYTECODE, as in CI images).
test: export PYTHONDONTWRITEBYTECODE =
test: lint system-deps
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

dev: setup
	$(BIN)/talkvid dev --host 127.0.0.1 --port $(PORT)

# One table (plain decode, core pass, curate batch, backfill route, CPU per stage, start-up,
# peak RSS), also written to benchmarks/results.md with the machine and versions; then language
# ID on espeak-ng speech (confusion table, CPU per clip) in benchmarks/language_results.md.
bench: setup
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/language_id.py

# CPU per sampled frame of every backend, the alternatives included.
bench-backends: setup
	$(BIN)/python benchmarks/backends.py

# Per-video fixed cost on 1,000 real curations, then ticks, planning, queries and bytes per video
# on homes of 1,000 / 10,000 / 100,000 videos (synthesised beyond the real ones; see
# benchmarks/scale.py), also written to benchmarks/results.md. SIZES="1000 10000" for a shorter run.
SIZES ?= 1000 10000 100000
REAL ?= 1000
bench-scale: setup system-deps
	$(BIN)/python benchmarks/scale.py --real $(REAL) --sizes $(SIZES)

clean:
	rm -rf $(VENV) data/talkvid.duckdb data/.talkvid.duckdb.* data/tables data/exports data/dagster \
		data/curation.yaml data/score_cache data/previews data/inbox data/clips data/partition_keys
