"""``python -m fsl_utils.course`` (what ``make course`` runs): execute and render the course.

Executes every notebook under ``lectures/`` and ``solutions/`` headless (in their own
folders, FAST mode with ``--fast``), renders each with its figures to
``build/<folder>/<name>.html``, and writes ``build/index.html`` and
``build/results.md``: the reproduction table (every number that has a paper's counterpart:
paper, ours with its 95% CI, protocol differences), then all of the notebooks' recorded
results and the benchmarks' ``bench/results/*.json``, and a runtime badge per notebook. The
index shows the same results as HTML tables. Runs are remembered in ``build/runs.json``, so
``--only`` re-renders one notebook and the index still links every lecture. A failing notebook
is rendered up to its error and reported; the others still run.

Equations are typeset without a network connection: the rendered notebooks load MathJax 3
(SVG output, no web fonts) from ``build/_static/``, copied from the ``django-static-mathjax``
package (the ``course`` extra); without that package they fall back to nbconvert's CDN copy
and say so.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .results import load_results, results_html, results_markdown

NOTEBOOK_FOLDERS = ("lectures", "solutions")


@dataclass
class Run:
    notebook: Path
    html: Path
    seconds: float
    error: str | None
    fast: bool = False
    date: str = ""
    load: float | None = None  # 1-minute load average at the end (runtimes on a busy machine are inflated)

    def badge(self) -> str:
        """Runtime badge text, e.g. ``"3.2 min (full)"``."""
        return f"{self.seconds / 60:.1f} min ({'FAST' if self.fast else 'full'})" + (" - FAILED" if self.error else "")


def find_notebooks(root: Path, only: str | None = None) -> list[Path]:
    """Lecture and solution notebooks in course order (checkpoints excluded)."""
    found = []
    for folder in NOTEBOOK_FOLDERS:
        found += sorted(p for p in (root / folder).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    return [p for p in found if only is None or only in str(p.relative_to(root))]


MATHJAX_FILE = "_static/mathjax/tex-svg-full.js"  # under the output folder
# MathJax 3 reads its configuration from window.MathJax before it loads; the delimiters are
# nbconvert's (inline $...$ and \\(...\\), display $$...$$ and \\[...\\]). SVG output needs no fonts.
_MATHJAX_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  svg: {fontCache: 'global'}
};
</script>
<script src="{{ resources.mathjax_url }}" id="MathJax-script"></script>
{%- endblock html_head_js_mathjax -%}
"""


def local_mathjax(out: Path) -> Path | None:
    """Copy MathJax 3 (``tex-svg-full.js``, one self-contained file) to ``out/_static``; None if not installed."""
    import shutil
    from importlib import resources

    try:
        source = resources.files("mathjax") / "static" / "mathjax" / "es5" / "tex-svg-full.js"
    except ModuleNotFoundError:
        return None
    if not source.is_file():
        return None
    target = out / MATHJAX_FILE
    if not target.is_file() or target.stat().st_size != len(source.read_bytes()):
        target.parent.mkdir(parents=True, exist_ok=True)
        with resources.as_file(source) as path:
            shutil.copyfile(path, target)
    return target


