"""fsl_utils.evaluation.predict: classify and retrieve your own images with any few-shot method, on a generated folder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fsl_utils.data import write_image_folder
from fsl_utils.evaluation.predict import Predictions, classify_folder, fit_support, predict, retrieve
from fsl_utils.data import DataNotFoundError, load_image_folder
from fsl_utils.data.containers import LabeledImages
from fsl_utils.methods import LinearProbe, NearestCentroid
from fsl_utils.methods.maml import MAML, MAMLClassifier

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def _colour_images(n_per_class, size=16, seed=0):
    """uint8 (3 * n_per_class, 3, size, size): noisy images dominated by one colour per class."""
    g = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for label, rgb in enumerate(COLOURS.values()):
        base = torch.tensor(rgb, dtype=torch.float)[None, :, None, None]
        noise = torch.randn(n_per_class, 3, size, size, generator=g) * 40
        images.append((base + noise).clamp(0, 255).to(torch.uint8))
        labels += [label] * n_per_class
    return torch.cat(images), torch.tensor(labels)


@pytest.fixture
def folders(tmp_path):
    names = list(COLOURS)
    support_x, support_y = _colour_images(3, seed=1)
    query_x, query_y = _colour_images(4, seed=2)
    write_image_folder(tmp_path / "support", support_x, support_y, names)
    files = write_image_folder(tmp_path / "queries", query_x, None, names, prefix="q")
    return tmp_path, files, query_y, query_x


def test_written_folder_round_trips_through_the_loader(folders):
    root, files, _, query_x = folders
    support = load_image_folder(root / "support", image_size=16)
    assert support.class_names == sorted(COLOURS) and torch.bincount(support.labels).tolist() == [3, 3, 3]
    assert len(files) == 12 and files[0].name == "q_0000.png" and files[0].parent == root / "queries"
    from fsl_utils.data.folder import load_images

    loaded, _ = load_images(files, image_size=16)
    assert torch.equal(loaded, query_x)  # PNG is lossless and the size is unchanged


@pytest.mark.parametrize("make", [
    lambda: NearestCentroid(nn.Flatten()),
    lambda: LinearProbe(nn.Flatten(), weight_decay=1e-2),
    lambda: MAMLClassifier(MAML(nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3)), inner_lr=0.5, inner_steps=10,
                                zero_init=("1.weight", "1.bias"))),
])
def test_any_method_classifies_a_folder(folders, make):
    root, files, query_y, _ = folders
    out = classify_folder(make(), root / "support", root / "queries", image_size=16)
    assert isinstance(out, Predictions) and out.files == files
    # the loader sorts class folders by name: blue, green, red
    expected = [sorted(COLOURS).index(list(COLOURS)[y]) for y in query_y.tolist()]
    assert out.labels.tolist() == expected
    assert out.names[0] == "red" and out.probabilities.shape == (12, 3)
    assert torch.allclose(out.probabilities.sum(1), torch.ones(12))
    assert "q_0000.png: red" in str(out)


def test_retrieve_ranks_the_requested_class_first():
    support_x, support_y = _colour_images(2, seed=3)
    pool, pool_y = _colour_images(5, seed=4)
    method = NearestCentroid(nn.Flatten())
    fit_support(method, LabeledImages(support_x, support_y, list(COLOURS)))
    idx, probs = retrieve(method, pool, class_index=1, k=5, class_names=list(COLOURS))
    assert pool_y[idx].tolist() == [1] * 5
    assert (probs[:-1] >= probs[1:]).all() and len(idx) == 5
    idx_all, _ = retrieve(method, pool, class_index=2, k=100)
    assert len(idx_all) == 15 and pool_y[idx_all[:5]].tolist() == [2] * 5


def test_bad_inputs_are_explained(folders, tmp_path):
    root, files, _, query_x = folders
    method = NearestCentroid(nn.Flatten())
    with pytest.raises(DataNotFoundError, match="does not exist"):
        classify_folder(method, tmp_path / "nowhere", files)
    with pytest.raises(ValueError, match="fewer than 5 images"):
        classify_folder(method, root / "support", files, image_size=16, min_per_class=5)
    fit_support(method, load_image_folder(root / "support", image_size=16))
    with pytest.raises(ValueError, match="scores 3 classes but 2 class names"):
        predict(method, query_x, ["a", "b"])
    with pytest.raises(ValueError, match="class_index must be in 0..2"):
        retrieve(method, query_x, class_index=3)
    with pytest.raises(ValueError, match="uint8 images of shape"):
        write_image_folder(tmp_path / "x", query_x.float(), None, [])
