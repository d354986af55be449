"""Transfer learning and few-shot retrieval: the headline figures of lectures 1 and 2.

1. **Frozen ImageNet features vs scratch** (lecture 1). CIFAR-10 with 10 labels per class
   (the lecture's draw: a fixed pool of 200 candidates per class, then 10 per class per
   seed), evaluated on the offline test set (its first 1,000 images):
   (a) a linear probe on EfficientNet-Lite0's pooled ImageNet features at 160 px, and
   (b) the same network randomly initialised and trained on the 100 images at 32 px with
   crop/flip augmentation for 30 epochs (AdamW, cosine schedule, batch 32).
   Target: (a) at least twice as accurate as (b).
2. **Relevance feedback** (lecture 2). Omniglot's evaluation alphabets as an unlabelled
   pool (``--drawings`` drawings of each of the 659 characters); the target set is every
   drawing of one alphabet, the query one drawing of its first character. Pretrained
   EfficientNet-Lite0 embeddings at 96 px; a simulated user marks the 30 best-ranked
   unmarked results per round (5 rounds = 150 labels) and a logistic regression re-ranks
   the pool. Reported: precision@50 before and after, among unmarked items (what the probe
   found) and overall (what a user sees), for the lecture's alphabet and the mean over
   all 20 alphabets, and the first round at which the top 50 is all relevant (either way).
   Target: 50/50 after at most 150 labels. The Aquarium guide (the course's seed) has no
   figure for this setting: its ImageNet search returned other species (no count), 42/50 is
   its search after SimCLR fine-tuning on the pool (criterion: 4-6 clearly visible leaves), and
   its probe on the fine-tuned embeddings reached 50/50 after 108 relevant + 32 irrelevant labels.

Usage: ``python bench/transfer.py [--seeds 3 --n-test 1000 --drawings 10 --rounds 5 --per-round 30]``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from _common import write_results
from fsl_utils import seed_everything
from fsl_utils.encoders import extract_features, load_imagenet_encoder
from fsl_utils.data import load_cifar10, load_omniglot
from fsl_utils.evaluation import mean_ci95
from fsl_utils.retrieval import simulate_feedback
from fsl_utils.data import few_labels
from fsl_utils.evaluation import evaluate_accuracy
from fsl_utils.training import random_crop_flip, train_supervised

ALPHABET = "Oriya"  # the lecture's target (see lectures/02_embedding_retrieval.ipynb)
# The guide's three steps, each with its own result; this bench runs only the ImageNet search and its probe.
SEED_REFERENCE = ("Aquarium guide (sugar beets with 4-6 leaves): ImageNet search - other species, no count; "
                  "search after SimCLR fine-tuning on the pool - 42/50 (4-6 clearly visible leaves); "
                  "probe on the fine-tuned embeddings - 50/50 after 108 relevant + 32 irrelevant labels")


def scratch_accuracy(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, seed: int, epochs: int) -> float:
    """EfficientNet-Lite0 from random weights at 32 px, as lecture 1's arm (b)."""
    torch.manual_seed(seed)
    net = load_imagenet_encoder("efficientnet_lite0", pretrained=False, input_size=32)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1  # the TF port's 0.01 is too slow for a few hundred steps
    model = nn.Sequential(net, nn.Linear(net.feature_dim, 10))
    train_supervised(model, x, y, steps=math.ceil(epochs * len(x) / 32), batch_size=32, lr=1e-3, weight_decay=5e-4,
        augment=random_crop_flip, generator=torch.Generator().manual_seed(seed), progress=False)
    return evaluate_accuracy(model, x_test, y_test)


def transfer(seeds: int, n_test: int, labels_per_class: int, epochs: int) -> dict:
    train, test = load_cifar10(True), load_cifar10(False)
    pool = few_labels(train.labels, 200, torch.Generator().manual_seed(1234))
    x_pool, y_pool = train.images[pool], train.labels[pool]
    x_test, y_test = test.images[:n_test], test.labels[:n_test]
    picks = [few_labels(y_pool, labels_per_class, torch.Generator().manual_seed(s)) for s in range(seeds)]
    encoder = load_imagenet_encoder("efficientnet_lite0", input_size=160)
    used = torch.unique(torch.cat(picks))  # features only for the images some seed uses
    feats = F.normalize(extract_features(encoder, torch.cat([x_pool[used], x_test]), batch_size=100, progress=False,
                                         cache_key="bench-transfer-cifar-160px"), dim=1)
    where = {int(i): j for j, i in enumerate(used.tolist())}
    h_test = feats[len(used):]
    probe, scratch = [], []
    for seed, idx in enumerate(picks):
        rows = torch.tensor([where[int(i)] for i in idx])
        torch.manual_seed(seed)
        head = nn.Linear(feats.shape[1], 10)
        train_supervised(head, feats[rows], y_pool[idx], epochs=100, batch_size=256, lr=1e-2, weight_decay=1e-4,
                         generator=torch.Generator().manual_seed(seed), progress=False)
        probe.append(evaluate_accuracy(head, h_test, y_test))
        scratch.append(scratch_accuracy(x_pool[idx], y_pool[idx], x_test, y_test, seed, epochs))
        print(f"seed {seed}: probe {probe[-1]:.1f}%  scratch {scratch[-1]:.1f}%", flush=True)
    (pm, pci), (sm, sci) = mean_ci95(probe), mean_ci95(scratch)
    ratio = pm / max(sm, 1e-9)
    print(f"{labels_per_class} labels/class: frozen ImageNet features {pm:.1f} ± {pci:.1f}%, scratch {sm:.1f} ± {sci:.1f}%, "
          f"ratio {ratio:.2f}x (target >= 2x)")
    return {
        "labels_per_class": labels_per_class, "n_test": len(y_test), "seeds": seeds, "scratch_epochs": epochs,
        "probe": {"mean": pm, "ci95": pci, "per_seed": probe},
        "scratch": {"mean": sm, "ci95": sci, "per_seed": scratch},
        "ratio": ratio, "target_ratio": 2.0, "target_met": ratio >= 2.0,
    }


