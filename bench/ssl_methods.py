"""Semi- and self-supervised learning *from scratch* on CIFAR-10 with the course's small CNN:
what each doubling of CPU buys.

1. **semi** — the papers' regime, scaled down: ``CifarCNN`` trained from scratch on 250 labels
   (25 per class) with the rest of the pool unlabeled, FixMatch (and optionally Mean Teacher)
   against supervised-only, same network, steps and labeled batches of 32, for a list of step
   counts (``--semi-steps 175,350,700,1400``). Lecture 3 shows these rows in its "Measured
   notes" to say why its own experiment runs on a frozen ImageNet encoder instead
   (``bench/semi_features.py``).
2. **self** — SimCLR (and BYOL) pre-training on the 45,000 pool images (labels unused), with
   the batched views of ``simclr_augment(batched=True)`` (16x16) and NT-Xent at temperature
   ``--temperature`` (0.2; ``--per-image-views``: torchvision's loop instead), for a list of step
   counts (``--simclr-steps 300,600,1200,2400``); then
   the linear evaluation protocol (logistic regression on frozen 128-d features of the 32x32
   images) with 250 and 4,000 labels, against the same probe on a random-init encoder. Target
   of lecture 4: SimCLR ≥ random init + 15 points.

Accuracy is measured on 5,000 held-out training images (500 per class) that no method trains on
(the offline CIFAR-10 test set has only 1,000 images). CPU seconds are ``time.process_time()``
of the training loop (all threads; inflated on a busy machine, so steps are the budget's unit).
The loops are the lecture notebooks' (lectures 3 and 4), condensed.

Usage: ``python bench/ssl_methods.py [--only semi|self] [--semi-steps ...] [--simclr-steps ...]
[--byol-steps ...] [--threads 1] [--merge]``; ``--merge`` keeps the rows of an existing
results file measured with the same settings (run step counts in separate processes);
``--table semi|self`` prints the doubling table the lectures show. Tiny values for a smoke
test (tests/test_ssl_bench.py). Writes ``bench/results/ssl.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import trange

from _common import RESULTS, write_results
from fsl_utils import seed_everything
from fsl_utils.data import load_cifar10
from fsl_utils.encoders import CifarCNN
from fsl_utils.data import to_float
from fsl_utils.evaluation import embed, evaluate_accuracy
from fsl_utils.ssl import (
    PredictionHead,
    ProjectionHead,
    byol_loss,
    cosine_ema_decay,
    ema_copy,
    ema_update,
    embedding_std,
    fixmatch_loss,
    linear_probe,
    mean_teacher_loss,
    nt_xent,
    random_batches,
    semi_supervised_split,
    sigmoid_rampup,
    simclr_augment,
    strong_augment,
    weak_augment,
)

PROBE_LABELS = (250, 4000)


def train_semi(method: str, x_lab, y_lab, x_unl, steps: int, mu: int, seed: int, eval_x, eval_y) -> dict[str, Any]:
    """One from-scratch semi-supervised run; returns held-out accuracy, CPU seconds and FixMatch's final mask rate."""
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    model = CifarCNN(10)
    teacher = ema_copy(model) if method == "mean_teacher" else None
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: math.cos(7 * math.pi * k / (16 * steps)))
    weak, strong = weak_augment(), strong_augment()
    lab, unl = random_batches(len(x_lab), 32, g), random_batches(len(x_unl), 32 * mu, g)
    mask_rates: list[float] = []
    start = time.process_time()
    for step in trange(steps, desc=f"{method} {steps}", mininterval=30):
        i = next(lab)
        x, y = to_float(weak(x_lab[i])), y_lab[i]
        if method == "supervised":
            loss = F.cross_entropy(model(x), y)
        else:
            u = x_unl[next(unl)]
            if method == "mean_teacher":
                logits = model(torch.cat([x, to_float(weak(u))]))
                with torch.no_grad():
                    target = teacher(to_float(weak(u)))
                w = 10.0 * sigmoid_rampup(step, int(0.4 * steps))
                loss = F.cross_entropy(logits[: len(x)], y) + w * mean_teacher_loss(logits[len(x) :], target)
            elif method == "fixmatch":
                with torch.no_grad():
                    logits_weak = model(to_float(weak(u)))
                logits = model(torch.cat([x, to_float(strong(u))]))
                loss_u, mask = fixmatch_loss(logits_weak, logits[len(x) :], 0.95)
                loss = F.cross_entropy(logits[: len(x)], y) + loss_u
                mask_rates.append(mask.mean().item())
            else:
                raise ValueError(method)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if teacher is not None:
            ema_update(teacher, model, min(0.99, 1 - 1 / (step + 1)))
    cpu = time.process_time() - start
    out: dict[str, Any] = {"accuracy": round(evaluate_accuracy(teacher or model, eval_x, eval_y, batch_size=500), 2), "cpu_seconds": round(cpu, 1), "steps": steps}
    if mask_rates:
        out["final_mask_rate"] = round(sum(mask_rates[-50:]) / len(mask_rates[-50:]), 3)
    return out


