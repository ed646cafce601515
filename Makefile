# Entry points of the project. `make test` and `make demo` set up .venv first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint demo bench clean

setup:
	@bash dev/setup.sh

test: setup
	@mkdir -p test-results
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

demo: setup
	$(PY) -m sa2va_i_ros.cli.demo

bench: setup
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) build install log test-results demo_out
