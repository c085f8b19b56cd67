PY ?= python3

.PHONY: demo test test-slow test-neural-tangents bench derivations

# requirements/constraints.txt pins the CPU build of torch the CI machine has on disk (an open
# range would pull a CUDA build of several GB); the tests of the [gpytorch] extra run in CI.

demo:
	$(PY) -m pip install -q -e .
	symntk run

test:
	$(PY) -m pip install -q -c requirements/constraints.txt -e ".[test,gpytorch]"
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist worksteal

test-slow:
	$(PY) -m pip install -q -c requirements/constraints.txt -e ".[test,gpytorch]"
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist worksteal -m slow

# neural-tangents pins an older JAX: its own virtual environment, .venv-nt.
test-neural-tangents:
	.ci/neural-tangents

derivations:
	symntk derivations --out derivations

bench:
	$(PY) benchmarks/bench_dual.py
	$(PY) benchmarks/bench_mlp.py
	$(PY) benchmarks/bench_ndk.py
	$(PY) benchmarks/bench_deep_linear.py
	$(PY) benchmarks/bench_antk.py