def html_exporter(page: Path, mathjax: Path | None):
    """nbconvert's lab template; with ``mathjax``, loading it by a path relative to ``page``."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    if mathjax is None:
        return HTMLExporter(template_name="lab")
    exporter = HTMLExporter(template_name="lab", template_file="fsl_course.html.j2",
                            extra_loaders=[DictLoader({"fsl_course.html.j2": _MATHJAX_TEMPLATE})])
    exporter.mathjax_url = os.path.relpath(mathjax, page.parent).replace(os.sep, "/")
    return exporter


def _traceback_in_outputs(nb) -> str | None:
    """A traceback a cell showed although its execution reply said "ok" (e.g. a figure that failed
    to draw in the inline backend's post-execute hook): the notebook did not run cleanly."""
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"cell {i}: {output.get('ename', 'Error')}: {output.get('evalue', '')}"
            if output.get("output_type") == "stream" and output.get("name") == "stderr" and "Traceback (most recent call last)" in output.get("text", ""):
                return f"cell {i}: " + output["text"].strip().splitlines()[-1]
    return None


def execute_and_render(notebook: Path, root: Path, out: Path, timeout: int, mathjax: Path | None = None) -> Run:
    """Run one notebook in its folder and write its HTML (also when it fails)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}})
    start, error = time.perf_counter(), None
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
    except Exception as err:  # kernel death, timeout: still render what ran
        error = f"{type(err).__name__}: {err}"
    error = error or _traceback_in_outputs(nb)
    seconds = time.perf_counter() - start
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    target = out / notebook.relative_to(root).with_suffix(".html")
    target.parent.mkdir(parents=True, exist_ok=True)
    body, _ = html_exporter(target, mathjax).from_notebook_node(nb)
    target.write_text(body, encoding="utf-8")
    return Run(notebook.relative_to(root), target.relative_to(out), seconds, error,
               fast=os.environ.get("FSL_FAST", "") not in ("", "0"), date=time.strftime("%Y-%m-%d %H:%M"), load=load)


def merge_runs(out: Path, runs: list[Run]) -> list[Run]:
    """Remember runs in ``out/runs.json`` and return every remembered run whose HTML still exists."""
    path = out / "runs.json"
    known: dict[str, dict] = {}
    if path.is_file():
        try:
            known = {r["notebook"]: r for r in json.loads(path.read_text())}
        except (json.JSONDecodeError, KeyError, TypeError):
            known = {}
    for r in runs:
        known[str(r.notebook)] = {**r.__dict__, "notebook": str(r.notebook), "html": str(r.html)}
    path.write_text(json.dumps(sorted(known.values(), key=lambda r: r["notebook"]), indent=1))
    merged = [Run(**{**r, "notebook": Path(r["notebook"]), "html": Path(r["html"])}) for r in known.values()]
    return sorted((r for r in merged if (out / r.html).is_file()), key=lambda r: str(r.notebook))


def notebook_title(path: Path) -> str:
    """The first Markdown heading of a notebook (its file name if it has none)."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, json.JSONDecodeError):
        return path.stem
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem


def index_html(runs: list[Run], summary_md: str, notebooks: list[tuple[Path, str]] | None = None) -> str:
    """The course's front page: every notebook (linked when rendered, with its badge), then the results."""
    by_path = {str(r.notebook): r for r in runs}
    listed = notebooks if notebooks is not None else [(r.notebook, str(r.notebook)) for r in runs]
    items = []
    for path, title in listed:
        r = by_path.get(str(path))
        if r is None:
            items.append(f'<li>{html.escape(title)} <code>{html.escape(str(path))}</code> <span class="badge none">not rendered yet</span></li>')
        else:
            items.append(f'<li><a href="{html.escape(str(r.html))}">{html.escape(title)}</a> <code>{html.escape(str(path))}</code> '
                         f'<span class="badge {"bad" if r.error else "ok"}">{html.escape(r.badge())}</span></li>')
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Learning with few labeled examples</title>
<style>body{{font-family:sans-serif;max-width:64rem;margin:2rem auto}} .badge{{font-size:.8em;padding:.1em .5em;border-radius:.5em;color:#fff}}
.ok{{background:#2a7}} .bad{{background:#c33}} .none{{background:#999}} code{{color:#666;font-size:.8em}}
.results table{{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}}
.results th,.results td{{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}}
.results th{{background:#f0f0f0}} .results tr:nth-child(even) td{{background:#fafafa}}</style></head><body>
<h1>Learning with few labeled examples</h1><h2>Notebooks</h2><ul>{"".join(items)}</ul>
<h2>Results</h2><p>Also as <a href="results.md">results.md</a>.</p><div class="results">{results_html(summary_md)}</div></body></html>"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute every lecture and solution notebook and render the course to build/.")
    parser.add_argument("--root", type=Path, default=None, help="course checkout (default: the one holding the current folder)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <root>/build)")
    parser.add_argument("--fast", action="store_true", help="FAST budgets (FSL_FAST=1)")
    parser.add_argument("--only", default=None, help="only notebooks whose path contains this text")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    from ..data.paths import course_checkout

    root = (args.root or course_checkout() or Path.cwd()).resolve()
    out = (args.out or root / "build").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.fast:
        os.environ["FSL_FAST"] = "1"
    os.environ.setdefault("FSL_RESULTS_DIR", str(out / "results"))
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    runs = []
    notebooks = find_notebooks(root, args.only)
    mathjax = local_mathjax(out)
    if mathjax is None:
        print("MathJax is not installed (pip install -e '.[course]'): the rendered equations need a network connection", flush=True)
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.relative_to(root)} ...", flush=True)
        run = execute_and_render(nb, root, out, args.timeout, mathjax)
        print(f"    {run.seconds:.0f} s, {'FAILED: ' + run.error if run.error else 'ok'} -> {out / run.html}", flush=True)
        runs.append(run)
    remembered = merge_runs(out, runs)
    summary = results_markdown(remembered, load_results(Path(os.environ["FSL_RESULTS_DIR"])), load_results(root / "bench" / "results"))
    (out / "results.md").write_text(summary, encoding="utf-8")
    listed = [(p.relative_to(root), notebook_title(p)) for p in find_notebooks(root)]
    (out / "index.html").write_text(index_html(remembered, summary, listed), encoding="utf-8")
    print(f"Rendered {len(runs)} notebooks; open {out / 'index.html'} (summary: {out / 'results.md'})")
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
