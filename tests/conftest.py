import os
import sys
import tempfile
import warnings

import jax
import pytest

os.environ.setdefault("SYMNTK_CACHE", tempfile.mkdtemp(prefix="symntk-test-cache-"))
# XLA's persistent compilation cache, inside the run's own (fresh) cache directory: a program compiled
# once is loaded, not recompiled, by the other pytest workers, by the notebooks' subprocesses (they
# inherit the environment) and after ``jax.clear_caches()`` below. Only compiles of ≥ 1 s are stored.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.environ["SYMNTK_CACHE"], "xla"))
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
sys.path.insert(0, os.path.dirname(__file__))
warnings.filterwarnings("ignore", message=".*(roundoff|maximum number of subdivisions|divergent|integration interval).*")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Drop JAX's compiled executables after each test module: the whole suite in one process
    otherwise accumulates thousands of them, and XLA's CPU compiler crashed (segfault / abort in
    ``backend_compile_and_load``) in a late module once the aNBK Newton solver added its own."""
    yield
    jax.clear_caches()
