# Everything a fresh clone needs: `make experiment` and `make test` create (or reuse)
# the virtual environment and install the pinned dependencies first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN    := $(BIN)/python -m experiments
REF    := results/reference
# The README's results table and the reference report: the newest run of each config under results/reference/,
# the committed runs the README cites. Only `make reference`, `make results` and `make transformers` change them;
# a user's own runs (`make experiment`, `run CONFIG`) go to results/<config>/, which git ignores.
# auxiliary_semeval needs an imported dataset that is not shipped: its committed run is read, not rerun.
TABLE  := $(RUN) table --readme --results $(REF) --config default --config default_kfold --config auxiliary_semeval --config frames_generic --config stance_transformers --config frames_transformers
REPORT := $(RUN) report --results $(REF) --config default --config default_kfold --config auxiliary_semeval --out $(REF)/report.html

.PHONY: install experiment reference results transformers bench test test-fast clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The default experiment on the shipped corpus: your own runs (results/default/, results/default_kfold/), a report
## (results/report.html) and the headline numbers. The repository's tracked files stay as they are.
experiment: $(STAMP)
	$(RUN) corpus
	$(RUN) codebook --check
	$(RUN) run configs/default.yaml
	$(RUN) run configs/default_kfold.yaml
	$(RUN) report --config default --config default_kfold --out results/report.html
	$(RUN) headline --config default --config default_kfold

## The reference runs of the default experiment, then the README results table and the reference report.
reference: $(STAMP)
	$(RUN) corpus
	$(RUN) codebook --check
	$(RUN) run configs/default.yaml --results $(REF)
	$(RUN) run configs/default_kfold.yaml --results $(REF)
	$(TABLE)
	$(REPORT)

## Every shipped experiment config as reference runs (not the smoke test), then the README results table.
results: $(STAMP)
	$(RUN) corpus
	$(RUN) run configs/stance_baselines.yaml --results $(REF)
	$(RUN) run configs/frames_baselines.yaml --results $(REF)
	$(RUN) run configs/frames_generic.yaml --results $(REF)
	$(RUN) run configs/default.yaml --results $(REF)
	$(RUN) run configs/default_kfold.yaml --results $(REF)
	$(TABLE)
	$(REPORT)

## The transformer and few-shot configs as reference runs (about 17 minutes on 2 CPU cores), then the README table.
transformers: $(STAMP)
	$(RUN) corpus
	$(RUN) run configs/stance_transformers.yaml --results $(REF)
	$(RUN) run configs/frames_transformers.yaml --results $(REF)
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
