"""`make course` machinery on a tiny course: execution, HTML with figures, runtime badges,
the reproduction table from notebook metrics and bench JSONs, and an index of every notebook."""

from __future__ import annotations

import json

import nbformat

from fsl_utils.course.build import main
from fsl_utils.course.results import bench_entries


def _write(path, *sources, title=None):
    cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\ntext with $x^2$ and $$\\sum_i a_i$$")] if title else []
    nb = nbformat.v4.new_notebook(cells=cells + [nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


BENCH = {
    "protocol": "locked towers, 5 seen classes",
    "zero_shot": {"held-out 5-way": {"mean": 62.42, "ci95": 1.4}, "seen 5-way": {"mean": 85.5, "ci95": 0.49}},
    "ratio": 112.1,
    "flag": True,
    "machine": {"cores": 2, "load_average_1min": 1.0},
    "reproduction": [{"metric": "ProtoNet 5w1s", "value": 97.1, "ci95": 0.3, "paper": 98.8, "protocol": "fewer steps"}],
}


def test_bench_entries_flatten_the_shapes_benchmarks_write():
    entries = {e["metric"]: e for e in bench_entries(BENCH)}
    assert set(entries) == {"zero_shot / held-out 5-way", "zero_shot / seen 5-way", "ratio", "ProtoNet 5w1s"}
    assert entries["zero_shot / held-out 5-way"]["value"] == 62.42 and entries["zero_shot / held-out 5-way"]["ci95"] == 1.4
    assert entries["ratio"]["protocol"] == "locked towers, 5 seen classes"  # the file's protocol applies below it
    assert entries["ProtoNet 5w1s"]["protocol"] == "fewer steps" and entries["ProtoNet 5w1s"]["paper"] == 98.8


def test_course_builds_html_results_and_index(tmp_path, monkeypatch):
    _write(
        tmp_path / "lectures" / "01_demo.ipynb",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]); plt.show()",
        "from pathlib import Path\nprint(Path.cwd().name)",
        "from fsl_utils.course.results import record_result\nrecord_result('01_demo', 'accuracy', 91.5, ci95=0.4, paper=98.8, protocol='toy')\n"
        "record_result('01_demo', 'speed', 3.0, unit='x')",
        title="Lecture 1 - Demo",
    )
    _write(tmp_path / "lectures" / "02_broken.ipynb", "raise RuntimeError('boom')", "print('never')")
    _write(tmp_path / "lectures" / "later.ipynb", "print(1)", title="Lecture 3 - Later")  # never run below
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "clip.json").write_text(json.dumps(BENCH))
    (tmp_path / "bench" / "results" / "broken.json").write_text("{not json")
    monkeypatch.setenv("FSL_RESULTS_DIR", str(tmp_path / "build" / "results"))
    monkeypatch.delenv("FSL_FAST", raising=False)
    status = main(["--root", str(tmp_path), "--only", "0", "--fast"])  # 01 and 02
    assert status == 1  # the broken notebook is reported ...
    demo = (tmp_path / "build" / "lectures" / "01_demo.html").read_text()
    assert "data:image/png;base64" in demo and "lectures" in demo  # ... the others still rendered, figure embedded, cwd = its folder
    assert "boom" in (tmp_path / "build" / "lectures" / "02_broken.html").read_text()

    # a later run of one notebook keeps the others in the index and the badges
    monkeypatch.delenv("FSL_FAST", raising=False)
    assert main(["--root", str(tmp_path), "--only", "01_demo"]) == 0
    summary = (tmp_path / "build" / "results.md").read_text()
    repro = summary.split("## Reproduction table")[1].split("## Notebook results")[0]
    assert "| 01_demo (notebook) | accuracy | 98.8 | 91.50 ± 0.40 % | toy | full |" in repro
    assert "| clip (bench) | ProtoNet 5w1s | 98.8 | 97.10 ± 0.30 | fewer steps |" in repro
    assert "speed" not in repro and "held-out" not in repro  # no paper number, not in the reproduction table
    assert "Protocol (unless a row says otherwise): locked towers, 5 seen classes" in summary
    assert "| zero_shot / held-out 5-way | 62.42 ± 1.40 |  |  |  |" in summary
    assert "| speed | 3.00 x |" in summary and "unreadable file broken.json" in summary
    assert "cores" not in summary  # machine descriptions are not results
    badges = summary.split("## Notebooks (runtime badges)")[1].split("##")[0]
    assert "| [lectures/01_demo.ipynb](lectures/01_demo.html) |" in badges and "min (full) | ok |" in badges
    assert "min (FAST) | FAILED: " in badges and "later" not in badges  # 02 remembered from the first run
    index = (tmp_path / "build" / "index.html").read_text()
    results = index.split("<h2>Results</h2>")[1]
    assert "<pre>" not in results and "<table>" in results  # results as HTML tables, not raw Markdown
    assert "<td>01_demo (notebook)</td>" in results and "<td>91.50 ± 0.40 %</td>" in results
    assert '<a href="lectures/01_demo.html">lectures/01_demo.ipynb</a>' in results
    assert "| clip (bench)" not in results and "&quot;{not json" not in results
    assert '<a href="lectures/01_demo.html">Lecture 1 - Demo</a>' in index
    assert 'href="lectures/02_broken.html"' in index and "FAILED" in index
    assert "Lecture 3 - Later" in index and "not rendered yet" in index
    # equations: MathJax from the build folder, configured for the notebooks' $...$ delimiters, never from a CDN
    assert "$x^2$" in demo and "cdnjs.cloudflare.com/ajax/libs/mathjax" not in demo and "MathJax.Hub" not in demo
    assert 'src="../_static/mathjax/tex-svg-full.js"></script>' in demo
    assert "inlineMath: [['$', '$'], ['\\\\(', '\\\\)']]" in demo
    mathjax = tmp_path / "build" / "_static" / "mathjax" / "tex-svg-full.js"
    assert mathjax.stat().st_size > 1_000_000 and b"MathJax" in mathjax.read_bytes()
    runs = json.loads((tmp_path / "build" / "runs.json").read_text())
    assert [r["notebook"] for r in runs] == ["lectures/01_demo.ipynb", "lectures/02_broken.ipynb"]


def test_a_figure_that_fails_to_draw_fails_the_run(tmp_path):
    """The kernel's reply says "ok" when only the inline backend's drawing of a figure fails (its
    traceback is shown as an output): the run must still be reported as failed, not "ok"."""
    import nbformat

    from fsl_utils.course.build import execute_and_render

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.xlabel(r'$\\lVert x \\rVert$');"),
        nbformat.v4.new_code_cell("print('the next cell still ran')"),
    ])
    nbformat.write(nb, tmp_path / "figure.ipynb")
    run = execute_and_render(tmp_path / "figure.ipynb", tmp_path, tmp_path / "out", timeout=120)
    assert run.error and "cell 0" in run.error, run.error
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('fine')")]), tmp_path / "fine.ipynb")
    assert execute_and_render(tmp_path / "fine.ipynb", tmp_path, tmp_path / "out", timeout=120).error is None
