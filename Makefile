# Two entry points for a fresh machine: `make demo` and `make test`.
# TORCH_SPEC picks the torch build: the default is the CPU wheel; GPU users run e.g. `make demo TORCH_SPEC=torch`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test,audio,plots,train]"
	touch $(STAMP)

install: $(STAMP)

# The demo writes demo-output/ (replacing an earlier run's).
demo: $(STAMP)
	rm -rf demo-output
	$(BIN)/diffprune demo --out demo-output

# Chromium renders the HTML report in one test; installed when possible (root + apt), else that test skips.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium not available: the HTML rendering test will be skipped"

# Lint and format check first (config in pyproject.toml), then the tests in two pytest-xdist workers (the tiny
# models leave a single process mostly waiting on Python, so two share the 2 cores well).
test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest tests -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) demo-output
