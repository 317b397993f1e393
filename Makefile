# One entry point for people and CI. `make demo` and `make test` set up what they need first.
PY := .venv/bin/python
FPY := .venv-features/bin/python
PYTEST_ARGS ?=

.PHONY: setup setup-horovod demo test test-all lint format bench bench-quick clean

setup:
	scripts/setup.sh all

# Horovod (TensorFlow + Gloo, CPU) built into .venv, for data-parallel training and its tests
# (tests/test_horovod.py skips without it). CI runs it; about 6 minutes on 2 cores.
setup-horovod: setup
	scripts/setup.sh horovod

demo: setup
	.venv/bin/mmrec run

# The default test run: everything not marked slow, in each environment.
test: setup
	$(PY) -m pytest -m "not slow" --ignore=tests/features $(PYTEST_ARGS)
	$(FPY) -m pytest -m "not slow" tests/features $(PYTEST_ARGS)

# Slow tests too.
test-all: setup
	$(PY) -m pytest --ignore=tests/features $(PYTEST_ARGS)
	$(FPY) -m pytest tests/features $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	PYTHONPATH=$(CURDIR) .venv/bin/lint-imports

format: setup
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

# Full-size benchmarks (25M ratings; long). `make bench-quick` checks them at small sizes.
bench: setup
	nice -n 10 $(PY) benchmarks/run_all.py

bench-quick: setup
	$(PY) benchmarks/run_all.py --quick

clean:
	rm -rf .pytest_cache .ruff_cache build *.egg-info
