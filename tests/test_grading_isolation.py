"""The grading sandbox's parts on their own (fsl_utils.grading.sandbox: .intake, .stubs, .bwrap, .isolation;
.execute.score_on_errors), and ``make grade`` refusing to run when the sandbox cannot start.

The whole pipeline with hostile submissions is tests/test_grading_adversarial.py (as root) and
tests/test_grading_nonroot.py (as an ordinary user)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from nbformat.notebooknode import NotebookNode
from nbgrader.utils import determine_grade

from fsl_utils.course.check import MAX_SUBMITTED_BYTES
from fsl_utils.grading.batch import kill_marked, marked_pids
from fsl_utils.grading.sandbox import bwrap, isolation, kernelspec, stubs
from fsl_utils.grading.execute import score_on_errors
from fsl_utils.grading.sandbox.intake import take_in

ROOT = Path(__file__).resolve().parents[1]
from grading import assignment as shared


# -- intake: submissions are data --------------------------------------------------------------
def _submission(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside.txt"
    outside.write_text("SECRET OUTSIDE")
    sub = tmp_path / "submitted" / "student" / "protonet"
    (sub / "sub" / "deeper").mkdir(parents=True)
    (sub / "protonet.ipynb").write_text("{}")
    (sub / "sub" / "deeper" / "notes.txt").write_text("mine")
    os.link(sub / "sub" / "deeper" / "notes.txt", sub / "sub" / "same_notes.txt")  # a hard link inside: fine
    os.symlink(outside, sub / "link.txt")
    os.symlink(tmp_path / "submitted", sub / "linked_folder")
    os.link(outside, sub / "hard.txt")
    os.mkfifo(sub / "pipe")
    socket.socket(socket.AF_UNIX).bind(str(sub / "socket"))
    (sub / "big.pt").write_bytes(b"0" * (MAX_SUBMITTED_BYTES + 1))
    return sub, outside


def test_intake_copies_regular_files_and_refuses_everything_else(tmp_path):
    sub, outside = _submission(tmp_path)
    result = take_in(sub, tmp_path / "intake")
    assert result.fatal is None
    assert sorted(result.copied) == ["protonet.ipynb", "sub/deeper/notes.txt", "sub/same_notes.txt"]
    reasons = {name: reason.split(":")[0].split(",")[0] for name, reason in result.refused.items()}
    assert reasons == {"link.txt": "a symbolic link", "linked_folder": "a symbolic link", "hard.txt": "a hard link to a file outside the submission",
                       "pipe": "a named pipe (FIFO)", "socket": "a socket", "big.pt": "2.0 MB"}, result.refused
    assert result.links == {"link.txt": str(outside), "linked_folder": str(tmp_path / "submitted")}  # (the log's, not the feedback's)
    copied = sorted(str(p.relative_to(tmp_path / "intake")) for p in (tmp_path / "intake").rglob("*"))
    assert copied == ["protonet.ipynb", "sub", "sub/deeper", "sub/deeper/notes.txt", "sub/same_notes.txt"]
    assert not any(p.is_symlink() for p in (tmp_path / "intake").rglob("*"))
    assert all("SECRET" not in p.read_text() for p in (tmp_path / "intake").rglob("*") if p.is_file())


def test_intake_gives_up_on_a_linked_folder_or_a_missing_notebook(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "protonet.ipynb").write_text("{}")
    (tmp_path / "student").mkdir()
    os.symlink(real, tmp_path / "student" / "protonet")
    assert "symbolic link" in take_in(tmp_path / "student" / "protonet", tmp_path / "out1").fatal
    (tmp_path / "other" / "protonet").mkdir(parents=True)
    os.symlink(real / "protonet.ipynb", tmp_path / "other" / "protonet" / "protonet.ipynb")
    result = take_in(tmp_path / "other" / "protonet", tmp_path / "out2")
    assert "no notebook could be taken in" in result.fatal and "symbolic link" in result.fatal


# -- stubs: forbidden code is not in the sandbox ------------------------------------------------
_MODULE = '''"""A course module."""
from __future__ import annotations

import math

SCALE = 2.0


def helper(x):
    """Doubles."""
    return x * SCALE


class Method:
    kind = "method"

    def __init__(self, k):
        self.k = k

    def run(self, x):
        return helper(x) + self.k


square = lambda x: x * x
'''


def test_stubs_keep_names_and_raise_on_every_call():
    namespace: dict = {}
    exec(compile(stubs.stub_source(_MODULE, "course.methods"), "stub", "exec"), namespace)  # noqa: S102 (our own text)
    assert namespace["SCALE"] == 2.0 and namespace["Method"].kind == "method" and namespace["helper"].__doc__ == "Doubles."
    for call in (lambda: namespace["helper"](1), lambda: namespace["Method"](1), lambda: namespace["square"](2)):
        with pytest.raises(namespace["ForbiddenCodeError"], match="write it yourself"):
            call()
    only: dict = {}
    exec(compile(stubs.stub_source(_MODULE, "course.methods", only=["helper"]), "stub", "exec"), only)  # noqa: S102
    assert only["square"](3) == 9
    with pytest.raises(only["ForbiddenCodeError"], match="`helper`"):
        only["Method"](1).run(1)


def test_plan_stubs_a_package_but_keeps_what_given_cells_import(tmp_path, monkeypatch):
    package = tmp_path / "coursepkg"
    (package / "methods" / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "methods" / "__init__.py").write_text("from .base import Base\nfrom .impl import helper\n")
    (package / "methods" / "base.py").write_text("class Base:\n    pass\n")
    (package / "methods" / "impl.py").write_text(_MODULE)
    (package / "methods" / "__pycache__" / "impl.cpython-311.pyc").write_bytes(b"real byte code")
    (package / "extra.py").write_text(_MODULE)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "__init__.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plan = stubs.plan(["coursepkg.methods", "coursepkg.extra:helper", "other", "not_installed_anywhere"], {"coursepkg.methods.base"},
                      tmp_path / "stubs")
    targets = {Path(t).relative_to(tmp_path).as_posix(): Path(s).read_text() for s, t in plan["overlays"]}
    assert set(targets) == {"coursepkg/methods/impl.py", "coursepkg/extra.py", "other/__init__.py"}
    assert "ForbiddenCodeError" in targets["coursepkg/methods/impl.py"] and "raise ImportError" in targets["other/__init__.py"]
    assert "return x * SCALE" not in targets["coursepkg/extra.py"] and "self.k = k" in targets["coursepkg/extra.py"]
    assert plan["kept"] == ["coursepkg.methods.base"] and plan["absent"] == ["other"]
    assert sorted(Path(d).relative_to(tmp_path).as_posix() for d in plan["empty_dirs"]) == ["coursepkg/methods/__pycache__", "other"]


def test_given_imports_of_the_protonet_notebook():
    names = stubs.given_imports([ROOT / "solutions" / "protonet" / "protonet.ipynb"])
    assert "fsl_utils.methods.base" in names and "fsl_utils.data" in names
    assert "fsl_utils.grading" not in names  # (imported in hidden regions only)
    assert not any(n.startswith("fsl_utils.methods.protonet") for n in names)


# -- the bubblewrap command line -----------------------------------------------------------------
def _profile(tmp_path: Path, mode: str) -> dict:
    path = tmp_path / "profile.json"
    kernelspec.write_profile(path, data_dir=ROOT / "data-not-here", cache_dir=tmp_path)
    profile = json.loads(path.read_text())
    profile["mode"] = mode
    return profile


@pytest.mark.parametrize("mode", ["root", "user"])
def test_bwrap_argv_isolates_and_binds_read_only(tmp_path, mode):
    profile = _profile(tmp_path, mode)
    env = bwrap.kernel_env(profile, {"FSL_FAST": "1", "SECRET_TOKEN": "x", "NBGRADER_EXECUTION": "autograde", "HOME": "/root"})
    argv = bwrap.bwrap_argv(profile, ["python"], uid=2_000_000_001 if mode == "root" else None, rw_binds=[str(tmp_path / "ipc")], env=env)
    for flag in ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in argv
    assert ("--unshare-user" in argv and "--disable-userns" in argv) == (mode == "user")
    assert ("--cap-add" in argv) == (mode == "root")
    writable = [argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--dev-bind")]
    assert writable == [str(tmp_path / "ipc")]
    readable = {argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"}
    assert str(ROOT / "fsl_utils") in readable and str(Path(sys.prefix).resolve()) in readable and str(tmp_path) in readable
    assert str(ROOT) not in readable and "/" not in readable and str(ROOT / "solutions") not in readable
    setenv = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == "--setenv"}
    assert "SECRET_TOKEN" not in setenv and setenv["HOME"] == bwrap.HOME and setenv["FSL_FAST"] == "1"
    assert setenv["NBGRADER_EXECUTION"] == "autograde" and setenv["FSL_CACHE_DIR"] == str(tmp_path)


# -- a real sandbox ----------------------------------------------------------------------------------
@pytest.fixture
def profile_path(tmp_path):
    shared.require_bwrap()
    base = Path(tempfile.mkdtemp(prefix="fsl-t23-sandbox-"))
    os.chmod(base, 0o711)
    path = base / "profile.json"
    (base / "cache").mkdir(mode=0o755)
    kernelspec.write_profile(path, data_dir=Path(os.environ.get("FSL_DATA_DIR", ROOT / "data")), cache_dir=base / "cache")
    yield path
    shutil.rmtree(base, ignore_errors=True)


def _argv_inside(profile_path: Path, code: str, uid: int | None) -> list[str]:
    profile = json.loads(profile_path.read_text())
    return bwrap.bwrap_argv(profile, [profile["python"], "-s", "-c", code], uid=uid, env=bwrap.kernel_env(profile, {}))


def _run_inside(profile_path: Path, code: str, uid: int | None, timeout: float = 120) -> subprocess.Popen:
    return subprocess.Popen(_argv_inside(profile_path, code, uid), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_preflight_reports_an_isolated_kernel(profile_path):
    report = isolation.preflight(profile_path, profile_path.parent / "scratch", uid=2_000_000_998 if os.geteuid() == 0 else None)
    assert report["uid"] != 0 and report["interfaces"] in ([], ["lo"]) and report["home_writable"]
    assert report["nproc"] == kernelspec.limits()["FSL_SANDBOX_NPROC"]
    assert set(report["environ"]) <= set(json.loads(profile_path.read_text())["env"]) | {"PWD"}  # (PWD: set by bwrap --chdir)
    probe = _run_inside(profile_path, f"import os; print([p for p in ({str(ROOT / 'solutions')!r}, {str(ROOT / '.git')!r}, '/etc/shadow', "
                                      f"{str(profile_path)!r}, '/root/.bash_history') if os.path.exists(p)], "
                                      f"os.path.isdir({str(profile_path.parent / 'cache')!r}))", uid=2_000_000_997 if os.geteuid() == 0 else None)
    out, err = probe.communicate(timeout=120)
    assert out.strip() == "[] True", out + err  # nothing else visible; the cache folder (under /tmp here) is


def test_a_grader_started_through_dotdot_still_starts_kernels(profile_path, monkeypatch):
    """``../.venv/bin/python -m fsl_utils.grading ...`` from a subfolder: the interpreter's path passes
    through a folder the sandbox does not have (``tests/..``); the profile names it without the detour."""
    detour = f"{ROOT / 'tests'}/{os.path.relpath(sys.executable, ROOT / 'tests')}"
    assert "/../" in detour and os.path.samefile(detour, sys.executable)
    monkeypatch.setattr(sys, "executable", detour)
    kernelspec.write_profile(profile_path, data_dir=Path(os.environ.get("FSL_DATA_DIR", ROOT / "data")), cache_dir=profile_path.parent / "cache")
    profile = json.loads(profile_path.read_text())
    assert "/../" not in profile["python"] and os.path.samefile(profile["python"], detour)
    report = isolation.preflight(profile_path, profile_path.parent / "scratch", uid=2_000_000_995 if os.geteuid() == 0 else None)
    assert report["uid"] != 0


def test_fsl_sandbox_nice_lowers_the_kernels_priority_and_its_sessions(profile_path, monkeypatch):
    """FSL_SANDBOX_NICE reaches the kernel's nice value and its session's autogroup (which is what
    weighs against the other sessions on the machine); the batch's nbgrader processes use the same
    helper in a session of their own."""
    assert kernelspec.limits()["FSL_SANDBOX_NICE"] == 0
    monkeypatch.setenv("FSL_SANDBOX_NICE", "7")
    kernelspec.write_profile(profile_path, data_dir=Path(os.environ.get("FSL_DATA_DIR", ROOT / "data")), cache_dir=profile_path.parent / "cache")
    report = isolation.preflight(profile_path, profile_path.parent / "scratch", uid=2_000_000_994 if os.geteuid() == 0 else None)
    assert report["nice"] == 7
    group = "import os; print(os.nice(0), open('/proc/self/autogroup').read().split()[-1] if os.path.exists('/proc/self/autogroup') else '-')"
    inside = _run_inside(profile_path, group, uid=2_000_000_993 if os.geteuid() == 0 else None)
    out, err = inside.communicate(timeout=120)
    nice, autogroup = out.split()
    assert nice == "7" and autogroup in ("7", "-"), out + err
    helper = subprocess.run([sys.executable, "-c", "import os; os.setsid(); from fsl_utils.grading.sandbox.kernelspec import lower_priority; "
                             "lower_priority(4); lower_priority(2); " + group.removeprefix("import os; ")],
                            capture_output=True, text=True, timeout=60)
    assert helper.stdout.split() in (["4", "4"], ["4", "-"]), helper.stdout + helper.stderr  # never raised back to 2
    # a kernel started by a process that is already at that nice value (nbgrader's, in the batch) is in a
    # new session: its autogroup still gets the value
    inherited = subprocess.run(["nice", "-n", "7", *_argv_inside(profile_path, group, uid=2_000_000_992 if os.geteuid() == 0 else None)],
                               capture_output=True, text=True, timeout=120)
    assert inherited.stdout.split() in (["7", "7"], ["7", "-"]), inherited.stdout + inherited.stderr


def test_process_limit_counts_one_submission_only(profile_path, monkeypatch):
    """A kernel that forks up to its process limit leaves another kernel free to start processes."""
    monkeypatch.setenv("FSL_SANDBOX_NPROC", "40")
    kernelspec.write_profile(profile_path, data_dir=Path(os.environ.get("FSL_DATA_DIR", ROOT / "data")), cache_dir=profile_path.parent / "cache")
    root = os.geteuid() == 0
    bomb = ("import os, time\nn = 0\nend = time.time() + 20\nwhile time.time() < end:\n    try:\n        if os.fork() == 0:\n"
            "            time.sleep(25); os._exit(0)\n        n += 1\n    except OSError:\n        print('limit', n, flush=True); time.sleep(25); break\n")
    first = _run_inside(profile_path, bomb, uid=2_000_000_990 if root else None)
    line = first.stdout.readline()
    assert line.startswith("limit") and 25 <= int(line.split()[1]) < 40, line
    second = _run_inside(profile_path, "import os\npids = [os.fork() or os._exit(0) for _ in range(30)]\nprint('forked', len(pids))",
                         uid=2_000_000_991 if root else None)
    out, err = second.communicate(timeout=60)
    first.kill()
    first.wait()
    assert out.strip() == "forked 30", err


def test_a_killed_sandbox_takes_its_kernel_and_every_child_along(profile_path):
    """The grader kills a kernel's ``bwrap`` when the kernel does not answer its shutdown request; the
    sandbox's process 1, the kernel and whatever the kernel started must end with it. (In root mode,
    had process 1 dropped to the submission's user id, it would have outlived bwrap.)"""
    token = f"fsl-orphan-{os.getpid()}-{id(profile_path)}"
    caps = "[int(line.split()[1], 16) for p in (1, os.getpid()) for line in open(f'/proc/{p}/status') if line.startswith('CapEff')]"
    code = (f"import os, time\nif os.fork() == 0:\n    time.sleep(120); os._exit(0)\nprint('ready', *{caps}, flush=True)\n"
            f"time.sleep(120)  # {token}")
    root = os.geteuid() == 0
    sandbox = _run_inside(profile_path, code, uid=2_000_000_989 if root else None)
    try:
        ready, pid1_caps, kernel_caps = sandbox.stdout.readline().split()
        assert ready == "ready" and int(kernel_caps) == 0
        if root:  # process 1 holds CAP_SETGID and CAP_SETUID (bits 6, 7), nothing else of root's
            assert int(pid1_caps) == 0xC0
        sandboxed = marked_pids(token)  # bwrap, process 1 (the kernel's launcher), the kernel, its child
        assert len(sandboxed) == 4, [Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in sandboxed]
        sandbox.kill()
        sandbox.wait()
        deadline = time.monotonic() + 20
        while marked_pids(token) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marked_pids(token) == []
    finally:
        kill_marked(token)


