"""JupyterHub for the course on one Linux machine: local Unix accounts, one single-user server
per account started as that user (LocalProcessSpawner), nbgrader's file-system exchange.

Run as root (the spawner switches to each user):

    jupyterhub -f deploy/local/jupyterhub_config.py

with the course's Python environment (``pip install -e ".[instructor]" jupyterhub``) and
``configurable-http-proxy`` (``npm install -g configurable-http-proxy``). tests/test_hub.py runs
exactly this file (ports and folders overridden on its command line) with an instructor and two
students; deploy/README.md lists what that test checks and what this setup needs from the
machine (accounts with private homes, the exchange folder, the instructor's checkout).

Settings from the environment:
  FSL_HUB_INSTRUCTORS   space-separated accounts that grade (default: the account "instructor")
  FSL_HUB_ROSTER        the course's roster CSV (``make roster``'s file); its ``id`` column are
                        the students allowed to log in (default /srv/fsl-course/students.csv)
  FSL_HUB_JUPYTER_CONFIG  the folder with the shared nbgrader_config.py (default /etc/jupyter,
                        where etc-jupyter/nbgrader_config.py belongs)
  FSL_DATA_DIR          the read-only shared datasets (default /srv/fsl-course/data)
  FSL_EXCHANGE_ROOT     nbgrader's exchange folder, if not /srv/nbgrader/exchange
  FSL_HUB_SERVICE_TOKEN optional: an API token for a "course-admin" service that may manage
                        users, servers and tokens (scripts, the test)
"""

import csv
import os
import sys

c = get_config()  # noqa: F821 (injected by JupyterHub)

HERE = os.path.dirname(os.path.abspath(__file__))
INSTRUCTORS = set(os.environ.get("FSL_HUB_INSTRUCTORS", "instructor").split())
ROSTER = os.environ.get("FSL_HUB_ROSTER", "/srv/fsl-course/students.csv")
SHARED_CONFIG = os.environ.get("FSL_HUB_JUPYTER_CONFIG", "/etc/jupyter")
DATA = os.environ.get("FSL_DATA_DIR", "/srv/fsl-course/data")


def _students(path: str) -> set:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return {row["id"].strip() for row in csv.DictReader(f) if row.get("id", "").strip()}


STUDENTS = _students(ROSTER)

# Who may log in: PAM (the accounts' own passwords), restricted to the roster and the instructors.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = STUDENTS | INSTRUCTORS
c.Authenticator.admin_users = set()  # instructors need no hub admin rights to grade

# One server per account, as that account, in its home folder, from the hub's Python environment.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"


def _jupyter_config_path(spawner) -> str:
    """Students' servers also read students/: no formgrader, no Create Assignment (as `python -m fsl_utils.course.lab --student`)."""
    shared = [SHARED_CONFIG]
    if spawner.user.name not in INSTRUCTORS:
        shared.insert(0, os.path.join(HERE, "students"))
    return os.pathsep.join(shared)


c.Spawner.environment = {
    "JUPYTER_CONFIG_PATH": _jupyter_config_path,
    "FSL_DATA_DIR": DATA,
    "FSL_CACHE_DIR": lambda spawner: os.path.join(os.path.expanduser(f"~{spawner.user.name}"), ".cache", "fsl-course"),
}
if "FSL_EXCHANGE_ROOT" in os.environ:  # read by etc-jupyter/nbgrader_config.py (default /srv/nbgrader/exchange)
    c.Spawner.environment["FSL_EXCHANGE_ROOT"] = os.environ["FSL_EXCHANGE_ROOT"]

token = os.environ.get("FSL_HUB_SERVICE_TOKEN")
if token:
    c.JupyterHub.services = [{"name": "course-admin", "api_token": token}]
    c.JupyterHub.load_roles = [
        {"name": "course-admin", "services": ["course-admin"], "scopes": ["admin:users", "admin:servers", "tokens", "list:users"]},
    ]
