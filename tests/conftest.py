"""Shared fixtures: the real datasets (never skipped: missing data is an error)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from fsl_utils.data import load_cifar10, load_omniglot  # noqa: E402


@pytest.fixture(scope="session")
def omniglot_background():
    return load_omniglot("background")


@pytest.fixture(scope="session")
def omniglot_evaluation():
    return load_omniglot("evaluation")


@pytest.fixture(scope="session")
def cifar_train():
    return load_cifar10(train=True)


@pytest.fixture
def run_bench(tmp_path):
    """Run ``bench/<script>`` with tiny arguments, results to a temporary folder; returns its JSON.

    For smoke tests only: the figures are measured by running the scripts, never asserted.
    """
    bench = Path(__file__).resolve().parents[1] / "bench"

    def run(script: str, *args: str, timeout: int = 600, results: str | None = None) -> dict:
        env = {**os.environ, "FSL_BENCH_RESULTS": str(tmp_path)}
        subprocess.run([sys.executable, str(bench / script), *args], check=True, env=env, cwd=tmp_path, timeout=timeout)
        return json.loads((tmp_path / (results or script.replace(".py", ".json"))).read_text())

    return run


@pytest.fixture(scope="session")
def graded_course(tmp_path_factory):
    """Every protonet grading test's submissions in one temporary copy of the course, graded once
    (tests/grading/course.py; shared by tests/test_grading_pipeline.py, test_assignment_protonet.py,
    test_grading_adversarial.py, test_grading_restore.py, test_term.py, test_formgrader.py and
    test_grading_browser.py)."""
    from grading import course

    return course.build_and_grade(tmp_path_factory.mktemp("course"))


@pytest.fixture(scope="session")
def graded_maml(tmp_path_factory):
    """The maml submissions (tests/grading/maml.py) in a temporary copy of the course, graded once
    in one sandboxed batch (tests/test_grading_pipeline.py)."""
    from grading import assignment, maml

    return assignment.graded_course(tmp_path_factory.mktemp("maml_course"), maml.ASSIGNMENT, maml.submissions)


@pytest.fixture(scope="session")
def graded_simclr(tmp_path_factory):
    """The simclr submissions (tests/grading/simclr.py) in a temporary copy of the course, graded
    once in one sandboxed batch (tests/test_grading_pipeline.py, test_assignment_simclr.py)."""
    from grading import assignment, simclr

    return assignment.graded_course(tmp_path_factory.mktemp("simclr_course"), simclr.ASSIGNMENT, simclr.submissions)
