"""CIFAR-10 (Krizhevsky 2009) as uint8 tensors, read from torchvision's extracted pickles.

torchvision's ``CIFAR10`` verifies the md5 of every batch file and of ``batches.meta``;
copies rebuilt from other sources (like the offline one this course is tested on, whose
``test_batch`` holds only the first 1,000 test images) fail that check even though the
files are well formed. This loader validates the content instead: the pickle schema,
the array shapes and the label range.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from .containers import ClassImages, LabeledImages
from .paths import CorruptDataError, data_root, missing_data_error

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: Per-channel mean and std of the training images (for normalisation).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            blob = pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as err:
        raise CorruptDataError(f"Cannot read CIFAR-10 file {path}: {err}. Re-download it with `make data`.") from err
    if not isinstance(blob, dict):
        raise CorruptDataError(f"CIFAR-10 file {path} does not hold a dict (got {type(blob).__name__}); it is not a CIFAR batch.")
    return blob


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    blob = _unpickle(path)
    if "data" not in blob or "labels" not in blob:
        raise CorruptDataError(f"CIFAR-10 file {path} lacks the 'data'/'labels' entries of a CIFAR batch.")
    data = np.asarray(blob["data"])
    labels = np.asarray(blob["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CorruptDataError(f"CIFAR-10 file {path}: 'data' has shape {data.shape} and dtype {data.dtype}, expected (n, 3072) uint8.")
    if labels.shape != (data.shape[0],) or data.shape[0] == 0:
        raise CorruptDataError(f"CIFAR-10 file {path}: {data.shape[0]} images but {labels.shape[0]} labels.")
    if labels.min() < 0 or labels.max() >= len(CLASSES):
        raise CorruptDataError(f"CIFAR-10 file {path}: labels outside 0..9.")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(train: bool = True, root: str | Path | None = None, download: bool = False) -> LabeledImages:
    """Load the CIFAR-10 training set (50,000 images) or test set into memory.

    Args:
        train: the five training batches if True, otherwise ``test_batch`` (which may
            be partial: every image present is returned).
        root: dataset folder; default :func:`fsl_utils.data.data_root`.
        download: download through torchvision when the files are missing.

    Returns:
        :class:`LabeledImages` with images (n, 3, 32, 32) uint8 and labels (n,) int64.

    Raises:
        DataNotFoundError: the folder or a batch file is missing.
        CorruptDataError: a file exists but is not a well-formed CIFAR batch (names it).
    """
    root = Path(root) if root is not None else data_root()
    folder = root / FOLDER
    files = TRAIN_FILES if train else TEST_FILES
    if not folder.is_dir() and download:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=train, download=True)
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        what = "CIFAR-10" if len(missing) == len(files) else f"CIFAR-10 file {missing[0]}"
        raise missing_data_error(what, folder / missing[0])
    parts = [_read_batch(folder / f) for f in files]
    meta_file = folder / "batches.meta"
    names = list(CLASSES)
    if meta_file.is_file():
        meta = _unpickle(meta_file)
        names = list(meta.get("label_names", CLASSES))
        if len(names) != len(CLASSES):
            raise CorruptDataError(f"{meta_file} lists {len(names)} label names, expected {len(CLASSES)}.")
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return LabeledImages(images, labels, names)


def by_class(data: LabeledImages, per_class: int | None = None) -> ClassImages:
    """Group images by label: ``images`` of shape (n_classes, per_class, 3, 32, 32).

    Takes the first ``per_class`` images of each class in dataset order (default: the
    size of the smallest class), so the result can feed the episode sampler directly.
    """
    counts = torch.bincount(data.labels, minlength=len(data.class_names))
    n = int(counts.min()) if per_class is None else per_class
    if n < 1 or n > int(counts.min()):
        raise ValueError(f"per_class={per_class} but the smallest class has {int(counts.min())} images")
    order = torch.argsort(data.labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    idx = starts[:, None] + torch.arange(n)[None, :]
    return ClassImages(data.images[order[idx]], list(data.class_names))
