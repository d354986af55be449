"""The SimCLR homework's weights tests score the same 1,000 test images on every CIFAR-10 copy.

The floors were calibrated on the course's offline copy (the first 1,000 of the 10,000 official
test images); students who run ``make data`` get all 10,000. Here a copy with 10,000 test images
(the real first 1,000, then 9,000 images of noise with random labels) must give exactly the same
accuracies as the 1,000-image copy.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from fsl_utils.data import data_root
from fsl_utils.grading import LocalProbe, load_hidden_tests
from fsl_utils.grading.notebook import grade_id, load_reference, read_notebook

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "simclr" / "simclr.ipynb"


def _full_size_copy(folder: Path) -> Path:
    src = data_root() / "cifar-10-batches-py"
    dst = folder / "cifar-10-batches-py"
    dst.mkdir(parents=True)
    for path in src.iterdir():
        if path.name != "test_batch":
            (dst / path.name).symlink_to(path.resolve())
    with open(src / "test_batch", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    assert len(batch["labels"]) == 1000, "this test expects the offline copy (1,000 test images)"
    rng = np.random.default_rng(0)
    extra = 9000
    batch["data"] = np.concatenate([batch["data"], rng.integers(0, 256, (extra, 3072), dtype=np.uint8)])
    batch["labels"] = list(batch["labels"]) + rng.integers(0, 10, extra).tolist()
    batch["filenames"] = list(batch["filenames"]) + [f"noise_{i}.png" for i in range(extra)]
    with open(dst / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=4)
    return folder


def test_weights_accuracy_is_the_same_on_the_offline_and_the_full_test_set(tmp_path, monkeypatch):
    hidden = load_hidden_tests("simclr", ROOT)
    ns = dict(vars(load_reference(SOLUTION)))
    cells = {grade_id(c): c["source"] for c in read_notebook(SOLUTION)["cells"]}
    exec(compile(cells["grading_mode"], str(SOLUTION), "exec"), ns)  # noqa: S102
    work = tmp_path / "submission"
    work.mkdir()
    (work / hidden.WEIGHTS_FILE).symlink_to(SOLUTION.parent / hidden.WEIGHTS_FILE)
    monkeypatch.chdir(work)  # the probe reads the weights beside the notebook
    offline = [hidden.weights_accuracy(LocalProbe(ns), k) for k in (10, 25)]
    monkeypatch.setenv("FSL_DATA_DIR", str(_full_size_copy(tmp_path / "full")))
    from fsl_utils.data import load_cifar10

    assert len(load_cifar10(train=False)) == 10_000
    full = [hidden.weights_accuracy(LocalProbe(ns), k) for k in (10, 25)]
    assert full == offline
    assert offline[0] >= hidden.FLOOR_10 and offline[1] >= hidden.FLOOR_25  # the reference weights pass