def test_the_graders_private_cache_is_made_readable_to_the_kernels(profile_path):
    """Cache files private to the grader (as ``write_cache`` once left them) cannot be read by a
    kernel running under its own user id (root mode) until :func:`isolation.share_cache` opens them;
    it opens the course's cache files only (a misdirected ``FSL_CACHE_DIR`` keeps its other files)."""
    cache = profile_path.parent / "cache"
    os.chmod(cache, 0o700)
    cached = [cache / "omniglot-background-28px-0123.pt", cache / "features-lecture01-abc.pt"]
    others = [cache / "notes.txt", cache / "weights.pt", cache / "sub" / "omniglot-x.pt"]
    (cache / "sub").mkdir(mode=0o700)
    for path in cached + others:
        path.write_bytes(b"tensor bytes")
        os.chmod(path, 0o600)
    os.symlink("/etc/shadow", cache / "text-link.pt")
    read = (f"import pathlib\nfor p in {[str(p) for p in cached + others]!r}:\n"
            "    try:\n        print(pathlib.Path(p).read_bytes().decode().replace(' ', '-'))\n    except OSError as e:\n        print(type(e).__name__)")
    uid = 2_000_000_996 if os.geteuid() == 0 else None
    before, _ = _run_inside(profile_path, read, uid=uid).communicate(timeout=120)
    changed = isolation.share_cache(cache)
    after, err = _run_inside(profile_path, read, uid=uid).communicate(timeout=120)
    if uid is not None:  # as an ordinary user the kernel is the grader's own user: it could read them all already
        assert before.split() == ["PermissionError"] * 5, before
        assert after.split() == ["tensor-bytes"] * 2 + ["PermissionError"] * 3, after + err
        assert sorted(changed) == sorted([cache, *cached])
    else:
        assert after.split() == ["tensor-bytes"] * 5, after + err
    assert all(os.stat(p).st_mode & 0o777 == 0o644 for p in cached) and os.stat(cache).st_mode & 0o777 == 0o711
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in others) and os.stat(cache / "sub").st_mode & 0o777 == 0o700
    assert os.stat("/etc/shadow").st_mode & 0o004 == 0
    assert isolation.share_cache(cache) == []  # nothing left to change


