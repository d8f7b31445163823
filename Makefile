# Set-up and entry points. `make demo` and `make test` work on a fresh machine:
# they create .venv, install torch first (CPU build; override with TORCH_SPEC), then the package.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean chromium

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when the package metadata or the pinned versions change (the package itself is
# installed editable). constraints.txt holds the exact versions CI tests with.
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# DEMO_ARGS lets tests run the same target on the small recipe: make demo DEMO_ARGS=--quick=true
demo: $(STAMP)
	$(VENV)/bin/obliviate demo $(DEMO_ARGS)

# The browser test (tests/report/test_browser.py) renders the report in Debian's chromium: install it
# when missing (as root, or through sudo). Without apt or network the install fails, said here, and
# that test skips with the reason.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium || \
	    { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium; } || \
	    echo "make: could not install chromium; the browser test will skip"; }

test: $(STAMP) chromium
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
