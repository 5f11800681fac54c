"""Session set-up: the tests never write to the user's weights cache (image-feature cache entries included)."""
import os
import tempfile


def pytest_configure(config):
    os.environ["CLIP_CACHE_DIR"] = tempfile.mkdtemp(prefix="pytest-clip-cache-")
