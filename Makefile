# Two commands do all the set-up on a fresh machine:
#   make test     create .venv, install, run the test suite
#   make report   create .venv, install, run the default study end to end (reports/index.html)
PY     ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: setup test test-fast report pretrain clean

setup: $(STAMP)

# torch's CPU build is pinned and installed first: an unpinned torch can pull a multi-GB CUDA build
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The default study runner lands with issue #5; until then `make report` pretrains the default model.
report: $(STAMP)
	$(BIN)/rlearly pretrain --preset small --out runs/default/pretrain

clean:
	rm -rf $(VENV) .pytest_cache
