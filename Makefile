# The README's commands: `make demo` (install, then run the demo) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install demo test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/gdpr-daemon demo

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m 'not slow'

lint: install
	$(BIN)/pip install --quiet ruff mypy==2.4.1
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/drain.py
	$(BIN)/python bench/events.py

clean:
	rm -rf $(VENV) .tmp .pytest_cache *.egg-info
