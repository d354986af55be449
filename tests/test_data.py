"""Loaders on the real offline data, and the errors for missing or damaged files."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fsl_utils.data import CorruptDataError, DataNotFoundError, by_class, data_root, load_cifar10, load_omniglot
from fsl_utils.data.omniglot import FOLDER


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FSL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_omniglot_background_and_evaluation(omniglot_background, omniglot_evaluation):
    assert omniglot_background.images.shape == (964, 20, 28, 28)
    assert omniglot_evaluation.images.shape == (659, 20, 28, 28)
    assert omniglot_background.images.dtype == torch.uint8
    assert not set(omniglot_background.class_names) & set(omniglot_evaluation.class_names)
    # strokes are bright on a dark background: most pixels are dark
    assert omniglot_background.images.float().mean() < 60
    assert len({n.split("/")[0] for n in omniglot_background.class_names}) == 30
    assert len({n.split("/")[0] for n in omniglot_evaluation.class_names}) == 20


def test_omniglot_rotations_are_new_classes(omniglot_background):
    rotated = load_omniglot("background", rotations=True)
    assert rotated.images.shape == (4 * 964, 20, 28, 28)
    assert rotated.class_names[:4] == [f"{omniglot_background.class_names[0]}/rot{a:03d}" for a in (0, 90, 180, 270)]
    assert torch.equal(rotated.images[1], torch.rot90(omniglot_background.images[0], 1, dims=(-2, -1)))
    assert torch.equal(rotated.images[0], omniglot_background.images[0])


@pytest.mark.parametrize("split,n_classes", [("vinyals/train", 4112), ("vinyals/val", 688), ("vinyals/trainval", 4800), ("vinyals/test", 1692)])
def test_vinyals_splits(split, n_classes):
    data = load_omniglot(split)
    assert data.images.shape == (n_classes, 20, 28, 28)
    assert data.class_names[0].endswith("/rot000")
    assert len(set(data.class_names)) == n_classes


def test_vinyals_train_and_test_share_no_character():
    chars = lambda s: {n.rsplit("/", 1)[0] for n in load_omniglot(s).class_names}  # noqa: E731
    assert not chars("vinyals/trainval") & chars("vinyals/test")
    assert len(load_omniglot("vinyals/test", rotations=False).class_names) == 1692 // 4


def test_omniglot_image_size_and_cache_hit(private_cache, monkeypatch):
    """The first load decodes every PNG and writes one cache file; the second reads that file
    and decodes nothing (counted calls, not timings)."""
    import PIL.Image

    opened, loaded = [], []
    real_open, real_load = PIL.Image.open, torch.load
    monkeypatch.setattr(PIL.Image, "open", lambda f, *a, **k: opened.append(f) or real_open(f, *a, **k))
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: loaded.append(Path(f)) or real_load(f, *a, **k))
    first = load_omniglot("evaluation", image_size=20)
    assert len(opened) == 659 * 20, "the first load decodes every drawing"
    (cache_file,) = private_cache.glob("omniglot-evaluation-20px-*.pt")
    assert loaded == []
    opened.clear()
    second = load_omniglot("evaluation", image_size=20)
    assert opened == [], f"the cached load decoded {len(opened)} PNG files again"
    assert loaded == [cache_file], f"the cached load read {loaded}, not the cache file {cache_file}"
    assert first.images.shape == (659, 20, 20, 20)
    assert torch.equal(first.images, second.images) and first.class_names == second.class_names
    assert len(list(private_cache.glob("omniglot-evaluation-20px-*.pt"))) == 1


def test_corrupt_cache_is_rebuilt(private_cache):
    load_omniglot("evaluation", image_size=12)
    (cache_file,) = private_cache.glob("*.pt")
    cache_file.write_bytes(b"not a torch file")
    assert load_omniglot("evaluation", image_size=12).images.shape == (659, 20, 12, 12)


def test_unwritable_cache_warns_and_loads(tmp_path, monkeypatch):
    """A cache folder that cannot be written (read-only in the grading sandbox, a full disk)
    costs time, never the load: the loader warns and returns the data."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FSL_CACHE_DIR", str(blocker / "cache"))  # mkdir fails even for root
    with pytest.warns(RuntimeWarning, match=r"could not write the cache file .*FSL_CACHE_DIR"):
        data = load_omniglot("evaluation", image_size=10)
    assert data.images.shape == (659, 20, 10, 10)
    assert blocker.read_text() == "not a folder"


def test_cache_writes_leave_no_temporary_files(private_cache):
    load_omniglot("evaluation", image_size=11)
    assert [p.name for p in private_cache.iterdir() if not p.name.endswith(".pt")] == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_cache_files_get_the_permissions_of_ordinary_files(private_cache, umask, mode):
    """Readable by others under the usual umask (the grader's sandboxed kernels run under other
    user ids when grading as root), private under a private umask."""
    from fsl_utils.data.paths import write_cache

    old = os.umask(umask)
    try:
        assert write_cache({"x": torch.zeros(2)}, private_cache / "t.pt")
    finally:
        os.umask(old)
    assert (private_cache / "t.pt").stat().st_mode & 0o777 == mode


