# The two commands of README.md. Both create .venv and install everything on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: figures test setup clean-figures lab browser

setup: $(STAMP)

# torch is pinned and installed first so that nothing pulls an unpinned (CUDA) build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Re-runs the notebooks, then writes the HTML site build/site/index.html (--no-site skips it).
figures: $(STAMP)
	$(PY) -m kernels_lib figures $(ARGS)

# One pytest worker per core (pytest-xdist), each test file on one worker so that its fixtures are built once.
test: $(STAMP) browser
	$(PY) -m pytest -n auto --dist loadfile $(ARGS)

# Debian's Chromium for the browser tests (tests/test_browser.py); installing needs root and apt.
# Without it those tests are skipped and say why; the rest of the suite runs as usual.
browser:
	@sh tests/install_chromium.sh || echo "make: Chromium is not installed: the browser tests will be skipped"

# JupyterLab on the notebooks, from the environment the set-up made (as root add ARGS=--allow-root).
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $(ARGS)
