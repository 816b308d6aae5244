# The two commands a newcomer needs: `make lab` and `make test` (`make e2e` drives JupyterLab in a browser).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LABKIT := $(VENV)/bin/labkit
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: lab test lint e2e bench engine images venv unit clean test-engine test-engines hub hub-down bench-hub

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,hub]'
	@touch $@

# JupyterHub's proxy for the classroom server's tests (npm; Node is on the machine).
NPM_HUB := .npm-hub
$(NPM_HUB)/.installed:
	npm install --prefix $(NPM_HUB) --no-audit --no-fund --loglevel=error configurable-http-proxy
	@touch $@

venv: $(VENV)/.installed

# A Docker engine that answers (installs and starts Debian's when run as root on Debian).
engine:
	@scripts/provision-docker

# Every image the lessons use, built offline when nothing can be pulled, and the local mirror.
images: venv engine
	$(LABKIT) images ensure
	$(LABKIT) registry up

# The VM of lesson 01 is optional on a learner's machine: without qemu its half is skipped.
# `LABKIT_LANG=zh_CN make lab` gives the Chinese lessons, labkit's messages and JupyterLab in Chinese.
lab: images
	-@$(LABKIT) vm prepare
	$(PY) -m labkit.lab


NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval-sanitize.cfg -p no:cacheprovider

# Lint, format check, types and the import layers of labkit/ (pyproject.toml configures all four).
lint: venv
	$(VENV)/bin/ruff check labkit tests conftest.py
	$(VENV)/bin/ruff format --check labkit tests conftest.py
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Lint first (seconds), then unit tests, integration tests against the real daemon, and nbval on every notebook;
# then every notebook once more, with no cleanup in between: lessons must be re-runnable.
# The Chinese lessons (notebooks/zh_CN) run the same way with labkit speaking Chinese (LABKIT_LANG=zh_CN),
# never in the English run. The browser test has its own target (make e2e).
test: lint images $(NPM_HUB)/.installed
	$(PY) -m pytest tests notebooks --ignore=tests/e2e --ignore=notebooks/zh_CN $(NBVAL)
	LABKIT_LANG=zh_CN $(PY) -m pytest notebooks/zh_CN $(NBVAL)
	@echo "== every notebook again, straight after the first run =="
	$(PY) -m pytest notebooks --ignore=notebooks/zh_CN $(NBVAL) -q
	LABKIT_LANG=zh_CN $(PY) -m pytest notebooks/zh_CN $(NBVAL) -q

# The engine matrix: every notebook on a newer engine run in place of the machine's (which is
# started again afterwards). ENGINE=sid is Debian unstable's Engine 28.x, ENGINE=trixie Debian 13's 26.1.
ENGINE ?= sid
test-engine: images
	scripts/test-engine $(ENGINE) $(NBVAL)

test-engines: images
	scripts/test-engine trixie $(NBVAL)
	scripts/test-engine sid $(NBVAL)

# A learner's session in JupyterLab, driven in Debian's Chromium by playwright: lesson 06's
# exercise panel and the live dashboard. Screenshots go to test-artifacts/.
e2e: images
	$(PY) -m pytest tests/e2e -p no:cacheprovider

# A classroom on this server (root): JupyterHub gives each learner of ROSTER (a CSV with a
# `username` column) a lab and a rootless Docker engine of their own. HUB_ARGS adds options
# (`--public --cert C --key K`, `--first-use`, `--memory 2G`); `make hub-down` stops it all.
ROSTER ?=
HUB_ARGS ?=
hub: images $(NPM_HUB)/.installed
	$(LABKIT) hub up $(if $(ROSTER),--roster $(ROSTER)) $(HUB_ARGS)

hub-down: venv
	$(LABKIT) hub down

unit: venv
	$(PY) -m pytest tests/unit -p no:cacheprovider

bench: images
	$(PY) -m labkit.bench

# A classroom hub's costs (root): N learners (LEARNERS, default 10) log in at once; login to ready,
# memory per idle learner, checks at once, and a projection to 30-200 learners. Figures also in
# test-artifacts/bench-hub.json. The hub's proxy comes from npm, as for `make hub`.
LEARNERS ?= 10
bench-hub: images $(NPM_HUB)/.installed
	$(PY) -m labkit.bench_hub --learners $(LEARNERS)

clean:
	-$(LABKIT) reset
	-$(LABKIT) registry down
