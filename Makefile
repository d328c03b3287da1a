# Thin entry points; the logic lives in the jhtutorial package.
#   make run    set up, start the local cluster if no other cluster is configured, run the workbook
#   make test   set up and run every test against a real API server
#   make test-fast   the tests that need no cluster and no kubeconfig (seconds)
#   make test-lowest every direct dependency at its declared floor, in .venv-lowest: the fast tier and a cluster subset
PYTHON ?= python3
VENV   ?= .venv
LOWEST ?= .venv-lowest
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps programs cluster cluster-down lab run test test-fast test-lowest screenshots bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# jsonschema's optional IRI format checker, rfc3987-syntax, builds its parsers at import: about 1.3 s
	# of every JupyterHub and JupyterLab start (and kernel's nbformat) on a small machine. No Jupyter schema
	# uses the iri formats, and jsonschema leaves them unchecked when the checker is missing.
	$(BIN)/pip uninstall --quiet --yes rfc3987-syntax
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

# uv's lowest-direct resolution installs each direct dependency (pyproject's list and the test
# extra) at the lowest version its requirement allows: the floors pyproject declares are tested.
$(LOWEST)/.installed: pyproject.toml $(STAMP)
	$(BIN)/uv venv --quiet --allow-existing --python $(PYTHON) $(LOWEST)
	$(BIN)/uv pip install --quiet --python $(LOWEST)/bin/python --resolution lowest-direct -e '.[test]'
	touch $@

# the cluster subset: requests and TLS (connect), server-side apply (steps), notebooks through
# papermill and the kernel, and a real JupyterLab with a terminal (lab)
LOWEST_CLUSTER_TESTS := tests/test_connect.py tests/test_steps_apply.py tests/test_lab.py \
	tests/test_notebooks.py::test_a_notebook_run_out_of_order_stops_in_its_first_cell_naming_the_missing_step

test-lowest: $(LOWEST)/.installed system-deps
	JHTUTORIAL_EXPECT_FLOORS=1 $(LOWEST)/bin/python -m pytest -m 'not cluster'
	@if [ -z "$$JHTUTORIAL_TEST_KUBECONFIG" ]; then $(BIN)/jhtutorial cluster up; fi
	$(LOWEST)/bin/python -m pytest $(LOWEST_CLUSTER_TESTS)

bench: setup
	@for b in bench/*; do [ -x "$$b" ] && $(BIN)/python "$$b"; done

clean:
	rm -rf $(VENV) $(LOWEST) output .pytest_cache
