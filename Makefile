# Everything runs inside .venv; torch==2.13.0 is installed first so pip takes the CPU build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: venv demo serve lab test bench clean docs-check

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)

venv: $(BIN)/activate
	$(BIN)/pip install --quiet -e '.[test]'

demo: venv  # runs/demo is the demo's own: each `make demo` trains it afresh
	rm -rf runs/demo
	$(BIN)/rnnlm train --out runs/demo
	$(BIN)/rnnlm generate runs/demo --prime "eight thousand" -n 40 --seed 1

serve: venv  # the demo model (make demo trains it) on http://127.0.0.1:8000/
	@test -f runs/demo/model.safetensors || $(MAKE) demo
	$(BIN)/rnnlm serve runs/demo

lab: venv  # JupyterLab on the notebooks (installs the notebook extra: JupyterLab, widgets, TensorBoard)
	$(BIN)/pip install --quiet -e '.[notebook]'
	$(BIN)/jupyter lab notebooks/

test: venv
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

docs-check: venv  # rerun the commands the docs show with their output (trains runs/demo if missing)
	$(BIN)/python tools/docs_check.py
