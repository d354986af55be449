"""The isolation of one grading batch, on the grader's side: what every kernel of the batch may
read (the profile, :func:`sandbox_profile`), the per-submission user ids of root mode
(:func:`uid_base`), the check that a sandbox starts and keeps its promises before anything is
graded (:func:`preflight`, :func:`check_sandbox`), and the explicit opt-out (:func:`unsandboxed`).
The kernel's side — the bubblewrap command line and the kernelspec's launcher — is :mod:`.bwrap`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from fsl_utils.data.paths import CACHE_FILES, cache_dir, data_root

from ..checks.hidden import forbidden_extra, load_hidden_tests
from ..checks.plain import FORBIDDEN_PACKAGES
from . import stubs
from .bwrap import UID_BASE, SandboxUnavailable, bwrap_argv, kernel_env, set_limits
from .kernelspec import write_profile


def sandbox_profile(root: Path, assignment: str, base: Path, threads: int) -> Path:
    """Write the batch's sandbox profile (:func:`.kernelspec.write_profile`) into ``base``: the grader's
    dataset folder and cache, and stubs in place of the code the assignment forbids (:mod:`.stubs`)."""
    try:
        extra = forbidden_extra(load_hidden_tests(assignment, root))
    except FileNotFoundError:
        extra = ()
    given = stubs.given_imports(sorted((root / "solutions" / assignment).glob("*.ipynb")))
    plan = stubs.plan([*FORBIDDEN_PACKAGES, *extra], given, base / "stubs")
    for folder in [base / "stubs", *(base / "stubs").iterdir()]:
        os.chmod(folder, 0o755 if folder.is_dir() else 0o644)
    path = base / "profile.json"
    write_profile(path, data_dir=data_root(), cache_dir=cache_dir(), overlays=plan["overlays"], empty_dirs=plan["empty_dirs"], threads=threads)
    profile = json.loads(path.read_text())
    profile["imports"] = sorted(name for name in given if stubs.locate(name) is not None)  # what the preflight imports
    path.write_text(json.dumps(profile, indent=1))
    return path


def share_cache(folder: Path) -> list[Path]:
    """Root mode: let the sandboxed kernels, which run under their own user ids, read the grader's
    dataset cache. The cache files of the course in ``folder`` (:data:`fsl_utils.data.paths.CACHE_FILES`:
    tensors derived from the public datasets, no submission, hidden test or weights) that the grader
    owns and others cannot read get read permission, and the folder search permission; nothing
    else in it is touched, nothing below it, no link followed. Returns what changed.

    Cache files written before ``write_cache`` kept the umask were private to the grader, and a
    kernel that cannot read them decodes the whole dataset again, some ten seconds per submission.
    """
    changed: list[Path] = []
    try:
        st = folder.lstat()
        if not folder.is_dir() or folder.is_symlink() or st.st_uid != os.geteuid():
            return changed
        if st.st_mode & 0o011 != 0o011:
            os.chmod(folder, (st.st_mode | 0o011) & 0o7777)
            changed.append(folder)
        files = sorted({p for pattern in CACHE_FILES for p in folder.glob(pattern)})
    except OSError:
        return changed
    for path in files:
        try:
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o044 != 0o044:
                os.chmod(path, (st.st_mode | 0o044) & 0o7777)
                changed.append(path)
        except OSError:
            continue
    return changed


def grading_folder() -> Path:
    """A fresh folder for one batch's sockets, profile and intake (``/run`` when writable: kept off disk)."""
    run_dir = "/run" if os.path.isdir("/run") and os.access("/run", os.W_OK) else None
    base = Path(tempfile.mkdtemp(prefix="fsl-grading-", dir=run_dir))
    os.chmod(base, 0o711)
    return base


def uid_base() -> int:
    """Root mode: the first of this batch's per-submission user ids (:data:`.bwrap.UID_BASE` + a
    block of 1,000 chosen by the process id, so that concurrent batches do not share ids)."""
    return int(os.environ.get("FSL_SANDBOX_UID_BASE", UID_BASE)) + (os.getpid() % 100_000) * 1000


