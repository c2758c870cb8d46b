# The two commands a newcomer needs: `make demo` and `make test`.
# Both set up everything first (scripts/bootstrap.sh is idempotent).
SHELL := /bin/bash
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/.venv/bin:$(PATH)
PYTEST_WORKERS ?= 2

.PHONY: setup demo test lint typecheck unit bench clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	@python -m testkit.demo

lint: setup
	ruff check gate testkit tests bench
	ruff format --check gate testkit tests bench

typecheck: setup
	mypy

test: setup lint typecheck
	pytest -n $(PYTEST_WORKERS) tests

unit: setup
	pytest -q tests/unit

bench: setup
	python bench/run.py

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache build *.egg-info
