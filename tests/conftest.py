import os
import sys
import tempfile
import warnings


def _pin_xdist_worker():
    """Under pytest-xdist, worker i of n keeps every n-th CPU from the i-th.  Unpinned, each worker's
    XLA sizes its thread pool to the whole machine and they oversubscribe it: the depth-2 DMFT test
    took 313 s beside another worker against 65 s pinned to one core (2-core container)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker and hasattr(os, "sched_setaffinity"):
        cpus, i = sorted(os.sched_getaffinity(0)), int(worker.removeprefix("gw"))
        os.sched_setaffinity(0, cpus[i::count] or [cpus[i % len(cpus)]])


_pin_xdist_worker()  # before JAX starts its backend (and so its thread pools)
# on a GPU each worker would otherwise claim 75 % of its memory at start-up, and the second one fails
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
import jax  # noqa: E402
import pytest  # noqa: E402

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


def pytest_collection_modifyitems(items):
    """The notebooks first (minutes each, against seconds for most tests), so that the pytest-xdist
    workers share the rest evenly instead of one of them starting a notebook last."""
    items.sort(key=lambda item: item.path.name != "test_notebooks.py")
