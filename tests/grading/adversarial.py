"""Hostile and broken submissions for the hardened grader, each with the score it must get.

Every case starts from the reference answers and weights (20 autograded points) and
changes one thing. ``build(kind, release, weights, folder)`` writes the submission.
Policy recorded here (and in docs/instructors.md):
* harmless attempts (reading secrets, writing elsewhere, network, sys.exit, loops, memory
  bombs) cost nothing beyond the cell they break; the rest of the notebook is graded;
* replacing comparison/reporting functions is tampering: every test after it fails (0);
* a dead kernel keeps the points of the cells that ran before it, later tests get 0;
* a notebook that is not JSON, or of another assignment, gets 0 with the reason logged.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from fsl_utils.grading.notebook import fill_solutions, grade_id

SUM_NOT_MEAN = ("return one_hot.T @ embeddings / one_hot.sum(dim=0)[:, None]", "return one_hot.T @ embeddings")
BEFORE_ENCODER = 1 + 3 + 1 + 2 + 1 + 1  # prototypes, distances, logits
BEFORE_LOSS = BEFORE_ENCODER + 1 + 2

#: kind -> (expected autograded score, what it checks)
CASES: dict[str, tuple[float, str]] = {
    "edited_tests": (16.0, "test cells replaced by `pass` (answer wrong): the originals are restored and fail"),
    "deleted_tests": (16.0, "test cells deleted (answer wrong): re-added and fail"),
    "duplicated_grade_id": (20.0, "a test cell copied (duplicate grade_id): batch grading still works"),
    "test_to_markdown": (20.0, "hidden test cell turned into markdown: restored as code and run"),
    "points_edited": (20.0, "test cell metadata claims 100 points: restored to its real points"),
    "metadata_schema_edited": (20.0, "nbgrader schema_version edited (stops a plain nbgrader batch): repaired, graded normally"),
    "tests_moved_to_end": (20.0, "cells reordered (tests after all answers)"),
    "patched_allclose": (0.0, "torch.allclose replaced to always pass: tampering fails every test"),
    "patched_numpy_testing": (0.0, "numpy.testing.assert_allclose replaced: tampering fails every test"),
    "no_tracebacks": (0.0, "IPython showtraceback disabled: tampering fails every test"),
    "sys_exit": (20.0, "sys.exit() in an answer cell: the kernel survives, grading goes on"),
    "os_exit": (float(BEFORE_ENCODER), "os._exit() in the encoder cell: earlier points kept, later tests 0"),
    "segfault": (float(BEFORE_LOSS), "kernel crash (segfault) in the loss cell: earlier points kept"),
    "infinite_loop": (20.0, "an infinite loop after the definitions: interrupted at the cell timeout"),
    "memory_bomb": (20.0, "allocating 50 GiB: MemoryError under the sandbox's memory limit"),
    "network": (20.0, "connecting to a server on the grading machine: no network in the sandbox"),
    "read_secrets": (20.0, "reading the source notebook, gradebook and hidden tests (course, repository, .git) and printing them"),
    "search_filesystem": (20.0, "searching the whole file system for hidden tests, sources and gradebooks: none is visible"),
    "signal_grader": (20.0, "killing the grader (parent process) and init: not permitted"),
    "hang_in_hidden_test": (float(20 - 3), "an answer that hangs only on the hidden test's input: that test times out, the rest is graded"),
    "write_elsewhere": (20.0, "writing into solutions/, the gradebook and other students' folders"),
    "oversized_weights": (16.0, "a 3 MB protonet.pt: weights tests fail"),
    "pickled_code_weights": (16.0, "protonet.pt with pickled code: refused by weights_only=True, never run"),
    "invalid_json": (0.0, "the notebook is not JSON: 0, reason logged, batch continues"),
    "wrong_assignment": (0.0, "a notebook of another assignment under this name"),
    "non_utf8": (20.0, "a Latin-1 byte in a comment: decoded and graded normally"),
    "output_flood": (20.0, "printing 200,000 lines: output limited, grading goes on"),
}


def _answers_with(answers: dict[str, str], cell: str, extra: str) -> dict[str, str]:
    return {**answers, cell: answers[cell] + "\n" + extra + "\n"}


def build(kind: str, release: Path, answers: dict[str, str], weights: Path, folder: Path, env: dict[str, str]) -> None:
    """Write submission ``kind`` into ``folder`` (notebook + weights)."""
    folder.mkdir(parents=True)
    shutil.copy(weights, folder / "protonet.pt")
    sum_wrong = {**answers, "compute_prototypes": answers["compute_prototypes"].replace(*SUM_NOT_MEAN)}
    nb = None
    if kind == "edited_tests":
        nb = fill_solutions(release, sum_wrong)
        for cell in nb["cells"]:
            if grade_id(cell) in ("test_prototypes_visible", "test_prototypes_hidden"):
                cell["source"] = "pass"
    elif kind == "deleted_tests":
        nb = fill_solutions(release, sum_wrong)
        nb["cells"] = [c for c in nb["cells"] if grade_id(c) not in ("test_prototypes_visible", "test_prototypes_hidden")]
    elif kind == "duplicated_grade_id":
        nb = fill_solutions(release, answers)
        i = next(i for i, c in enumerate(nb["cells"]) if grade_id(c) == "test_prototypes_visible")
        nb["cells"].insert(i + 1, json.loads(json.dumps(nb["cells"][i])))
    elif kind == "test_to_markdown":
        nb = fill_solutions(release, answers)
        for cell in nb["cells"]:
            if grade_id(cell) == "test_loss_hidden":
                cell["cell_type"] = "markdown"
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
    elif kind == "points_edited":
        nb = fill_solutions(release, answers)
        for cell in nb["cells"]:
            if grade_id(cell) == "test_prototypes_visible":
                cell["metadata"]["nbgrader"]["points"] = 100
    elif kind == "metadata_schema_edited":
        nb = fill_solutions(release, answers)
        for cell in nb["cells"]:
            if grade_id(cell) in ("test_prototypes_visible", "compute_prototypes"):
                cell["metadata"]["nbgrader"]["schema_version"] = 1
    elif kind == "tests_moved_to_end":
        nb = fill_solutions(release, answers)
        tests = [c for c in nb["cells"] if (grade_id(c) or "").startswith("test_") and "weights" not in grade_id(c)]
        rest = [c for c in nb["cells"] if c not in tests]
        nb["cells"] = rest + tests
    elif kind == "patched_allclose":
        nb = fill_solutions(release, _answers_with(sum_wrong, "compute_prototypes", "torch.allclose = lambda *a, **k: True"))
    elif kind == "patched_numpy_testing":
        nb = fill_solutions(release, _answers_with(sum_wrong, "compute_prototypes", "np.testing.assert_allclose = lambda *a, **k: None"))
    elif kind == "no_tracebacks":
        nb = fill_solutions(release, _answers_with(sum_wrong, "compute_prototypes", "get_ipython().showtraceback = lambda *a, **k: None"))
    elif kind == "sys_exit":
        nb = fill_solutions(release, _answers_with(answers, "episode_loss_and_accuracy", "import sys\nsys.exit(0)"))
    elif kind == "os_exit":
        nb = fill_solutions(release, _answers_with(answers, "ProtoNetEncoder", "os._exit(1)"))
    elif kind == "segfault":
        nb = fill_solutions(release, _answers_with(answers, "episode_loss_and_accuracy", "import ctypes\nctypes.string_at(0)"))
    elif kind == "infinite_loop":
        nb = fill_solutions(release, _answers_with(answers, "episode_loss_and_accuracy", "while True:\n    pass"))
    elif kind == "memory_bomb":
        nb = fill_solutions(release, _answers_with(answers, "ProtoNetEncoder", "bomb = bytearray(50 * 2**30)"))
    elif kind == "network":
        port = env["FSL_TEST_PORT"]
        code = f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'leak')\nexcept OSError as err:\n    print('no network:', err)"
        nb = fill_solutions(release, _answers_with(answers, "compute_prototypes", code))
    elif kind == "read_secrets":
        course, repo = env["FSL_TEST_COURSE"], env["FSL_TEST_REPO"]
        code = (
            "import glob\n"
            f"for name in glob.glob('{course}/solutions/*/*') + glob.glob('{course}/grading/**', recursive=True)"
            f" + glob.glob('{repo}/solutions/*/*') + glob.glob('{repo}/.git/*') + glob.glob('{repo}/grading/**', recursive=True)"
            " + glob.glob(os.environ.get('FSL_COURSE_ROOT', '.') + '/solutions/*/*') + glob.glob('../../*/*/*'):\n"
            "    try:\n        print('FOUND', name, open(name, 'rb').read()[:2000])\n    except OSError as err:\n        print('denied', name, err)"
        )
        nb = fill_solutions(release, _answers_with(answers, "compute_prototypes", code))
    elif kind == "search_filesystem":
        code = (
            "import os as _os\n"
            "_skip = {'proc', 'sys', 'dev', 'usr', 'lib', 'lib64', 'bin', 'sbin', 'etc', 'var', 'snap', 'boot', '.library',\n"
            "         'site-packages', '.venv', '.pyenv', 'images_background', 'images_evaluation', 'node_modules'}\n"
            "_wanted = {'hidden_tests.py', 'gradebook.db', 'nbgrader_config.py', 'protonet.ipynb', 'protonet.pt'}\n"
            "for _dir, _subdirs, _files in _os.walk('/'):\n"
            "    _subdirs[:] = [d for d in _subdirs if d not in _skip]\n"
            "    if _dir.endswith('.git') or _wanted.intersection(_files) and not _dir.startswith(_os.getcwd()):\n"
            "        print('FOUND', _dir, sorted(_wanted.intersection(_files)))\n"
            "print('SEARCHED the file system')"
        )
        nb = fill_solutions(release, _answers_with(answers, "compute_prototypes", code))
    elif kind == "signal_grader":
        # The grader's process on the host (the kernel's own PID namespace cannot see it: its
        # parent is PID 0 there and PID 1 is the kernel itself, so both are no targets).
        code = (
            "import signal\n"
            f"for _pid in ({int(env['FSL_TEST_GRADER_PID'])},):\n"
            "    try:\n        os.kill(_pid, signal.SIGKILL)\n        print('FOUND killed', _pid)\n"
            "    except OSError as err:\n        print('denied', _pid, err)\n"
            "print('FOUND the grader as parent', os.getppid()) if os.getppid() > 1 else print('no parent visible')"
        )
        nb = fill_solutions(release, _answers_with(answers, "compute_prototypes", code))
    elif kind == "hang_in_hidden_test":
        hang = answers["compute_prototypes"].replace(
            '    """\n', '    """\n    if embeddings.dtype == torch.float64:  # only a hidden test uses float64\n        while True:\n            pass\n', 1)
        assert hang != answers["compute_prototypes"]
        nb = fill_solutions(release, {**answers, "compute_prototypes": hang})
    elif kind == "write_elsewhere":
        course = env["FSL_TEST_COURSE"]
        targets = [f"{course}/solutions/protonet/hidden_tests.py", f"{course}/grading/gradebook.db",
                   f"{course}/grading/submitted/reference/protonet/protonet.pt", f"{course}/nbgrader_config.py", f"{course}/pwned.txt"]
        code = f"for name in {targets!r}:\n    try:\n        open(name, 'a').write('pwned')\n    except OSError as err:\n        print('denied', name, type(err).__name__)"
        nb = fill_solutions(release, _answers_with(answers, "compute_prototypes", code))
    elif kind == "oversized_weights":
        nb = fill_solutions(release, answers)
        (folder / "protonet.pt").write_bytes(os.urandom(3 * 2**20))
    elif kind == "pickled_code_weights":
        nb = fill_solutions(release, answers)

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {env['FSL_TEST_COURSE']}/pickle-ran",))

        torch.save({"blocks.0.0.weight": Evil()}, folder / "protonet.pt")
    elif kind == "invalid_json":
        (folder / "protonet.ipynb").write_text('{"cells": [ this is not json', encoding="utf-8")
        return
    elif kind == "wrong_assignment":
        other = {"cells": [{"cell_type": "code", "metadata": {"nbgrader": {"grade": True, "grade_id": "other_test", "locked": True, "points": 5,
                                                                      "schema_version": 3, "solution": False, "task": False}},
                            "source": "assert True", "outputs": [], "execution_count": None}],
                 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
        (folder / "protonet.ipynb").write_text(json.dumps(other), encoding="utf-8")
        return
    elif kind == "non_utf8":
        nb = fill_solutions(release, _answers_with(answers, "compute_prototypes", "# caf\u00e9"))
        data = json.dumps(nb).encode("ascii").replace(b"caf\\u00e9", b"caf\xe9")  # one raw Latin-1 byte
        assert b"caf\xe9" in data
        (folder / "protonet.ipynb").write_bytes(data)
        return
    elif kind == "output_flood":
        nb = fill_solutions(release, _answers_with(answers, "compute_prototypes", "for i in range(200_000):\n    print(i)"))
    else:
        raise KeyError(kind)
    (folder / "protonet.ipynb").write_text(json.dumps(nb), encoding="utf-8")
