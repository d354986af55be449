"""conftest.py raises nbval's 5-second wait for a cell's outputs after its reply (``NBVAL_OUTPUT_TIMEOUT``).

The notebook below stalls its kernel's IOPub thread for 8 s right after the kernel has sent the cell's
``execute_reply``, so the cell's ``idle`` status reaches nbval 8 s after the reply: what a busy CI
machine did to lecture 9 (stop 36). With nbval's own 5 s the cell fails with "Timeout of 5 seconds
exceeded waiting for output"; with conftest.py's hook it passes.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
STALL_SECONDS = 8

#: Sends the cell's reply, then makes the IOPub thread sleep before it publishes the cell's ``idle`` status;
#: the file ``stalled`` (beside the notebook) says that the stall happened.
STALL_AFTER_REPLY = f"""\
import pathlib, time
_kernel = get_ipython().kernel
_send = _kernel.session.send

def _stall():
    time.sleep({STALL_SECONDS})
    pathlib.Path("stalled").touch()

def _send_then_stall(stream, msg_or_type, *args, **kwargs):
    msg = _send(stream, msg_or_type, *args, **kwargs)
    if msg_or_type == "execute_reply":
        _kernel.session.send = _send
        _kernel.iopub_socket.io_thread.schedule(_stall)
    return msg

_kernel.session.send = _send_then_stall
print("reply sent; the idle status follows {STALL_SECONDS} s later")
"""


def test_a_cell_whose_outputs_come_8_s_after_its_reply_passes(pytestconfig: pytest.Config) -> None:
    # the project's conftest.py as pytest loaded it (the module name ``conftest`` is tests/conftest.py's here)
    root_conftest = next(plugin for plugin in pytestconfig.pluginmanager.get_plugins()
                         if getattr(plugin, "__file__", None) == str(ROOT / "conftest.py"))
    assert 5 < STALL_SECONDS < root_conftest.NBVAL_OUTPUT_TIMEOUT
    # under the project's root, so that its conftest.py and pyproject.toml's pytest options apply
    (ROOT / "build").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="nbval-timeout-", dir=ROOT / "build"))
    try:
        notebook = folder / "stall.ipynb"
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(STALL_AFTER_REPLY), nbformat.v4.new_code_cell("print('next cell')")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, notebook)
        run = subprocess.run([sys.executable, "-m", "pytest", str(notebook)], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
        stalled = (folder / "stalled").exists()
    finally:
        shutil.rmtree(folder)
    assert "Timeout of 5 seconds" not in run.stdout, run.stdout
    assert run.returncode == 0 and "2 passed" in run.stdout, run.stdout + run.stderr
    assert stalled, "the kernel's IOPub thread did not stall after the reply: this test no longer tests anything"
