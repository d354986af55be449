"""Hostile and broken submissions (tests/grading/adversarial.py) graded by the hardened
pipeline — each kernel under bubblewrap (own process, user/PID/mount/network namespaces,
limits per submission, allow-listed environment), submissions taken in as data, hidden tests
and visible-test re-checks in the grader — in the batch of the ``graded_course`` fixture.
Every case must get exactly its score; nothing outside the sandbox may change; nothing may
reach the network; no feedback may show hidden tests or the grader's environment; regrading
gives the same grades.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from pathlib import Path

import pytest

from fsl_utils.grading.notebook import read_notebook
from fsl_utils.grading.autograde import autograde_each
from fsl_utils.grading.command import nbgrader
from fsl_utils.grading.sandbox.bwrap import HOME

from grading import adversarial, cases, course
from grading import assignment as shared
ASSIGNMENT = "protonet"


def _scores(csv_path: Path) -> dict[str, float]:
    with open(csv_path, newline="") as f:
        return {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(f)}


def _outputs(root: Path, student: str) -> str:
    nb = read_notebook(root / "grading" / "autograded" / student / ASSIGNMENT / "protonet.ipynb")
    return json.dumps([c.get("outputs", []) for c in nb["cells"]])


def test_at_least_twenty_categories():
    assert len(adversarial.CASES) >= 20


def test_instructors_guide_lists_every_case_with_its_score():
    """docs/instructors.md's table of hostile submissions is this suite's, score for score."""
    text = (cases.ROOT / "docs" / "instructors.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([0-9.]+) \|", text, flags=re.MULTILINE))
    assert {k: float(v) for k, v in rows.items()} == {k: score for k, (score, _) in adversarial.CASES.items()}, (
        "update the table in docs/instructors.md (Isolation) from tests/grading/adversarial.py")


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
        # (read_secrets also globs ../../*/*/* from its folder, which finds its own files: not secrets)
        found = re.findall(r"FOUND (\S+)", outputs)
        if kind == "read_secrets":
            found = [f for f in found if not os.path.normpath(os.path.join(f"{HOME}/submission", f)).startswith(f"{HOME}/")]
        assert not found, f"{kind}: {found}"
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
    assert set(problems) <= {"invalid_json", "wrong_assignment", "symlink_notebook"}, problems
    assert "symbolic link" in problems["symlink_notebook"] and "protonet.ipynb" in problems["symlink_notebook"]


#: student -> {entry: a phrase of the reason it was refused}
REFUSED = {
    "symlink_hidden_tests": {"leak.txt": "symbolic link"},
    "symlink_other_student": {"protonet.pt": "symbolic link"},
    "symlink_notebook": {"protonet.ipynb": "symbolic link"},
    "special_files": {"shadow.txt": "symbolic link", "notes.txt": "hard link", "pipe": "named pipe", "zero": ""},
    "oversized_weights": {"protonet.pt": "larger than"},
}


def test_links_and_special_files_are_refused_before_nbgrader_copies_anything(graded_course):
    """Each refused entry is listed with its reason (grading/refused_files.json and the student's
    feedback), never reaches the autograded copy, and nothing it pointed to was read."""
    root = graded_course["root"]
    refused = json.loads((root / "grading" / "refused_files.json").read_text())
    assert set(refused) == set(REFUSED), refused
    for student, entries in REFUSED.items():
        assert set(refused[student]) == set(entries), (student, refused[student])
        for name, phrase in entries.items():
            assert phrase in refused[student][name], (student, name, refused[student][name])
            assert not (root / "grading" / "autograded" / student / ASSIGNMENT / name).exists() or name == "protonet.ipynb"
        feedback = root / "grading" / "feedback" / student / ASSIGNMENT / "protonet.html"
        if student != "symlink_notebook":  # (not graded at all: no feedback)
            html = feedback.read_text()
            assert "Not graded:" in html and all(name in html for name in entries), student
    for kind in ("symlink_hidden_tests", "special_files"):
        outputs = _outputs(root, kind)
        assert "FOUND" not in outputs and "denied" in outputs, f"{kind}: {outputs[:500]}"


def test_the_grader_environment_never_reaches_kernel_or_feedback(graded_course):
    root = graded_course["root"]
    secret = adversarial.SECRET_VALUE
    for path in [*(root / "grading" / "autograded").rglob("*.ipynb"), *(root / "grading" / "feedback").rglob("*.html")]:
        assert secret not in path.read_text(errors="replace"), f"the grader's secret reached {path}"
    outputs = _outputs(root, "secret_env")
    env = json.loads(outputs)  # the printed environment: only allow-listed names
    text = "".join("".join(o.get("text", "")) for cell in env for o in cell if o.get("output_type") == "stream")
    names = set(re.findall(r"'([A-Z_][A-Z0-9_]*)': ", text.split("ENV", 1)[1].split("\n", 1)[0]))
    from fsl_utils.grading.sandbox.kernelspec import ENV_ALLOWED

    fixed = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TMPDIR", "PYTHONDONTWRITEBYTECODE", "MPLCONFIGDIR", "FSL_RESULTS_DIR",
             "FSL_DATA_DIR", "FSL_CACHE_DIR", "GLIBC_TUNABLES",
             "PWD", "MPLBACKEND", "CLICOLOR", "CLICOLOR_FORCE", "FORCE_COLOR", "PAGER", "GIT_PAGER", "TERM",
             "PYDEVD_USE_FRAME_EVAL"}  # (PWD: bwrap; the rest: set inside the kernel by ipykernel, IPython and debugpy)
    assert names and names <= fixed | set(ENV_ALLOWED), f"the kernel saw {sorted(names - fixed - set(ENV_ALLOWED))}"
    assert "FSL_TEST_SECRET" not in text and "FSL_COURSE_ROOT" not in text


def test_forged_checks_do_not_pass(graded_course):
    """Borrowed code is absent (a stub that names itself), a forged tampering check cannot pass
    the visible test the grader runs again, and no test cell keeps a result to read as partial credit."""
    root = graded_course["root"]
    assert "write it yourself" in (root / "grading" / "feedback" / "patched_probe" / ASSIGNMENT / "protonet.html").read_text()
    assert shared.failed_cells(root, ASSIGNMENT, "patched_probe") == {"test_prototypes_visible", "test_prototypes_hidden", "test_loss_visible"}
    assert shared.failed_cells(root, ASSIGNMENT, "forged_tampering_check") == {"test_prototypes_visible", "test_prototypes_hidden"}
    nb = read_notebook(root / "grading" / "autograded" / "forged_partial_credit" / ASSIGNMENT / "protonet.ipynb")
    grade_cells = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade") and c["cell_type"] == "code"]
    assert grade_cells and not any(o["output_type"] == "execute_result" for c in grade_cells for o in c["outputs"])


def test_warnings_cost_nothing_and_stay_visible(graded_course):
    root = graded_course["root"]
    html = (root / "grading" / "feedback" / "warnings" / ASSIGNMENT / "protonet.html").read_text()
    for warning in ("ConvergenceWarning", "DeprecationWarning", "RuntimeWarning", "To copy construct from a tensor", "requires_grad=True to a scalar"):
        assert warning in html, f"the warning {warning!r} is not shown in the feedback"
    assert "it costs no points" in html
    nb = read_notebook(root / "grading" / "autograded" / "warnings" / ASSIGNMENT / "protonet.ipynb")
    tests = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade") and c["cell_type"] == "code"]
    texts = ["".join(o.get("text", "")) for c in tests for o in c["outputs"]]
    assert sum("Visible tests passed." in t for t in texts) == 5 and not [o for c in tests for o in c["outputs"] if o.get("name") == "stderr"]


def test_a_fork_bomb_keeps_to_its_own_submission(graded_course):
    """The fork bomb forks up to its own process limit and holds it for 30 s; every submission graded
    next to it meanwhile (JOBS=2) gets exactly its score, full marks among them, and so does the
    bomb's own notebook (its score is checked with the others)."""
    root = graded_course["root"]
    times = json.loads((root / "grading" / "grading_times.json").read_text())
    start, end = times["resource_fork_bomb"]
    neighbours = [s for s, (a, b) in times.items() if s != "resource_fork_bomb" and a < min(end, start + 35) and b > start]
    assert neighbours, "no submission was graded while the fork bomb ran"
    assert any(graded_course["expected"].get(s) == 20.0 for s in neighbours), neighbours
    scores = _scores(root / "grading" / "grades.csv")
    assert all(scores[s] == graded_course["expected"][s] for s in neighbours), {s: scores[s] for s in neighbours}
    assert "forked" in _outputs(root, "resource_fork_bomb")


