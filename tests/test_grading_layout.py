"""The grading package's shape: no import cycles and no imports inside functions to dodge one, one
probe mechanism for every assignment, and kernel-side code that holds nothing of the hidden tests.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from fsl_utils.grading.checks import kernel
from fsl_utils.grading.checks.probe import LocalProbe, Probe
from fsl_utils.grading.checks.remote import METHODS, RemoteProbe
from fsl_utils.grading.hidden_regions import secret_lines

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fsl_utils" / "grading"
MODULES = sorted(PACKAGE.rglob("*.py"))
ASSIGNMENTS = ("protonet", "maml", "simclr")


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(path: Path, node: ast.ImportFrom) -> set[str]:
    """The modules of fsl_utils.grading that ``node`` (in the file ``path``) imports."""
    if node.level:
        base = _name(path).split(".")
        base = base if path.name == "__init__.py" else base[:-1]
        module = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    found = {module} | {f"{module}.{alias.name}" for alias in node.names}
    known = {_name(p) for p in MODULES}
    return {m for m in found if m in known and m.startswith("fsl_utils.grading")}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in MODULES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[_name(path)] = set().union(*[_targets(path, n) for n in tree.body if isinstance(n, ast.ImportFrom)]) - {_name(path)}
    return graph


def test_the_grading_modules_import_each_other_without_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if module.startswith(target + "."):  # a module needs its package's __init__ run first anyway
                continue
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_of_the_package_is_imported_inside_a_function():
    inside = []
    for path in MODULES:
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inside += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(fn)
                           if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("fsl_utils.grading"))]
    assert not inside, f"imports of fsl_utils.grading inside functions: {inside}"


def test_every_module_imports_in_a_fresh_interpreter():
    names = [_name(p) for p in MODULES if p.name != "__main__.py"]
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint('ok', len(sys.argv) - 1)"
    proc = subprocess.run([sys.executable, "-c", code, *names], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == f"ok {len(names)}", proc.stderr[-2000:]


def test_local_and_remote_probes_answer_the_same_requests():
    """One mechanism: what a check may ask (the Probe protocol) is what the kernel serves and what both probes implement."""
    asked = {n for n in vars(Probe) if not n.startswith("_")}
    assert asked == set(METHODS)
    for cls in (LocalProbe, RemoteProbe):
        assert all(callable(getattr(cls, n, None)) for n in METHODS), cls


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_kernel_tasks_hold_nothing_of_the_hidden_tests(assignment):
    """The kernel-side modules are readable inside the grading sandbox: none of them may carry a line of an
    assignment's hidden tests (inputs, expected values, reference helpers), and the hidden tests send no code
    but the reference helpers (no harness kept in string literals)."""
    hidden = (ROOT / "solutions" / assignment / "hidden_tests.py").read_text(encoding="utf-8")
    secrets = secret_lines([hidden])
    assert len(secrets) > 50
    for path in (PACKAGE / "checks" / "kernel").glob("*.py"):
        lines = {line.strip() for line in path.read_text(encoding="utf-8").splitlines()}
        assert not secrets & lines, f"{path.name} holds lines of {assignment}'s hidden tests: {sorted(secrets & lines)[:3]}"
    assert "HARNESS" not in hidden and "grading_probe" not in hidden
    assert assignment in kernel.ASSIGNMENTS and kernel.tasks(assignment)
