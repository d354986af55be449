"""tests/needs.py: a missing tool skips a test locally and fails it under CI."""

import pytest

from needs import require


@pytest.mark.parametrize("value", ["true", "1", "yes", " True "])
def test_a_missing_tool_fails_the_test_under_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="The browser test must run in CI but Chromium is not installed"):
        require("browser test", "Chromium is not installed")


@pytest.mark.parametrize("value", [None, "", "0", "false", "no"])
def test_a_missing_tool_skips_the_test_elsewhere(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="JupyterHub test skipped: jupyterhub is not installed"):
        require("JupyterHub test", "jupyterhub is not installed")


def test_nothing_missing_is_nothing_to_do(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require("grading test", None) is None
