# weightgen: every stage is a Hydra entry point; pass overrides with ARGS="key=value ...".
PYTHON ?= python3
VENV ?= .venv
# A GPU user picks another torch, e.g. TORCH_SPEC="torch==2.13.0 --index-url <cuda index>".
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,export,cluster
ARGS ?=
TEST_WORKERS ?= auto
BIN := $(VENV)/bin
CONSTRAINTS := $(VENV)/torch-constraint.txt

.PHONY: install test test-fast lint quickstart pairs dataset generator generate finetune bench studies experiments clean

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install $(TORCH_SPEC)
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(CONSTRAINTS)
	$(BIN)/pip install --constraint $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	@$(BIN)/python -c "import torch; print('installed torch', torch.__version__, '(cuda:', torch.cuda.is_available(), ')')"

# Tests run in one worker process per core (pytest-xdist; each worker runs torch on one thread,
# tests/conftest.py; timings in tests/README.md). TEST_WORKERS=0 runs them in this process (a
# debugger, -x, reading the order).
test:
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS)

test-fast:
	$(BIN)/python -m pytest tests -m "not slow" -n $(TEST_WORKERS)

lint:
	$(BIN)/ruff check weightgen tests experiments

quickstart:
	$(BIN)/weightgen-pipeline experiment=quickstart $(ARGS)

pairs:
	$(BIN)/weightgen-pairs $(ARGS)

dataset:
	$(BIN)/weightgen-dataset $(ARGS)

generator:
	$(BIN)/weightgen-train-generator $(ARGS)

generate:
	$(BIN)/weightgen-generate $(ARGS)

finetune:
	$(BIN)/weightgen-finetune $(ARGS)

# The benchmark preset end to end (every stage resumes), then its results into experiments/bench.
bench:
	$(BIN)/weightgen-pipeline experiment=bench $(ARGS)

# The ablation and scaling studies (issue 6): each a Hydra multirun over the bench workspace whose
# callback writes experiments/<study>/results.{json,md,png}. `make study-scaling` runs one.
STUDIES := block_size grouping sampling denoiser scaling text memorisation

study-%:
	$(BIN)/weightgen-study experiment=study_$* --multirun $(ARGS)

studies: $(addprefix study-,$(STUDIES))

# Everything committed under experiments/: the benchmark (copied out of artifacts/), the zero-shot
# table, then every study.
experiments: bench
	mkdir -p experiments/bench
	cp artifacts/bench/bench/results.json artifacts/bench/bench/results.md artifacts/bench/bench/curves.png artifacts/bench/bench/grid.png experiments/bench/
	cp artifacts/bench/generator/zero_shot.json artifacts/bench/generator/zero_shot.md experiments/bench/
	$(MAKE) studies

clean:
	rm -rf outputs multirun wandb lightning_logs
