# The fixtures live in tests/conftest.py (open_lab, page, browser, stack);
# this module re-exports the screenshot helper for browser tests.
from ..conftest import screenshot  # noqa: F401
