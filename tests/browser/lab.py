"""Start JupyterLab on localhost and a headless Debian Chromium driven by Playwright.

Chromium comes from Debian (``apt-get install -y chromium``), the driver from the PyPI
``playwright`` wheel; ``playwright install`` is never needed. Every Jupyter folder
(config, data, runtime, settings, workspaces) points into a temporary directory, so
the test neither reads nor changes the user's Jupyter setup.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str | None:
    """Path of the system Chromium, or None (``$FSL_CHROMIUM`` overrides)."""
    env = os.environ.get("FSL_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for path in CHROMIUM_CANDIDATES:
        if Path(path).is_file():
            return path
    return shutil.which("chromium")


def missing_requirements() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the PyPI package playwright is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        return "Chromium is not installed (Debian: apt-get install -y chromium; or set FSL_CHROMIUM)"
    return None


def require_browser(what: str = "browser test") -> None:
    """Skip the calling test with the reason when Chromium or playwright is missing; under CI fail
    instead (the browser tests must run there: .ci/run installs Chromium)."""
    from needs import require

    require(what, missing_requirements())


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.5):
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass.
    A predicate that only reads Playwright state cached in Python (e.g. ``page.frames``' addresses)
    never sees it change: Playwright's sync API processes browser events only inside its own calls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab server."""

    port: int
    token: str
    root: Path
    log: Path
    home: Path  # the server's private Jupyter folders (config/, runtime/ with the kernels' connection files)

    def url(self, notebook: str) -> str:
        return f"http://127.0.0.1:{self.port}/lab/tree/{notebook}?token={self.token}"


def _shutdown_kernels(port: int, token: str) -> None:
    """Ask the server to stop its kernels (they run in their own process groups)."""
    base = f"http://127.0.0.1:{port}/api/kernels"
    headers = {"Authorization": f"token {token}"}
    with contextlib.suppress(OSError, ValueError):
        with urllib.request.urlopen(urllib.request.Request(base, headers=headers), timeout=5) as r:
            kernels = json.loads(r.read())
        for k in kernels:
            req = urllib.request.Request(f"{base}/{k['id']}", headers=headers, method="DELETE")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(req, timeout=10).close()


@contextlib.contextmanager
def jupyter_lab(root: Path, timeout: float = 60, setup: Callable[[dict[str, str]], None] | None = None,
                env_extra: dict[str, str | None] | None = None, home: Path | None = None) -> Iterator[Lab]:
    """Serve ``root`` with JupyterLab on a free localhost port; stop it on exit.

    ``setup(env)`` runs before the server starts, with the server's environment (its private
    Jupyter folders), e.g. to configure extensions; ``env_extra`` adds variables (or removes
    them, with the value ``None``) for the server and its kernels.

    Raises:
        RuntimeError: the server did not answer within ``timeout`` seconds (its log is quoted).
    """
    home = home or root / ".jupyter-home"
    env = dict(os.environ)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")):
        env[var] = str(home / sub)
    # no "news" pop-up over the notebook
    news = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    # every cell in the page (JupyterLab 4 renders only the visible ones by default), so tests see all prompts
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text('{"windowingMode": "none"}')
    for var, value in (env_extra or {}).items():
        if value is None:
            env.pop(var, None)
        else:
            env[var] = value
    if setup is not None:
        setup(env)
    port, token = _free_port(), secrets.token_hex(16)
    log = home / "jupyter-lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.token={token}",
           f"--ServerApp.root_dir={root}", "--allow-root"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start (exit code {proc.poll()}); its log:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield Lab(port, token, root, log, home)
    finally:
        _shutdown_kernels(port, token)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator[object]:
    """A Playwright page in headless system Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()