def test_every_cache_file_the_course_writes_is_one_share_cache_opens():
    """The names the course gives its cache files (``cache_dir() / f"..."``) match ``CACHE_FILES``."""
    import fnmatch
    import re

    from fsl_utils.data.paths import CACHE_FILES

    names = [m.group(1) for path in (ROOT / "fsl_utils").rglob("*.py")
             for m in re.finditer(r'cache_dir\(\) / f"([^"]+)"', path.read_text())]
    assert len(names) >= 3, names
    for name in names:
        example = re.sub(r"\{[^}]*\}", "x", name)
        assert any(fnmatch.fnmatch(example, pattern) for pattern in CACHE_FILES), (name, CACHE_FILES)


# -- a warning is not a failure -------------------------------------------------------------------
def test_score_on_errors_keeps_warnings_and_drops_partial_credit():
    meta = NotebookNode(nbgrader=NotebookNode(grade=True, solution=False, grade_id="t", points=2.0))
    warned = NotebookNode(cell_type="code", metadata=meta, source="", outputs=[
        NotebookNode(output_type="stream", name="stderr", text="UserWarning: careful\n"),
        NotebookNode(output_type="execute_result", data={"text/plain": "0.5"}, metadata={}, execution_count=1)])
    assert determine_grade(warned) == (0, 2.0)  # nbgrader's own rule (tests/test_grading_nbgrader.py pins it)
    score_on_errors(warned)
    assert determine_grade(warned) == (2.0, 2.0)
    assert "careful" in warned.outputs[0].text and warned.outputs[0].name == "stdout"
    warned.outputs.append(NotebookNode(output_type="error", ename="AssertionError", evalue="wrong", traceback=[]))
    score_on_errors(warned)
    assert determine_grade(warned) == (0, 2.0)


