"""An isolated Jupyter kernel for autograding: ``python -m fsl_utils.grading.sandbox CONN``.

Used as the argv of the ``fsl-sandbox`` kernelspec written by :func:`write_kernelspec`.
Started by nbgrader (as root) in the submission's autograded folder, it

1. copies that folder into a fresh private working directory (the student's writes never
   reach the course), with the assignment's hidden tests beside it;
2. enters new mount and network namespaces: no network interface is up (the kernel talks
   to nbgrader over Unix sockets), and ``solutions/``, ``grading/`` (gradebook, other
   students, submissions), ``/tmp``, ``/var/tmp`` and ``/dev/shm`` are replaced by empty
   tmpfs mounts; the dataset cache is bind-mounted read-only;
3. sets resource limits (address space, CPU seconds, file size, processes);
4. drops to the unprivileged user ``nobody`` and execs ``ipykernel``.

Requires Linux and root (CI and the instructor's grading machine); :func:`available` says
whether this machine can do it.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
NOBODY = 65534
KERNEL_NAME = "fsl-sandbox"
DEFAULTS = {"FSL_SANDBOX_MEMORY_MB": 8192, "FSL_SANDBOX_CPU_SECONDS": 900, "FSL_SANDBOX_FILE_MB": 256, "FSL_SANDBOX_NPROC": 256}


def available() -> bool:
    """True on Linux as root with ``unshare`` permitted."""
    return sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0


def write_kernelspec(folder: Path) -> Path:
    """Write ``<folder>/kernels/fsl-sandbox/kernel.json``; put ``folder`` on ``JUPYTER_PATH``."""
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "fsl_utils.grading.sandbox", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python (grading sandbox)", "language": "python"}))
    return spec


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(libc: ctypes.CDLL, source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, ctypes.c_ulong(flags), data.encode() if data else None),
        f"mount {target}",
    )


def _chown_tree(path: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, NOBODY, NOBODY)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), NOBODY, NOBODY)


def _limits() -> None:
    env = {k: int(os.environ.get(k, v)) for k, v in DEFAULTS.items()}
    mb = 2**20
    resource.setrlimit(resource.RLIMIT_AS, (env["FSL_SANDBOX_MEMORY_MB"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (env["FSL_SANDBOX_CPU_SECONDS"], env["FSL_SANDBOX_CPU_SECONDS"] + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (env["FSL_SANDBOX_FILE_MB"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (env["FSL_SANDBOX_NPROC"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def prepare(connection_file: Path, submission: Path, course: Path, base: Path) -> tuple[Path, Path]:
    """Copy the submission, connection file and hidden tests into a private folder.

    Returns:
        (working directory of the kernel, its connection file).
    """
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kernel-", dir=base))
    shutil.copytree(submission, work / "submission", ignore=shutil.ignore_patterns("*.ipynb"))
    assignment = submission.name
    hidden = course / "solutions" / assignment / "hidden_tests.py"
    if hidden.is_file():
        (work / "course" / "solutions" / assignment).mkdir(parents=True)
        shutil.copy(hidden, work / "course" / "solutions" / assignment / "hidden_tests.py")
    conn = work / "connection.json"
    shutil.copy(connection_file, conn)
    (work / "cache").mkdir()
    _chown_tree(work)
    os.chmod(work, 0o700)
    return work, conn


def isolate(work: Path, course: Path, hide: list[Path]) -> None:
    """New mount + network namespaces; hide paths; read-only dataset cache in ``work/cache``."""
    from fsl_utils.data.paths import cache_dir

    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare")
    _mount(libc, "none", "/", None, MS_REC | MS_PRIVATE)
    cache = cache_dir()
    if cache.is_dir():
        _mount(libc, str(cache), str(work / "cache"), None, MS_BIND)
        _mount(libc, str(cache), str(work / "cache"), None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    for path in hide:
        if path.is_dir() and not str(work).startswith(str(path) + os.sep):
            _mount(libc, "tmpfs", str(path), "tmpfs", 0, "size=64m,mode=1777")
    _expose(libc, work, _needed_paths())


def _needed_paths() -> list[Path]:
    """What the kernel must read: the Python installation, the environment, the course package."""
    import fsl_utils

    return [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(fsl_utils.__file__).resolve().parents[1]]


def _expose(libc: ctypes.CDLL, work: Path, needed: list[Path]) -> None:
    """Make ``needed`` reachable for ``nobody`` when an ancestor is private (e.g. ``/root`` 0700,
    where pyenv installs Python): the ancestor is covered by an empty tmpfs into which only the
    needed folders are bind-mounted, so nothing else of it becomes visible."""
    blocked: dict[Path, list[Path]] = {}
    for path in needed:
        for ancestor in reversed(path.parents):
            if ancestor != Path("/") and not ancestor.stat().st_mode & 0o001:
                blocked.setdefault(ancestor, []).append(path)
                break
    for i, (ancestor, paths) in enumerate(blocked.items()):
        staging = work / f".stage{i}"
        staging.mkdir()
        _mount(libc, str(ancestor), str(staging), None, MS_BIND | MS_REC)
        _mount(libc, "tmpfs", str(ancestor), "tmpfs", 0, "size=1m,mode=0755")
        for path in paths:
            target = ancestor / path.relative_to(ancestor)
            target.mkdir(parents=True, exist_ok=True)
            _mount(libc, str(staging / path.relative_to(ancestor)), str(target), None, MS_BIND | MS_REC)
        _check(libc.umount2(str(staging).encode(), 2), f"umount {staging}")  # MNT_DETACH
        staging.rmdir()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    connection_file = Path(argv[0]).resolve()
    submission = Path.cwd()
    course = Path(os.environ.get("FSL_COURSE_ROOT") or submission.parents[3])
    base = Path(os.environ.get("FSL_SANDBOX_BASE") or tempfile.gettempdir()) / "work"
    work, conn = prepare(connection_file, submission, course, base)
    hide = [course / "solutions", course / "grading", connection_file.parent, Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")]
    isolate(work, course, [p for p in hide if not str(base).startswith(str(p) + os.sep)])
    _limits()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "JUPYTER_"))}
    env.update(HOME=str(work), FSL_CACHE_DIR=str(work / "cache"), FSL_COURSE_ROOT=str(work / "course"),
               MPLCONFIGDIR=str(work / ".matplotlib"), PYTHONDONTWRITEBYTECODE="1", TMPDIR=str(work))
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    os.chdir(work / "submission")
    os.execve(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", str(conn), "--HistoryManager.hist_file=:memory:"], env)


if __name__ == "__main__":
    main()
