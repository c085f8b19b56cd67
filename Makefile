PY ?= python3

.PHONY: demo test test-slow bench derivations

demo:
	$(PY) -m pip install -q -e .
	symntk run

test:
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pytest -q

test-slow:
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pytest -q -m slow

derivations:
	symntk derivations --out derivations

bench:
	$(PY) benchmarks/bench_dual.py
	$(PY) benchmarks/bench_mlp.py
	$(PY) benchmarks/bench_ndk.py
	$(PY) benchmarks/bench_deep_linear.py
