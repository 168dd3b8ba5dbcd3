# Everything a fresh clone needs: `make experiment` and `make test` create (or reuse)
# the virtual environment and install the pinned dependencies first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN    := $(BIN)/python -m experiments
# The README results table: the newest committed run of each of these configs (auxiliary_semeval needs an
# imported dataset that is not shipped: its committed run is read, `make experiment` does not rerun it).
TABLE  := $(RUN) table --readme --config default --config default_kfold --config auxiliary_semeval --config frames_generic --config stance_transformers --config frames_transformers
# The report of the default experiment: leave-one-document-out and repeated k-fold side by side.
REPORT := $(RUN) report --config default --config default_kfold --config auxiliary_semeval --out results/report.html

.PHONY: install experiment results transformers bench test test-fast clean-venv

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
	$(RUN) run configs/default_kfold.yaml
	$(TABLE)
	$(REPORT)

## Every shipped experiment config (not the smoke test), then the README results table.
results: $(STAMP)
	$(RUN) corpus
	$(RUN) run configs/stance_baselines.yaml
	$(RUN) run configs/frames_baselines.yaml
	$(RUN) run configs/frames_generic.yaml
	$(RUN) run configs/default.yaml
	$(RUN) run configs/default_kfold.yaml
	$(TABLE)
	$(REPORT)

## The transformer and few-shot configs (about 17 minutes on 2 CPU cores), then the README table.
transformers: $(STAMP)
	$(RUN) corpus
	$(RUN) run configs/stance_transformers.yaml
	$(RUN) run configs/frames_transformers.yaml
	$(TABLE)

bench: $(STAMP)
	$(RUN) bench
	$(RUN) bench --import-rows 100000
	$(RUN) bench --overhead configs/stance_baselines.yaml
	$(RUN) bench --overhead configs/frames_baselines.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

clean-venv:
	rm -rf $(VENV)
