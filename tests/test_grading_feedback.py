"""``make feedback`` (fsl_utils.grading.pipeline.feedback) fails loudly when nbgrader leaves an
autograded submission without a feedback page, after exporting every grade (nbgrader itself is
faked here: the real one runs in tests/test_grading_pipeline.py and tests/test_term.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fsl_utils.grading import pipeline


def _course(tmp_path: Path, students: list[str]) -> Path:
    for student in students:
        (tmp_path / "grading" / "autograded" / student / "protonet").mkdir(parents=True)
    return tmp_path


def _fake_nbgrader(renders: set[str], calls: list[tuple[str, ...]]):
    def run(root: Path, *args: str, check: bool = True, env=None) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        if args[0] == "generate_feedback":
            for student in renders:
                page = root / "grading" / "feedback" / student / "protonet" / "protonet.html"
                page.parent.mkdir(parents=True, exist_ok=True)
                page.write_text("<html>feedback</html>")
            return subprocess.CompletedProcess(args, 0 if renders else 1, "", "")
        if args[0] == "export":
            Path(args[1].removeprefix("--to=")).write_text("student_id,raw_score\n")
        return subprocess.CompletedProcess(args, 0, "", "")
    return run


def test_every_page_written(tmp_path, monkeypatch):
    root, calls = _course(tmp_path, ["alice", "bob"]), []
    monkeypatch.setattr(pipeline, "nbgrader", _fake_nbgrader({"alice", "bob"}, calls))
    assert pipeline.feedback(root, "protonet") == root / "grading" / "grades.csv"
    assert [c[0] for c in calls] == ["generate_feedback", "export"]


def test_a_missing_page_is_an_error_after_the_export(tmp_path, monkeypatch, capsys):
    root, calls = _course(tmp_path, ["alice", "bob", "carol"]), []
    # an old page of bob's from an earlier run does not count as his feedback
    old = root / "grading" / "feedback" / "bob" / "protonet" / "protonet.html"
    old.parent.mkdir(parents=True)
    old.write_text("old")
    import os
    os.utime(old, (1_000_000_000, 1_000_000_000))
    monkeypatch.setattr(pipeline, "nbgrader", _fake_nbgrader({"alice"}, calls))
    with pytest.raises(pipeline.FeedbackMissing, match=r"2 of the autograded submissions of protonet: bob, carol"):
        pipeline.feedback(root, "protonet")
    assert (root / "grading" / "grades.csv").is_file(), "the grades are exported even when feedback is missing"
    assert pipeline.missing_feedback(root, "protonet") == ["carol"]  # bob's old page exists


def test_the_command_exits_non_zero(tmp_path, monkeypatch, capsys):
    root = _course(tmp_path, ["alice"])
    monkeypatch.setattr(pipeline, "nbgrader", _fake_nbgrader(set(), []))
    assert pipeline.main(["feedback", "protonet", "--root", str(root)]) == 3
    err = capsys.readouterr().err
    assert "FEEDBACK MISSING" in err and "alice" in err and "make feedback ASSIGNMENT=protonet" in err
