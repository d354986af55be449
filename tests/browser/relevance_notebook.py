"""The notebook the browser test opens: a relevance-feedback widget over a small
synthetic pool (no dataset or model needed), and the same pool for the test's oracle."""

from __future__ import annotations

from pathlib import Path

import nbformat
import torch

N_SHOW, COLUMNS, K = 12, 6, 20


def synthetic_pool(n: int = 150, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(images uint8 (n, 3, 16, 16), embeddings (n, d), relevant (n,), query position).

    The target set is reddish; in the embeddings it differs along one coordinate that
    plain cosine similarity under-weights, so relevance feedback visibly re-ranks.
    """
    g = torch.Generator().manual_seed(seed)
    relevant = torch.zeros(n, dtype=torch.bool)
    relevant[torch.randperm(n, generator=g)[: n // 3]] = True
    emb = torch.randn(n, d, generator=g) + 2.0
    emb[relevant, 0] += 3.0
    images = torch.randint(0, 90, (n, 3, 16, 16), dtype=torch.uint8, generator=g)
    images[relevant, 0] += 150
    images[~relevant, 2] += 120
    return images, emb, relevant, int(relevant.nonzero()[0])


CELL = f"""\
import sys
sys.path.insert(0, {{tests_dir!r}})
from browser.relevance_notebook import synthetic_pool
from fsl_utils.widgets import RelevanceFeedbackWidget

images, emb, relevant, query = synthetic_pool()
ui = RelevanceFeedbackWidget(images, emb, query=query, relevant=relevant, n_show={N_SHOW}, columns={COLUMNS}, k={K})
ui"""


def write_notebook(folder: Path, name: str = "relevance.ipynb") -> Path:
    """Write the one-cell notebook into ``folder``; returns its path."""
    tests_dir = str(Path(__file__).resolve().parents[1])
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL.format(tests_dir=tests_dir))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / name
    nbformat.write(nb, path)
    return path
