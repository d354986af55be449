"""Bring your own images: a folder of labelled examples as the support set of any method.

::

    my_support/                      my_queries/
        cat/  a.jpg b.png ...            x.jpg y.jpg ...   (or a list of files)
        dog/  c.jpg ...

:func:`classify_folder` loads the support folder (``ImageFolder`` layout, see
:func:`fsl_utils.data.folder.load_image_folder`), hands it to any
:class:`~fsl_utils.methods.base.FewShotClassifier` through ``process_support_set`` and
classifies the query images; :func:`retrieve` ranks a pool of images by how likely they
belong to one class. :func:`fsl_utils.data.write_image_folder` writes images in that layout,
e.g. to build a demonstration folder from a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data.containers import LabeledImages, to_float
from ..data.folder import load_image_folder, load_images
from .inference import embed


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


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (n, C, H, W), got {tuple(images.shape)}")
    return images


def fit_support(method: nn.Module, support: LabeledImages, device: torch.device | str | None = None) -> None:
    """Give a labelled image set to the method as its support set, in eval mode.

    Args:
        method: a few-shot classifier (``process_support_set``).
        support: images uint8 (n, C, H, W) or float in [0, 1], labels int64 (n,).
        device: where to run (default: the method's ``device`` attribute, if any).
    """
    device = device if device is not None else getattr(method, "device", None)
    was_training = method.training
    method.eval()  # BatchNorm with running statistics: the support set must not update them
    try:
        with torch.set_grad_enabled(getattr(method, "needs_grad_at_test", False)):
            method.process_support_set(to_float(_check_images(support.images)).to(device), support.labels.to(device))
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
    logits = embed(method, _check_images(images), batch_size, device)
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