def retrieval(drawings: int, rounds: int, per_round: int, k: int, C: float) -> dict:
    data = load_omniglot("evaluation", image_size=64)
    alphabets = sorted({n.split("/")[0] for n in data.class_names})
    alphabet_of = torch.tensor([alphabets.index(n.split("/")[0]) for n in data.class_names]).repeat_interleave(drawings)
    images = data.images[:, :drawings].flatten(0, 1).unsqueeze(1)  # (659 * drawings, 1, 64, 64), strokes bright
    encoder = load_imagenet_encoder("efficientnet_lite0", input_size=96)
    emb = extract_features(encoder, images, batch_size=100, progress=False, cache_key="bench-transfer-omniglot-96px")
    per_alphabet = {}
    for a, name in enumerate(alphabets):
        relevant = alphabet_of == a
        query = int(relevant.nonzero()[0])
        history = simulate_feedback(emb, relevant, query, rounds=rounds, per_round=per_round, k=k, C=C)
        per_alphabet[name] = [
            {"labels": h.n_labels, "relevant_labels": h.n_relevant, "precision_unlabeled": h.precision_unlabeled, "precision": h.precision}
            for h in history
        ]
    target = per_alphabet[ALPHABET] if ALPHABET in per_alphabet else next(iter(per_alphabet.values()))
    before, after = target[0], target[-1]
    hits = lambda r, key: round(r[key] * k)  # noqa: E731
    # "50/50 after <= 150 labels": the first round whose top k is all relevant, either counting
    # the items the user marked (what the user sees, as in the seed) or only unmarked ones
    first_full = {key: next((r["labels"] for r in target if hits(r, key) == k), None) for key in ("precision", "precision_unlabeled")}
    best = max(target, key=lambda r: (r["precision_unlabeled"], -r["labels"]))
    reaching = sum(any(hits(r, "precision") == k for r in h) for h in per_alphabet.values())
    mean = lambda key, i: sum(v[i][key] for v in per_alphabet.values()) / len(per_alphabet)  # noqa: E731
    print(f"{ALPHABET}: precision@{k} {before['precision'] * k:.0f}/{k} before; after {after['labels']} labels "
          f"({after['relevant_labels']} relevant): {after['precision_unlabeled'] * k:.0f}/{k} among unmarked, "
          f"{after['precision'] * k:.0f}/{k} overall (target {k}/{k})")
    print(f"{ALPHABET}: {k}/{k} overall first after {first_full['precision']} labels; best among unmarked "
          f"{hits(best, 'precision_unlabeled')}/{k} after {best['labels']} labels; {reaching} of {len(alphabets)} alphabets "
          f"reach {k}/{k} overall within {rounds * per_round} labels")
    print(f"mean over {len(alphabets)} alphabets: {mean('precision', 0):.2f} -> {mean('precision_unlabeled', -1):.2f} unmarked, "
          f"{mean('precision', -1):.2f} overall")
    return {
        "pool": f"Omniglot evaluation, {drawings} drawings x 659 characters = {len(images)} images",
        "target_alphabet": ALPHABET, "k": k, "rounds": rounds, "per_round": per_round, "C": C,
        "target": target,
        "before_hits": round(before["precision"] * k), "after_hits_unlabeled": round(after["precision_unlabeled"] * k),
        "after_hits_overall": round(after["precision"] * k), "labels_used": after["labels"],
        "labels_to_all_relevant_overall": first_full["precision"],
        "labels_to_all_relevant_unlabeled": first_full["precision_unlabeled"],
        "best_hits_unlabeled": hits(best, "precision_unlabeled"), "labels_at_best_unlabeled": best["labels"],
        "target_met_overall": first_full["precision"] is not None,
        "target_met_unlabeled": first_full["precision_unlabeled"] is not None,
        "alphabets_reaching_all_relevant_overall": reaching,
        "mean_over_alphabets": {
            "before": mean("precision", 0), "after_unlabeled": mean("precision_unlabeled", -1), "after_overall": mean("precision", -1),
        },
        "per_alphabet": per_alphabet,
        "seed_reference": SEED_REFERENCE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30, help="scratch training epochs")
    parser.add_argument("--drawings", type=int, default=10, help="drawings per Omniglot character in the pool")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=30)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--C", type=float, default=10.0)
    args = parser.parse_args()
    seed_everything(0)
    wall, cpu = time.perf_counter(), time.process_time()
    payload = {
        "transfer": transfer(args.seeds, args.n_test, args.labels_per_class, args.epochs),
        "retrieval": retrieval(args.drawings, args.rounds, args.per_round, args.k, args.C),
    }
    payload["wall_seconds"], payload["cpu_seconds"] = time.perf_counter() - wall, time.process_time() - cpu
    print("wrote", write_results("transfer", payload))


if __name__ == "__main__":
    main()
