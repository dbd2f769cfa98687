# Set-up and checks. `make test` and `make demo` build their own virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torchaudio on PyPI is built against CUDA torch; these two releases are known to load together
# on CPU-only hosts and on GPU hosts. pyproject.toml keeps open ranges.
TORCH_PINS ?= torch==2.14.1 torchaudio==2.11.0

.PHONY: bench-quick venv test test-container lint typecheck demo bench bench-gpu clean

$(BIN)/.installed: pyproject.toml setup.py asc_sweep/data/_melkernel.c Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

lint: venv
	$(BIN)/ruff check asc_sweep tests benchmarks
	$(BIN)/ruff format --check asc_sweep tests benchmarks
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -q

# Builds docker/Dockerfile with podman and runs a sweep in it (minutes; needs podman, runc and
# debootstrap: see tests/test_container.py).
test-container: venv
	$(BIN)/python -m pytest -q -m container

demo: venv
	$(BIN)/asc-sweep demo

# The CPU tables, under 15 minutes on 2 cores (store's 32-agent rows: benchmarks/store.py).
bench: venv
	$(BIN)/python benchmarks/store.py --agents 8
	$(BIN)/python benchmarks/early_termination.py
	$(BIN)/python benchmarks/features.py --repeats 3
	$(BIN)/python benchmarks/synth.py
	$(BIN)/python benchmarks/soak.py
	$(BIN)/python benchmarks/models.py --device cpu --repeats 3
	$(BIN)/python benchmarks/evaluation.py --device cpu
	$(BIN)/python benchmarks/overhead.py --repeats 2
	$(BIN)/python benchmarks/cache_reuse.py
	$(BIN)/python benchmarks/resample.py --repeats 1 --rates 44100 44056 22222
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/report.py --seeds 5
	$(BIN)/python benchmarks/padding.py

# Every benchmark at toy sizes: proves the scripts run (CI smoke), figures mean nothing. Two
# at a time (most of their time is processes starting), each one's output kept together.
QUICK := $(addprefix quick-,store early features synth soak models evaluation overhead cache resample \
	scaling utilisation report padding)
.PHONY: $(QUICK)
bench-quick: venv
	$(MAKE) --no-print-directory -j2 --output-sync=target $(QUICK)

quick-store:
	$(BIN)/python benchmarks/store.py --stores sqlite --agents 2 --runs 8 --bayes-runs 4 --hyperband-runs 8
quick-early:
	$(BIN)/python benchmarks/early_termination.py --stores sqlite --sizes 20x3
quick-features:  # the GPU rows too (--device cpu)
	$(BIN)/python benchmarks/features.py --clips 8 --seconds 2 --device cpu
quick-synth:
	$(BIN)/python benchmarks/synth.py --clips-per-class 8 --seconds 1
quick-soak:
	$(BIN)/python benchmarks/soak.py --folds 1 --inits 1 --rates 1 --agents 2 --events 2 --epochs 1
quick-models:
	$(BIN)/python benchmarks/models.py --device cpu --rates 16000 --arch dcase2018_cnn m5 --repeats 1
quick-evaluation:
	$(BIN)/python benchmarks/evaluation.py --device cpu --clips-per-class 8 --repeats 1
quick-overhead:
	$(BIN)/python benchmarks/overhead.py --repeats 1 --folds 1
quick-cache:
	$(BIN)/python benchmarks/cache_reuse.py --clips-per-class 8 --seconds 1
quick-resample:  # the exact calls left out: 11 GB
	$(BIN)/python benchmarks/resample.py --no-exact --seconds 1 --repeats 1
quick-scaling:
	$(BIN)/python benchmarks/scaling.py --quick
quick-report:
	$(BIN)/python benchmarks/report.py --epochs 5 --repeats 1
quick-padding:
	$(BIN)/python benchmarks/padding.py --quick
quick-utilisation:  # the GPU script's launch and table, on the CPU
	$(BIN)/python benchmarks/utilisation.py --device cpu --agents-per-gpu 2 --runs 64 --epochs 2 \
		--clips-per-class 8 --arch dcase2018_cnn --seconds 5

# On a GPU host: GPU tests and every GPU figure in one command (see benchmarks/gpu.sh).
bench-gpu:
	bash benchmarks/gpu.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
