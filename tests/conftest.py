"""Shared fixtures: the real datasets (never skipped: missing data is an error)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from fsl_utils.data import load_cifar10, load_omniglot  # noqa: E402


@pytest.fixture(scope="session")
def omniglot_background():
    return load_omniglot("background")


@pytest.fixture(scope="session")
def omniglot_evaluation():
    return load_omniglot("evaluation")


@pytest.fixture(scope="session")
def cifar_train():
    return load_cifar10(train=True)


@pytest.fixture
def run_bench(tmp_path):
    """Run ``bench/<script>`` with tiny arguments, results to a temporary folder; returns its JSON.

    For smoke tests only: the figures are measured by running the scripts, never asserted.
    """
    bench = Path(__file__).resolve().parents[1] / "bench"

    def run(script: str, *args: str, timeout: int = 600, results: str | None = None) -> dict:
        env = {**os.environ, "FSL_BENCH_RESULTS": str(tmp_path)}
        subprocess.run([sys.executable, str(bench / script), *args], check=True, env=env, cwd=tmp_path, timeout=timeout)
        return json.loads((tmp_path / (results or script.replace(".py", ".json"))).read_text())

    return run


# -- the grading batches: graded in the background while the other tests run (tests/grading/background.py)
def _batch(item: pytest.Item) -> str | None:
    """The grading batch ``item`` reads (a fixture name of ``grading.background.BATCHES``), if any."""
    from grading.background import BATCHES

    names = set(getattr(item, "fixturenames", ()))
    for name in BATCHES:
        if name in names:
            return name
    callspec = getattr(item, "callspec", None)
    if "graded" in names and callspec is not None:  # test_grading_pipeline.py asks for its batch by assignment
        return next(name for name, assignment in BATCHES.items() if assignment == callspec.params["assignment"])
    return None


@pytest.hookimpl(trylast=True)  # after -k / -m deselected what will not run
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the tests that read a grading batch last, in the order the batches are graded, so the
    batches grade in the background while every other test runs."""
    from grading.background import BATCHES

    _run_lecture_2_once(config, items)
    order = {name: i + 1 for i, name in enumerate(BATCHES)}
    batches = {id(item): _batch(item) for item in items}
    items.sort(key=lambda item: order.get(batches[id(item)] or "", 0))
    config.stash[_NEEDED] = {b for b in batches.values() if b}
    config.stash[_HUB] = any("term_on_hub" in getattr(item, "fixturenames", ()) for item in items)


#: tests/test_browser.py runs this lecture to its end as a student does (Run All Cells in JupyterLab, FAST
#: mode, the student repository); a failing cell, including a failed check, fails that test.
BROWSER_LECTURE = ("tests/test_browser.py::test_relevance_widget_of_lecture_2_in_jupyterlab_and_chromium",
                   "lectures/02_embedding_retrieval.ipynb")


def _run_lecture_2_once(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Lecture 2 runs once: when the browser test that runs it is collected and can run (Chromium and
    playwright present), its nbval cells are deselected (reported in the summary); otherwise nbval runs it."""
    from browser.lab import missing_requirements

    test, lecture = BROWSER_LECTURE
    if not any(item.nodeid == test for item in items) or missing_requirements() is not None:
        return
    cells = [item for item in items if item.nodeid.split("::")[0] == lecture]
    if cells:
        items[:] = [item for item in items if item.nodeid.split("::")[0] != lecture]
        config.hook.pytest_deselected(items=cells)
        config.stash[_ONCE] = f"{lecture}: its {len(cells)} cells run in {test} (Run All Cells in JupyterLab), not again by nbval"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if config.stash.get(_ONCE, None):
        terminalreporter.write_line(config.stash[_ONCE])
    early = config.stash.get(_HUB_TERM, None)
    if early is not None and early.value is not None:  # where the hub's term spent its time (it overlaps the session)
        steps = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in early.value["seconds"].items())
        terminalreporter.write_line(f"JupyterHub term (tests/test_hub.py, in the background): {steps}")


_ONCE = pytest.StashKey[str]()
_HUB_TERM = pytest.StashKey[object]()
_NEEDED = pytest.StashKey[set]()
_HUB = pytest.StashKey[bool]()


class _EarlyHub:
    """tests/test_hub.py's term (``run_term``), run in a thread from the first test on: it is mostly
    waiting (a hub, three servers, accounts, ``make grade`` of two submissions), so it overlaps the
    other tests. It only starts subprocesses and talks HTTP, and changes no state of this process."""

    def __init__(self, folder) -> None:
        import threading

        import test_hub

        self.value: dict | None = None
        self.error: BaseException | None = None
        # os.environ as the session started: a test running meanwhile may change it with monkeypatch
        self.thread = threading.Thread(target=self._run, args=(test_hub.run_term, folder, dict(os.environ)), daemon=True)
        self.thread.start()

    def _run(self, run_term, folder, environ) -> None:
        try:
            self.value = run_term(folder, environ)
        except BaseException as error:  # reported by result() to the hub's tests
            self.error = error

    def result(self) -> dict:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


@pytest.fixture(scope="session", autouse=True)
def _early_hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Starts the hub's term when the first test runs if the hub's tests were collected and the
    machine can run them (otherwise their fixture skips or, in CI, fails as before)."""
    if not request.config.stash.get(_HUB, False):
        yield None
        return
    from hub import harness

    early = _EarlyHub(tmp_path_factory.mktemp("hub")) if harness.missing_requirements() is None else None
    request.config.stash[_HUB_TERM] = early
    yield early
    if early is not None:
        early.thread.join(1800)  # its accounts are removed when it ends


@pytest.fixture(scope="session", autouse=True)
def _grading_batches(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Starts the batches the collected tests read, when the first test runs (none if bubblewrap
    is missing: their tests then fail in CI and skip elsewhere, see require_bwrap)."""
    import shutil

    from grading.background import Batches

    needed = request.config.stash.get(_NEEDED, set())
    if not needed or shutil.which("bwrap") is None:
        yield None
        return
    batches = Batches(needed, tmp_path_factory.mktemp("grading_batches"))
    yield batches
    batches.close()


def _graded(name: str, batches) -> dict:
    from grading.assignment import require_bwrap

    require_bwrap()
    if batches is None:
        raise RuntimeError(f"{name} was not started (tests/conftest.py's _grading_batches)")
    return batches.result(name)


@pytest.fixture(scope="session")
def graded_course(_grading_batches):
    """Every protonet grading test's submissions in one temporary copy of the course, graded once
    (tests/grading/course.py; shared by tests/test_grading_pipeline.py, test_assignment_protonet.py,
    test_grading_adversarial.py, test_grading_restore.py, test_term.py, test_formgrader.py and
    test_grading_browser.py)."""
    return _graded("graded_course", _grading_batches)


@pytest.fixture(scope="session")
def graded_maml(_grading_batches):
    """The maml submissions (tests/grading/maml.py) in a temporary copy of the course, graded once
    in one sandboxed batch (tests/test_grading_pipeline.py)."""
    return _graded("graded_maml", _grading_batches)


@pytest.fixture(scope="session")
def graded_simclr(_grading_batches):
    """The simclr submissions (tests/grading/simclr.py) in a temporary copy of the course, graded
    once in one sandboxed batch (tests/test_grading_pipeline.py, test_assignment_simclr.py)."""
    return _graded("graded_simclr", _grading_batches)
