# Two entry points on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LINTED := $(wildcard src tests benchmarks)

.PHONY: demo test lint typecheck unit bench clean browser litellm-venv lock

# requirements.lock pins every dependency (pip constraints), so a fresh machine installs
# exactly what main was tested with.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,postgres]'
	touch $(STAMP)

# Re-pin after changing dependencies in pyproject.toml.
lock: $(STAMP)
	(echo "# Pinned versions of every package 'make' installs (pip constraints). Refresh: make lock"; \
	 $(BIN)/python -m pip freeze --exclude-editable | grep -v '^gatewarden' | sort -f) > requirements.lock

demo: $(STAMP)
	$(BIN)/gatewarden demo

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy

# The console's browser test drives Debian's chromium (never a downloaded browser).
browser:
	bash tests/console/ensure_browser.sh

# The real LiteLLM proxy (pinned) lives in its own cached venv; the integration tests use it.
litellm-venv: $(STAMP)
	$(BIN)/python tests/litellm/ensure_venv.py

unit: $(STAMP) browser litellm-venv
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
