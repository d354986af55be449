"""Where the datasets are found: the same folder from every working folder of the course.

Jupyter, ``make course``, the students' check and nbval start each kernel in the notebook's own
folder (``lectures/``, ``assignments/protonet/``), so a bare ``./data`` would resolve to
``lectures/data``. These tests build small course checkouts in a temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import fsl_utils
from fsl_utils.data import DataNotFoundError, course_checkout, data_root, load_omniglot, locate_data
from fsl_utils.data import paths

PYPROJECT = '[project]\nname = "fsl-course"\nversion = "0.1.0"\n'


def make_checkout(root: Path, name: str = "fsl-course") -> Path:
    (root / "lectures").mkdir(parents=True)
    (root / "assignments" / "protonet").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT.replace("fsl-course", name))
    return root


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("FSL_DATA_DIR", raising=False)


def test_env_variable_wins(monkeypatch, tmp_path):
    make_checkout(tmp_path / "course")
    monkeypatch.chdir(tmp_path / "course" / "lectures")
    monkeypatch.setenv("FSL_DATA_DIR", str(tmp_path / "elsewhere"))
    assert data_root() == tmp_path / "elsewhere"
    assert locate_data().reason == "FSL_DATA_DIR is set"


@pytest.mark.parametrize("sub", ["", "lectures", "assignments/protonet"])
def test_every_folder_of_a_checkout_finds_its_data(no_env, monkeypatch, tmp_path, sub):
    course = make_checkout(tmp_path / "course")
    monkeypatch.chdir(course / sub)
    assert course_checkout() == course.resolve()
    assert data_root() == course.resolve() / "data"
    assert str(course.resolve()) in locate_data().reason


def test_a_different_project_is_not_the_course(no_env, monkeypatch, tmp_path):
    other = make_checkout(tmp_path / "other", name="fsl-course-fork")
    monkeypatch.chdir(other / "lectures")
    assert course_checkout() != other.resolve()


def test_outside_a_checkout_the_package_checkout_is_used(no_env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    package_checkout = Path(fsl_utils.__file__).resolve().parents[1]
    assert paths.is_course_checkout(package_checkout)  # the tests run on an editable install
    assert data_root() == package_checkout / "data"


def test_outside_any_checkout_the_documented_fallback(no_env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths, "_PACKAGE_DIR", tmp_path / "site-packages" / "fsl_utils")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert course_checkout() is None
    assert data_root() == tmp_path / "home" / "fsl-course-data"
    assert "not inside a course checkout" in locate_data().reason


def test_missing_data_says_where_why_and_what_to_do(no_env, monkeypatch, tmp_path):
    course = make_checkout(tmp_path / "course").resolve()
    monkeypatch.chdir(course / "lectures")
    with pytest.raises(DataNotFoundError) as err:
        load_omniglot("background")
    message = str(err.value)
    assert f"not found at {course / 'data' / 'omniglot-py'}" in message
    assert f"the course checkout {course}" in message and f"found from {course / 'lectures'}" in message
    assert f"`make data` in {course}" in message
    monkeypatch.setenv("FSL_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match=r"because FSL_DATA_DIR is set\. Point FSL_DATA_DIR at"):
        load_omniglot("background")


def test_a_notebook_in_its_own_folder_finds_the_course_data(monkeypatch, tmp_path):
    """What a student does: data at <checkout>/data, FSL_DATA_DIR unset, the kernel started in lectures/."""
    shared = data_root()  # wherever the test run's datasets are
    monkeypatch.delenv("FSL_DATA_DIR", raising=False)
    course = make_checkout(tmp_path / "course").resolve()
    (course / "data").symlink_to(shared.resolve(), target_is_directory=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os\nfrom fsl_utils.data import data_root, load_omniglot\n"
        "assert 'FSL_DATA_DIR' not in os.environ\n"
        "print(data_root(), load_omniglot('evaluation').images.shape)")])
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(course / "lectures")}}).execute()
    out = nb.cells[0].outputs[0]["text"]
    assert out.strip() == f"{course / 'data'} torch.Size([659, 20, 28, 28])"
