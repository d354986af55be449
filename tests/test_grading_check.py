"""``python -m fsl_utils.course.check``: every problem a student can leave in a submission is
reported with a fix, and a good submission passes (including a real top-to-bottom run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fsl_utils.course.check import check
from fsl_utils.grading.notebook import fill_solutions, grade_id

from grading import cases


def _folder(tmp_path: Path, nb: dict | None = None, weights: bool = True) -> Path:
    folder = tmp_path / "protonet"
    folder.mkdir()
    shutil.copy(cases.RELEASE.parent / "manifest.json", folder)
    nb = nb if nb is not None else _filled()
    (folder / "protonet.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    if weights:
        shutil.copy(cases.WEIGHTS, folder / "protonet.pt")
    return folder


def _filled() -> dict:
    answer = "$-\\|z - c_k\\|^2 = 2 c_k^T z - \\|c_k\\|^2 - \\|z\\|^2$; the last term is shared by all classes, so w_k = 2 c_k, b_k = -|c_k|^2."
    return fill_solutions(cases.RELEASE, {**cases.answers(), "linear_classifier_answer": answer})


def test_good_submission_passes_without_running(tmp_path):
    report = check(_folder(tmp_path), run=False)
    assert report.ok, report.problems
    assert report.verdict().startswith("No problems found; the visible tests were not run (--no-run) (5 of 20 autograded points)")


def test_points_by_who_checks_them_for_every_assignment():
    """The release manifests split the points as docs/assignments.md does (visible tests, hidden tests, by hand)."""
    from fsl_utils.course.check import Points

    root = cases.RELEASE.parents[2]
    found = {a: Points.of(json.loads((root / "assignments" / a / "manifest.json").read_text())) for a in ("protonet", "maml", "simclr")}
    assert found == {"protonet": Points(5, 15, 5), "maml": Points(3, 17, 5), "simclr": Points(4, 16, 5)}


def test_untouched_release_lists_every_empty_answer_and_the_weights(tmp_path):
    folder = _folder(tmp_path, json.loads(cases.RELEASE.read_text()), weights=False)
    problems = "\n".join(check(folder, run=False).problems)
    for gid in ("compute_prototypes", "squared_euclidean_distances", "prototype_logits", "ProtoNetEncoder", "episode_loss_and_accuracy", "linear_classifier_answer"):
        assert f"'{gid}' is still empty" in problems
    assert "protonet.pt is missing" in problems


def _mutate(kind: str) -> dict:
    nb = _filled()
    if kind == "deleted":
        nb["cells"] = [c for c in nb["cells"] if grade_id(c) != "test_loss_hidden"]
    elif kind == "duplicate":
        i = next(i for i, c in enumerate(nb["cells"]) if grade_id(c) == "test_loss_visible")
        nb["cells"].insert(i, json.loads(json.dumps(nb["cells"][i])))
    elif kind == "markdown":
        for c in nb["cells"]:
            if grade_id(c) == "test_distances_visible":
                c["cell_type"] = "markdown"
                c.pop("outputs"), c.pop("execution_count")
    elif kind == "edited":
        for c in nb["cells"]:
            if grade_id(c) == "test_logits_visible":
                c["source"] = "pass"
    elif kind == "skip_false":
        for c in nb["cells"]:
            if c["source"].strip().endswith("skip_training = True") and not grade_id(c):
                c["source"] = c["source"].replace("skip_training = True", "skip_training = False")
    elif kind == "not_implemented":
        for c in nb["cells"]:
            if grade_id(c) == "prototype_logits":
                c["source"] += "\nraise NotImplementedError()\n"
    return nb


@pytest.mark.parametrize(
    "kind, message",
    [
        ("deleted", "'test_loss_hidden' is missing"),
        ("duplicate", "appears 2 times"),
        ("markdown", "changed to a markdown cell"),
        ("edited", "'test_logits_visible' was edited"),
        ("skip_false", "skip_training = False"),
        ("not_implemented", "NotImplementedError"),
    ],
)
def test_cell_problems_are_reported(tmp_path, kind, message):
    report = check(_folder(tmp_path, _mutate(kind)), run=False)
    assert not report.ok and any(message in p for p in report.problems), report.problems


def test_file_problems_are_reported(tmp_path):
    folder = _folder(tmp_path)
    (folder / "protonet.pt").write_bytes(os.urandom(3 * 2**20))
    assert any("MB" in p for p in check(folder, run=False).problems)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    torch.save({"w": Evil()}, folder / "protonet.pt")
    assert any("weights_only" in p for p in check(folder, run=False).problems)
    (folder / "protonet.ipynb").write_text("{not json")
    assert any("not valid JSON" in p for p in check(folder, run=False).problems)
    (folder / "protonet.ipynb").write_bytes(b'{"cells": [], "x": "caf\xe9"}')
    assert any("not UTF-8" in p for p in check(folder, run=False).problems)


def test_command_runs_the_notebook_top_to_bottom(tmp_path):
    folder = _folder(tmp_path)
    out = subprocess.run([sys.executable, "-m", "fsl_utils.course.check", str(folder)], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "runs top to bottom" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == ("Visible tests pass (5 of 20 autograded points); 15 points are checked by "
                                                   "hidden tests after you submit, 5 points of written answers are graded by hand.")
    nb = _mutate("not_implemented")
    bad = _folder(tmp_path / "bad", nb) if (tmp_path / "bad").mkdir() is None else None
    out = subprocess.run([sys.executable, "-m", "fsl_utils.course.check", str(bad), "--no-run"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "PROBLEM" in out.stdout