def test_missing_data_names_fsl_data_dir_and_make_data(tmp_path, monkeypatch):
    monkeypatch.setenv("FSL_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match=r"FSL_DATA_DIR is set.*Point FSL_DATA_DIR"):
        load_omniglot("background")
    with pytest.raises(DataNotFoundError, match=r"FSL_DATA_DIR is set.*Point FSL_DATA_DIR"):
        load_cifar10()
    monkeypatch.delenv("FSL_DATA_DIR")
    monkeypatch.chdir(tmp_path)  # outside any course checkout, and the package's own is hidden:
    monkeypatch.setattr("fsl_utils.data.paths._PACKAGE_DIR", tmp_path / "site-packages" / "fsl_utils")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DataNotFoundError, match=r"FSL_DATA_DIR is unset.*fsl_utils\.data\.download"):
        load_omniglot("evaluation")


def _linked_copy(tmp_path: Path, which: str = "images_evaluation") -> Path:
    """A copy of one Omniglot set where every alphabet is a symlink but the first, which is copied."""
    src = data_root() / FOLDER / which
    dst = tmp_path / FOLDER / which
    dst.mkdir(parents=True)
    alphabets = sorted(p for p in src.iterdir() if p.is_dir())
    shutil.copytree(alphabets[0], dst / alphabets[0].name)
    for a in alphabets[1:]:
        (dst / a.name).symlink_to(a)
    return dst / alphabets[0].name


def test_corrupt_png_is_named(tmp_path, private_cache):
    alphabet = _linked_copy(tmp_path)
    victim = sorted(next(alphabet.iterdir()).glob("*.png"))[3]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(CorruptDataError, match=victim.name):
        load_omniglot("evaluation", root=tmp_path)


def test_missing_drawing_and_missing_character_are_named(tmp_path, private_cache):
    alphabet = _linked_copy(tmp_path)
    character = sorted(alphabet.iterdir())[0]
    sorted(character.glob("*.png"))[0].unlink()
    with pytest.raises(CorruptDataError, match=rf"{character.name} holds 19 PNG drawings, expected 20"):
        load_omniglot("evaluation", root=tmp_path, use_cache=False)
    shutil.rmtree(character)
    with pytest.raises(CorruptDataError, match="658 character folders, expected 659"):
        load_omniglot("evaluation", root=tmp_path, use_cache=False)


def test_unknown_split_and_bad_size():
    with pytest.raises(ValueError, match="Unknown Omniglot split 'vinyals/foo'"):
        load_omniglot("vinyals/foo")
    with pytest.raises(ValueError, match="image_size"):
        load_omniglot("background", image_size=0)


def test_cifar10_train_and_partial_test(cifar_train):
    assert cifar_train.images.shape == (50000, 3, 32, 32) and cifar_train.images.dtype == torch.uint8
    assert torch.equal(torch.bincount(cifar_train.labels), torch.full((10,), 5000))
    assert cifar_train.class_names[0] == "airplane" and cifar_train.class_names[9] == "truck"
    mean = cifar_train.images.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=2e-3)
    test = load_cifar10(train=False)
    assert len(test) == 1000 and test.images.shape[1:] == (3, 32, 32)


def test_cifar_by_class(cifar_train):
    grouped = by_class(cifar_train, per_class=30)
    assert grouped.images.shape == (10, 30, 3, 32, 32)
    first_cat = cifar_train.images[(cifar_train.labels == 3).nonzero()[0, 0]]
    assert torch.equal(grouped.images[3, 0], first_cat)
    with pytest.raises(ValueError, match="smallest class"):
        by_class(cifar_train, per_class=5001)


def _cifar_copy(tmp_path: Path) -> Path:
    src = data_root() / "cifar-10-batches-py"
    dst = tmp_path / "cifar-10-batches-py"
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).symlink_to(f)
    return dst


def test_cifar_truncated_and_malformed_batches_are_named(tmp_path):
    folder = _cifar_copy(tmp_path)
    (folder / "data_batch_3").unlink()
    (folder / "data_batch_3").write_bytes((data_root() / "cifar-10-batches-py" / "data_batch_3").read_bytes()[:5000])
    with pytest.raises(CorruptDataError, match="data_batch_3"):
        load_cifar10(root=tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError, match="data_batch_3"):
        load_cifar10(root=tmp_path)
    bad = {"data": np.zeros((10, 100), np.uint8), "labels": [0] * 10}
    (folder / "data_batch_3").write_bytes(pickle.dumps(bad))
    with pytest.raises(CorruptDataError, match=r"data_batch_3: 'data' has shape \(10, 100\)"):
        load_cifar10(root=tmp_path)
    bad = {"data": np.zeros((10, 3072), np.uint8), "labels": [11] * 10}
    (folder / "data_batch_3").unlink()
    (folder / "data_batch_3").write_bytes(pickle.dumps(bad))
    with pytest.raises(CorruptDataError, match="labels outside 0..9"):
        load_cifar10(root=tmp_path)