# -- fail closed ------------------------------------------------------------------------------------
def _course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    (root / "solutions").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "solutions" / "protonet", root / "solutions" / "protonet")
    shared.submit(root, "protonet", "reference", ROOT / "solutions" / "protonet" / "protonet.ipynb", ROOT / "solutions" / "protonet" / "protonet.pt")
    return root


def _refused(root: Path, proc: subprocess.CompletedProcess, why: str) -> None:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "NOT GRADED: the grading sandbox cannot start" in proc.stderr and "--no-sandbox" in proc.stderr
    assert why in proc.stderr, proc.stderr[-2000:]
    assert not (root / "grading" / "grades.csv").exists() and not (root / "grading" / "autograded").exists()
    assert not (root / "grading" / "gradebook.db").exists(), "nothing may be graded (no zeros)"


def _cli(root: Path, env: dict | None = None, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    cmd = [*prefix, sys.executable, "-m", "fsl_utils.grading", "grade", "protonet", "--root", str(root)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_make_grade_refuses_without_bubblewrap(tmp_path):
    root = _course(tmp_path)
    _refused(root, _cli(root, env={"PATH": str(Path(sys.executable).parent)}), "bubblewrap is not installed")


def test_make_grade_refuses_where_namespaces_are_not_allowed(tmp_path):
    """As root without CAP_SYS_ADMIN (root in an unprivileged container) bubblewrap cannot build a
    sandbox: the grader says so and grades nothing (the old sandbox gave the reference 0 of 20)."""
    shared.require_bwrap()
    root = _course(tmp_path)
    if os.geteuid() == 0:
        if shutil.which("capsh") is None:
            pytest.fail("capsh (Debian package libcap2-bin) is needed to drop CAP_SYS_ADMIN")
        proc = _cli(root, prefix=("capsh", "--drop=cap_sys_admin", "--", "-c", 'exec "$@"', "sh"))
    else:  # an ordinary user in a sandbox that forbids new user namespaces
        proc = _cli(root, prefix=("bwrap", "--dev-bind", "/", "/", "--unshare-user", "--disable-userns", "--"))
    _refused(root, proc, "bubblewrap could not start a sandbox")
