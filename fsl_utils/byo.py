"""Bring your own images: a folder of labelled examples as the support set of any method.

::

    my_support/                      my_queries/
        cat/  a.jpg b.png ...            x.jpg y.jpg ...   (or a list of files)
        dog/  c.jpg ...

:func:`classify_folder` loads the support folder (``ImageFolder`` layout, see
:func:`fsl_utils.data.folder.load_image_folder`), hands it to any
:class:`~fsl_utils.methods.base.FewShotClassifier` through ``process_support_set`` and
classifies the query images; :func:`retrieve` ranks a pool of images by how likely they
belong to one class. :func:`write_image_folder` writes images in that layout, e.g. to
build a demonstration folder from a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .data.containers import LabeledImages
from .data.folder import load_image_folder, load_images


@dataclass(frozen=True)
class Predictions:
    """What a method says about some images.

    Attributes:
        labels: predicted class index per image, shape (n,).
        class_names: names of the support classes (index -> name).
        probabilities: softmax of the method's logits, shape (n, n_way).
        files: the image files, when they came from disk.
    """

    labels: torch.Tensor
    class_names: list[str]
    probabilities: torch.Tensor
    files: list[Path] | None = None

    @property
    def names(self) -> list[str]:
        """Predicted class name per image."""
        return [self.class_names[i] for i in self.labels.tolist()]

    def __str__(self) -> str:
        rows = []
        for i, (name, p) in enumerate(zip(self.names, self.probabilities.max(dim=1).values.tolist())):
            what = self.files[i].name if self.files is not None else f"image {i}"
            rows.append(f"{what}: {name} ({100 * p:.0f}%)")
        return "\n".join(rows)


def _as_float(images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (n, C, H, W), got {tuple(images.shape)}")
    return images.float().div(255) if images.dtype == torch.uint8 else images.float()


def fit_support(method: nn.Module, support: LabeledImages, device: torch.device | str | None = None) -> None:
    """Give a labelled image set (uint8 (n, C, H, W) or float in [0, 1]) to the method as its support set."""
    device = device if device is not None else getattr(method, "device", None)
    was_training = method.training
    method.eval()  # BatchNorm with running statistics: the support set must not update them
    try:
        with torch.set_grad_enabled(getattr(method, "needs_grad_at_test", False)):
            method.process_support_set(_as_float(support.images).to(device), support.labels.to(device))
    finally:
        method.train(was_training)


def predict(
    method: nn.Module, images: torch.Tensor, class_names: list[str] | None = None, batch_size: int = 64,
    device: torch.device | str | None = None,
) -> Predictions:
    """Classify images with a method whose support set is already processed.

    Args:
        method: a few-shot classifier after ``process_support_set`` (e.g. :func:`fit_support`).
        images: uint8 (n, C, H, W) or float in [0, 1]; the same size and channels as the support.
        class_names: the support classes' names, index = support label (default "0", "1", ...).
        batch_size: images per forward pass.
        device: where to run (default: the method's device).

    Returns:
        :class:`Predictions`.
    """
    device = device if device is not None else getattr(method, "device", None)
    x = _as_float(images)
    was_training = method.training
    method.eval()
    try:
        with torch.set_grad_enabled(getattr(method, "needs_grad_at_test", False)):
            logits = torch.cat([method(x[i : i + batch_size].to(device)).detach().float().cpu() for i in range(0, len(x), batch_size)])
    finally:
        method.train(was_training)
    if class_names is None:
        class_names = [str(i) for i in range(logits.shape[1])]
    if logits.shape[1] != len(class_names):
        raise ValueError(f"the method scores {logits.shape[1]} classes but {len(class_names)} class names were given")
    probabilities = logits.softmax(dim=1)
    return Predictions(probabilities.argmax(dim=1), list(class_names), probabilities)


def classify_folder(
    method: nn.Module,
    support_root: str | Path,
    queries: str | Path | list[str | Path],
    image_size: int = 84,
    grayscale: bool = False,
    min_per_class: int = 1,
    device: torch.device | str | None = None,
) -> Predictions:
    """Classify your own images: support from a class-per-folder tree, queries from a folder or list.

    Args:
        method: any few-shot classifier whose backbone takes float images in [0, 1] of
            shape (B, C, image_size, image_size) (ImageNet encoders resize themselves).
        support_root: folder with one sub-folder of example images per class.
        queries: a folder of images, or a list of image files.
        image_size: side the images are centre-cropped and resized to.
        grayscale: load one channel (e.g. for an Omniglot-trained Conv-4).
        min_per_class: fail if a class has fewer example images.
        device: where to run.

    Returns:
        :class:`Predictions` with ``files`` set (class names = sub-folder names).
    """
    support = load_image_folder(support_root, image_size, grayscale, min_per_class)
    images, files = load_images(queries, image_size, grayscale)
    fit_support(method, support, device)
    out = predict(method, images, support.class_names, device=device)
    return Predictions(out.labels, out.class_names, out.probabilities, files)


def retrieve(
    method: nn.Module, pool: torch.Tensor, class_index: int, k: int = 10, class_names: list[str] | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` pool images most likely to belong to one support class.

    Args:
        method: a few-shot classifier after ``process_support_set``.
        pool: images to search, uint8 (n, C, H, W) or float in [0, 1].
        class_index: the support class to look for.
        k: how many to return (at most ``n``).
        class_names: the support classes (only to check the method's output width).
        device: where to run.

    Returns:
        ``(indices, probabilities)`` of shape (k,): pool positions, most likely first,
        and the method's probability of ``class_index`` for each.
    """
    out = predict(method, pool, class_names, device=device)
    if not 0 <= class_index < out.probabilities.shape[1]:
        raise ValueError(f"class_index must be in 0..{out.probabilities.shape[1] - 1}, got {class_index}")
    scores = out.probabilities[:, class_index]
    top = scores.argsort(descending=True)[: min(k, len(scores))]
    return top, scores[top]


def write_image_folder(root: str | Path, images: torch.Tensor, labels: torch.Tensor | None, class_names: list[str],
                       prefix: str = "img") -> list[Path]:
    """Write uint8 images (n, C, H, W) as PNG files.

    With ``labels``: ``root/<class name>/<prefix>_<i>.png`` (the ``ImageFolder`` layout of a
    support set). Without: ``root/<prefix>_<i>.png`` (a flat folder of queries).

    Returns:
        The written paths, in the order of ``images``.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images of shape (n, 1 or 3, H, W), got {images.dtype} {tuple(images.shape)}")
    root = Path(root)
    paths = []
    for i, image in enumerate(images):
        folder = root / class_names[int(labels[i])] if labels is not None else root
        folder.mkdir(parents=True, exist_ok=True)
        arr = image.permute(1, 2, 0).numpy()
        path = folder / f"{prefix}_{i:04d}.png"
        Image.fromarray(np.ascontiguousarray(arr[..., 0] if arr.shape[2] == 1 else arr)).save(path)
        paths.append(path)
    return paths
