"""Episodes per second: fsl_utils' in-memory sampler vs easyfsl's TaskSampler + DataLoader.

Both sides produce the same thing from the same Omniglot background set: N-way K-shot
Q-query episodes of float 28x28 grayscale tensors with remapped labels.

* fsl_utils: ``load_omniglot`` (resized once, cached uint8 tensor) + ``EpisodeSampler``.
* easyfsl 1.5.0: ``TaskSampler`` as a DataLoader batch sampler over torchvision's
  ``Omniglot`` (PNG decoding and resizing per image, as in easyfsl's own examples),
  with 0 and with 2 worker processes; the faster of the two is the reference.

Two shims, both needed to run easyfsl here at all, not to speed it up or down:
1. easyfsl's ``TaskSampler.__init__`` calls ``Sampler.__init__(data_source=None)``,
   which raises a TypeError on torch >= 2.x: the call is redirected to
   ``object.__init__`` while the sampler is constructed.
2. torchvision's ``Omniglot`` only accepts the data after an md5 check of the original
   zip, which the offline copy lacks: a subclass accepts the extracted folder and adds
   the ``get_labels()`` easyfsl requires.

Usage: ``python bench/episodes.py [--way 5 --shot 1 --query 15 --episodes 300]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import torch
from torchvision import transforms
from torchvision.datasets import Omniglot

from _common import write_results
from fsl_utils.data import EpisodeSampler, data_root, load_omniglot


@contextlib.contextmanager
def sampler_init_shim():
    """Let easyfsl's ``super().__init__(data_source=None)`` pass on new torch versions."""
    original = torch.utils.data.Sampler.__init__
    torch.utils.data.Sampler.__init__ = lambda self, data_source=None: None
    try:
        yield
    finally:
        torch.utils.data.Sampler.__init__ = original


class OfflineOmniglot(Omniglot):
    """torchvision's Omniglot over the extracted folder, with easyfsl's ``get_labels``."""

    def _check_integrity(self) -> bool:  # the extracted folder instead of the zip's md5
        return os.path.isdir(os.path.join(self.root, self._get_target_folder()))

    def get_labels(self) -> list[int]:
        return [label for _, label in self._flat_character_images]


def time_episodes(iterator, n: int) -> float:
    """Episodes per second over ``n`` episodes (after one warm-up episode)."""
    next(iterator)
    start = time.perf_counter()
    for _ in range(n):
        next(iterator)
    return n / (time.perf_counter() - start)


def bench_easyfsl(way: int, shot: int, query: int, n: int, workers: int) -> float:
    from easyfsl.samplers import TaskSampler

    dataset = OfflineOmniglot(
        str(data_root()),
        background=True,
        download=False,
        transform=transforms.Compose([transforms.Grayscale(), transforms.Resize(28), transforms.ToTensor()]),
    )
    with sampler_init_shim():
        sampler = TaskSampler(dataset, n_way=way, n_shot=shot, n_query=query, n_tasks=n + 1)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=workers, collate_fn=sampler.episodic_collate_fn
    )
    return time_episodes(iter(loader), n)


def bench_fsl_utils(way: int, shot: int, query: int, n: int) -> tuple[float, float]:
    start = time.perf_counter()
    data = load_omniglot("background")  # from the on-disk cache after the first run
    load_s = time.perf_counter() - start
    sampler = EpisodeSampler(data, way, shot, query, n_episodes=n + 1, generator=torch.Generator().manual_seed(0))
    return time_episodes(iter(sampler), n), load_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--way", type=int, default=5)
    parser.add_argument("--shot", type=int, default=1)
    parser.add_argument("--query", type=int, default=15)
    parser.add_argument("--episodes", type=int, default=300, help="episodes timed for easyfsl")
    args = parser.parse_args()
    load_omniglot("background")  # build the cache outside the timing
    ours, load_s = bench_fsl_utils(args.way, args.shot, args.query, max(2000, args.episodes))
    theirs = {w: bench_easyfsl(args.way, args.shot, args.query, args.episodes, w) for w in (0, 2)}
    best = max(theirs.values())
    ratio = ours / best
    setting = f"{args.way}-way {args.shot}-shot {args.query}-query"
    print(f"{setting}, Omniglot background, 28x28")
    print(f"  fsl_utils EpisodeSampler (in-memory):    {ours:9.0f} episodes/s  (cached load {load_s:.2f} s)")
    for w, eps in theirs.items():
        print(f"  easyfsl TaskSampler + DataLoader, {w} workers: {eps:6.1f} episodes/s")
    print(f"  speed-up over the faster easyfsl setting: {ratio:.0f}x (target >= 50x)")
    path = write_results(
        "episodes",
        {
            "setting": setting,
            "fsl_utils_episodes_per_s": round(ours, 1),
            "fsl_utils_cached_load_s": round(load_s, 3),
            "easyfsl_episodes_per_s": {f"{w}_workers": round(v, 1) for w, v in theirs.items()},
            "ratio": round(ratio, 1),
            "target_ratio": 50,
            "shims": ["easyfsl TaskSampler: Sampler.__init__(data_source=None) redirected during construction",
                      "torchvision Omniglot: integrity check accepts the extracted folder (no zip)"],
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
