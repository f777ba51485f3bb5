# The two commands of README.md. Both create .venv and install everything on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: figures test setup clean-figures

setup: $(STAMP)

# torch is pinned and installed first so that nothing pulls an unpinned (CUDA) build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

figures: $(STAMP)
	$(PY) -m kernels_lib figures $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)
