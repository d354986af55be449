"""One temporary copy of the course holding every submission of the grading tests, graded
once per test session (the ``graded_course`` fixture in tests/conftest.py).

Typical submissions (``cases.py``: the reference, the untouched release, untrained weights,
wrong implementations) and hostile ones (``adversarial.py``) go into the same batch, so one
``grade`` run — the code behind ``make grade``, sandboxed as on the grading machine —
serves tests/test_grading_pipeline.py and tests/test_grading_adversarial.py. The real
``grading/`` folder and gradebook are never touched.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import resource
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import torch

from fsl_utils.grading import sandbox
from fsl_utils.grading.notebook import fill_solutions, load_reference
from fsl_utils.grading.pipeline import grade, release

ASSIGNMENT = "protonet"
#: Per-cell time limit while the test batch is graded (the infinite loops wait for it; generous,
#: because on a busy machine the setup and weights cells alone can take a minute).
CELL_TIMEOUT = 120
#: Submissions graded at the same time (one sandboxed kernel per core of a 2-core CI machine).
JOBS = 2


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"grading_{name}", Path(__file__).parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


cases = _load("cases")
adversarial = _load("adversarial")


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def submit(root: Path, student: str, notebook: dict | Path, weights: Path | None) -> Path:
    """Put ``student``'s notebook (a path or JSON) and weights in ``grading/submitted``."""
    folder = root / "grading" / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    if isinstance(notebook, Path):
        shutil.copy(notebook, folder / "protonet.ipynb")
    else:
        (folder / "protonet.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    if weights is not None:
        shutil.copy(weights, folder / "protonet.pt")
    return folder


class _Listener:
    """A TCP server on the host that records whatever a submission sends it."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.5)
        self.port = self.server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
                self.received.append(conn.recv(100))
                conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()


def build_and_grade(root: Path) -> dict[str, Any]:
    """Copy the course into ``root``, generate the release, submit every case, grade them.

    Returns:
        ``root``, ``released`` (the generated release notebook), ``received`` (bytes that
        reached the host's server), ``before`` (digests of folders submissions must not
        change), ``expected`` (student -> autograded score), ``seconds`` and
        ``cpu_seconds`` of grading (this process and its children).
    """
    if not sandbox.available():
        raise RuntimeError("the grading tests need the sandbox: Linux and root (as in CI and on the grading machine)")
    shutil.copy(cases.ROOT / "nbgrader_config.py", root)
    shutil.copytree(cases.ROOT / "solutions" / ASSIGNMENT, root / "solutions" / ASSIGNMENT, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    released = release(root, ASSIGNMENT) / "protonet.ipynb"

    expected: dict[str, float] = {}
    untrained = root / "untrained.pt"
    torch.manual_seed(0)
    torch.save(load_reference(cases.SOURCE).ProtoNetEncoder().state_dict(), untrained)
    submit(root, "reference", cases.SOURCE, cases.WEIGHTS)
    expected["reference"] = float(cases.AUTOGRADED_POINTS)
    submit(root, "untouched_release", released, None)
    expected["untouched_release"] = 0.0
    submit(root, "untrained_weights", fill_solutions(released, cases.answers()), untrained)
    expected["untrained_weights"] = cases.expected_score(("test_weights_5w5s", "test_weights_5w1s"))
    for name, (_, _, failing) in cases.MUTANTS.items():
        submit(root, name, fill_solutions(released, cases.answers(name)), cases.WEIGHTS)
        expected[name] = cases.expected_score(failing)

    listener = _Listener()
    env = {"FSL_TEST_PORT": str(listener.port), "FSL_TEST_COURSE": str(root), "FSL_TEST_REPO": str(cases.ROOT), "FSL_TEST_GRADER_PID": str(os.getpid())}
    answers = cases.answers()
    for kind, (score, _) in adversarial.CASES.items():
        adversarial.build(kind, released, answers, cases.WEIGHTS, root / "grading" / "submitted" / kind / ASSIGNMENT, env)
        expected[kind] = score
    before = {"solutions": digest(root / "solutions"), "reference": digest(root / "grading" / "submitted" / "reference"),
              "repo_solutions": digest(cases.ROOT / "solutions" / ASSIGNMENT)}

    saved = os.environ.get("FSL_CELL_TIMEOUT")
    os.environ["FSL_CELL_TIMEOUT"] = str(CELL_TIMEOUT)
    start, cpu = time.perf_counter(), _cpu()
    try:
        grade(root, ASSIGNMENT, sandbox=True, jobs=JOBS)
    finally:
        seconds, cpu_seconds = time.perf_counter() - start, _cpu() - cpu
        if saved is None:
            os.environ.pop("FSL_CELL_TIMEOUT", None)
        else:
            os.environ["FSL_CELL_TIMEOUT"] = saved
        listener.close()
    print(f"graded {len(expected)} submissions in {seconds:.0f} s ({cpu_seconds:.0f} CPU-s)")
    (root / "timing.json").write_text(json.dumps({"submissions": len(expected), "jobs": JOBS, "seconds": seconds, "cpu_seconds": cpu_seconds,
                                                  "load_average": os.getloadavg()}))
    return {"root": root, "released": released, "received": listener.received, "before": before, "expected": expected,
            "seconds": seconds, "cpu_seconds": cpu_seconds}


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
