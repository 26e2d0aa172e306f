# aerialseg: `make book` runs every chapter (default profile) and builds the book;
# `make test` runs the unit tests, every chapter in the smoke profile and a book build.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PROFILE ?= default
DATASET ?= synthetic
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: venv book test unit chapters lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e ".[book,test]"
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/aerialseg book run --profile $(PROFILE) --dataset $(DATASET)

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
