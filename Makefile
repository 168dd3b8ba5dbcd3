# Everything a fresh clone needs: `make experiment` and `make test` create (or reuse)
# the virtual environment and install the pinned dependencies first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN    := $(BIN)/python -m experiments

.PHONY: install experiment results test test-fast clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The default experiment on the shipped corpus, then the README results table.
experiment: $(STAMP)
	$(RUN) corpus
	$(RUN) codebook --check
	$(RUN) run configs/default.yaml
	$(RUN) table --readme --config default --config frames_generic

## Every shipped experiment config (not the smoke test), then the README results table.
results: $(STAMP)
	$(RUN) corpus
	$(RUN) run configs/stance_baselines.yaml
	$(RUN) run configs/frames_baselines.yaml
	$(RUN) run configs/frames_generic.yaml
	$(RUN) run configs/default.yaml
	$(RUN) table --readme --config default --config frames_generic

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

clean-venv:
	rm -rf $(VENV)
