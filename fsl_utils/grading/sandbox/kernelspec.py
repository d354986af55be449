"""The grader's side of the sandbox: the batch's profile and kernelspec, and the kernels' limits.

:func:`write_profile` writes what every kernel of a batch may read (JSON, read by
:func:`.bwrap.launch`); :func:`write_kernelspec` registers the kernel whose argv is
``python -I .../bwrap.py CONNECTION_FILE``. :func:`limits` are the per-submission resource limits
(:data:`DEFAULTS`, each overridden by its environment variable), applied by :mod:`.bwrap`.

``FSL_SANDBOX_NICE`` (default 0) lowers the scheduling priority of the kernels and of the batch's
nbgrader processes (:func:`lower_priority`), so that grading takes only the CPU that other work
on the machine leaves idle. Each runs in a session of its own, and Linux weighs sessions against
each other (autogroups) before it looks at a process's nice value, so the session's autogroup
gets the nice value too.

Kept apart from :mod:`.bwrap`, which runs as a script in the kernel's launcher (standard library
only, nothing of this module).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from . import bwrap
from .bwrap import HOME, KERNEL_NAME

#: Resource limits (environment variables override them).
DEFAULTS = {"FSL_SANDBOX_MEMORY_MB": 8192, "FSL_SANDBOX_CPU_SECONDS": 900, "FSL_SANDBOX_FILE_MB": 256, "FSL_SANDBOX_NPROC": 256,
            "FSL_SANDBOX_DISK_MB": 512, "FSL_SANDBOX_NICE": 0}
#: The thread counts of OpenMP (PyTorch), MKL and OpenBLAS (NumPy, scikit-learn): the profile sets
#: them to the batch's threads per kernel.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Environment variables the grader passes to the kernel when it has them; nothing else of its
#: environment reaches student code (``FSL_SANDBOX_ENV``: more names, comma-separated).
ENV_ALLOWED = ("NBGRADER_EXECUTION", "FSL_FAST", "FSL_DEVICE", *THREAD_VARIABLES)
#: glibc malloc settings of every kernel: no block gets a mapping of its own (``mmap_max=0``) and
#: the heap is not trimmed, so the large tensors of each forward pass reuse memory instead of being
#: mapped, zeroed and unmapped each time. Embedding the 3,200 images of the ProtoNet weights tests
#: (Conv-4, one thread, batches of 500) took 5.5 s (2.9 user + 2.6 system CPU-s) by default and
#: 2.5 s (2.3 + 0.2) with it. Freed memory stays with the process, and the address-space limit
#: (``FSL_SANDBOX_MEMORY_MB``) still applies to the heap. The test session sets the same (conftest.py).
MALLOC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"


def limits() -> dict[str, int]:
    """The resource limits of a kernel: :data:`DEFAULTS`, each overridden by its environment variable."""
    return {k: int(os.environ.get(k, v)) for k, v in DEFAULTS.items()}


def lower_priority(nice: int) -> None:
    """Lower this process's priority and its session's (autogroup's) to nice value ``nice``; either
    keeps a higher nice value it already has (a new session's autogroup starts at 0).

    Without ``CONFIG_SCHED_AUTOGROUP`` there is no ``/proc/self/autogroup`` and the nice value
    alone applies; the kernel accepts an autogroup change every 100 ms only, hence the retries."""
    if nice <= 0:
        return
    import time

    os.setpriority(os.PRIO_PROCESS, 0, max(nice, os.getpriority(os.PRIO_PROCESS, 0)))
    group = Path("/proc/self/autogroup")
    for _ in range(20):
        try:
            if int(group.read_text().split()[-1]) < nice:
                group.write_text(str(nice))
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)


def write_kernelspec(folder: Path, profile: Path) -> Path:
    """Write ``<folder>/kernels/fsl-sandbox/kernel.json``; put ``folder`` on ``JUPYTER_PATH``.

    Interrupts travel as messages (the kernel is in a session of its own, out of reach of the
    launcher's process-group signals)."""
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-I", str(Path(bwrap.__file__).resolve()), "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python (grading sandbox)", "language": "python",
                                                  "interrupt_mode": "message", "env": {"FSL_SANDBOX_PROFILE": str(profile)}}))
    return spec


def write_profile(path: Path, *, data_dir: Path, cache_dir: Path, overlays: list[tuple[str, str]] = (),
                  empty_dirs: list[str] = (), threads: int = 1) -> dict[str, Any]:
    """What every kernel of a batch may read, as JSON at ``path`` (read by :func:`.bwrap.launch`).

    Args:
        data_dir, cache_dir: the grader's dataset folder and cache (bound read-only at the same paths).
        overlays: ``(stub file, module file)`` pairs (:mod:`.stubs`).
        empty_dirs: folders shown empty (hidden packages, byte-code caches of stubbed modules).
    """
    package = Path(__file__).resolve().parents[2]  # fsl_utils/
    # The interpreter as the kernels call it inside: ".." collapsed, because the folders it passes
    # through (``tests/..`` when started as ``../.venv/bin/python``) need not exist in the sandbox;
    # not resolved, because a venv's python is a link whose own path selects the venv.
    python = os.path.normpath(os.path.abspath(sys.executable))
    binds = [str(Path(p).resolve()) for p in (sys.base_prefix, sys.prefix, package)]
    binds += [str(p) for p in (Path(data_dir).resolve(), Path(cache_dir).resolve()) if p.is_dir()]
    env = {"PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": HOME, "USER": "student", "LOGNAME": "student",
           "LANG": "C.UTF-8", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "MPLCONFIGDIR": f"{HOME}/.config/matplotlib",
           "FSL_RESULTS_DIR": f"{HOME}/results", "FSL_DATA_DIR": str(Path(data_dir).resolve()), "FSL_CACHE_DIR": str(Path(cache_dir).resolve()),
           "GLIBC_TUNABLES": MALLOC_TUNABLES, **dict.fromkeys(THREAD_VARIABLES, str(threads))}
    extra = [n.strip() for n in os.environ.get("FSL_SANDBOX_ENV", "").split(",") if n.strip()]
    passed = [n for n in (*ENV_ALLOWED, *extra) if n not in env]
    profile = {
        "bwrap": shutil.which("bwrap") or "bwrap", "mode": "root" if os.geteuid() == 0 else "user",
        "python": python, "ro_binds": sorted(set(binds)), "overlays": [list(o) for o in overlays],
        "empty_dirs": sorted(set(empty_dirs)), "env": env, "pass_env": passed, "limits": limits(),
    }
    path.write_text(json.dumps(profile, indent=1))
    os.chmod(path, 0o644)
    return profile
