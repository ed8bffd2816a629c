# The two set-up commands are `make demo` and `make test`; each one installs what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PATH := $(CURDIR)/$(TOOLS)/bin:$(PATH)

.PHONY: demo test explore bench lint tools chromium liburing clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "fleetsim needs $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Clients we did not write, used by interop tests: mosquitto_pub/sub (Debian), Chromium (Debian;
# the HTML report test drives it with Playwright, never `playwright install`) and the AWS CLI
# (its own virtualenv, because it pins a botocore that aioboto3 does not accept).
$(TOOLS)/.installed:
	@command -v mosquitto_pub >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q mosquitto-clients; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q awscli
	touch $@

# Checked on every `make tools`/`make test` (not behind the stamp), so existing clones get it too.
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

# liburing's headers (Debian's liburing-dev) build the io_uring half of `python -m bench fd-table`.
liburing:
	@test -e /usr/include/liburing.h || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q liburing-dev; }

tools: $(TOOLS)/.installed chromium liburing

demo: $(VENV)/.installed
	$(BIN)/fleetsim run scenarios/workshop.yaml --json .fleetsim/demo-summary.json \
		--html .fleetsim/demo-report.html

test: $(VENV)/.installed $(TOOLS)/.installed chromium liburing
	$(BIN)/pytest -q -n 3 --dist loadscope --hypothesis-profile=ci

# The property-based tests with fresh random examples (make test draws the same ones each run).
explore: $(VENV)/.installed
	$(BIN)/pytest -q -n 3 --hypothesis-profile=explore $$(grep -rl '@given' tests)

# The bench extra: Locust, the peer `python -m bench peer` is measured against (bench only).
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

bench: $(VENV)/.bench-installed liburing
	$(BIN)/python -m bench

# ruff; mypy on the whole package; the import contracts of pyproject.toml (layers, no cycles).
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy fleetsim
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(TOOLS) .fleetsim
