# make run   set up a virtualenv (.venv) and run the main job
# make test  set up the same virtualenv and run the tests (all but those marked slow)
# make test-all  the same with the slow tests
# PY=python  use the active environment instead (the GPU workstation's conda env)

VENV   ?= .venv
PY     ?= $(VENV)/bin/python
# The CPU build of PyTorch: on Linux a plain `torch` from PyPI is a CUDA build that pulls several GB
# of CUDA wheels, so torch is installed with PyTorch's CPU wheel index as an extra index (its
# 2.13.0+cpu wins over PyPI's 2.13.0). TORCH_INDEX= (empty) leaves pip's own indexes alone: a
# mirror or local wheels, or PyPI's CUDA build where that is wanted.
TORCH  ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
OUT    ?= runs/main
# auto: the paper preset (N = 5 000) on a CPU machine, full (N = 60 000) where the GPU backend is there
PRESET ?= auto

.PHONY: setup run test test-all clean

ifeq ($(PY),$(VENV)/bin/python)
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--extra-index-url "$(TORCH_INDEX)")
	$(PY) -m pip install -q -e ".[dev]"
	touch $@
else
setup:
	$(PY) -m pip install -q --no-deps -e .
endif

run: setup
	$(PY) -m repscope run --preset $(PRESET) --out $(OUT)

test: setup
	$(PY) -m pytest -m "not slow"

test-all: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
