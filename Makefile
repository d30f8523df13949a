# Two entry points that take a fresh machine to a result:
#   make demo   build .venv from the lock file if missing, then run the demo workflow
#   make test   build .venv from the lock file if missing, then run the tests

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Hub lookups fail at once instead of retrying for about 47 s when a file is not cached.
export HF_HUB_OFFLINE := 1
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test env dry-run lint bench clean-demo

env: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: env
	$(BIN)/snakemake --profile profiles/demo all

test: env
	$(BIN)/pytest

# The paper recipe's job graph, without running anything (offline).
dry-run: env
	$(BIN)/snakemake -n all --quiet rules

lint: env
	$(BIN)/snakemake --lint
	$(BIN)/snakemake --profile profiles/demo --lint

# CPU benchmarks; their recorded figures are in read_clip/perf/README.md.
SHARED ?= ../shared/benchmark_annotations
bench: env
	$(BIN)/python -m read_clip.perf.step_time
	$(BIN)/python -m read_clip.perf.negatives_speed --tsv $(SHARED)/negclip/valid_neg_clip.tsv
	$(BIN)/python -m read_clip.perf.padding_speed --captions $(SHARED)/negclip/valid_neg_clip.tsv
	$(BIN)/python -m read_clip.perf.eval_speed

clean-demo:
	rm -rf results logs benchmarks .snakemake
