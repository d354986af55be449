"""``make student``: the public student repository carries no solutions, hidden tests or reference
weights, and what it does carry works on its own (a filled-in homework passes the students' check
with the repository's own package and its data/ folder, FSL_DATA_DIR unset)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fsl_utils.course import colab, student
from fsl_utils.data import data_root
from fsl_utils.grading.notebook import fill_solutions, solution_sources

ROOT = Path(__file__).resolve().parents[1]
REPO = "https://github.com/someone/fsl-course-2027"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student") / "repo"
    student.build(out, ROOT, REPO)
    return out


def _files(tree: Path) -> set[str]:
    return {str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file()}


def test_what_students_get_and_what_they_do_not(tree):
    files = _files(tree)
    for needed in ("README.md", "Makefile", "pyproject.toml", "environment.yml", "docs/students.md", "fsl_utils/course/check.py",
                   "fsl_utils/data/paths.py", "fsl_utils/course/colab.py", "assignments/protonet/manifest.json"):
        assert needed in files, needed
    assert {f for f in files if f.startswith("lectures/")} == {str(p.relative_to(ROOT)) for p in (ROOT / "lectures").glob("*.ipynb")}
    assert {f for f in files if f.startswith("assignments/")} == {f"assignments/{a}/{n}" for a in ("protonet", "maml", "simclr")
                                                                  for n in (f"{a}.ipynb", "manifest.json")}
    for never in ("solutions", "tests", "bench", "fsl_utils/grading", ".ci", "grading", "data", "build"):
        assert not any(f == never or f.startswith(never + "/") for f in files), never
    for never in ("nbgrader_config.py", "docs/instructors.md", "docs/assignments.md", "fsl_utils/course/student.py", "conftest.py"):
        assert never not in files, never
    assert not [f for f in files if f.endswith((".pt", ".pth")) or "hidden_tests" in f]


def test_no_file_or_line_of_solutions_reaches_it(tree):
    assert student.leaks(tree, ROOT) == []
    secret = student.solution_lines(ROOT)
    hidden = {line.strip() for p in (ROOT / "solutions").glob("*/hidden_tests.py") for line in p.read_text().splitlines()}
    assert len(secret & hidden) > 200, "the hidden tests' lines are among what is checked"
    lines = {line.strip() for p in tree.rglob("*") if p.is_file() for line in p.read_text(errors="replace").splitlines()}
    assert not lines & secret


def test_the_leak_check_finds_copies_lines_and_weights(tree, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tree, bad)
    shutil.copy(ROOT / "solutions" / "protonet" / "protonet.ipynb", bad / "assignments" / "protonet" / "copy.ipynb")
    line = next(l for l in (ROOT / "solutions" / "protonet" / "hidden_tests.py").read_text().splitlines() if len(l.strip()) > 40)
    (bad / "fsl_utils" / "extra.py").write_text(line + "\n")
    (bad / "weights.pt").write_bytes(b"\0")
    found = "\n".join(student.leaks(bad, ROOT))
    assert "copy.ipynb: a copy of solutions/protonet/protonet.ipynb" in found
    assert "fsl_utils/extra.py: 1 line(s)" in found
    assert "weights.pt: a file of solutions/ or reference weights" in found


def test_a_build_that_would_leak_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(student, "INCLUDE", (*student.INCLUDE, "solutions/*/*"))
    monkeypatch.setattr(student, "EXCLUDE", ())
    with pytest.raises(RuntimeError, match="would leak instructor material"):
        student.build(tmp_path / "out", ROOT)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="holds the course itself"):
        student.build(ROOT.parent, ROOT)


def test_readme_makefile_and_colab_speak_to_students_of_the_new_repository(tree):
    readme = (tree / "README.md").read_text()
    assert "student-repository" not in readme and "make grade" not in readme and "solutions/" not in readme
    assert f"git clone {REPO}.git" in readme and colab.REPOSITORY not in readme
    for nb in [*(tree / "lectures").glob("*.ipynb"), *(tree / "assignments").glob("*/*.ipynb")]:
        rel = str(nb.relative_to(tree))
        assert colab.colab_url(rel, REPO) in readme, rel
        cell = "".join(colab.colab_cell(json.loads(nb.read_text()))["source"])
        assert f"git+{REPO}@main" in cell, rel
    makefile = (tree / "Makefile").read_text()
    for target in ("lab:", "data:", "course:", "install:"):
        assert target in makefile
    for target in ("grade:", "release:", "test:", "student:"):
        assert f"\n{target}" not in makefile


def test_a_filled_in_homework_passes_the_check_inside_the_student_repository(tree, tmp_path):
    shared = data_root()
    work = tmp_path / "repo"
    shutil.copytree(tree, work)
    (work / "data").symlink_to(shared.resolve(), target_is_directory=True)
    folder = work / "assignments" / "protonet"
    source = ROOT / "solutions" / "protonet" / "protonet.ipynb"
    answer = "$-\\|z - c_k\\|^2 = 2 c_k^T z - \\|c_k\\|^2 - \\|z\\|^2$: w_k = 2 c_k, b_k = -\\|c_k\\|^2."
    nb = fill_solutions(folder / "protonet.ipynb", {**solution_sources(source), "linear_classifier_answer": answer})
    (folder / "protonet.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    shutil.copy(source.parent / "protonet.pt", folder / "protonet.pt")
    env = {k: v for k, v in os.environ.items() if k != "FSL_DATA_DIR"}
    env["PYTHONPATH"] = str(work)  # the student repository's own package, not the instructor's
    where = subprocess.run([sys.executable, "-c", "import fsl_utils.data as d; print(d.__file__); print(d.data_root())"],
                           cwd=folder, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert where == [str(work / "fsl_utils" / "data" / "__init__.py"), str(work / "data")]
    out = subprocess.run([sys.executable, "-m", "fsl_utils.course.check", "assignments/protonet"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].startswith("Visible tests pass (5 of 20 autograded points)")
