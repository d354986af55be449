"""``make grade`` as an ordinary instructor account: the grader runs as a local user without any
privilege (created here as ``fsl-grader-t23`` when the tests run as root), so bubblewrap builds
each sandbox in an unprivileged user namespace. Two submissions at a time (JOBS=2): the
reference, and a fork bomb that also reports who it runs as and tries to write into the course.
Both must get full marks — the bomb's process limit counts its own sandbox only.

When the tests already run as an ordinary user, the same grading runs as that user directly.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fsl_utils.grading.notebook import fill_solutions, solution_sources

ROOT = Path(__file__).resolve().parents[1]
USER = "fsl-grader-t23"
from grading import assignment as shared

BOMB = """
import os as _os, pwd as _pwd, time as _time
print('uid', _os.getuid())
for _name in ({course!r} + '/pwned.txt', {course!r} + '/grading/gradebook.db'):
    try:  # (the course's folder is not there: at most a private, empty stand-in for the cache's parent)
        open(_name, 'a').write('pwned')
        print('wrote', _name)
    except OSError as _err:
        print('denied', _name, type(_err).__name__)
_bomb = _os.fork()
if _bomb == 0:
    _end = _time.time() + 25
    while _time.time() < _end:
        try:
            _os.fork()
        except OSError:
            _time.sleep(0.05)
    _os._exit(0)
_time.sleep(30)
_os.waitpid(_bomb, 0)
print('forked')
"""


@pytest.fixture(scope="module")
def grader_user():
    """(uid, gid) of the ordinary user who grades; created (and removed afterwards) when running as root."""
    if os.geteuid() != 0:
        yield os.getuid(), os.getgid()
        return
    created = False
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        created = True
    entry = pwd.getpwnam(USER)
    yield entry.pw_uid, entry.pw_gid
    if created:
        subprocess.run(["userdel", USER], check=False)


def _reachable_python(stage: Path) -> list[str]:
    """Shell lines (run as root in a private mount namespace) that let the user run this Python:
    a private ancestor of its installation (e.g. /root, mode 0700, where pyenv installs) is replaced
    by an empty folder that holds only the installation (``stage``: an empty folder to pass it through)."""
    lines = []
    for i, path in enumerate(sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()})):
        private = next((p for p in reversed(path.parents) if str(p) != "/" and not os.stat(p).st_mode & 0o001), None)
        if private is None:
            continue
        child = private / path.relative_to(private).parts[0]
        (stage / str(i)).mkdir()
        lines += [f"mount --bind '{child}' '{stage / str(i)}'", f"mount -t tmpfs -o mode=0755,size=1m tmpfs '{private}'",
                  f"mkdir -p '{child}'", f"mount --move '{stage / str(i)}' '{child}'"]
    return lines


def test_grading_as_an_ordinary_user(grader_user, tmp_path):
    shared.require_bwrap()
    uid, gid = grader_user
    course = Path(tempfile.mkdtemp(prefix="fsl-t23-nonroot-"))
    try:
        shutil.copy(ROOT / "nbgrader_config.py", course)
        shutil.copytree(ROOT / "solutions" / "protonet", course / "solutions" / "protonet")
        release = ROOT / "assignments" / "protonet" / "protonet.ipynb"
        answers = solution_sources(ROOT / "solutions" / "protonet" / "protonet.ipynb")
        weights = ROOT / "solutions" / "protonet" / "protonet.pt"
        shared.submit(course, "protonet", "reference", fill_solutions(release, answers), weights)
        bomb = {**answers, "ProtoNetEncoder": answers["ProtoNetEncoder"] + BOMB.format(course=str(course))}
        shared.submit(course, "protonet", "fork_bomb", fill_solutions(release, bomb), weights)
        cache = course / "cache"  # the user's own dataset cache, seeded from the tests' (same data folder, same keys)
        cache.mkdir()
        from fsl_utils.data.paths import cache_dir, data_root

        for file in cache_dir().glob("omniglot-*.pt"):
            shutil.copy(file, cache)
        (course / "home").mkdir()
        for dirpath, dirnames, filenames in os.walk(course):
            for name in [dirpath, *(os.path.join(dirpath, f) for f in filenames)]:
                os.chown(name, uid, gid)
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(course / "home"), "LANG": "C.UTF-8",
               "FSL_DATA_DIR": str(data_root().resolve()), "FSL_CACHE_DIR": str(cache), "FSL_CELL_TIMEOUT": "180",
               **{k: os.environ[k] for k in ("FSL_FAST", "CI") if k in os.environ}}
        grade = [sys.executable, "-m", "fsl_utils.grading", "grade", "protonet", "--root", str(course), "--jobs", "2"]
        if os.geteuid() == 0:
            script = "\n".join(["set -e", *_reachable_python(tmp_path), 'user=$0 group=$1', "shift",
                                'exec setpriv --reuid "$user" --regid "$group" --clear-groups -- env -i "$@"'])
            cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, str(uid), str(gid),
                   *(f"{k}={v}" for k, v in env.items()), *grade]
        else:
            cmd = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *grade]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, cwd=course)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        assert "(sandboxed)" in proc.stdout
        with open(course / "grading" / "grades.csv", newline="") as f:
            scores = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(f)}
        assert scores == {"reference": 20.0, "fork_bomb": 20.0}, scores
        times = json.loads((course / "grading" / "grading_times.json").read_text())
        assert times["reference"][1] < times["fork_bomb"][1], times  # the reference was graded while the bomb's submission ran
        assert os.stat(course / "grading" / "gradebook.db").st_uid == uid  # graded by the user, not by root
        nb = json.loads((course / "grading" / "autograded" / "fork_bomb" / "protonet" / "protonet.ipynb").read_text())
        text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "stream")
        assert "forked" in text and "uid 1000" in text, text[:2000]  # the sandbox's own user (the instructor's account, mapped)
        assert "denied" in text and not (course / "pwned.txt").exists() and b"pwned" not in (course / "grading" / "gradebook.db").read_bytes()
    finally:
        shutil.rmtree(course, ignore_errors=True)