def check_sandbox(root: Path, assignment: str, jobs: int = 1) -> dict:
    """Start one sandbox exactly as the batch would (:func:`preflight`); its report.

    Raises:
        SandboxUnavailable: it cannot start (the message says why and what to do).
    """
    base = grading_folder()
    try:
        profile = sandbox_profile(root, assignment, base, max(1, (os.cpu_count() or 1) // max(1, jobs)))
        return preflight(profile, base / "preflight", uid=uid_base() + 999 if os.geteuid() == 0 else None)
    finally:
        shutil.rmtree(base, ignore_errors=True)


UNSANDBOXED = ("=" * 100 + "\nWARNING: --no-sandbox: student code runs WITHOUT isolation, with your user's rights, files and network.\n"
               "Use it only for submissions you trust. (Kernels still get the allow-listed environment.)\n" + "=" * 100)


def unsandboxed(profile: Path) -> None:
    """Switch the batch's profile to run kernels without bubblewrap (the explicit opt-in)."""
    data = json.loads(profile.read_text())
    data["mode"] = "none"
    profile.write_text(json.dumps(data, indent=1))
    print(UNSANDBOXED, file=sys.stderr, flush=True)


#: What :func:`preflight` runs inside: the kernel's imports and the promises the grader relies on.
_CHECK = """
import importlib, json, os, resource, socket, sys
print("FSL-SANDBOX-STARTED", flush=True)
import ipykernel, torch, fsl_utils.grading.checks.remote  # what every kernel imports
for name in json.loads(sys.argv[1]):  # what the assignment's given cells import (with stubs in place of forbidden code)
    importlib.import_module(name)
out = {"uid": os.getuid(), "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0], "interfaces": [n for _, n in socket.if_nameindex()],
       "data": os.path.isdir(os.environ["FSL_DATA_DIR"]), "home_writable": os.access(os.environ["HOME"], os.W_OK),
       "pid": os.getpid(), "environ": sorted(os.environ), "nice": os.nice(0)}
print("FSL-SANDBOX-CHECK " + json.dumps(out))
"""


def preflight(profile_path: Path, scratch: Path, uid: int | None = None, timeout: float = 120) -> dict[str, Any]:
    """Start one sandbox as a kernel would be started and check it; the check's report.

    Raises:
        SandboxUnavailable: bwrap is missing or cannot create the sandbox, or the sandbox does
            not keep its promises (network interfaces, process limit, user id).
    """
    profile = json.loads(profile_path.read_text())
    if shutil.which(profile["bwrap"]) is None and not os.path.isfile(profile["bwrap"]):
        raise SandboxUnavailable("bubblewrap is not installed (the `bwrap` command is missing): install it with "
                                 "`apt-get install -y bubblewrap` (Debian/Ubuntu) or your system's package manager.")
    scratch.mkdir(parents=True, exist_ok=True)
    if uid is not None:
        os.chown(scratch, uid, uid)
    command = [profile["python"], "-s", "-c", _CHECK, json.dumps(profile.get("imports", []))]
    argv = bwrap_argv(profile, command, uid=uid, rw_binds=[str(scratch)], env=kernel_env(profile, {}))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, preexec_fn=lambda: set_limits(profile["limits"]))
    except subprocess.TimeoutExpired:
        raise SandboxUnavailable(f"the sandbox did not answer within {timeout:.0f} s") from None
    report = [line for line in proc.stdout.splitlines() if line.startswith("FSL-SANDBOX-CHECK ")]
    if proc.returncode != 0 or not report:
        why = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1].rstrip(".")
        if "FSL-SANDBOX-STARTED" in proc.stdout:
            raise SandboxUnavailable(f"the sandbox started, but the kernel's imports fail in it: {why}. Check that the environment "
                                     "(Python, venv, fsl_utils) is readable by other users and that the stubs of forbidden code "
                                     "(fsl_utils.grading.stubs) keep every name the assignment's given cells import")
        hint = ("bubblewrap as root needs CAP_SYS_ADMIN (a privileged container or VM); or run the grader as an ordinary user, "
                "which needs unprivileged user namespaces (sysctl user.max_user_namespaces > 0, and on Ubuntu "
                "kernel.apparmor_restrict_unprivileged_userns = 0 or an AppArmor profile for bwrap)")
        raise SandboxUnavailable(f"bubblewrap could not start a sandbox: {why}. {hint}.")
    out = json.loads(report[-1].split(" ", 1)[1])
    problems = []
    if out["interfaces"] not in ([], ["lo"]):
        problems.append(f"network interfaces {out['interfaces']} are visible")
    if out["nproc"] != profile["limits"]["FSL_SANDBOX_NPROC"]:
        problems.append(f"the process limit is {out['nproc']}")
    if uid is not None and out["uid"] != uid or out["uid"] == 0:
        problems.append(f"the kernel runs as user id {out['uid']}")
    if out["nice"] < profile["limits"]["FSL_SANDBOX_NICE"]:
        problems.append(f"the kernel's nice value is {out['nice']}, not FSL_SANDBOX_NICE={profile['limits']['FSL_SANDBOX_NICE']}")
    if not out["home_writable"]:
        problems.append("the kernel's home folder is not writable")
    if os.path.isdir(profile["env"]["FSL_DATA_DIR"]) and not out["data"]:
        problems.append(f"the dataset folder {profile['env']['FSL_DATA_DIR']} is not visible inside")
    if problems:
        raise SandboxUnavailable("the sandbox started but " + "; ".join(problems))
    return out
