import os
import sys
import tempfile
import warnings

import jax
import pytest

os.environ.setdefault("SYMNTK_CACHE", tempfile.mkdtemp(prefix="symntk-test-cache-"))
sys.path.insert(0, os.path.dirname(__file__))
warnings.filterwarnings("ignore", message=".*(roundoff|maximum number of subdivisions|divergent|integration interval).*")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Drop JAX's compiled executables after each test module: the whole suite in one process
    otherwise accumulates thousands of them, and XLA's CPU compiler crashed (segfault / abort in
    ``backend_compile_and_load``) in a late module once the aNBK Newton solver added its own."""
    yield
    jax.clear_caches()
