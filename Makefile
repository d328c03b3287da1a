# Thin entry points; the logic lives in the jhtutorial package.
#   make run    set up, start the local cluster if no other cluster is configured, run the workbook
#   make test   set up and run every test against a real API server
#   make test-fast   the tests that need no cluster and no kubeconfig (seconds)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps programs cluster cluster-down lab run test test-fast screenshots bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The programs that back the local cluster's pods: Debian's nginx (as root, with apt-get)
# and configurable-http-proxy from npm into the cache. `make test` needs them; `make run`
# goes on without them (those pods then stay purely simulated, and the notebooks say so).
system-deps: setup
	$(BIN)/python -m jhtutorial.localcluster.backing.install --strict

programs: setup
	-$(BIN)/python -m jhtutorial.localcluster.backing.install

setup: $(STAMP)

cluster: setup programs
	$(BIN)/jhtutorial cluster up

cluster-down: setup
	$(BIN)/jhtutorial cluster down

lab: setup
	$(BIN)/jhtutorial lab

run: setup programs
	$(BIN)/jhtutorial run

# The cluster is started here, not only inside pytest, so that a first-time
# build shows its progress; JHTUTORIAL_TEST_KUBECONFIG selects another cluster.
test: setup system-deps
	@if [ -z "$$JHTUTORIAL_TEST_KUBECONFIG" ]; then $(BIN)/jhtutorial cluster up; fi
	$(BIN)/python -m pytest

# the README's pictures (docs/img/): the browser test run in JupyterLab and Chromium, saving them on the way
screenshots: setup system-deps
	@if [ -z "$$JHTUTORIAL_TEST_KUBECONFIG" ]; then $(BIN)/jhtutorial cluster up; fi
	JHTUTORIAL_SCREENSHOTS=docs/img $(BIN)/python -m pytest tests/test_browser.py -m browser

test-fast: setup
	$(BIN)/python -m pytest -m 'not cluster'

bench: setup
	@for b in bench/*; do [ -x "$$b" ] && $(BIN)/python "$$b"; done

clean:
	rm -rf $(VENV) output .pytest_cache
