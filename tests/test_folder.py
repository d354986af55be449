"""Bring-your-own-images loader on generated folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fsl_utils.data import CorruptDataError, DataNotFoundError, EpisodeSampler, load_image_folder, load_images


def make_folder(root, counts, size=(40, 30)):
    rng = np.random.default_rng(0)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            colour = {"blue": (0, 0, 255), "red": (255, 0, 0), "green": (0, 255, 0)}[cls]
            arr = np.clip(np.array(colour) + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.{'png' if i % 2 else 'jpg'}")
    (root / "notes.txt").write_text("not a class")
    return root


def test_load_image_folder_layout(tmp_path):
    root = make_folder(tmp_path / "support", {"red": 3, "blue": 2, "green": 4})
    (root / "red" / "readme.md").write_text("ignored")
    data = load_image_folder(root, image_size=16)
    assert data.class_names == ["blue", "green", "red"]
    assert data.images.shape == (9, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.labels.tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2]
    # colours survive: red images have a high red channel
    red = data.images[data.labels == 2].float().mean(dim=(0, 2, 3))
    assert red[0] > 200 and red[1] < 50
    gray = load_image_folder(root, image_size=8, grayscale=True)
    assert gray.images.shape == (9, 1, 8, 8)


def test_load_images_from_folder_and_list(tmp_path):
    root = make_folder(tmp_path / "s", {"red": 2})
    x, files = load_images(root / "red", image_size=10)
    assert x.shape == (2, 3, 10, 10) and [f.name for f in files] == ["0.jpg", "1.png"]
    x2, _ = load_images([files[1]], image_size=10)
    assert torch.equal(x2[0], x[1])


def test_folder_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="ImageFolder layout"):
        load_image_folder(tmp_path / "empty")
    root = make_folder(tmp_path / "few", {"red": 1, "blue": 3})
    with pytest.raises(ValueError, match=r"fewer than 2 images: \{'red': 1\}"):
        load_image_folder(root, min_per_class=2)
    (root / "blue" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(CorruptDataError, match="broken.png"):
        load_image_folder(root)


def test_folder_feeds_the_episode_pipeline(tmp_path):
    from fsl_utils.data import by_class

    data = load_image_folder(make_folder(tmp_path / "s", {"red": 4, "blue": 4, "green": 4}), image_size=12)
    episode = EpisodeSampler(by_class(data), n_way=3, k_shot=1, n_query=3).sample()
    assert episode.support_x.shape == (3, 3, 12, 12)
