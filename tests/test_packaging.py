"""The files a newcomer relies on tell the truth and agree with each other."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pyproject_requirements(extras: bool = True) -> set[str]:
    project = _project()
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values() if extras else ():
        reqs += [r for r in extra if not r.startswith("fsl-course[")]
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


def test_environment_yml_declares_the_students_dependencies():
    pip_reqs, conda = _environment_requirements()
    assert pip_reqs == _pyproject_requirements(extras=False)
    assert "python=3.11" in conda and "pip" in conda


def test_only_lower_bounds_but_for_nbgrader():
    """Lower bounds only; nbgrader, whose internals grading relies on, is bounded to the tested versions."""
    for req in _pyproject_requirements():
        if req.startswith("nbgrader"):
            assert req == "nbgrader>=0.9.5,<0.9.7", req
            continue
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+>=[0-9.]+", req), f"{req}: declare a lower bound only (no ==, <, ~=)"


def _names(reqs) -> set[str]:
    return {re.split(r"[><=\[]", r)[0].lower() for r in reqs}


def test_students_get_the_course_and_the_tools_go_to_extras():
    base = _names(_project()["dependencies"])
    for needed in ("jupyterlab", "torch", "torchvision", "matplotlib", "scikit-learn", "ipywidgets", "tqdm", "nbclient"):
        assert needed in base, f"{needed} missing from the base dependencies"
    for tool in ("nbgrader", "pytest", "nbval", "playwright", "easyfsl"):
        assert tool not in base, f"{tool} is not for students: move it to an extra"
    extras = _project()["optional-dependencies"]
    assert "nbgrader" in _names(extras["instructor"]) and "nbgrader" in _names(extras["hub"])
    assert "fsl-course[instructor]" in extras["dev"] and {"pytest", "nbval", "playwright"} <= _names(extras["dev"])


def _imports(*modules: str) -> re.Pattern[str]:
    """A line of Python code that imports one of ``modules`` (the module's name is group 1)."""
    return re.compile(rf"^\s*(?:from|import)\s+({'|'.join(map(re.escape, modules))})\b", re.M)


def test_the_gpl_test_tool_stays_a_maintainers_tool():
    """rfc3987 (GPL-3.0-or-later) only speeds up the test suite (pyproject's dev extra says why): what
    students and instructors install does not get it, and no code of the course imports it."""
    project = _project()
    assert "rfc3987" in _names(project["optional-dependencies"]["dev"])
    for name, reqs in [("dependencies", project["dependencies"]), *project["optional-dependencies"].items()]:
        assert name == "dev" or "rfc3987" not in _names(reqs), f"{name} must not install rfc3987 (GPL)"
    imports = _imports("rfc3987")
    code = [*(ROOT / "fsl_utils").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").glob("*.py")]
    assert code and not [p for p in code if imports.search(p.read_text(encoding="utf-8"))]


def test_student_code_does_not_import_instructor_tools():
    """What a student runs (lectures, releases, the check, the package outside grading) needs no extra."""
    tools = _imports("nbgrader", "pytest", "nbval", "playwright", "easyfsl")
    student_code = [p for p in (ROOT / "fsl_utils").rglob("*.py") if "grading" not in p.parts and p.name != "student.py"]
    for path in student_code + list(ROOT.glob("lectures/*.ipynb")) + list(ROOT.glob("assignments/*/*.ipynb")):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            text = "\n".join("".join(c["source"]) for c in __import__("json").loads(text)["cells"] if c["cell_type"] == "code")
        assert not tools.search(text), f"{path.relative_to(ROOT)} imports {tools.search(text).group(1)}, which students do not install"


def test_readme_speaks_to_students_first_and_makefile_has_the_commands():
    readme = (ROOT / "README.md").read_text()
    students, maintainers = readme.split("<!-- student-repository", 1)
    for needed in ("make lab", "CPU=1", "Colab", "JupyterHub", "docs/students.md", "fsl_utils.course.check"):
        assert needed in students, f"the students' part of README lacks {needed!r}"
    for tool in ("make test", "make grade", "make bench", "FSL_DATA_DIR", "nbgrader"):
        assert tool not in students, f"{tool!r} is maintainers' material: move it below the student part"
    assert "make test" in maintainers and "make course" in maintainers
    makefile = (ROOT / "Makefile").read_text()
    for target in ("course", "test", "lab", "data", "install", "install-dev", "student"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile lacks target {target}"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make install-dev" in ci


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


def _readme_layout() -> tuple[set[str], dict[str, str]]:
    """README's layout of ``fsl_utils/``: the top-level ``.py`` files it names, and each package's text."""
    lines = (ROOT / "README.md").read_text().split("### Layout", 1)[1].split("```")[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("fsl_utils/"))
    files: set[str] = set()
    packages: dict[str, str] = {}
    current = None
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        if m := re.match(r"  (\w+)/\s+(.*)", line):
            current = m.group(1)
            packages[current] = m.group(2)
        elif ".py" in line.split("  ")[1]:
            files.update(re.findall(r"(\w+)\.py", line))
            current = None
        elif current is not None:
            packages[current] += " " + line.strip()
    return files, packages


def test_readme_layout_is_the_package_tree():
    """Every package and module of fsl_utils is in README's layout, and the layout names nothing else
    (a word outside parentheses is a module of its package or a name the package exports)."""
    import importlib

    package = ROOT / "fsl_utils"
    files, packages = _readme_layout()
    assert files == {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    assert set(packages) == {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    for name, text in packages.items():
        if name == "grading":  # described in words: nbgrader integration, checks, sandbox (its own subpackages)
            assert {"checks", "sandbox"} <= {p.name for p in (package / name).iterdir() if (p / "__init__.py").is_file()}
            continue
        modules = {p.stem for p in (package / name).glob("*.py") if p.stem not in ("__init__", "__main__")}
        words = set(re.findall(r"[A-Za-z_]\w*", re.sub(r"\([^)]*\)", "", text)))
        assert modules <= words, f"README's layout of {name}/ misses {sorted(modules - words)}"
        exported = set(getattr(importlib.import_module(f"fsl_utils.{name}"), "__all__", ()))
        assert words <= modules | exported, f"README's layout of {name}/ names {sorted(words - modules - exported)}, which {name}/ does not have"


def test_modules_stay_small():
    """STYLE.md: modules under ~250 lines (a few lines over are tolerated, not a second screenful)."""
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in (ROOT / "fsl_utils").rglob("*.py")}
    assert {path: n for path, n in sizes.items() if n > 260} == {}
