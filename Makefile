# mangrove_nb: every target creates .venv/ in the repository and installs what it needs, idempotently.
# The two set-up commands for a newcomer are `make demo` and `make test` (see README.md).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Each install stamp records which extras were installed from which pyproject.toml: editing pyproject.toml,
# or asking for other extras, re-runs pip; otherwise nothing is downloaded twice.
DEMO_EXTRAS := emulator,notebook,reports
TEST_EXTRAS := emulator,notebook,reports,pdf,lab,test
LAB_EXTRAS  := emulator,notebook,reports,lab
# Debian's Chromium for the browser tests, installed when missing and possible (root with apt-get, as in CI);
# otherwise those tests are skipped with a reason. Playwright drives it; it never downloads a browser.
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test lab lint emulator bench clean help

help:
	@echo "make demo   - on the local emulator: generate Q1 2025 where missing, render its report, print the path"
	@echo "make test   - run the whole test suite (ruff and mypy included)"
	@echo "make lint   - ruff and mypy only"
	@echo "make bench  - run the benchmarks in benchmarks/"
	@echo "make emulator - serve the emulator on 127.0.0.1:8765 until Ctrl-C"
	@echo "make lab    - JupyterLab on notebooks/, connected to a fresh local emulator"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mangrove_nb needs Python >= 3.11; run make PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(subst +,$(comma),$*)]"
	@touch $@

comma := ,
DEMO_STAMP := $(VENV)/.installed-$(subst $(comma),+,$(DEMO_EXTRAS))
TEST_STAMP := $(VENV)/.installed-$(subst $(comma),+,$(TEST_EXTRAS))
LAB_STAMP  := $(VENV)/.installed-$(subst $(comma),+,$(LAB_EXTRAS))

demo: $(DEMO_STAMP)
	$(BIN)/mangrove-nb demo

test: $(TEST_STAMP) $(CHROMIUM)
	$(BIN)/ruff check mangrove_nb tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium for the browser tests..."; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium fonts-dejavu-core >/dev/null) || echo "Could not install chromium: browser tests will be skipped."; \
	else \
		echo "chromium is not installed (sudo apt-get install chromium): browser tests will be skipped."; \
	fi

# JupyterLab on notebooks/ with MANGROVE_API_URL and MANGROVE_API_TOKEN set to a local emulator's.
lab: $(LAB_STAMP)
	$(BIN)/python -m mangrove_nb.lab

lint: $(TEST_STAMP)
	$(BIN)/ruff check mangrove_nb tests benchmarks
	$(BIN)/mypy

emulator: $(DEMO_STAMP)
	$(BIN)/mangrove-nb emulator

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/import_time.py
	$(BIN)/python benchmarks/client_pagination.py
	$(BIN)/python benchmarks/task_wait.py
	$(BIN)/python benchmarks/emulator_throughput.py
	$(BIN)/python benchmarks/report_vs_papermill.py
	$(BIN)/python benchmarks/report_range.py
	$(BIN)/python benchmarks/report_formats.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
