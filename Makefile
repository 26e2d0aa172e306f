# aerialseg: `make book` runs every chapter (default profile) and builds the book;
# `make test` runs the unit tests, every chapter in the smoke profile and a book build.
# THREADS=N (e.g. `make book THREADS=1`) sets the CPU threads of every process (see below).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PROFILE ?= default
DATASET ?= synthetic
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1
# Thread policy (src/aerialseg/threads.py): THREADS=N (or all) for every process started here,
# e.g. `make book THREADS=1` on a shared machine; empty = $AERIALSEG_THREADS, else all cores.
# OpenMP reads OMP_WAIT_POLICY only at start-up, so it is exported to every recipe: passive
# waiting unless the caller's environment says otherwise.
THREADS ?=
# JOBS chapters run side by side (each with the cores divided by JOBS unless THREADS is set):
# two one-thread chapters train faster than one two-thread chapter on the book's 2 cores
JOBS ?= 2
export OMP_WAIT_POLICY ?= PASSIVE
ifneq ($(strip $(THREADS)),)
export AERIALSEG_THREADS := $(THREADS)
export AERIALSEG_THREADS_SOURCE := make THREADS=$(THREADS)
ifneq ($(filter-out all auto 0,$(THREADS)),)
export OMP_NUM_THREADS := $(THREADS)
export MKL_NUM_THREADS := $(THREADS)
endif
endif

.PHONY: venv book test unit chapters lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e ".[book,test]"
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/aerialseg book run --profile $(PROFILE) --dataset $(DATASET) --jobs $(JOBS) \
	  $(if $(strip $(THREADS)),--threads $(THREADS))

test: $(STAMP)
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q -m "not chapter and not book"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

bench: $(STAMP)
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf _build book/chapters/*.ipynb
