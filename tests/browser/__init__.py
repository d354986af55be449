"""Helpers for tests that drive JupyterLab in a real (headless) Chromium via Playwright."""
