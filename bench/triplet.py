"""Lecture 5's triplet network with each way of mining triplets: what the choice of triplets is worth.

The recipe is lecture 5's section 11: 28x28 Omniglot, Lake's background alphabets with rotations as
classes minus 4 validation alphabets; Conv-4 without its last max-pool (576 features), L2-normalised;
the triplet loss with margin 0.2 on squared distances; batches of 32 characters x 4 drawings; Adam with
a one-cycle schedule peaking at 3e-3; seed 0. A *variant* is a mining rule of
:func:`fsl_utils.methods.triplet.triplet_loss`: ``semi_hard`` (FaceNet; the lecture's), ``hard``
(batch-hard, Hermans et al. 2017) or ``all`` (every valid triplet), optionally with another margin
(``hard+margin=0.5``).

The trained network embeds the 659 characters of the 20 evaluation alphabets once and is scored as in
the lecture: 20-way 1-shot accuracy by the nearest neighbour (2,000 episodes of random classes, seed
2024), and verification accuracy on balanced test pairs of the evaluation alphabets at the
threshold that maximises the accuracy on balanced pairs of the validation alphabets, with the
test ROC's AUC. ``fractions`` are the shares of hard, semi-hard and easy triplets in a training
batch after training. Cost is CPU seconds of the training loop.

Usage: ``python bench/triplet.py --batches 600 --variant semi_hard --variant hard --variant all``
(~100 CPU-s per variant at 600 batches on one thread). Every run merges its rows into
``bench/results/triplet.json`` under ``"<variant>@<batches>"``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import one_cycle, previous_rows, write_results  # noqa: E402

from fsl_utils import seed_everything  # noqa: E402
from fsl_utils.encoders import Conv4  # noqa: E402
from fsl_utils.data import EpisodeSampler, load_omniglot, split_alphabets  # noqa: E402
from fsl_utils.training import train  # noqa: E402
from fsl_utils.evaluation import embed_classes, evaluate  # noqa: E402
from fsl_utils.methods import NearestCentroid  # noqa: E402
from fsl_utils.methods.triplet import MININGS, L2Normalize, triplet_fractions, triplet_loss  # noqa: E402
from fsl_utils.data.pairs import PairSampler  # noqa: E402
from fsl_utils.evaluation.verification import accuracy_at, auc, best_threshold, roc_curve  # noqa: E402

PROTOCOL = ("28x28 Omniglot, Lake background with rotations minus 4 validation alphabets; Conv-4 without its last pool "
            "(576 features), L2-normalised; batches of 32 characters x 4 drawings; Adam one-cycle 3e-3; seed 0; "
            "20-way 1-shot nearest neighbour on the 20 evaluation alphabets (random classes, seed 2024); verification on "
            "balanced pairs, threshold from validation pairs")


def parse_variant(text: str) -> tuple[str, float]:
    mining, *rest = text.split("+")
    if mining not in MININGS:
        raise SystemExit(f"unknown mining {mining!r} in variant {text!r}; use one of {MININGS}")
    margin = 0.2
    for change in rest:
        key, _, value = change.partition("=")
        if key != "margin":
            raise SystemExit(f"unknown change {change!r} in variant {text!r}; only margin=<float>")
        margin = float(value)
    return mining, margin


def batches(data, seed: int):
    for ep in EpisodeSampler(data, 32, 2, 2, generator=torch.Generator().manual_seed(seed)):
        yield torch.cat([ep.support_x, ep.query_x]), torch.cat([ep.support_y, ep.query_y])


def run(variant: str, steps: int, episodes: int, pairs: int, test_classes: int | None, data) -> dict:
    mining, margin = parse_variant(variant)
    train_set, val_set, test_set = data
    torch.manual_seed(0)
    encoder = Conv4()
    encoder[3][3] = nn.Identity()
    net = nn.Sequential(encoder, L2Normalize())
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    scheduler = one_cycle(optimizer, 3e-3, steps)
    start = time.process_time()
    history = train(net, batches(train_set, 0), lambda b: (triplet_loss(net(b[0]), b[1], margin, mining), {}), optimizer, steps,
                    scheduler=scheduler, progress=False)
    cpu = time.process_time() - start
    net.eval()
    x, y = next(batches(train_set, 9))
    with torch.no_grad():
        fractions = triplet_fractions(net(x), y, margin)
        features = embed_classes(net, test_set, progress=False)
        sampler = EpisodeSampler(features, 20, 1, 1, n_episodes=episodes, generator=torch.Generator().manual_seed(2024))
        one_shot = evaluate(NearestCentroid(nn.Identity(), normalize=False), sampler, progress=False)
        scores = {}
        for name, split, seed in (("val", val_set, 11), ("test", test_set, 12)):
            p = PairSampler(split, batch_size=pairs, generator=torch.Generator().manual_seed(seed)).sample()
            scores[name] = (-(net(p.x1) - net(p.x2)).pow(2).sum(1), p.same)
    threshold, val_accuracy = best_threshold(*scores["val"])
    fpr, tpr, _ = roc_curve(*scores["test"])
    return {"mining": mining, "margin": margin, "batches": steps, "train_cpu_s": round(cpu, 1),
            "final_loss": round(sum(history.values["train loss"][-20:]) / min(20, steps), 4),
            "one_shot_20way_random": {"mean": round(one_shot.mean, 2), "ci95": round(one_shot.ci95, 2), "episodes": episodes},
            "verification": {"val": round(val_accuracy, 2), "test": round(accuracy_at(*scores["test"], threshold), 2),
                             "auc": round(auc(fpr, tpr), 4), "pairs": pairs},
            "fractions": {k: round(v, 4) for k, v in fractions.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=600)
    parser.add_argument("--variant", action="append", default=None, help="mining[+margin=M]; repeatable")
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--test-classes", type=int, default=None, help="only the first N evaluation characters (smoke tests)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    variants = args.variant or ["semi_hard", "hard", "all"]
    for v in variants:
        parse_variant(v)  # fail before any training
    torch.set_num_threads(args.threads)
    seed_everything(0)
    background = load_omniglot("background", rotations=True)
    train_set, val_set = split_alphabets(background, n_holdout=4, generator=torch.Generator().manual_seed(0))
    val_set = val_set.subset([i for i, n in enumerate(val_set.class_names) if n.endswith("rot000")])
    test_set = load_omniglot("evaluation")
    if args.test_classes:
        test_set = test_set.subset(list(range(args.test_classes)))
    rows = previous_rows("triplet", PROTOCOL, "rows")
    for v in variants:
        rows[f"{v}@{args.batches}"] = row = run(v, args.batches, args.episodes, args.pairs, args.test_classes, (train_set, val_set, test_set))
        print(f"{v}@{args.batches}: {row}", flush=True)
    path = write_results("triplet", {"protocol": PROTOCOL, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
