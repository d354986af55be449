"""Run the real nbgrader command line in the course directory (what the pipeline and the roster imports use)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def nbgrader(root: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``nbgrader <args>`` in the course directory ``root``; its log goes to stderr."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    # nbgrader runs the `alembic` script of its environment when it creates a gradebook.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    full_env = {**os.environ, "PATH": path, "FSL_COURSE_ROOT": str(root), **(env or {})}
    proc = subprocess.run(cmd, cwd=root, env=full_env, text=True, capture_output=True)
    sys.stderr.write(proc.stderr[-20000:])
    if check and proc.returncode != 0:
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed (exit {proc.returncode}); see the log above.")
    return proc
