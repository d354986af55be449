"""Omniglot (Lake et al. 2015) as one in-memory tensor per split, cached on disk.

The images are read once from torchvision's extracted layout
(``<root>/omniglot-py/images_background/<Alphabet>/<characterNN>/*.png``), inverted so
that strokes are bright (as in Snell et al.'s code), resized, and stored as a uint8
tensor of shape ``(n_classes, 20, H, W)``. A second load reads the cache file and
takes well under a second.

torchvision's own ``Omniglot`` dataset only accepts the folder after checking the md5
of the original zip archive; this loader checks the extracted files themselves
(every character folder must hold 20 readable PNGs), so it works on copies without the
archives.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .containers import ClassImages
from .paths import CorruptDataError, cache_dir, data_root, drop_cache, missing_data_error, write_cache

FOLDER = "omniglot-py"
DRAWINGS_PER_CHARACTER = 20
#: Characters per official set (Lake et al.): background 964, evaluation 659.
EXPECTED_CHARACTERS = {"background": 964, "evaluation": 659}
VINYALS_SPLITS = ("train", "val", "trainval", "test")
ROTATIONS = (0, 90, 180, 270)
_CACHE_VERSION = 1


def _set_dir(root: Path, background: bool) -> Path:
    return root / FOLDER / ("images_background" if background else "images_evaluation")


def _download(root: Path, background: bool) -> None:
    # Only reached on explicit request; torchvision verifies the zip it downloads.
    from torchvision.datasets import Omniglot

    Omniglot(str(root), background=background, download=True)


def _character_folders(set_dir: Path, expected: int) -> list[Path]:
    folders = sorted(p for alphabet in sorted(set_dir.iterdir()) if alphabet.is_dir() for p in alphabet.iterdir() if p.is_dir())
    if len(folders) != expected:
        raise CorruptDataError(
            f"{set_dir} holds {len(folders)} character folders, expected {expected}: the extraction is incomplete. "
            f"Delete {set_dir} and run `make data` again (or restore it from the original zip)."
        )
    return folders


def _read_character(folder: Path, image_size: int) -> np.ndarray:
    files = sorted(folder.glob("*.png"))
    if len(files) != DRAWINGS_PER_CHARACTER:
        raise CorruptDataError(
            f"{folder} holds {len(files)} PNG drawings, expected {DRAWINGS_PER_CHARACTER}; the dataset copy is incomplete."
        )
    out = np.empty((len(files), image_size, image_size), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("L")
                if im.size != (image_size, image_size):
                    im = im.resize((image_size, image_size), Image.Resampling.LANCZOS)
                out[i] = 255 - np.asarray(im, dtype=np.uint8)  # strokes bright, paper dark
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise CorruptDataError(f"Cannot read Omniglot image {f}: {err}. Replace the file or re-download the dataset.") from err
    return out


def _load_set(root: Path, background: bool, image_size: int, download: bool, use_cache: bool) -> ClassImages:
    name = "background" if background else "evaluation"
    set_dir = _set_dir(root, background)
    if not set_dir.is_dir():
        if not download:
            raise missing_data_error(f"Omniglot ({name} set)", set_dir)
        _download(root, background)
    key = hashlib.sha1(f"{set_dir.resolve()}|{image_size}|{_CACHE_VERSION}".encode()).hexdigest()[:16]
    cache_file = cache_dir() / f"omniglot-{name}-{image_size}px-{key}.pt"
    if use_cache and cache_file.is_file():
        try:
            blob = torch.load(cache_file, weights_only=True)
            return ClassImages(blob["images"], list(blob["class_names"]))
        except Exception:  # a stale or truncated cache is rebuilt, never trusted
            drop_cache(cache_file)
    folders = _character_folders(set_dir, EXPECTED_CHARACTERS[name])
    # One thread: these 105x105 PNGs are too small for PIL's GIL release to pay; a pool of 4 threads
    # took twice the wall time and 2.6x the CPU time here (evaluation set: 7.3 s and 9.3 CPU-s against 3.6 s and 3.6 CPU-s).
    arrays = [_read_character(f, image_size) for f in folders]
    images = torch.from_numpy(np.stack(arrays))
    names = [f"{f.parent.name}/{f.name}" for f in folders]
    if use_cache:
        write_cache({"images": images, "class_names": names}, cache_file)  # atomic, best effort
    return ClassImages(images, names)


def _rotate(data: ClassImages, angles: tuple[int, ...]) -> ClassImages:
    """Every class once per angle; rotations are counter-clockwise, as PIL's."""
    parts = [torch.rot90(data.images, k=a // 90, dims=(-2, -1)) for a in angles]
    images = torch.stack(parts, dim=1).flatten(0, 1)  # class-major: c0rot0, c0rot90, ...
    names = [f"{n}/rot{a:03d}" for n in data.class_names for a in angles]
    return ClassImages(images.contiguous(), names)


def load_omniglot(
    split: str = "background",
    image_size: int = 28,
    rotations: bool | None = None,
    root: str | Path | None = None,
    download: bool = False,
    use_cache: bool = True,
) -> ClassImages:
    """Load an Omniglot split into memory.

    Args:
        split: ``"background"`` (30 alphabets, 964 characters) or ``"evaluation"``
            (20 alphabets, 659 characters) — Lake et al.'s split — or a Vinyals et al.
            split ``"vinyals/train"``, ``"vinyals/val"``, ``"vinyals/trainval"``,
            ``"vinyals/test"`` read from ``omniglot-py/splits/vinyals/<name>.txt``.
        image_size: side of the square images (28 as in Vinyals/Snell, 105 = original).
        rotations: add 90/180/270 degree rotations as new classes. Default: False for
            the Lake splits; for Vinyals splits the rotations listed in the split file
            (all four) — ``False`` keeps only ``rot000``.
        root: dataset folder; default :func:`fsl_utils.data.data_root`.
        download: download through torchvision when the files are missing.
        use_cache: read/write the resized tensor under :func:`fsl_utils.data.cache_dir`.

    Returns:
        :class:`ClassImages` with ``images`` of shape (n_classes, 20, image_size,
        image_size), uint8, strokes bright; class names ``"Alphabet/characterNN"``
        (plus ``"/rotDDD"`` with rotations).

    Raises:
        DataNotFoundError: the files are missing (names ``FSL_DATA_DIR`` and ``make data``).
        CorruptDataError: a file or folder is incomplete or unreadable (names it).
        ValueError: unknown split or bad image size.
    """
    if not isinstance(image_size, int) or image_size < 4:
        raise ValueError(f"image_size must be an int >= 4, got {image_size!r}")
    root = Path(root) if root is not None else data_root()
    if split in ("background", "evaluation"):
        data = _load_set(root, split == "background", image_size, download, use_cache)
        return _rotate(data, ROTATIONS) if rotations else data
    if split.startswith("vinyals/") and split.split("/", 1)[1] in VINYALS_SPLITS:
        return _load_vinyals(root, split.split("/", 1)[1], image_size, rotations, download, use_cache)
    raise ValueError(
        f"Unknown Omniglot split {split!r}; use 'background', 'evaluation' or one of "
        + ", ".join(f"'vinyals/{s}'" for s in VINYALS_SPLITS)
    )


def _load_vinyals(root: Path, name: str, image_size: int, rotations: bool | None, download: bool, use_cache: bool) -> ClassImages:
    split_file = root / FOLDER / "splits" / "vinyals" / f"{name}.txt"
    if not split_file.is_file():
        raise missing_data_error(f"The Vinyals split file {name}.txt", split_file)
    wanted = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    if rotations is False:
        wanted = [w for w in wanted if w.endswith("/rot000")]
    both = [_rotate(_load_set(root, bg, image_size, download, use_cache), ROTATIONS) for bg in (True, False)]
    index = {n: (s, i) for s, d in enumerate(both) for i, n in enumerate(d.class_names)}
    unknown = [w for w in wanted if w not in index]
    if unknown:
        raise CorruptDataError(f"{split_file} names {len(unknown)} classes not found in the images, e.g. {unknown[:3]}.")
    images = torch.stack([both[s].images[i] for s, i in (index[w] for w in wanted)])
    return ClassImages(images, wanted)


def split_alphabets(
    data: ClassImages, n_holdout: int, generator: torch.Generator | None = None
) -> tuple[ClassImages, ClassImages]:
    """Hold out whole alphabets (all their characters and rotations) for validation.

    Validating on characters of the training alphabets would flatter the model;
    few-shot validation needs *new* alphabets, like the test set.

    Args:
        data: Omniglot classes named ``"Alphabet/characterNN[/rotDDD]"``.
        n_holdout: number of alphabets to hold out.
        generator: picks the alphabets (default: seed 0).

    Returns:
        ``(train, held_out)`` :class:`ClassImages`.
    """
    alphabets = sorted({name.split("/")[0] for name in data.class_names})
    if not 0 < n_holdout < len(alphabets):
        raise ValueError(f"n_holdout must be between 1 and {len(alphabets) - 1} (the data has {len(alphabets)} alphabets), got {n_holdout}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    held = {alphabets[i] for i in torch.randperm(len(alphabets), generator=generator)[:n_holdout].tolist()}
    is_held = [name.split("/")[0] in held for name in data.class_names]
    keep = [i for i, h in enumerate(is_held) if not h]
    return data.subset(keep), data.subset([i for i, h in enumerate(is_held) if h])

