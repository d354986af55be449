"""Hostile and broken submissions (tests/grading/adversarial.py) graded by the hardened
pipeline: each kernel in the sandbox (own process, namespaces, limits, user nobody), one
batch, then checks that every case got exactly its score, nothing outside the sandbox
changed, nothing reached the network, and no feedback shows hidden tests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import socket
import threading
from pathlib import Path

import pytest

from fsl_utils.grading import sandbox
from fsl_utils.grading.feedback import secret_lines, strip_hidden
from fsl_utils.grading.notebook import read_notebook
from fsl_utils.grading.pipeline import autograde_each, grade, release


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"grading_{name}", Path(__file__).parent / "grading" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cases = _load("cases")
adversarial = _load("adversarial")
ASSIGNMENT = "protonet"


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    if not sandbox.available():
        pytest.fail("the grading sandbox needs Linux and root (as in CI); this machine has neither")
    root = tmp_path_factory.mktemp("hostile")
    shutil.copy(cases.ROOT / "nbgrader_config.py", root)
    shutil.copytree(cases.ROOT / "solutions" / ASSIGNMENT, root / "solutions" / ASSIGNMENT, ignore=shutil.ignore_patterns("__pycache__"))
    released = release(root, ASSIGNMENT) / "protonet.ipynb"
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(1.0)
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                received.append(conn.recv(100))
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    env = {"FSL_TEST_PORT": str(server.getsockname()[1]), "FSL_TEST_COURSE": str(root)}
    answers = cases.answers()
    for kind in adversarial.CASES:
        adversarial.build(kind, released, answers, cases.WEIGHTS, root / "grading" / "submitted" / kind / ASSIGNMENT, env)
    (root / "grading" / "submitted" / "reference" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(cases.SOURCE, root / "grading" / "submitted" / "reference" / ASSIGNMENT)
    shutil.copy(cases.WEIGHTS, root / "grading" / "submitted" / "reference" / ASSIGNMENT)
    before = {"solutions": _digest(root / "solutions"), "submitted": _digest(root / "grading" / "submitted" / "reference")}
    import os

    os.environ["FSL_CELL_TIMEOUT"] = "60"  # the infinite loop is interrupted after a minute
    try:
        grade(root, ASSIGNMENT, sandbox=True)
    finally:
        os.environ.pop("FSL_CELL_TIMEOUT", None)
        stop.set()
        thread.join(5)
        server.close()
    return {"root": root, "received": received, "before": before}


def _scores(root: Path) -> dict[str, float]:
    import csv

    with open(root / "grading" / "grades.csv", newline="") as f:
        return {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(f)}


@pytest.mark.parametrize("kind", sorted(adversarial.CASES))
def test_each_case_gets_its_score(hostile, kind):
    expected, what = adversarial.CASES[kind]
    got = _scores(hostile["root"]).get(kind, 0.0)
    assert got == expected, f"{kind} ({what}): got {got}, expected {expected}"


def test_reference_in_the_same_batch_gets_full_marks(hostile):
    assert _scores(hostile["root"])["reference"] == 20.0


def test_nothing_outside_the_sandbox_changed(hostile):
    root = hostile["root"]
    assert _digest(root / "solutions") == hostile["before"]["solutions"], "solutions/ was modified"
    assert _digest(root / "grading" / "submitted" / "reference") == hostile["before"]["submitted"], "another student's folder was modified"
    assert not (root / "pwned.txt").exists() and not (root / "pickle-ran").exists()
    assert not (root / "grading" / "gradebook.db").read_bytes().endswith(b"pwned")
    assert (root / "nbgrader_config.py").read_text() == (cases.ROOT / "nbgrader_config.py").read_text()


def test_no_network_from_the_sandbox(hostile):
    assert hostile["received"] == [], "a submission reached a server on the host"


def test_ungradable_submissions_are_reported_and_the_batch_goes_on(hostile):
    problems = json.loads((hostile["root"] / "grading" / "not_graded.json").read_text())
    assert "invalid_json" in problems
    assert set(problems) <= {"invalid_json", "wrong_assignment"}


def test_feedback_has_no_hidden_tests(hostile):
    hidden = [line for c in read_notebook(cases.SOURCE)["cells"] for line in strip_hidden(c["source"])[1]]
    secrets = secret_lines(hidden + [(cases.ROOT / "solutions" / ASSIGNMENT / "hidden_tests.py").read_text()])
    pages = list((hostile["root"] / "grading" / "feedback").glob(f"*/{ASSIGNMENT}/*.html"))
    assert len(pages) >= len(adversarial.CASES) - 1
    for page in pages:
        html = page.read_text(errors="replace")
        leaked = [s for s in secrets if s in html]
        assert not leaked, f"{page}: {leaked[:2]}"


def test_feedback_names_the_reason(hostile):
    html = (hostile["root"] / "grading" / "feedback" / "os_exit" / ASSIGNMENT / "protonet.html").read_text()
    assert "kernel died" in html
    html = (hostile["root"] / "grading" / "feedback" / "patched_allclose" / ASSIGNMENT / "protonet.html").read_text()
    assert "torch.allclose" in html


def test_regrading_is_idempotent(hostile):
    root = hostile["root"]
    before = _scores(root)
    autograde_each(root, ASSIGNMENT, ["os_exit", "sys_exit"], sandbox=True)
    from fsl_utils.grading.pipeline import nbgrader

    nbgrader(root, "export", f"--to={root / 'grading' / 'grades2.csv'}")
    import csv

    with open(root / "grading" / "grades2.csv", newline="") as f:
        after = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(f)}
    assert after == before