def test_submissions_are_inert_in_the_autograded_copy_and_feedback(graded_course):
    """Static half of the viewing test (tests/test_grading_browser.py opens the pages in Chromium)."""
    from fsl_utils.grading.sanitize import is_active

    root = graded_course["root"]
    nb = read_notebook(root / "grading" / "autograded" / "script_in_submission" / ASSIGNMENT / "protonet.ipynb")
    mimes = {m for c in nb["cells"] for o in c.get("outputs", []) for m in o.get("data", {})}
    assert mimes <= {"text/plain", "text/html", "image/png", "image/jpeg", "image/gif", "text/latex"}, mimes
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            html = out.get("data", {}).get("text/html")
            assert html is None or not is_active("".join(html)), html
    html = (root / "grading" / "feedback" / "script_in_submission" / ASSIGNMENT / "protonet.html").read_text()
    port = graded_course["view_listener"].port
    assert f"127.0.0.1:{port}" in html, "the payloads are shown (as text)"
    assert adversarial.active_payloads(html, port) == []


def test_feedback_names_the_reason(graded_course):
    feedback = graded_course["root"] / "grading" / "feedback"
    assert "kernel died" in (feedback / "os_exit" / ASSIGNMENT / "protonet.html").read_text()
    assert "torch.allclose" in (feedback / "patched_allclose" / ASSIGNMENT / "protonet.html").read_text()
    assert "time limit" in (feedback / "hang_in_hidden_test" / ASSIGNMENT / "protonet.html").read_text()


def test_regrading_is_idempotent(graded_course, monkeypatch):
    root = graded_course["root"]
    for key, value in graded_course["env"].items():
        monkeypatch.setenv(key, value)
    before = _scores(root / "grading" / "grades.csv")
    refused = (root / "grading" / "refused_files.json").read_text()
    problems = autograde_each(root, ASSIGNMENT, ["os_exit", "invalid_json"], sandbox=True)
    assert (root / "grading" / "refused_files.json").read_text() == refused, "regrading two students keeps the others' refused files"
    assert set(problems) == {"invalid_json"}
    nbgrader(root, "export", f"--to={root / 'grading' / 'grades2.csv'}")
    assert _scores(root / "grading" / "grades2.csv") == before
