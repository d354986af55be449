"""Siamese, matching and prototypical networks on identical Omniglot episodes, with training cost.

Each method trains a Conv-4 from the same initialisation on batches of the same size (200
images per step) from the background alphabets with rotations (Lake's split, 4 alphabets held
out as in lectures 5 and 6), for the same number of steps:

* siamese (Koch et al. 2015; lecture 5's twin without the feature dropout that lecture 5's
  full-mode recipe adds): Conv-4 without its last max-pool (576 features), Koch's weighted-L1
  head, balanced BCE over every pair of a batch of 40 characters x 5 drawings, Adam 1e-2 with a
  one-cycle schedule; classifies by the best-matching support image;
* matching networks (Vinyals et al. 2016, lecture 6): cosine attention, no FCE, 20-way 5-shot
  5-query episodes, Adam 1e-3;
* prototypical networks (Snell et al. 2017, lecture 6): squared Euclidean distance to the class
  means, the same episodes, Adam 1e-3.

Every trained encoder embeds the 659 evaluation characters once (BatchNorm running statistics);
all methods are then scored on identical seeded episodes (5/20-way x 1/5-shot, 15 queries).
Training cost is measured in CPU seconds of this process (``time.process_time``, all threads)
and in wall-clock seconds; use ``--threads 1`` on a shared machine.

Usage: ``python bench/metric.py [--steps 600 --episodes 1000 --threads 1]``; ``--methods matching
--merge`` adds or replaces one method in an existing results file of the same protocol.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import one_cycle, previous_rows, write_results
from torch import nn

from fsl_utils.encoders import Conv4
from fsl_utils.data import ClassImages, EpisodeSampler, load_omniglot, split_alphabets
from fsl_utils.training import episode_loss, train
from fsl_utils.evaluation import embed_classes, evaluate
from fsl_utils.methods import (
    MatchingNetworks,
    PrototypicalNetworks,
    SiameseClassifier,
    SiameseNetwork,
    balanced_pair_bce,
)

SETTINGS = [(5, 1), (5, 5), (20, 1), (20, 5)]
PAPER = {
    # Koch et al.'s network on these random-class episodes, as measured by Vinyals et al. (2016, Table 1);
    # Koch et al.'s own 92.0 is on Lake's within-alphabet runs (lecture 5 and bench/siamese.py measure both)
    "siamese": {"20w1s": 88.0},
    "matching": {"5w1s": 98.1, "5w5s": 98.9, "20w1s": 93.8, "20w5s": 98.5},
    "protonet": {"5w1s": 98.8, "5w5s": 99.7, "20w1s": 96.0, "20w5s": 98.9},
}


def twin_encoder(hidden: int = 64) -> nn.Sequential:
    """Conv-4 (``hidden`` filters per block) whose last block skips the max-pool:
    (B, 1, 28, 28) -> (B, 9 * hidden), (B, 576) as in lecture 5."""
    encoder = Conv4(hidden=hidden)
    encoder[3][3] = nn.Identity()
    return encoder


def build(name: str) -> nn.Module:
    """A fresh model of method ``name`` (seeded: every run starts from the same weights)."""
    torch.manual_seed(0)
    if name == "siamese":
        return SiameseNetwork(twin_encoder(), 576)
    return {"matching": MatchingNetworks, "protonet": PrototypicalNetworks}[name](Conv4())


def pair_batches(data: ClassImages, n_classes: int, per_class: int, seed: int):
    """Endless (images, labels) batches of ``n_classes`` characters x ``per_class`` drawings."""
    sampler = EpisodeSampler(data, n_classes, per_class // 2, per_class - per_class // 2, generator=torch.Generator().manual_seed(seed))
    for episode in sampler:
        yield torch.cat([episode.support_x, episode.query_x]), torch.cat([episode.support_y, episode.query_y])


def train_method(name: str, model: nn.Module, data: ClassImages, steps: int, seed: int) -> dict:
    """Train ``model`` for ``steps`` steps of 200 images; returns the cost and the last losses."""
    if name == "siamese":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        scheduler = one_cycle(optimizer, 1e-2, steps)
        batches = pair_batches(data, 40, 5, seed)

        def loss_fn(batch):
            z = model.embed(batch[0])
            return balanced_pair_bce(model.score_matrix(z, z), batch[1])

    else:
        optimizer, scheduler = torch.optim.Adam(model.parameters(), lr=1e-3), None
        batches = EpisodeSampler(data, 20, 5, 5, generator=torch.Generator().manual_seed(seed))

        def loss_fn(episode):
            return episode_loss(model, episode)

    wall, cpu = time.perf_counter(), time.process_time()
    history = train(model, batches, loss_fn, optimizer, steps, scheduler=scheduler, desc=name)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    losses = history.values["train loss"]
    return {
        "steps": steps,
        "images_per_step": 200,
        "train_cpu_s": round(cpu, 1),
        "train_wall_s": round(wall, 1),
        "cpu_s_per_step": round(cpu / steps, 3),
        "final_train_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4),
    }


def classifier_on_features(name: str, model: nn.Module) -> nn.Module:
    """The method's classifier reading precomputed embeddings (identity backbone, shared head)."""
    if name == "siamese":
        twin = SiameseNetwork(nn.Identity(), model.head.in_features)
        twin.head = model.head
        return SiameseClassifier(twin)
    return type(model)(nn.Identity())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="training steps (200 images each) per method")
    parser.add_argument("--episodes", type=int, default=1000, help="test episodes per setting")
    parser.add_argument("--test-classes", type=int, default=None, help="use only this many evaluation characters (smoke tests)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--methods", default="siamese,matching,protonet")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other methods of an existing results file with the same protocol (methods run in separate processes)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    background = load_omniglot("background", rotations=True)
    train_set, _ = split_alphabets(background, n_holdout=4, generator=torch.Generator().manual_seed(0))
    test_set = load_omniglot("evaluation")
    if args.test_classes:
        test_set = test_set.subset(list(range(args.test_classes)))

    payload: dict = {
        "protocol": (
            "Conv-4 on 28x28 Omniglot, Lake background set with rotations minus 4 validation alphabets; "
            f"{args.steps} steps of 200 images per method from one seed; {test_set.n_classes} evaluation characters, "
            f"{args.episodes} identical episodes per setting, 15 queries, BatchNorm running statistics"
        ),
        "paper": PAPER,
        "methods": {},
    }
    if args.merge:
        payload["methods"] = previous_rows("metric", payload["protocol"], "methods")
    for name in args.methods.split(","):
        model = build(name)
        cost = train_method(name, model, train_set, args.steps, seed=0)
        features = embed_classes(model.encoder if name == "siamese" else model.backbone, test_set, progress=False)
        classifier = classifier_on_features(name, model)
        accuracy = {}
        for n_way, k_shot in SETTINGS:
            episodes = EpisodeSampler(features, n_way, k_shot, 15, n_episodes=args.episodes,
                                      generator=torch.Generator().manual_seed(100 + 10 * n_way + k_shot))
            result = evaluate(classifier, episodes, progress=False)
            accuracy[f"{n_way}w{k_shot}s"] = {"mean": round(result.mean, 2), "ci95": round(result.ci95, 2)}
        payload["methods"][name] = {**cost, "accuracy": accuracy}
        print(f"{name}: {cost['train_cpu_s']:.0f} CPU-s ({cost['cpu_s_per_step']:.3f} per step), "
              + ", ".join(f"{k} {v['mean']:.1f} ± {v['ci95']:.1f}" for k, v in accuracy.items()), flush=True)
        path = write_results("metric", payload)  # after every method: a long run keeps what it finished
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
