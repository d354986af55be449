"""Every student kernel runs under bubblewrap (``bwrap``, Debian package ``bubblewrap``).

Why bubblewrap: it is the established tool for unprivileged sandboxes (Flatpak's), so the
grader needs no namespace code of its own and works both for an ordinary instructor account
(unprivileged user namespaces) and as root.

What a kernel sees (:func:`bwrap_argv`): read-only binds of exactly what it needs — ``/usr``
and the system library links, a few files of ``/etc`` (dynamic linker cache, time zone), the
Python installation, the environment (venv), the ``fsl_utils`` package, the dataset folder and
the dataset cache (the grader resolves both and passes them as ``FSL_DATA_DIR`` /
``FSL_CACHE_DIR``) — plus the course's forbidden code replaced by stubs (:mod:`.stubs`), its own
socket folder, and a private size-limited tmpfs home holding a copy of the submission's files.
No network (a new network namespace), a new PID namespace, IPC and UTS namespaces, a new
session, ``--die-with-parent``, an allow-listed environment (:data:`.kernelspec.ENV_ALLOWED`).

Resource limits (:func:`.kernelspec.limits`) are per submission: memory (address space), CPU seconds and file size are
per-process limits, the process limit counts the processes of one submission only —

* as an ordinary user (``mode "user"``), the kernel gets a new user namespace (``--unshare-user
  --disable-userns``); ``RLIMIT_NPROC`` is set inside it, where the kernel counts the
  processes of that namespace;
* as root (``mode "root"``), bwrap runs privileged and the kernel runs under a user id of its
  own (``FSL_SANDBOX_UID``, one per submission, never a real account): its processes are the
  only ones of that user id. (Root's own processes are exempt from ``RLIMIT_NPROC``, so the
  kernel must not stay root.) The sandbox's process 1 stays root with ``CAP_SETUID`` and
  ``CAP_SETGID`` only, to start the kernel and to die with bwrap (see :data:`_INNER`).

``python .../bwrap.py CONNECTION_FILE`` is the kernelspec's argv (:func:`.kernelspec.write_kernelspec`): it
reads the batch's profile (``$FSL_SANDBOX_PROFILE``, written by :func:`.kernelspec.write_profile`) and
execs bwrap. :func:`.isolation.preflight` starts one sandbox before grading and raises
:class:`SandboxUnavailable` with the reason when it cannot (the pipeline then stops: fail closed).
This file runs as a script in the kernel's launcher: only the standard library at module level.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

KERNEL_NAME = "fsl-sandbox"
HOME = "/home/student"
#: First user id of root mode's per-submission users (``FSL_SANDBOX_UID_BASE``); ids above it are
#: assumed unused by real accounts.
UID_BASE = 2_000_000_000
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "hosts", "fonts")
_SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot start on this machine; the message says why and what to do."""


def _parents(path: str) -> list[str]:
    return [str(p) for p in reversed(Path(path).parents) if str(p) != "/"]


def bwrap_argv(profile: dict[str, Any], command: list[str], *, uid: int | None, rw_binds: list[str] = (),
               files: list[tuple[int, str]] = (), env: dict[str, str] | None = None) -> list[str]:
    """The bwrap command line running ``command`` in the sandbox.

    Args:
        uid: root mode: the submission's own user id (the kernel drops to it inside).
        rw_binds: folders bound writable at the same path (the kernel's socket folder).
        files: ``(fd, path in the sandbox)``: files copied into the sandbox (the submission).
        env: the kernel's complete environment.
    """
    lim = profile["limits"]
    argv = [profile["bwrap"], "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--as-pid-1", "--hostname", "grading", "--die-with-parent", "--new-session", "--clearenv"]
    if profile["mode"] == "user":
        argv += ["--unshare-user", "--disable-userns", "--uid", "1000", "--gid", "1000"]
    else:
        # bwrap run by root keeps all of root's capabilities unless told otherwise (containers/bubblewrap#561):
        # process 1 keeps only the two it needs to start the kernel under `uid`; the kernel has none
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    for name in _SYSTEM_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), str(host)]
    disk = str(lim["FSL_SANDBOX_DISK_MB"] * 2**20)
    argv += ["--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev", "--perms", "0755", "--dir", "/etc",
             "--perms", "0755", "--dir", "/home"]
    # the private, size-limited writable folders first: what is bound below may lie inside them (a course under /tmp)
    argv += ["--perms", "1777", "--size", disk, "--tmpfs", "/tmp", "--perms", "1777", "--size", disk, "--tmpfs", "/dev/shm",
             "--perms", "0777", "--size", disk, "--tmpfs", HOME]
    for name in _ETC:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    made: set[str] = {"/usr", "/proc", "/dev", "/etc", "/home", "/tmp", HOME}
    for path in [*profile["ro_binds"], *rw_binds]:
        for parent in _parents(path):  # readable parents even where the host's are private (/root)
            if parent not in made:
                argv += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        made.add(path)
        argv += ["--bind" if path in rw_binds else "--ro-bind", path, path]
    for folder in profile["empty_dirs"]:
        argv += ["--perms", "0555", "--tmpfs", folder]
    for stub, target in profile["overlays"]:
        argv += ["--ro-bind", stub, target]
    for sub in ("submission", ".config", "results"):
        argv += ["--perms", "0777", "--dir", f"{HOME}/{sub}"]
    for fd, dest in files:
        for parent in _parents(dest):
            if parent not in made and parent.startswith(f"{HOME}/submission/"):
                argv += ["--perms", "0777", "--dir", parent]
                made.add(parent)
        argv += ["--perms", "0666", "--file", str(fd), dest]
    for key, value in (env or {}).items():
        argv += ["--setenv", key, value]
    argv += ["--chdir", f"{HOME}/submission", "--"]
    inner = [sys.executable if profile.get("python") is None else profile["python"], "-I", "-S", "-c", _INNER,
             json.dumps({"nproc": lim["FSL_SANDBOX_NPROC"], "uid": uid, "nice": lim["FSL_SANDBOX_NICE"]})]
    return argv + inner + command


