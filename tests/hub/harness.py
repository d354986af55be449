"""A real JupyterHub on localhost for tests/test_hub.py: local Unix accounts the test creates,
deploy/local/jupyterhub_config.py as committed (ports and folders overridden on the command
line), configurable-http-proxy from npm, LocalProcessSpawner servers running as those accounts.

The hub runs in its own mount namespace (bubblewrap, as root): the folder that holds this
checkout (with any sibling checkouts, whose ``solutions/`` hold the hidden tests), any other copy
of the course outside ``/home`` (found by a walk as root) and ``/tmp`` are empty there, except the Python environment with the course package (``fsl_utils``) installed
in it, the datasets (read-only) and the hub's own folder. That is the machine a real hub runs on: the course image and the instructor's course
directory, no developer checkouts. Commands "as a user" run inside that namespace through
``nsenter`` + ``runuser`` (what the user would type in a terminal of their server).

Everything it creates (accounts named ``*-t24``, their homes, the hub's folder, its processes)
is removed afterwards; processes are stopped by their ids.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "local"
SUFFIX = "-t24"  # every account this test creates ends so (other tests use other names)
TOOLS = ("useradd", "userdel", "runuser", "nsenter", "bwrap")


def missing_requirements() -> str | None:
    """Why the hub test cannot run here, or None."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "it needs Linux and root (it creates Unix accounts and runs JupyterHub's LocalProcessSpawner)"
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return f"the PyPI package jupyterhub is not installed in {sys.prefix} (pip install jupyterhub; .ci/run installs it)"
    if shutil.which("configurable-http-proxy") is None:
        return "configurable-http-proxy is not on PATH (npm install -g configurable-http-proxy; .ci/run installs it)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found (Debian: apt-get install -y passwd util-linux bubblewrap)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- accounts ----------------------------------------------------------------------------------------
def _pids_of(uid: int) -> list[int]:
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if proc.stat().st_uid == uid:
                pids.append(int(proc.name))
    return pids


def remove_account(name: str) -> None:
    """Stop the account's processes (by id) and delete it with its home."""
    assert name.endswith(SUFFIX), name
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _pids_of(uid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(0.5)
    subprocess.run(["userdel", "-r", name], capture_output=True)


def create_account(name: str) -> Path:
    """A fresh account with a private home (HOME_MODE 0700, as deploy/README.md asks); returns the home."""
    remove_account(name)  # left over by an interrupted run
    subprocess.run(["useradd", "-m", "-K", "HOME_MODE=0700", "-s", "/bin/bash", name], check=True, capture_output=True)
    home = Path(pwd.getpwnam(name).pw_dir)
    assert (home.stat().st_mode & 0o777) == 0o700, f"{home} is not private"
    return home


def chown_tree(path: Path, name: str) -> None:
    entry = pwd.getpwnam(name)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for f in filenames:
            os.chown(os.path.join(dirpath, f), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


# -- the hub -----------------------------------------------------------------------------------------
@dataclass
class Hub:
    url: str
    token: str  # the course-admin service's token
    folder: Path
    pid: int  # the hub process, inside its mount namespace
    env: dict[str, str]  # what the hub's servers get besides their own settings
    user_tokens: dict[str, str] = field(default_factory=dict)

    # the REST API ---------------------------------------------------------------------------
    def request(self, method: str, path: str, token: str | None = None, body: object = None, form: dict | None = None,
                timeout: float = 120) -> tuple[int, bytes]:
        headers = {"Authorization": f"token {token or self.token}"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def json(self, method: str, path: str, token: str | None = None, **kw) -> object:
        status, data = self.request(method, path, token, **kw)
        if status >= 400:
            raise AssertionError(f"{method} {path}: HTTP {status}: {data[:2000]!r}\nhub log: {self.folder / 'hub.log'}")
        return json.loads(data) if data else None

    def token_for(self, user: str) -> str:
        """An API token of ``user`` (created by the course-admin service), as the user's browser session has."""
        if user not in self.user_tokens:
            self.user_tokens[user] = self.json("POST", f"/hub/api/users/{user}/tokens", body={"note": "tests/test_hub.py", "expires_in": 3600})["token"]
        return self.user_tokens[user]

    def start_servers(self, users: list[str], timeout: float = 180) -> float:
        """Start every user's server and wait until all are ready; returns the seconds it took."""
        start = time.perf_counter()
        for user in users:
            status, data = self.request("POST", f"/hub/api/users/{user}/server")
            assert status in (201, 202, 400), f"starting {user}'s server: HTTP {status} {data[:500]!r}"
        deadline = time.monotonic() + timeout
        pending = set(users)
        while pending:
            for user in sorted(pending):
                model = self.json("GET", f"/hub/api/users/{user}")
                if model.get("servers", {}).get("", {}).get("ready"):
                    pending.discard(user)
            if pending and time.monotonic() > deadline:
                raise AssertionError(f"servers of {sorted(pending)} not ready after {timeout:.0f} s; hub log:\n{self.log()}")
            time.sleep(0.5)
        return time.perf_counter() - start

    def server(self, user: str, method: str, path: str, **kw) -> tuple[int, bytes]:
        """A request to ``user``'s own server through the hub's proxy, with ``user``'s token."""
        return self.request(method, f"/user/{user}{path}", token=self.token_for(user), **kw)

    def log(self) -> str:
        return (self.folder / "hub.log").read_text(errors="replace")[-6000:]

    # commands inside the hub's namespace -----------------------------------------------------
    def run_as(self, user: str, command: str, timeout: float = 900, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``bash -c command`` as ``user`` in the hub's mount namespace, in the user's home, with the
        environment the user's server gets."""
        entry = pwd.getpwnam(user)
        full = {"HOME": entry.pw_dir, "USER": user, "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8", **self.env, "FSL_CACHE_DIR": f"{entry.pw_dir}/.cache/fsl-course", **(env or {})}
        args = ["nsenter", "-t", str(self.pid), "-m", "--", "runuser", "-u", user, "--", "env", "-i",
                *(f"{k}={v}" for k, v in full.items()), "bash", "-c", f"cd && {command}"]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"as {user}: `{command}` failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        return proc


SYSTEM_FOLDERS = ("/", "/home", "/tmp", "/root", "/srv", "/opt", "/usr", "/var")


def _folder_to_hide(checkout: Path) -> Path:
    """The folder holding ``checkout`` (with its siblings, e.g. other worktrees made later), or the
    checkout itself when that folder is a system one."""
    return checkout.parent if str(checkout.parent) not in SYSTEM_FOLDERS else checkout


def _hidden_folders() -> list[Path]:
    """The folders the hub must not see: the one holding this checkout (its siblings too), or, when
    that is a system folder, the checkout and the checkout its git objects live in."""
    if ROOT.parent != _folder_to_hide(ROOT):
        return [ROOT.parent]
    hidden = [ROOT]
    common = subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if common:
        main = (ROOT / common).resolve().parent
        if main != ROOT:
            hidden.append(main)
    return hidden


def _other_checkouts(skip: list[Path]) -> list[Path]:
    """Copies of this course elsewhere on the machine (developer clones, CI workspaces: a folder
    with ``solutions/<assignment>/hidden_tests.py``), outside ``skip``. A real hub machine holds
    none (deploy/README.md, step 2, says to keep them private); the hub's namespace hides them so
    that the student's search of the whole machine checks the deployment, not this machine's
    other work. Found by walking the file system as root, so a copy hidden this way is still
    searched for by the student's walk if this scan missed it."""
    found: list[Path] = []
    pruned = {"/proc", "/sys", "/dev", "/run", "/tmp", *map(str, skip)}
    for folder, dirs, _files in os.walk("/"):
        if folder in pruned:
            dirs[:] = []
            continue
        if "solutions" in dirs and any(Path(folder, "solutions").glob("*/hidden_tests.py")):
            found.append(Path(folder))
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if d not in (".git", "node_modules", "__pycache__")]
    return found


def _mounts(hidden: list[Path], shown: list[Path]) -> list[str]:
    """bubblewrap arguments: each of ``hidden`` an empty tmpfs, then each of ``shown`` bound back
    read-only (with world-traversable folders leading to it)."""
    args: list[str] = []
    for folder in hidden:
        args += ["--tmpfs", str(folder)]
    for path in shown:
        above = [p for p in reversed(path.parents) if any(h in p.parents for h in hidden)]
        for p in above:
            args += ["--perms", "0755", "--dir", str(p)]
        args += ["--ro-bind", str(path), str(path)]
    return args


@contextlib.contextmanager
def jupyterhub(instructors: list[str], roster: Path, data_dir: Path, environ: Mapping[str, str], timeout: float = 120) -> Iterator[Hub]:
    """Run deploy/local/jupyterhub_config.py as root in its own mount namespace, in ``environ``
    with the hub's settings added; stop it on exit."""
    folder = Path(tempfile.mkdtemp(prefix="fsl-hub-t24-"))
    os.chmod(folder, 0o755)
    (folder / "state").mkdir(mode=0o700)
    exchange = folder / "exchange"
    exchange.mkdir()
    os.chmod(exchange, 0o1777)  # deploy/local/etc-jupyter/nbgrader_config.py: chmod 1777
    shutil.copytree(DEPLOY / "etc-jupyter", folder / "etc-jupyter")
    shutil.copy(roster, folder / "students.csv")
    port, hub_port, api_port, token = _free_port(), _free_port(), _free_port(), secrets.token_hex(24)
    env_for_servers = {"JUPYTER_CONFIG_PATH": str(folder / "etc-jupyter"), "FSL_EXCHANGE_ROOT": str(exchange), "FSL_DATA_DIR": str(data_dir)}
    hub_env = {**environ, "FSL_HUB_INSTRUCTORS": " ".join(instructors), "FSL_HUB_ROSTER": str(folder / "students.csv"),
               "FSL_HUB_JUPYTER_CONFIG": str(folder / "etc-jupyter"), "FSL_EXCHANGE_ROOT": str(exchange), "FSL_DATA_DIR": str(data_dir),
               "FSL_HUB_SERVICE_TOKEN": token, "PATH": f"{Path(sys.executable).parent}:{environ.get('PATH', '/usr/bin:/bin')}"}
    base = Path(sys.base_prefix).resolve()  # the interpreter, e.g. pyenv's in root's private home
    private = [f for f in base.parents if f != Path("/") and not f.stat().st_mode & 0o001][-1:]
    hidden = [*_hidden_folders(), Path("/tmp"), *private]
    # the accounts' homes (the instructor's course among them) are not scanned: what lies there is
    # the deployment under test
    others = _other_checkouts(skip=[*hidden, folder, Path(data_dir), Path("/home")])
    for checkout in others:
        folder_ = _folder_to_hide(checkout)
        if not any(h == folder_ or h in folder_.parents for h in hidden):
            hidden.append(folder_)
    # shown again, read-only: the environment with the course package installed in it (an editable
    # install's package folder lies in the checkout), the interpreter, the datasets, the hub's configuration
    import fsl_utils

    package = Path(fsl_utils.__file__).resolve().parent
    mounts = _mounts(hidden, [Path(sys.prefix), package, base, data_dir, DEPLOY]) + ["--bind", str(folder), str(folder)]
    hub_args = [sys.executable, "-m", "jupyterhub", "-f", str(DEPLOY / "jupyterhub_config.py"),
                f"--JupyterHub.bind_url=http://127.0.0.1:{port}/", f"--JupyterHub.hub_bind_url=http://127.0.0.1:{hub_port}",
                f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{api_port}",
                f"--JupyterHub.db_url=sqlite:///{folder / 'state' / 'jupyterhub.sqlite'}",
                f"--JupyterHub.cookie_secret_file={folder / 'state' / 'cookie_secret'}",
                f"--ConfigurableHTTPProxy.pid_file={folder / 'state' / 'proxy.pid'}"]
    info_r, info_w = os.pipe()
    log = open(folder / "hub.log", "w")
    proc = subprocess.Popen(["bwrap", "--dev-bind", "/", "/", *mounts, "--die-with-parent", "--info-fd", str(info_w), "--chdir", str(folder),
                             "--", *hub_args], env=hub_env, stdout=log, stderr=subprocess.STDOUT, pass_fds=[info_w], start_new_session=True)
    os.close(info_w)
    hub = None
    try:
        info = b""
        while b"}" not in info:
            chunk = os.read(info_r, 4096)
            if not chunk:
                raise RuntimeError(f"bubblewrap did not start the hub:\n{(folder / 'hub.log').read_text()[-3000:]}")
            info += chunk
        hub = Hub(f"http://127.0.0.1:{port}", token, folder, json.loads(info[: info.index(b"}") + 1])["child-pid"], env_for_servers)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, ValueError, AssertionError):
                if hub.request("GET", "/hub/api/", timeout=5)[0] == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterHub did not start (exit {proc.poll()}); its log:\n{(folder / 'hub.log').read_text()[-5000:]}")
            time.sleep(0.5)
        yield hub
    finally:
        os.close(info_r)
        if hub is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(hub.pid, signal.SIGTERM)  # the hub stops its users' servers and the proxy
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        kept = ROOT / "build" / "hub"
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / "hub.log", kept / "hub.log")
        pid_file = folder / "state" / "proxy.pid"
        if pid_file.is_file():  # a proxy the hub did not stop
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        shutil.rmtree(folder, ignore_errors=True)
