"""A student's JupyterLab: nbgrader's instructor tools switched off, its student tools kept.

Students on a laptop install the course without nbgrader (``pip install -e .``), so their
JupyterLab has no nbgrader menu at all. Students on a JupyterHub need nbgrader for the
Assignment List (fetch, submit, feedback) and Validate; there the hub's image runs
``python -m fsl_utils.course.lab --student`` once, which switches off the Formgrader and
Create Assignment as nbgrader's documentation says (its "Installation" page: ``jupyter
labextension disable`` for the two lab plugins, and the formgrader server extension off) at the
given configuration level (``sys_prefix`` for an image's environment, ``user`` for one account).
``--instructor`` switches them back on.

Why not ``jupyter server extension disable nbgrader.server_extensions.formgrader``: with
nbgrader 0.9.6 that command's validation fails ("could not be found": the module has only the
legacy ``load_jupyter_server_extension``), it writes nothing and still exits 0. And a file in
``jupyter_server_config.d/`` (where that command writes) is only a fallback for extensions the
regular configuration does not name, so nbgrader's own ``jupyter_server_config.d/nbgrader.json``
enabling it would still win (measured: the formgrader kept answering). The setting is therefore
merged into the level's ``jupyter_server_config.json``, the regular configuration file
(``ServerApp.jpserver_extensions``); tests/test_browser.py checks that the formgrader's URL then
answers 404 while the Assignment List's still answers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

#: nbgrader's lab plugins for instructors, and its formgrader server extension.
INSTRUCTOR_LAB_PLUGINS = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment")
INSTRUCTOR_SERVER_EXTENSION = "nbgrader.server_extensions.formgrader"
LEVELS = ("user", "sys_prefix", "system")


def config_dir(level: str) -> Path:
    """Jupyter's configuration folder of ``level`` (``user``, ``sys_prefix`` or ``system``)."""
    from jupyter_core.paths import ENV_CONFIG_PATH, SYSTEM_CONFIG_PATH, jupyter_config_dir

    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return Path({"user": jupyter_config_dir(), "sys_prefix": ENV_CONFIG_PATH[0], "system": SYSTEM_CONFIG_PATH[0]}[level])


def configure(student: bool, level: str = "sys_prefix") -> None:
    """Switch nbgrader's instructor tools off (``student``) or on at ``level``.

    Raises:
        subprocess.CalledProcessError: ``jupyter labextension`` failed (its message is attached).
    """
    verb = "enable" if not student else "disable"
    for plugin in INSTRUCTOR_LAB_PLUGINS:
        subprocess.run([str(Path(sys.executable).parent / "jupyter"), "labextension", verb, f"--level={level}", plugin],
                       check=True, capture_output=True, text=True)
    path = config_dir(level) / "jupyter_server_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); fix or remove it, then run this again") from None
    config.setdefault("ServerApp", {}).setdefault("jpserver_extensions", {})[INSTRUCTOR_SERVER_EXTENSION] = not student
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fsl_utils.course.lab", description=__doc__.split("\n\n")[0])
    role = parser.add_mutually_exclusive_group(required=True)
    role.add_argument("--student", action="store_true", help="switch the Formgrader and Create Assignment off")
    role.add_argument("--instructor", action="store_true", help="switch them on again")
    parser.add_argument("--level", choices=LEVELS, default="sys_prefix", help="Jupyter configuration level (default: sys_prefix)")
    args = parser.parse_args(argv)
    configure(student=args.student, level=args.level)
    print(f"nbgrader's instructor tools {'off' if args.student else 'on'} ({args.level}); students keep Assignment List and Validate.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
