"""``python -m fsl_utils.data.download`` (what ``make data`` runs): fetch the datasets.

Downloads Omniglot (both sets) and CIFAR-10 through torchvision, plus the Vinyals et al.
class split files from the ProtoNet authors' repository, into the course's data folder
(:func:`fsl_utils.data.data_root`: ``$FSL_DATA_DIR`` when set, else ``data/`` of the course
checkout). Needs internet access; files already present are kept.
"""

from __future__ import annotations

import argparse
import urllib.request
from pathlib import Path

from .cifar import load_cifar10
from .omniglot import FOLDER as OMNIGLOT_FOLDER
from .omniglot import VINYALS_SPLITS, load_omniglot
from .paths import locate_data

SPLITS_URL = "https://raw.githubusercontent.com/jakesnell/prototypical-networks/master/data/omniglot/splits/vinyals/{}.txt"


def download_vinyals_splits(root: Path) -> None:
    """Fetch the four Vinyals split files into ``<root>/omniglot-py/splits/vinyals/``."""
    folder = root / OMNIGLOT_FOLDER / "splits" / "vinyals"
    folder.mkdir(parents=True, exist_ok=True)
    for name in VINYALS_SPLITS:
        target = folder / f"{name}.txt"
        if not target.is_file():
            tmp = target.with_suffix(".part")
            urllib.request.urlretrieve(SPLITS_URL.format(name), tmp)
            tmp.replace(target)


#: What ``--only`` accepts: the course's two datasets.
DATASETS = ("omniglot", "cifar10")


def download(root: Path, datasets: tuple[str, ...] | list[str] = DATASETS) -> None:
    """Download ``datasets`` (names from :data:`DATASETS`) into ``root``; present files are kept."""
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; choose from {list(DATASETS)}")
    root.mkdir(parents=True, exist_ok=True)
    if "omniglot" in datasets:
        for split in ("background", "evaluation"):
            data = load_omniglot(split, root=root, download=True)
            print(f"Omniglot {split}: {data.n_classes} classes x {data.n_per_class} drawings")
        download_vinyals_splits(root)
        print("Omniglot Vinyals splits:", ", ".join(VINYALS_SPLITS))
    if "cifar10" in datasets:
        for train in (True, False):
            data = load_cifar10(train=train, root=root, download=True)
            print(f"CIFAR-10 {'train' if train else 'test'}: {len(data)} images")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="dataset folder (default: $FSL_DATA_DIR, else data/ of the course checkout)")
    parser.add_argument("--only", choices=DATASETS, action="append", default=None, help="download only this dataset (repeatable)")
    args = parser.parse_args(argv)
    if args.root is None:
        where = locate_data()
        print(f"Downloading into {where.path.resolve()} ({where.reason}).")
    root = args.root or locate_data().path
    download(root, tuple(args.only or DATASETS))
    print(f"Data ready in {root.resolve()}.")


if __name__ == "__main__":
    main()