def pretrain(method: str, images, steps: int, batch: int, seed: int, view_size: int, temperature: float,
             batched: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """SimCLR or BYOL pre-training (lecture 4's loops); returns the encoder and its CPU seconds / final loss.
    ``batched=False`` draws the views with torchvision's per-image loop instead (the same augmentations)."""
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    encoder = CifarCNN(0)
    online = nn.Sequential(encoder, ProjectionHead(encoder.feature_dim, 512, 128))
    params = list(online.parameters())
    if method == "byol":
        target = ema_copy(online)
        predictor = PredictionHead(128, 512)
        params += list(predictor.parameters())
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
    augment = simclr_augment(size=view_size, batched=batched)
    batches = random_batches(len(images), batch, g)
    start = time.process_time()
    for step in trange(steps, desc=f"{method} {steps}", mininterval=30):
        x = images[next(batches)]
        v1, v2 = to_float(augment(x)), to_float(augment(x))
        z = online(torch.cat([v1, v2]))
        if method == "simclr":
            loss = nt_xent(*z.chunk(2), temperature=temperature)
        else:
            q1, q2 = predictor(z).chunk(2)
            with torch.no_grad():
                t1, t2 = target(torch.cat([v1, v2])).chunk(2)
            loss = byol_loss(q1, t2) + byol_loss(q2, t1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if method == "byol":
            ema_update(target, online, cosine_ema_decay(step, steps, 0.99))
    return encoder, {"cpu_seconds": round(time.process_time() - start, 1), "steps": steps, "images": steps * batch,
                     "temperature": temperature if method == "simclr" else None, "views": "batched" if batched else "per-image",
                     "final_loss": round(loss.item(), 4), "final_std": round(embedding_std(z.detach()), 4)}


def _ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def _kept(section: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Rows of ``section`` in the existing results file when it was measured with the same ``settings``."""
    path = RESULTS / "ssl.json"
    if not path.is_file():
        return {}
    old = json.loads(path.read_text()).get(section, {})
    if old.get("settings") != settings:
        raise SystemExit(f"--merge: {path} [{section}] was measured with other settings:\n  {old.get('settings')}\n  now {settings}")
    return old.get("rows", {})


def row_key(run: dict[str, Any]) -> str:
    """``simclr@1200`` for the lecture's settings; other temperatures or per-image views are named in the key."""
    key = f"{run['method']}@{run['steps']}"
    if run["method"] == "simclr" and run["temperature"] != 0.2:
        key += f"@tau={run['temperature']}"
    return key + ("@per-image" if run["views"] == "per-image" else "")


def _label(run: dict[str, Any]) -> str:
    name = {"simclr": "SimCLR", "byol": "BYOL"}[run["method"]]
    extra = [f"τ = {run['temperature']}"] if run["method"] == "simclr" and run["temperature"] != 0.2 else []
    extra += ["per-image views"] if run["views"] == "per-image" else []
    return name + (f" ({', '.join(extra)})" if extra else "")


def table(results: dict[str, Any], section: str) -> str:
    """The doubling table of ``section`` ("semi" or "self") as markdown (lectures 3 and 4 paste it)."""
    if section == "semi":
        s = results["semi_250_labels"]
        lines = ["| steps | labeled + unlabeled images seen | supervised only | FixMatch | gain | FixMatch mask rate at the end | CPU-s (FixMatch) |",
                 "|---|---|---|---|---|---|---|"]
        for steps, row in sorted(s["rows"].items(), key=lambda kv: int(kv[0])):
            sup, fix = row["supervised"], row["fixmatch"]
            seen = int(steps) * 32 * (1 + s["settings"]["mu"])
            lines.append(f"| {int(steps):,} | {seen:,} | {sup['accuracy']:.1f} | {fix['accuracy']:.1f} | {fix['accuracy'] - sup['accuracy']:+.1f} "
                         f"| {fix['final_mask_rate']:.2f} | {fix['cpu_seconds']:.0f} |")
        return "\n".join(lines)
    s = results["self_linear_probe"]
    rnd, labels = s["random_init"], [str(n) for n in s["settings"]["probe_labels"]]
    probes = " | ".join(f"probe, {int(n):,} labels" for n in labels)
    lines = [f"| pre-training | steps | images (2 views each) | {probes} | gain over random init | CPU-s |",
             "|---|---|---|" + "---|" * len(labels) + "---|---|",
             f"| none (random init) | 0 | 0 | " + " | ".join(f"{rnd[n]:.1f}" for n in labels) + " | | 0 |"]
    order = sorted(s["rows"].items(), key=lambda kv: (kv[1]["method"] != "simclr", _label(kv[1]), kv[1]["steps"]))
    for _, row in order:
        p = row["probe_accuracy"]
        gains = " / ".join(f"{p[n] - rnd[n]:+.1f}" for n in labels)
        lines.append(f"| {_label(row)} | {row['steps']:,} | {row['images']:,} | " + " | ".join(f"{p[n]:.1f}" for n in labels)
                     + f" | {gains} | {row['cpu_seconds']:.0f} |")
    return "\n".join(lines)


def save(results: dict[str, Any], section: str) -> None:
    """Write ``section`` of ``results`` into ``ssl.json``, keeping the file's other section as it is now
    (another process may have written it since this one started)."""
    path = RESULTS / "ssl.json"
    current = {k: v for k, v in json.loads(path.read_text()).items() if k != "machine"} if path.is_file() else {}
    write_results("ssl", {**current, **{k: v for k, v in results.items() if k in (section, "network", "eval")}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--semi-steps", default="175,350,700,1400", help="step counts of the from-scratch runs, comma-separated")
    parser.add_argument("--semi-methods", default="supervised,fixmatch", help="from supervised, mean_teacher, fixmatch")
    parser.add_argument("--mu", type=int, default=3, help="unlabeled images per labeled image")
    parser.add_argument("--simclr-steps", default="300,600,1200,2400", help="SimCLR step counts, comma-separated")
    parser.add_argument("--byol-steps", default="600", help="BYOL step counts, comma-separated (may be empty)")
    parser.add_argument("--temperature", type=float, default=0.2, help="NT-Xent temperature")
    parser.add_argument("--per-image-views", action="store_true", help="torchvision's per-image views instead of the batched ones")
    parser.add_argument("--batch", type=int, default=256, help="SimCLR/BYOL images per step")
    parser.add_argument("--view-size", type=int, default=16, help="side of the SimCLR/BYOL views (evaluation: 32)")
    parser.add_argument("--n-eval", type=int, default=5000, help="held-out images to evaluate on (<= 5000)")
    parser.add_argument("--probe-labels", default="250,4000", help="label counts of the linear probes, comma-separated")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--only", choices=("semi", "self"), default=None)
    parser.add_argument("--merge", action="store_true", help="keep the rows of an existing results file measured with the same settings")
    parser.add_argument("--table", choices=("semi", "self"), default=None, help="print a doubling table of the results file and exit")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads((RESULTS / "ssl.json").read_text()), args.table))
        return
    if args.threads:
        torch.set_num_threads(args.threads)

    cifar = load_cifar10(train=True)
    split = semi_supervised_split(cifar.labels, 250, n_holdout=5000, generator=torch.Generator().manual_seed(0))
    eval_x, eval_y = cifar.images[split.holdout][: args.n_eval], cifar.labels[split.holdout][: args.n_eval]
    previous = RESULTS / "ssl.json"
    results: dict[str, Any] = {k: v for k, v in json.loads(previous.read_text()).items() if k != "machine"} if previous.is_file() else {}
    results |= {"network": "fsl_utils.ssl.CifarCNN (0.24M parameters, 128-d features), trained from scratch",
                "eval": f"{len(eval_y)} held-out CIFAR-10 training images (500 per class at 5,000)"}

    if args.only in (None, "semi"):
        settings = {"labels": 250, "labeled_batch": 32, "mu": args.mu, "n_eval": len(eval_y), "lr": 0.03, "threshold": 0.95}
        rows = _kept("semi_250_labels", settings) if args.merge else {}
        x_lab, y_lab, x_unl = cifar.images[split.labeled], cifar.labels[split.labeled], cifar.images[split.unlabeled]
        for steps in _ints(args.semi_steps):
            row = {m: train_semi(m, x_lab, y_lab, x_unl, steps, args.mu, 1, eval_x, eval_y) for m in args.semi_methods.split(",")}
            best = max((m for m in row if m != "supervised"), key=lambda m: row[m]["accuracy"])
            row |= {"best_consistency_method": best, "gain_points": round(row[best]["accuracy"] - row["supervised"]["accuracy"], 2),
                    "threads": torch.get_num_threads()}
            rows[str(steps)] = row
            print(f"{steps} steps: " + ", ".join(f"{m} {r['accuracy']:.1f}% ({r['cpu_seconds']:.0f} CPU-s)" for m, r in row.items() if isinstance(r, dict)),
                  f"gain {row['gain_points']:+.1f}", flush=True)
        results["semi_250_labels"] = {"settings": settings, "rows": rows, "target_gain_points": 10.0,
                                      "target_met": {s: r["gain_points"] >= 10.0 for s, r in rows.items()}}
        save(results, "semi_250_labels")

    if args.only in (None, "self"):
        labels = _ints(args.probe_labels)
        settings = {"batch": args.batch, "view_size": args.view_size, "n_eval": len(eval_y), "probe_labels": labels}
        rows = _kept("self_linear_probe", settings) if args.merge else {}
        pool = cifar.images[torch.cat([split.labeled, split.unlabeled])]
        pool_labels = cifar.labels[torch.cat([split.labeled, split.unlabeled])]
        draws = {n: semi_supervised_split(pool_labels, n, generator=torch.Generator().manual_seed(5)).labeled for n in labels}

        def probe(encoder: nn.Module) -> dict[str, float]:
            test = embed(encoder, eval_x)
            return {str(n): round(linear_probe(embed(encoder, pool[idx]), pool_labels[idx], test, eval_y), 2) for n, idx in draws.items()}

        torch.manual_seed(4)
        random_init = probe(CifarCNN(0))
        for method, steps_list in (("simclr", args.simclr_steps), ("byol", args.byol_steps)):
            for steps in _ints(steps_list):
                encoder, run = pretrain(method, pool, steps, args.batch, seed=2, view_size=args.view_size, temperature=args.temperature,
                                        batched=not args.per_image_views)
                run |= {"method": method, "threads": torch.get_num_threads(), "probe_accuracy": probe(encoder)}
                run["gain_points"] = {n: round(a - random_init[n], 2) for n, a in run["probe_accuracy"].items()}
                rows[row_key(run)] = run
                print(f"{method} {steps} steps ({run['cpu_seconds']:.0f} CPU-s): probe {run['probe_accuracy']}, gain {run['gain_points']}", flush=True)
                results["self_linear_probe"] = {"settings": settings, "random_init": random_init, "rows": rows, "target_gain_points": 15.0,
                                                "target_met": {k: all(g >= 15.0 for g in r["gain_points"].values()) for k, r in rows.items()}}
                save(results, "self_linear_probe")  # after every run: a long run keeps what it finished
    print(f"wrote {RESULTS / 'ssl.json'}")


if __name__ == "__main__":
    main()
