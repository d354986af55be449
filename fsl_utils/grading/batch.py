"""Autograde many submissions, each in its own process, without paying nbgrader's start-up
for each: ``python -m fsl_utils.grading.batch SPEC.json`` (run by :mod:`.autograde`).

This server imports nbgrader, the course's preprocessors and torch once (no computation,
no threads), then forks one child per submission, which runs ``nbgrader autograde
ASSIGNMENT --student=ID --force`` in-process and starts the student's (sandboxed)
kernel. Each child has its own session, log file and wall-clock limit; a child that
fails or hangs is killed with its kernel and reported, and the batch goes on — also past
errors that stop a plain nbgrader batch (e.g. ``SchemaTooOldError``). ``jobs`` children
run at a time.

SPEC: ``{"root", "assignment", "timeout", "jobs", "students": [{"id", "args": [...],
"env": {...}, "marker", "log"}], "times"}``; the answer (stdout, one JSON line): ``{student:
problem}`` for every submission that could not be graded. ``times`` (optional): a file that
receives ``{student: [start, end]}`` (wall-clock seconds since the epoch) of each child.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# Imported once, computing nothing: every forked child starts with these modules loaded.
import nbgrader.converters.autograde  # noqa: F401
from nbgrader.apps.nbgraderapp import NbGraderApp

from . import execute, feedback, restore, sanitize  # noqa: F401
from .checks import hidden, remote  # noqa: F401
from .sandbox.kernelspec import limits, lower_priority


def marked_pids(marker: str) -> list[int]:
    """Pids of the processes whose command line contains ``marker`` (a submission's kernel and its sandbox)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue  # ended meanwhile, or not ours to read
    return pids


def kill_marked(marker: str) -> None:
    """SIGKILL every process whose command line contains ``marker`` (a submission's kernel)."""
    for pid in marked_pids(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


def _child(root: str, assignment: str, job: dict[str, Any]) -> None:
    """In the forked child: autograde one student with nbgrader's own application."""
    code = 1
    try:
        os.setsid()
        lower_priority(limits()["FSL_SANDBOX_NICE"])  # this session's autogroup (the kernel's is set in the sandbox)
        fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.update(job["env"])
        os.chdir(root)
        try:
            NbGraderApp.launch_instance(argv=["autograde", assignment, f"--student={job['id']}", "--force", *job["args"]])
            code = 0
        except SystemExit as err:
            code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    except BaseException:  # noqa: BLE001 (report anything, never return into the server's loop)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _problem(log: str, code: int | None) -> str:
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    errors = [line for line in lines if "ERROR" in line or "Error" in line]
    return (errors[-1] if errors else f"nbgrader exit {code}")[-300:]


def run(spec: dict[str, Any]) -> dict[str, str]:
    """Grade every student of ``spec``; return ``{student: problem}`` for the failures."""
    pending = list(spec["students"])
    running: dict[int, tuple[dict[str, Any], float]] = {}
    problems: dict[str, str] = {}
    times: dict[str, list[float]] = {}
    jobs, timeout = max(1, int(spec.get("jobs", 1))), float(spec["timeout"])
    while pending or running:
        while pending and len(running) < jobs:
            job = pending.pop(0)
            pid = os.fork()
            if pid == 0:
                _child(spec["root"], spec["assignment"], job)
            running[pid] = (job, time.monotonic())
            times[job["id"]] = [time.time()]
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            for pid, (job, start) in list(running.items()):
                if time.monotonic() - start > timeout:
                    _stop(pid, job["marker"])
                    problems[job["id"]] = f"grading took longer than {timeout:.0f} s and was stopped"
                    os.waitpid(pid, 0)
                    del running[pid]
                    times[job["id"]].append(time.time())
            time.sleep(0.1)
            continue
        job, _ = running.pop(pid)
        times[job["id"]].append(time.time())
        kill_marked(job["marker"])
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and job["id"] not in problems:
            problems[job["id"]] = _problem(job["log"], code)
    if spec.get("times"):
        Path(spec["times"]).write_text(json.dumps(times))
    return problems


def _stop(pid: int, marker: str) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    kill_marked(marker)


def main(argv: list[str] | None = None) -> int:
    """``python -m fsl_utils.grading.batch SPEC.json``: grade the batch, print ``{student: problem}`` as one JSON line."""
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    print(json.dumps(run(spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
