"""The files a newcomer relies on tell the truth and agree with each other."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {r.replace(" ", "") for r in reqs}


def _environment_requirements() -> tuple[set[str], list[str]]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    pip_reqs = set()
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if not stripped.startswith("- "):
            break
        pip_reqs.add(stripped[2:].split("#")[0].strip().replace(" ", ""))
    conda = [line.strip()[2:] for line in lines[:start] if line.strip().startswith("- ")]
    return pip_reqs, conda


def test_environment_yml_and_pyproject_declare_the_same_dependencies():
    pip_reqs, conda = _environment_requirements()
    assert pip_reqs == _pyproject_requirements()
    assert "python=3.11" in conda and "pip" in conda


def test_only_lower_bounds():
    for req in _pyproject_requirements():
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+>=[0-9.]+", req), f"{req}: declare a lower bound only (no ==, <, ~=)"


def test_core_dependencies_are_declared():
    names = {re.split(r"[><=]", r)[0].lower() for r in _pyproject_requirements()}
    for needed in ("jupyterlab", "torch", "torchvision", "matplotlib", "nbgrader", "scikit-learn", "nbval", "ipywidgets", "tqdm", "pytest"):
        assert needed in names, f"{needed} missing from pyproject.toml"


def test_readme_opens_with_the_two_commands_and_makefile_has_them():
    readme = (ROOT / "README.md").read_text()
    head = readme[: readme.index("\n## ", 1) if "\n## " in readme else len(readme)]
    assert "make course" in head and "make test" in head
    makefile = (ROOT / "Makefile").read_text()
    for target in ("course", "test", "lab", "data", "install"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile lacks target {target}"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make install" in ci


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in out.split("\0") if name]


def test_no_dataset_files_or_big_files_committed():
    tracked = _tracked_files()
    assert tracked, "expected to run inside the git checkout"
    for path in tracked:
        parts = set(path.relative_to(ROOT).parts)
        assert not parts & {"omniglot-py", "cifar-10-batches-py"}, f"{path}: datasets belong in FSL_DATA_DIR, not the repository"
        if path.is_file():
            assert path.stat().st_size < 3_000_000, f"{path} is over 3 MB"


def test_no_hard_coded_cuda_calls():
    pattern = re.compile(r"\.cuda\(\)|device\s*=\s*[\"']cuda[\"']")
    for path in list((ROOT / "fsl_utils").rglob("*.py")) + list(ROOT.glob("lectures/*.ipynb")) + list(ROOT.glob("solutions/*/*.ipynb")):
        assert not pattern.search(path.read_text()), f"{path} hard-codes CUDA; use fsl_utils.get_device()"
