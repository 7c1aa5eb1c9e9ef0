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

demo: $(STAMP)
	$(BIN)/ccs-fno generate outputs/demo.zarr --samples 8 --geology channel --workers 2 --overwrite
	$(BIN)/python -m data_gen.plots outputs/demo.zarr outputs/plumes.png
	@echo "Plume figure: outputs/plumes.png"

bench: $(STAMP)
	$(BIN)/python bench/bench_simulator.py

clean:
	rm -rf outputs .pytest_cache
