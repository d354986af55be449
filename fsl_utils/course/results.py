"""Results that notebooks and benchmarks report, collected by ``make course``.

A notebook calls :func:`record_result` for each headline number; the course builder
(:mod:`.build`) gathers ``<results dir>/*.json`` (:func:`load_results`) and
``bench/results/*.json`` (flattened by :func:`bench_entries`) into ``build/results.md``
(:func:`results_markdown`) and the index page (:func:`results_html`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .build import Run


def results_dir() -> Path:
    """``$FSL_RESULTS_DIR``, else ``build/results`` of the course checkout (else of the working folder)."""
    from ..data.paths import course_checkout

    env = os.environ.get("FSL_RESULTS_DIR")
    if env:
        return Path(env)
    return (course_checkout() or Path.cwd()) / "build" / "results"


def record_result(
    experiment: str,
    metric: str,
    value: float,
    *,
    ci95: float | None = None,
    paper: float | str | None = None,
    protocol: str = "",
    unit: str = "%",
    fast: bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Store one headline number under ``<results dir>/<experiment>.json``.

    Args:
        experiment: file stem, e.g. ``"06_prototypical_and_matching"``.
        metric: what was measured, e.g. ``"ProtoNet 5-way 1-shot"``.
        value: our number.
        ci95: half-width of its 95% confidence interval, if any.
        paper: the paper's number for the same metric, if any.
        protocol: how our protocol differs from the paper's.
        unit: unit of ``value`` (default percent).
        fast: whether it was measured in FAST mode (default: read ``FSL_FAST``).
        **extra: any other JSON-serialisable fields (e.g. ``runtime_s``).

    Returns:
        The stored entry. Re-recording a metric replaces its earlier entry.
    """
    from ..config import is_fast

    entry = {
        "metric": metric,
        "value": float(value),
        "ci95": None if ci95 is None else float(ci95),
        "paper": paper,
        "protocol": protocol,
        "unit": unit,
        "fast": is_fast() if fast is None else fast,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        **extra,
    }
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{experiment}.json"
    entries = json.loads(path.read_text()) if path.is_file() else []
    entries = [e for e in entries if e.get("metric") != metric] + [entry]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=2))
    tmp.replace(path)
    return entry


def load_results(folder: Path) -> dict[str, list[dict]]:
    """Every ``*.json`` of ``folder`` by file stem, each as a list of entries (a broken file becomes one entry saying so)."""
    results: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            results[path.stem] = [{"metric": f"unreadable file {path.name}: {err}"}]
            continue
        results[path.stem] = data if isinstance(data, list) else [data]
    return results


_SKIP_KEYS = {"machine", "settings", "shims", "time", "date", "unit", "fast", "paper", "protocol", "ci95", "ci", "metric", "value"}


def bench_entries(data: object, protocol: str = "") -> list[dict]:
    """Flatten one benchmark JSON into result entries (``metric``, ``value``, ``ci95``, ``paper``, ``protocol``).

    Understands the shapes the benchmarks write: lists or dicts of ``record_result``-style
    entries (``metric`` + ``value``), dicts with a numeric ``mean`` (and ``ci95``), and plain
    numbers, named by their key path (``zero_shot / held-out 5-way``). A string
    ``protocol`` (or ``setting``) applies to the entries below it; ``machine`` and ``settings`` are skipped.
    """
    out: list[dict] = []

    def walk(node: object, path: list[str], proto: str) -> None:
        if isinstance(node, dict):
            for key in ("protocol", "setting"):
                if isinstance(node.get(key), str) and node[key]:
                    proto = node[key]
                    break
            if "metric" in node:
                out.append({**node, "protocol": proto})
                return
            if isinstance(node.get("mean"), (int, float)) and not isinstance(node.get("mean"), bool):
                out.append({"metric": " / ".join(path), "value": node["mean"], "ci95": node.get("ci95", node.get("ci")),
                            "paper": node.get("paper"), "protocol": proto, "unit": node.get("unit", "")})
                return
            for key, value in node.items():
                if key not in _SKIP_KEYS:
                    walk(value, path + [str(key)], proto)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, path + [str(i)] if not (isinstance(value, dict) and "metric" in value) else path, proto)
        elif isinstance(node, (int, float)) and not isinstance(node, bool) and path:
            out.append({"metric": " / ".join(path), "value": node, "protocol": proto, "unit": ""})

    walk(data, [], protocol)
    return out


