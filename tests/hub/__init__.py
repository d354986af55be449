"""A real JupyterHub for tests/test_hub.py (see harness.py)."""
