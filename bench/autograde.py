"""Seconds to autograde ProtoNet homework submissions with the hardened pipeline (what
``make grade`` runs: the sandbox check, submissions taken in as data, one process and one
bubblewrap-sandboxed kernel per submission, hidden tests and visible-test re-checks in the
grader, sanitised feedback, grades.csv).

Each size builds a temporary copy of the course, submits N copies of a correct submission
(the release filled with the reference answers, plus the reference weights) and times
``fsl_utils.grading.pipeline.grade``: wall seconds and CPU seconds of this process and all it
starts (nbgrader, sandboxes, kernels). CPU seconds come from a control group of their own when
this process may create one (root: cgroup v1 ``cpuacct`` or v2 ``cpu.stat``), which counts every
descendant; otherwise from ``getrusage`` of the reaped children, which misses processes that end
without their parent waiting for them (``cpu_source`` says which). On a shared machine the CPU
seconds are the stable figure;
``quiet_wall_estimate`` divides them by the cores in use. Target: <= 20 s per submission.
Every run records the load average before and after it.

Usage: ``python bench/autograde.py [--sizes 1 30] [--jobs 1 2] [--no-sandbox]``.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from _common import write_results
from fsl_utils.grading.notebook import fill_solutions, solution_sources
from fsl_utils.grading.pipeline import grade, release

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "protonet"


def _rusage_cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _cgroup_meter():
    """Move this process into a new control group and return a function giving its CPU seconds
    (every descendant counted, reaped or not), or None where no control group can be made."""
    name = f"fsl-bench-autograde-{os.getpid()}"
    for folder, usage in ((Path("/sys/fs/cgroup/cpuacct") / name, "cpuacct.usage"), (Path("/sys/fs/cgroup") / name, "cpu.stat")):
        try:
            folder.mkdir()
            (folder / "cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            continue
        atexit.register(_leave, folder)
        if usage == "cpuacct.usage":
            return lambda: int((folder / usage).read_text()) / 1e9
        return lambda: int(next(line.split()[1] for line in (folder / usage).read_text().splitlines() if line.startswith("usage_usec"))) / 1e6
    return None


def _leave(folder: Path) -> None:
    try:
        (folder.parent / "cgroup.procs").write_text(str(os.getpid()))
        folder.rmdir()
    except OSError:
        pass


_METER = None


def _cpu() -> tuple[float, str]:
    global _METER
    if _METER is None:
        _METER = _cgroup_meter() or False
    return (_METER(), "cgroup") if _METER else (_rusage_cpu(), "rusage of reaped children")


def measure(n: int, jobs: int, sandbox: bool) -> dict:
    """Grade ``n`` correct submissions in a fresh temporary course; time it."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fsl-bench-autograde-") as tmp:
        root = Path(tmp)
        shutil.copy(ROOT / "nbgrader_config.py", root)
        shutil.copytree(ROOT / "solutions" / ASSIGNMENT, root / "solutions" / ASSIGNMENT, ignore=shutil.ignore_patterns("__pycache__"))
        released = release(root, ASSIGNMENT) / "protonet.ipynb"
        notebook = json.dumps(fill_solutions(released, solution_sources(ROOT / "solutions" / ASSIGNMENT / "protonet.ipynb")))
        for i in range(n):
            folder = root / "grading" / "submitted" / f"student{i:03d}" / ASSIGNMENT
            folder.mkdir(parents=True)
            (folder / "protonet.ipynb").write_text(notebook, encoding="utf-8")
            shutil.copy(ROOT / "solutions" / ASSIGNMENT / "protonet.pt", folder / "protonet.pt")
        start, (cpu, _) = time.perf_counter(), _cpu()
        grade(root, ASSIGNMENT, sandbox=sandbox, jobs=jobs)
        (cpu_end, source), wall = _cpu(), time.perf_counter() - start
        cpu = cpu_end - cpu
        with open(root / "grading" / "grades.csv", newline="") as f:
            scores = [float(row["raw_score"]) for row in csv.DictReader(f)]
    cores = min(jobs, n, os.cpu_count() or 1)  # kernels that can run at once
    out = {
        "submissions": n, "jobs": jobs, "sandbox": sandbox, "load_average_before": round(load, 1), "load_average_after": round(os.getloadavg()[0], 1),
        "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "cpu_source": source,
        "wall_per_submission": round(wall / n, 1), "cpu_per_submission": round(cpu / n, 1),
        "quiet_wall_estimate_per_submission": round(cpu / n / cores, 1), "all_full_marks": scores == [20.0] * n,
    }
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 30], help="numbers of submissions to grade")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="submissions graded at the same time (one run per value)")
    parser.add_argument("--no-sandbox", action="store_true", help="grade without the sandbox (machines without Linux/root)")
    parser.add_argument("--name", default="autograde", help="results file stem")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    runs = [measure(n, jobs, not args.no_sandbox) for jobs in args.jobs for n in args.sizes]
    path = write_results(args.name, {
        "what": "autograding ProtoNet homework submissions end to end (make grade: sandbox check, intake, a bubblewrap-sandboxed kernel per submission, "
                "hidden tests in the grader, sanitised feedback, grades.csv), including one gradebook sync, generate_feedback and export per batch",
        "target_seconds_per_submission": 20,
        "load_average_at_start": round(load, 1),
        "runs": runs,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
