# Every target sets itself up on a fresh machine: a .venv with the project installed, and,
# when run as root on Debian, the system packages the tests need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
SYSTEM_DEPS := $(VENV)/.system-deps

.PHONY: test demo lint bench setup clean

setup: $(INSTALLED) $(SYSTEM_DEPS)

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

$(SYSTEM_DEPS): scripts/install-system-deps.sh | $(INSTALLED)
	bash scripts/install-system-deps.sh
	@touch $@

test: setup
	$(PY) -m pytest -q -n 4 --dist loadscope

demo: setup
	$(VENV)/bin/streamhouse-bot demo

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check bot handlers lab tests bench
	$(PY) -m mypy bot handlers lab

bench: setup
	$(PY) -m bench.ack_latency
	$(PY) -m bench.diagnose
	$(PY) -m bench.approvals
	$(PY) -m bench.alert_storm
	$(PY) -m bench.digests

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
