# Entry points of the project. `make test` and `make demo` set up .venv first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint demo bench py310 clean

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

# Python 3.10 (JetPack 6): compile and import the ROS-free package (no torch for cp310 here: dev/py310_check.py)
py310:
	@bash dev/py310.sh

clean:
	rm -rf $(VENV) .venv310 build install log test-results demo_out
