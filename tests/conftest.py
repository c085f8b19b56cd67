import os
import sys
import tempfile
import warnings

os.environ.setdefault("SYMNTK_CACHE", tempfile.mkdtemp(prefix="symntk-test-cache-"))
sys.path.insert(0, os.path.dirname(__file__))
warnings.filterwarnings("ignore", message=".*(roundoff|maximum number of subdivisions|divergent|integration interval).*")
