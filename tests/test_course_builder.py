"""`make course` machinery on a tiny course: execution, HTML with figures, summary."""

from __future__ import annotations

import json

import nbformat

from fsl_utils.course import main


def _write(path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_course_builds_html_and_results(tmp_path, monkeypatch):
    _write(
        tmp_path / "lectures" / "01_demo.ipynb",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]); plt.show()",
        "from pathlib import Path\nprint(Path.cwd().name)",
        "from fsl_utils.report import record_result\nrecord_result('01_demo', 'accuracy', 91.5, ci95=0.4, paper=98.8, protocol='toy')",
    )
    _write(tmp_path / "lectures" / "02_broken.ipynb", "raise RuntimeError('boom')", "print('never')")
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "episodes.json").write_text(json.dumps({"metric": "ratio", "value": 70.0, "unit": "x"}))
    monkeypatch.setenv("FSL_RESULTS_DIR", str(tmp_path / "build" / "results"))
    status = main(["--root", str(tmp_path)])
    assert status == 1  # the broken notebook is reported ...
    demo = (tmp_path / "build" / "lectures" / "01_demo.html").read_text()
    assert "data:image/png;base64" in demo and "lectures" in demo  # ... the others still rendered, figure embedded, cwd = its folder
    assert "boom" in (tmp_path / "build" / "lectures" / "02_broken.html").read_text()
    summary = (tmp_path / "build" / "results.md").read_text()
    assert "| accuracy | 91.50 ± 0.40 % | 98.8 | toy |" in summary
    assert "ratio" in summary and "FAILED" in summary
    index = (tmp_path / "build" / "index.html").read_text()
    assert 'href="lectures/01_demo.html"' in index
