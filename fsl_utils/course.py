"""``python -m fsl_utils.course`` (what ``make course`` runs): execute and render the course.

Executes every notebook under ``lectures/`` and ``solutions/`` headless (in their own
folders, FAST mode with ``--fast``), renders each with its figures to
``build/<folder>/<name>.html``, and writes ``build/index.html`` and
``build/results.md``: the notebooks' recorded results, the benchmarks'
``bench/results/*.json`` and each notebook's measured runtime. A failing notebook is
rendered up to its error and reported; the others still run.
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

NOTEBOOK_FOLDERS = ("lectures", "solutions")


@dataclass
class Run:
    notebook: Path
    html: Path
    seconds: float
    error: str | None


def find_notebooks(root: Path, only: str | None = None) -> list[Path]:
    """Lecture and solution notebooks in course order (checkpoints excluded)."""
    found = []
    for folder in NOTEBOOK_FOLDERS:
        found += sorted(p for p in (root / folder).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    return [p for p in found if only is None or only in str(p.relative_to(root))]


def execute_and_render(notebook: Path, root: Path, out: Path, timeout: int) -> Run:
    """Run one notebook in its folder and write its HTML (also when it fails)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}})
    start, error = time.perf_counter(), None
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
    except Exception as err:  # kernel death, timeout: still render what ran
        error = f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - start
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    target = out / notebook.relative_to(root).with_suffix(".html")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    return Run(notebook.relative_to(root), target.relative_to(out), seconds, error)


def _load_results(folder: Path) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            results[path.stem] = [{"metric": f"unreadable file {path.name}: {err}"}]
            continue
        results[path.stem] = data if isinstance(data, list) else [data]
    return results


def _fmt(entry: dict) -> list[str]:
    value = entry.get("value")
    ci = entry.get("ci95")
    ours = "" if value is None else f"{value:.2f}" + (f" ± {ci:.2f}" if ci else "") + f" {entry.get('unit', '')}".rstrip()
    paper = entry.get("paper")
    mode = "FAST" if entry.get("fast") else "full"
    return [str(entry.get("metric", "")), ours, "" if paper is None else str(paper), str(entry.get("protocol", "")), mode]


def results_markdown(runs: list[Run], notebook_results: dict[str, list[dict]], bench_results: dict[str, list[dict]]) -> str:
    """The results summary: runtimes, then every recorded number beside the paper's."""
    lines = ["# Course results", "", f"Generated {time.strftime('%Y-%m-%d %H:%M')} on this machine.", ""]
    if runs:
        lines += ["## Notebooks (runtime badges)", "", "| notebook | runtime | status |", "|---|---|---|"]
        for r in runs:
            lines.append(f"| [{r.notebook}]({r.html}) | {r.seconds / 60:.1f} min | {'FAILED: ' + r.error if r.error else 'ok'} |")
        lines.append("")
    for title, results in (("Notebook results", notebook_results), ("Benchmarks (bench/results)", bench_results)):
        if not results:
            continue
        lines += [f"## {title}", ""]
        for name, entries in results.items():
            lines += [f"### {name}", "", "| metric | ours | paper | protocol differences | mode |", "|---|---|---|---|---|"]
            for e in entries:
                if isinstance(e, dict) and "metric" in e:
                    lines.append("| " + " | ".join(c.replace("|", "/") for c in _fmt(e)) + " |")
                else:
                    lines.append(f"| {html.escape(json.dumps(e))[:200]} | | | | |")
            lines.append("")
    return "\n".join(lines)


def index_html(runs: list[Run], summary_md: str) -> str:
    items = "\n".join(
        f'<li><a href="{html.escape(str(r.html))}">{html.escape(str(r.notebook))}</a> '
        f'<span class="badge {"bad" if r.error else "ok"}">{r.seconds / 60:.1f} min{" - failed" if r.error else ""}</span></li>'
        for r in runs
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Learning with few labeled examples</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}} .badge{{font-size:.8em;padding:.1em .5em;border-radius:.5em;color:#fff}}
.ok{{background:#2a7}} .bad{{background:#c33}} pre{{white-space:pre-wrap;background:#f6f6f6;padding:1em}}</style></head><body>
<h1>Learning with few labeled examples</h1><h2>Notebooks</h2><ul>{items}</ul>
<h2>Results</h2><p>Also as <a href="results.md">results.md</a>.</p><pre>{html.escape(summary_md)}</pre></body></html>"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute every lecture and solution notebook and render the course to build/.")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="course checkout (default: current folder)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <root>/build)")
    parser.add_argument("--fast", action="store_true", help="FAST budgets (FSL_FAST=1)")
    parser.add_argument("--only", default=None, help="only notebooks whose path contains this text")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    out = (args.out or root / "build").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.fast:
        os.environ["FSL_FAST"] = "1"
    os.environ.setdefault("FSL_RESULTS_DIR", str(out / "results"))
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    runs = []
    notebooks = find_notebooks(root, args.only)
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.relative_to(root)} ...", flush=True)
        run = execute_and_render(nb, root, out, args.timeout)
        print(f"    {run.seconds:.0f} s, {'FAILED: ' + run.error if run.error else 'ok'} -> {out / run.html}", flush=True)
        runs.append(run)
    summary = results_markdown(runs, _load_results(Path(os.environ["FSL_RESULTS_DIR"])), _load_results(root / "bench" / "results"))
    (out / "results.md").write_text(summary, encoding="utf-8")
    (out / "index.html").write_text(index_html(runs, summary), encoding="utf-8")
    print(f"Rendered {len(runs)} notebooks; open {out / 'index.html'} (summary: {out / 'results.md'})")
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