#: Process 1 of the sandbox (``--as-pid-1``): sets the process limit (counted in the sandbox only)
#: and the priority (the lines of :func:`.kernelspec.lower_priority`: this runs without ``fsl_utils``), starts
#: the kernel under the submission's own user id (root mode) and reaps every process that ends
#: until the kernel does; then the sandbox ends, and every process left with it.
#: Process 1 itself keeps bwrap's user id: ``--die-with-parent`` kills it when bwrap ends (the grader
#: kills the bwrap of a kernel that does not shut down), and with it the whole PID namespace. Under
#: the submission's user id it would outlive bwrap, kernel and all: a change of user id clears the
#: parent-death signal (prctl(2)), and setting it again does not help, since bwrap, whose capabilities
#: are dropped, may not signal another user's process.
#: (bwrap's own process 1 is not used: the kernel's CPU time would not reach the grader's rusage.)
_INNER = """
import json, os, resource, signal, sys, time
cfg = json.loads(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NPROC, (cfg["nproc"], cfg["nproc"]))
for _ in range(20 if cfg["nice"] > 0 else 0):
    os.setpriority(os.PRIO_PROCESS, 0, max(cfg["nice"], os.getpriority(os.PRIO_PROCESS, 0)))
    try:
        with open("/proc/self/autogroup") as f:
            if int(f.read().split()[-1]) >= cfg["nice"]:
                break
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(cfg["nice"]))
        break
    except FileNotFoundError:
        break
    except OSError:
        time.sleep(0.05)
kernel = os.fork()
if kernel == 0:
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if cfg["uid"] is not None:
            os.setgroups([])
            os.setresgid(cfg["uid"], cfg["uid"], cfg["uid"])
            os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
        os.execv(sys.argv[2], sys.argv[2:])
    except BaseException as error:
        print("sandbox: cannot start the kernel:", error, file=sys.stderr, flush=True)
    os._exit(127)
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        os._exit(1)
    except InterruptedError:
        continue
    if pid == kernel:
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)
"""


def set_limits(lim: dict[str, int]) -> None:
    """Apply :func:`limits` to this process (inherited by the kernel): memory, CPU seconds, file size, no core files."""
    import resource

    mb = 2**20
    resource.setrlimit(resource.RLIMIT_AS, (lim["FSL_SANDBOX_MEMORY_MB"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (lim["FSL_SANDBOX_CPU_SECONDS"], lim["FSL_SANDBOX_CPU_SECONDS"] + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (lim["FSL_SANDBOX_FILE_MB"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def kernel_env(profile: dict[str, Any], source: dict[str, str]) -> dict[str, str]:
    """The kernel's environment: the profile's fixed values plus the allow-listed names ``source`` has."""
    env = dict(profile["env"])
    env.update({k: source[k] for k in profile["pass_env"] if k in source})
    return env


def submission_files(folder: Path) -> list[tuple[int, str]]:
    """Open every regular file of the submission (not notebooks) for copying into the sandbox.

    The grader's intake (:mod:`.intake`) already refused links and special files; opening with
    ``O_NOFOLLOW`` keeps it that way even if the folder changed since."""
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.endswith(".ipynb"):
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            import stat

            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                continue
            os.set_inheritable(fd, True)
            files.append((fd, f"{HOME}/submission/{path.relative_to(folder).as_posix()}"))
    return files


def launch(connection_file: str) -> None:
    """The kernelspec's entry point: exec bwrap running ``ipykernel`` on ``connection_file``.

    Started by nbgrader in the submission's autograded folder, with ``FSL_SANDBOX_PROFILE``,
    ``FSL_SANDBOX_IPC`` (this kernel's socket folder) and, as root, ``FSL_SANDBOX_UID``."""
    profile = json.loads(Path(os.environ["FSL_SANDBOX_PROFILE"]).read_text())
    if profile["mode"] == "none":  # --no-sandbox: the allow-listed environment and the limits, nothing else
        home = Path(os.environ["FSL_SANDBOX_IPC"]).parent / "home"
        home.mkdir(exist_ok=True)
        env = {**kernel_env(profile, os.environ), "HOME": str(home), "TMPDIR": str(home), "MPLCONFIGDIR": str(home / ".matplotlib"),
               "FSL_RESULTS_DIR": str(home / "results")}
        set_limits(profile["limits"])
        os.execve(profile["python"], [profile["python"], "-s", "-m", "ipykernel_launcher", "-f", connection_file,
                                      "--HistoryManager.hist_file=:memory:"], env)
    conn_fd = os.open(connection_file, os.O_RDONLY)
    os.set_inheritable(conn_fd, True)
    files = submission_files(Path.cwd()) + [(conn_fd, f"{HOME}/.connection.json")]
    uid = int(os.environ["FSL_SANDBOX_UID"]) if profile["mode"] == "root" else None
    command = [profile["python"], "-s", "-m", "ipykernel_launcher", "-f", f"{HOME}/.connection.json", "--HistoryManager.hist_file=:memory:"]
    argv = bwrap_argv(profile, command, uid=uid, rw_binds=[os.environ["FSL_SANDBOX_IPC"]], files=files, env=kernel_env(profile, os.environ))
    set_limits(profile["limits"])
    os.execv(argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0]) or argv[0], argv)


if __name__ == "__main__":
    launch(sys.argv[1])
