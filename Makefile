# Cachefleet: `make run` starts the service, `make test` runs the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps run test chaos lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages the tests and benchmarks use: Redis OSS (a second engine) and redis-benchmark;
# Chromium for the console tests (Playwright drives Debian's build: `playwright install` cannot download here).
system-deps:
	@if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null && [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server redis-tools chromium >/dev/null; \
	else echo "Install redis-server, redis-tools and chromium (e.g. sudo apt-get install redis-server redis-tools chromium)"; exit 1; fi

run: install
	$(BIN)/cachefleet up

test: install system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadfile

# The full fault-injection runs (RELIABILITY.md): a crash at every step of every workflow; the
# outcomes go to reliability-report/ as JSON. `make test` runs their short versions only.
chaos: install system-deps
	CACHEFLEET_CHAOS_REPORT=reliability-report $(BIN)/pytest tests/reliability -m chaos --durations=0

bench: install system-deps
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
