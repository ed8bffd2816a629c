# The two set-up commands are `make demo` and `make test`; each one installs what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PATH := $(CURDIR)/$(TOOLS)/bin:$(PATH)

.PHONY: demo test bench lint tools clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "fleetsim needs $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Clients we did not write, used by interop tests: mosquitto_pub/sub (Debian) and the AWS CLI
# (its own virtualenv, because it pins a botocore that aioboto3 does not accept).
$(TOOLS)/.installed:
	@command -v mosquitto_pub >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q mosquitto-clients; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q awscli
	touch $@

tools: $(TOOLS)/.installed

demo: $(VENV)/.installed
	$(BIN)/fleetsim run scenarios/api-provisioning.yaml --json .fleetsim/demo-summary.json

test: $(VENV)/.installed $(TOOLS)/.installed
	$(BIN)/pytest -q -n 3 --dist loadgroup

bench: $(VENV)/.installed
	$(BIN)/python -m bench

# ruff; mypy on the whole package; the import contracts of pyproject.toml (layers, no cycles).
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy fleetsim
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(TOOLS) .fleetsim
