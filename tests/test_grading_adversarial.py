"""Hostile and broken submissions (tests/grading/adversarial.py) graded by the hardened
pipeline — each kernel sandboxed (own process and PID/mount/network namespaces, limits,
user nobody), hidden tests in the grader — in the batch of the ``graded_course`` fixture.
Every case must get exactly its score; nothing outside the sandbox may change; nothing may
reach the network; no feedback may show hidden tests; regrading gives the same grades.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import tempfile
from pathlib import Path

import pytest

from fsl_utils.grading.notebook import read_notebook
from fsl_utils.grading.pipeline import autograde_each, nbgrader

_dir = Path(__file__).parent / "grading"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"grading_{name}", _dir / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cases, adversarial, course = _load("cases"), _load("adversarial"), _load("course")
ASSIGNMENT = "protonet"


def _scores(csv_path: Path) -> dict[str, float]:
    with open(csv_path, newline="") as f:
        return {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(f)}


def _outputs(root: Path, student: str) -> str:
    nb = read_notebook(root / "grading" / "autograded" / student / ASSIGNMENT / "protonet.ipynb")
    return json.dumps([c.get("outputs", []) for c in nb["cells"]])


def test_at_least_twenty_categories():
    assert len(adversarial.CASES) >= 20


@pytest.mark.parametrize("kind", sorted(adversarial.CASES))
def test_each_case_gets_its_score(graded_course, kind):
    expected, what = adversarial.CASES[kind]
    got = _scores(graded_course["root"] / "grading" / "grades.csv").get(kind)
    assert got == expected, f"{kind} ({what}): got {got}, expected {expected}"


def test_nothing_outside_the_sandbox_changed(graded_course):
    root, before = graded_course["root"], graded_course["before"]
    assert course.digest(root / "solutions") == before["solutions"], "solutions/ was modified"
    assert course.digest(cases.ROOT / "solutions" / ASSIGNMENT) == before["repo_solutions"], "the repository's solutions/ was modified"
    assert course.digest(root / "grading" / "submitted" / "reference") == before["reference"], "another student's folder was modified"
    assert not (root / "pwned.txt").exists() and not (root / "pickle-ran").exists()
    assert b"pwned" not in (root / "grading" / "gradebook.db").read_bytes()
    assert (root / "nbgrader_config.py").read_text() == (cases.ROOT / "nbgrader_config.py").read_text()


def test_secrets_are_not_even_readable(graded_course):
    """The kernel sees no source notebook, hidden tests, gradebook, .git, other submission
    or process outside its own namespace (its outputs report only denials)."""
    root = graded_course["root"]
    for kind in ("read_secrets", "signal_grader", "write_elsewhere"):
        outputs = _outputs(root, kind)
        assert "FOUND" not in outputs, f"{kind}: {outputs[outputs.find('FOUND'):][:300]}"
    # The search walks the whole file system. The sandbox hides the graded course, the repository of
    # fsl_utils, temporary folders and other grading runs; another copy of the course elsewhere on the
    # machine (e.g. a second checkout) is the instructor's to protect (docs/instructors.md), so found
    # folders fail the test only inside what the sandbox promises to hide.
    outputs = _outputs(root, "search_filesystem")
    assert "SEARCHED the file system" in outputs, "the file-system search did not run to its end"
    protected = [Path(root).resolve(), cases.ROOT, Path(tempfile.gettempdir()).resolve(), Path("/run")]
    found = [Path(d) for d in re.findall(r"FOUND (/[^\s\[\"]*) \[", outputs)]
    leaked = [d for d in found if any(d == p or p in d.parents for p in protected)]
    assert not leaked, f"search_filesystem found protected files: {leaked}"
    assert "denied" in _outputs(root, "write_elsewhere")


def test_no_network_from_the_sandbox(graded_course):
    assert graded_course["received"] == [], "a submission reached a server on the host"
    assert "no network" in _outputs(graded_course["root"], "network")


def test_ungradable_submissions_are_reported_and_the_batch_goes_on(graded_course):
    problems = json.loads((graded_course["root"] / "grading" / "not_graded.json").read_text())
    assert "invalid_json" in problems
    assert set(problems) <= {"invalid_json", "wrong_assignment"}, problems


def test_feedback_names_the_reason(graded_course):
    feedback = graded_course["root"] / "grading" / "feedback"
    assert "kernel died" in (feedback / "os_exit" / ASSIGNMENT / "protonet.html").read_text()
    assert "torch.allclose" in (feedback / "patched_allclose" / ASSIGNMENT / "protonet.html").read_text()
    assert "time limit" in (feedback / "hang_in_hidden_test" / ASSIGNMENT / "protonet.html").read_text()


def test_regrading_is_idempotent(graded_course):
    root = graded_course["root"]
    before = _scores(root / "grading" / "grades.csv")
    problems = autograde_each(root, ASSIGNMENT, ["os_exit", "invalid_json"], sandbox=True)
    assert set(problems) == {"invalid_json"}
    nbgrader(root, "export", f"--to={root / 'grading' / 'grades2.csv'}")
    assert _scores(root / "grading" / "grades2.csv") == before
