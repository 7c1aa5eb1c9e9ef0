# Two commands work on a fresh machine: `make demo` (the main job) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The pin takes the local CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench chromium clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[dev,notebook]'
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the real-browser test (Playwright drives it; no browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) chromium lint
	$(BIN)/pytest -q

# The main job: the notebooks headless (papermill), small defaults (~10 min on 2 cores).
PAPERMILL := $(BIN)/papermill --cwd notebooks --no-progress-bar
DEMO_SAMPLES ?= 96
DEMO_RESOLUTION ?= 32
DEMO_EPOCHS ?= 20

demo: $(STAMP)
	mkdir -p outputs
	$(PAPERMILL) notebooks/01_generate_data.ipynb outputs/01_generate_data.ipynb \
	  -p n_samples $(DEMO_SAMPLES) -p resolution $(DEMO_RESOLUTION) -p overwrite True
	$(PAPERMILL) notebooks/02_train_surrogate.ipynb outputs/02_train_surrogate.ipynb \
	  -p epochs $(DEMO_EPOCHS) -p device cpu
	$(PAPERMILL) notebooks/03_explore_scenarios.ipynb outputs/03_explore_scenarios.ipynb -p simulate True
	$(PAPERMILL) notebooks/04_invert_permeability.ipynb outputs/04_invert_permeability.ipynb
	$(PAPERMILL) notebooks/05_uncertainty.ipynb outputs/05_uncertainty.ipynb
	$(BIN)/python -m data_gen.plots outputs/data/channel.zarr outputs/figures/plumes.png
	$(BIN)/python -c "from ccs_fno.widgets.static import main; raise SystemExit(main(['outputs/figures']))"
	@echo
	@echo "Executed notebooks in outputs/ (figures shown as pictures: readable without re-running),"
	@echo "figures in outputs/figures/ (self-contained HTML + PNG, work offline). To explore interactively:"
	@echo "  $(BIN)/jupyter lab outputs/03_explore_scenarios.ipynb   (or notebooks/ to start over)"

bench: $(STAMP)
	$(BIN)/python bench/bench_simulator.py

clean:
	rm -rf outputs .pytest_cache
