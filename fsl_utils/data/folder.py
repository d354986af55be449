"""Bring your own images: a folder in ``ImageFolder`` layout as an in-memory dataset.

::

    my_support/
        cat/   a.jpg b.png ...
        dog/   c.jpg ...

Each sub-folder is a class (sorted by name -> labels 0, 1, ...). Images are converted to
RGB (or grayscale), resized to a square and held as uint8, ready to be a few-shot
support set for any :class:`~fsl_utils.methods.base.FewShotClassifier`, or a pool to
classify or search.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .containers import LabeledImages
from .paths import CorruptDataError, DataNotFoundError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def read_image(path: str | Path, image_size: int, grayscale: bool = False) -> torch.Tensor:
    """One image file as uint8 (C, image_size, image_size), centre-cropped to a square.

    Raises:
        CorruptDataError: the file cannot be decoded (the message names it).
    """
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("L" if grayscale else "RGB")
            im = ImageOps.fit(im, (image_size, image_size), Image.Resampling.BICUBIC)
            arr = np.array(im, dtype=np.uint8)  # a writable copy
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise CorruptDataError(f"Cannot read image {path}: {err}. Remove or replace the file.") from err
    return torch.from_numpy(arr[None] if grayscale else np.ascontiguousarray(arr.transpose(2, 0, 1)))


def list_image_files(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_image_folder(root: str | Path, image_size: int = 84, grayscale: bool = False, min_per_class: int = 1) -> LabeledImages:
    """Load every image of an ``ImageFolder``-style folder into memory.

    Args:
        root: folder with one sub-folder per class.
        image_size: side of the square uint8 images (centre crop, then resize).
        grayscale: one channel instead of RGB (e.g. for an Omniglot-trained Conv-4).
        min_per_class: fail if a class has fewer images (e.g. k_shot for a support set).

    Returns:
        :class:`LabeledImages` with images (n, C, image_size, image_size), labels
        following the sorted class-folder names, and those names as ``class_names``.

    Raises:
        DataNotFoundError: ``root`` is missing or has no class folders with images.
        ValueError: a class has fewer than ``min_per_class`` images.
        CorruptDataError: an image cannot be decoded (names the file).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"Image folder {root} does not exist; create one sub-folder per class with a few images each.")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {c.name: list_image_files(c) for c in classes}
    if not any(files.values()):
        raise DataNotFoundError(
            f"{root} has no class sub-folders with images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "expected the ImageFolder layout root/<class name>/<image files>."
        )
    short = {name: len(fs) for name, fs in files.items() if len(fs) < min_per_class}
    if short:
        raise ValueError(f"These classes in {root} have fewer than {min_per_class} images: {short}; add images or lower k_shot.")
    names = [n for n, fs in files.items() if fs]
    images, labels = [], []
    for label, name in enumerate(names):
        for f in files[name]:
            images.append(read_image(f, image_size, grayscale))
            labels.append(label)
    return LabeledImages(torch.stack(images), torch.tensor(labels), names)


def load_images(paths: list[str | Path] | str | Path, image_size: int = 84, grayscale: bool = False) -> tuple[torch.Tensor, list[Path]]:
    """Unlabelled images to classify or search: a list of files, or every image in a folder.

    Returns:
        (uint8 images of shape (n, C, image_size, image_size), the file paths in order).
    """
    if isinstance(paths, (str, Path)):
        folder = Path(paths)
        if not folder.is_dir():
            raise DataNotFoundError(f"Image folder {folder} does not exist.")
        paths = list_image_files(folder)
        if not paths:
            raise DataNotFoundError(f"{folder} contains no image files ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    files = [Path(p) for p in paths]
    return torch.stack([read_image(f, image_size, grayscale) for f in files]), files


def write_image_folder(root: str | Path, images: torch.Tensor, labels: torch.Tensor | None, class_names: list[str],
                       prefix: str = "img") -> list[Path]:
    """Write uint8 images (n, C, H, W) as PNG files.

    With ``labels``: ``root/<class name>/<prefix>_<i>.png`` (the ``ImageFolder`` layout of a
    support set). Without: ``root/<prefix>_<i>.png`` (a flat folder of queries).

    Args:
        root: the folder to write into (created if needed).
        images: uint8 tensor of shape (n, C, H, W), C = 1 or 3.
        labels: int64 tensor of shape (n,) indexing ``class_names``, or None.
        class_names: the sub-folder name of each label.
        prefix: start of every file name.

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