def _cell(text: object) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def _ours(entry: dict) -> str:
    value, ci = entry.get("value"), entry.get("ci95")
    if not isinstance(value, (int, float)):
        return ""
    text = (f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}") if isinstance(value, float) or ci else f"{value}"
    return text + (f" ± {ci:.2f}" if isinstance(ci, (int, float)) and ci else "") + f" {entry.get('unit', '')}".rstrip()


def _mode(entry: dict) -> str:
    return "" if "fast" not in entry else ("FAST" if entry["fast"] else "full")


def results_markdown(runs: list[Run], notebook_results: dict[str, list[dict]], bench_results: dict[str, list[dict]]) -> str:
    """The results page: runtime badges, the reproduction table, then every recorded number."""
    lines = ["# Course results", "", f"Generated {time.strftime('%Y-%m-%d %H:%M')} on this machine.", ""]
    if runs:
        lines += ["## Notebooks (runtime badges)", "",
                  "Wall-clock time of the whole notebook on this machine; `load` is the 1-minute load average at the end "
                  "(on a shared machine runtimes are inflated).", "",
                  "| notebook | runtime | status | run | load |", "|---|---|---|---|---|"]
        for r in runs:
            load = "" if r.load is None else f"{r.load:.1f}"
            lines.append(f"| [{r.notebook}]({r.html}) | {r.seconds / 60:.1f} min ({'FAST' if r.fast else 'full'}) | "
                         f"{'FAILED: ' + _cell(r.error) if r.error else 'ok'} | {r.date} | {load} |")
        lines.append("")
    sources = [("notebook", name, entries) for name, entries in notebook_results.items()]
    sources += [("bench", name, bench_entries(entries if len(entries) != 1 else entries[0])) for name, entries in bench_results.items()]
    paired = [(kind, name, e) for kind, name, entries in sources for e in entries if isinstance(e, dict) and e.get("paper") not in (None, "")]
    if paired:
        lines += ["## Reproduction table", "", "Every number with a published counterpart: the paper's, ours with its 95% "
                  "confidence interval, and how our protocol differs.", "",
                  "| experiment | metric | paper | ours | protocol differences | mode |", "|---|---|---|---|---|---|"]
        for kind, name, e in paired:
            lines.append(f"| {_cell(name)} ({kind}) | {_cell(e.get('metric', ''))} | {_cell(e['paper'])} | {_ours(e)} | "
                         f"{_cell(e.get('protocol', ''))} | {_mode(e)} |")
        lines.append("")
    for title, kind in (("Notebook results", "notebook"), ("Benchmarks (bench/results)", "bench")):
        mine = [(name, entries) for k, name, entries in sources if k == kind]
        if not mine:
            continue
        lines += [f"## {title}", ""]
        for name, entries in mine:
            protocols = [e.get("protocol", "") for e in entries if isinstance(e, dict)]
            common = max(set(protocols), key=protocols.count, default="")
            common = common if protocols.count(common) > 1 else ""  # stated once above the table
            lines += [f"### {name}", ""] + ([f"Protocol (unless a row says otherwise): {_cell(common)}", ""] if common else [])
            lines += ["| metric | ours | paper | protocol differences | mode |", "|---|---|---|---|---|"]
            for e in entries:
                if isinstance(e, dict) and "metric" in e:
                    proto = e.get("protocol", "")
                    lines.append(f"| {_cell(e['metric'])} | {_ours(e)} | {_cell(e.get('paper') or '')} | "
                                 f"{_cell(proto if proto != common else '')} | {_mode(e)} |")
                else:
                    lines.append(f"| {_cell(json.dumps(e))[:200]} | | | | |")
            lines.append("")
    return "\n".join(lines)


def results_html(summary_md: str) -> str:
    """The results page as HTML: its Markdown tables become ``<table>`` elements, any raw HTML is escaped."""
    import mistune

    body = mistune.create_markdown(escape=True, plugins=["table"])(summary_md)
    return body.replace("<h1>Course results</h1>", "", 1)  # the index has its own heading

