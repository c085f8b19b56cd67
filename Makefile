PY ?= python3

.PHONY: demo test bench derivations

demo:
	$(PY) -m pip install -q -e .
	symntk derive

test:
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pytest -q

derivations:
	symntk derivations --out derivations

bench:
	$(PY) benchmarks/bench_dual.py
