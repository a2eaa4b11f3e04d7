# vitlab — two commands on a fresh machine:
#   make lab    set up .venv (when missing) and open the notebook series in JupyterLab
#   make test   set up .venv (when missing) and run every test: unit tests, all notebooks (FAST mode) and the
#               widgets in a real browser (needs Debian's chromium: apt-get install chromium)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.vitlab-installed
SHARED ?= ../shared/data
# The versions the measured results were taken with; pyproject.toml asks only for a minimum.
TORCH       ?= 2.14.1
TORCHVISION ?= 0.29.1

.PHONY: setup data lab test test-browser train series benchmarks clean-runs

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==$(TORCH) torchvision==$(TORCHVISION)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

# Link the local copies of the datasets (when present) into the data/ cache, torchvision's layout.
data:
	@for pair in mnist:MNIST fashion-mnist:FashionMNIST; do \
	  src=$(SHARED)/$${pair%%:*}; dst=data/$${pair##*:}/raw; \
	  if [ -d "$$src" ]; then mkdir -p $$dst; for f in $$src/*.gz; do ln -sf "$$(cd $$(dirname $$f) && pwd)/$$(basename $$f)" $$dst/; done; \
	  echo "linked $$src -> $$dst"; fi; \
	done

# JupyterLab on notebooks/ (`vitlab lab` adds --allow-root when run as root, as in a container);
# extra JupyterLab options go in LAB_ARGS, e.g. make lab LAB_ARGS="--no-browser --port 8899".
lab: setup data
	$(BIN)/vitlab lab $(LAB_ARGS)

# Unit tests and every notebook, top to bottom in a fresh kernel, in FAST mode (CI=1); then the browser tests.
# FAST runs start from an empty runs/fast/, as in CI, so none left by an older version is reused.
test: setup data clean-runs
	CI=1 TQDM_DISABLE=1 MPLBACKEND=Agg $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env \
	  --nbval-cell-timeout=1800 --ignore=tests/browser tests notebooks
	$(MAKE) test-browser

# The notebooks' widgets used in JupyterLab in a headless Chromium (Playwright, Debian's `chromium` on PATH).
# Without chromium they skip, saying so; CI sets VITLAB_REQUIRE_BROWSER=1, under which they fail instead.
# A failure leaves a screenshot in tests/browser/artifacts/.
test-browser: setup data
	CI=1 TQDM_DISABLE=1 $(BIN)/python -m pytest -q tests/browser

# The default recipe from the command line (writes runs/vit_tiny_mnist/).
train: setup data
	$(BIN)/vitlab train

# One full pass of the series: every notebook in order, in place, from an empty runs/ (earlier runs are moved aside to
# runs.before-series-<time>/); wall times go to docs/series.json. Running it again carries on where it stopped.
series: setup data
	$(BIN)/python tools/series.py $(SERIES_ARGS)

benchmarks: setup data
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/accuracy.py

clean-runs:
	rm -rf runs/fast
