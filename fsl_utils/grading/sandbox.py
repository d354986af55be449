"""An isolated Jupyter kernel for autograding: ``python .../fsl_utils/grading/sandbox.py CONN``.

Used as the argv of the ``fsl-sandbox`` kernelspec written by :func:`write_kernelspec`.
Started by nbgrader (as root) in the submission's autograded folder, it

1. copies that folder (without notebooks) into a fresh private working directory, so the
   student's writes never reach the course;
2. enters new mount and network namespaces: no network interface is up (the kernel talks
   to nbgrader over Unix sockets); the course directory (sources, hidden tests, ``.git``,
   gradebook, other students' submissions) and the repository of ``fsl_utils`` are replaced
   by empty tmpfs mounts holding only the Python environment and the ``fsl_utils``
   package; ``/tmp``, ``/var/tmp``, ``/dev/shm`` and Jupyter's runtime folder are empty
   tmpfs mounts; the dataset cache is bind-mounted read-only. Hidden tests are not needed
   in the kernel: the grader runs them (:mod:`.remote`);
3. forks: the kernel is process 1 of a new PID namespace (it sees no other process, and
   every process it starts dies with it) under a supervisor that stays outside;
4. sets resource limits (address space, CPU seconds, file size, processes);
5. drops to the unprivileged user ``nobody`` and execs ``ipykernel``.

Requires Linux and root (CI and the instructor's grading machine); :func:`available` says
whether this machine can do it.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
from pathlib import Path

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID = 0x00020000, 0x40000000, 0x20000000
PR_SET_PDEATHSIG = 1
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
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
    argv = [sys.executable, str(Path(__file__).resolve()), "{connection_file}"]  # a script: no torch import here
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


def prepare(connection_file: Path, submission: Path, base: Path) -> tuple[Path, Path]:
    """Copy the submission (without notebooks) and the connection file into a private folder.

    Returns:
        (working directory of the kernel, its connection file).
    """
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o711)  # kernels (all user nobody) cannot list each other's folders
    work = Path(tempfile.mkdtemp(prefix="kernel-", dir=base))
    shutil.copytree(submission, work / "submission", ignore=shutil.ignore_patterns("*.ipynb"))
    conn = work / "connection.json"
    shutil.copy(connection_file, conn)
    (work / "cache").mkdir()
    _chown_tree(work)
    os.chmod(work, 0o700)
    return work, conn


def isolate(work: Path, hide: list[Path], trees: list[Path]) -> None:
    """New mount + network namespaces; a read-only dataset cache in ``work/cache``; every
    path in ``hide`` replaced by an empty tmpfs; every folder in ``trees`` (the course, the
    repository of ``fsl_utils``) replaced by an empty tmpfs into which only what the kernel
    needs (:func:`_needed_paths`) is bind-mounted back."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID), "unshare")
    _mount(libc, "none", "/", None, MS_REC | MS_PRIVATE)
    cache = _cache_dir()
    if cache.is_dir():
        _mount(libc, str(cache), str(work / "cache"), None, MS_BIND)
        _mount(libc, str(cache), str(work / "cache"), None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    needed = _needed_paths()
    covered: dict[Path, list[Path]] = {}
    for path in hide:
        if path.is_dir() and not _inside(work, path):
            inner = [p for p in needed if _inside(p, path)]
            if inner:  # e.g. a course cloned under /tmp: hide all of it but the environment and the package
                covered[path] = inner
            else:
                _mount(libc, "tmpfs", str(path), "tmpfs", 0, "size=64m,mode=1777")
    for tree in dict.fromkeys(t.resolve() for t in trees):
        if tree.is_dir() and tree != Path("/") and not _inside(work, tree) and not any(_inside(tree, t) or _inside(t, tree) for t in covered):
            covered[tree] = [p for p in needed if _inside(p, tree)]
    for path in needed:  # private ancestors (e.g. /root, 0700, where pyenv installs Python)
        for ancestor in reversed(path.parents):
            if ancestor != Path("/") and not ancestor.stat().st_mode & 0o001 and not any(_inside(ancestor, t) for t in covered):
                covered.setdefault(ancestor, []).append(path)
                break
    _cover(libc, work, covered)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _package() -> Path:
    """The ``fsl_utils`` folder (found from this file: importing the package loads torch)."""
    return Path(__file__).resolve().parents[1]


def _cache_dir() -> Path:
    """``fsl_utils.data.cache_dir()``, loaded from its file for the same reason."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_fsl_paths", _package() / "data" / "paths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.cache_dir()


def _needed_paths() -> list[Path]:
    """What the kernel must read: the Python installation, the environment, the package."""
    return [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), _package()]


def _cover(libc: ctypes.CDLL, work: Path, covered: dict[Path, list[Path]]) -> None:
    """Replace each folder by an empty tmpfs holding bind mounts of only the listed paths
    inside it, so nothing else of the folder is visible."""
    for i, (folder, paths) in enumerate(covered.items()):
        staging = work / f".stage{i}"
        staging.mkdir()
        _mount(libc, str(folder), str(staging), None, MS_BIND | MS_REC)
        _mount(libc, "tmpfs", str(folder), "tmpfs", 0, "size=1m,mode=0755")
        for path in paths:
            target = folder / path.relative_to(folder)
            target.mkdir(parents=True, exist_ok=True)
            _mount(libc, str(staging / path.relative_to(folder)), str(target), None, MS_BIND | MS_REC)
        _check(libc.umount2(str(staging).encode(), 2), f"umount {staging}")  # MNT_DETACH
        staging.rmdir()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    connection_file = Path(argv[0]).resolve()
    submission = Path.cwd()
    course = Path(os.environ.get("FSL_COURSE_ROOT") or submission.parents[3])
    base = Path(os.environ.get("FSL_SANDBOX_BASE") or tempfile.gettempdir()) / "work"
    work, conn = prepare(connection_file, submission, base)

    hide = [connection_file.parent, Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")]
    grading_folder = base.parent  # kernel sockets and this kernel's work folder
    if grading_folder.parent != Path("/"):  # e.g. /run: other grading runs' folders, services
        hide += [p for p in grading_folder.parent.iterdir() if p.is_dir() and not p.is_symlink() and p != grading_folder]
    isolate(work, hide, trees=[course, _package().parent])
    pid = os.fork()  # the child is process 1 of the new PID namespace
    if pid:
        _supervise(pid)
    libc = _libc()
    _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # only this namespace's processes
    _limits()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "JUPYTER_"))}
    env.update(HOME=str(work), FSL_CACHE_DIR=str(work / "cache"), FSL_COURSE_ROOT=str(work / "course"),
               MPLCONFIGDIR=str(work / ".matplotlib"), PYTHONDONTWRITEBYTECODE="1", TMPDIR=str(work))
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")  # dies with the supervisor
    os.chdir(work / "submission")
    os.execve(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", str(conn), "--HistoryManager.hist_file=:memory:"], env)


def _supervise(pid: int) -> None:
    """The kernel's parent (root, outside the namespace): wait for it and exit like it.

    Jupyter signals the whole process group: SIGINT (interrupt) reaches the kernel
    directly, so it is ignored here; SIGTERM/SIGKILL end this process, and the kernel
    dies with it (``PR_SET_PDEATHSIG``), and with the kernel every process it started
    (the end of a PID namespace's process 1 kills the namespace).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


if __name__ == "__main__":
    main()
