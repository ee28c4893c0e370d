# The two set-up commands: `make repro` (environment + the whole pipeline) and
# `make test` (environment + the test suite). Both create .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: repro test bench lint screenshot clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $(TEST_STAMP)

repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: $(TEST_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.engine
	$(BIN)/python -m benchmarks.cell_cache
	$(BIN)/python -m benchmarks.stages

# the report's first screen as a reader sees it (headless Chromium; apt-get install chromium)
screenshot: reports/report.html
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,900 \
	  --screenshot=$(CURDIR)/reports/first-screen.png file://$(CURDIR)/reports/report.html

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests benchmarks

clean:
	rm -rf $(VENV)
