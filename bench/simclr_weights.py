"""The SimCLR homework's weights tests across seeds: how far the default pre-training and
random-init encoders sit from the floors (``solutions/simclr/hidden_tests.py``).

Each seed pre-trains the reference solution (``solutions/simclr/simclr.ipynb``: its setup
cell, answer cells and the given ``train_simclr``, via
``fsl_utils.grading.notebook.load_reference``) with the notebook's default budget — 600 steps
of 256 images, 16×16 views, τ = 0.2 — saves the encoder as a student would (``simclr.pt``) and
scores it with the hidden tests' own ``weights_accuracy`` (the grader's logistic regression on
L2-normalised features, 5 fixed draws of 10 and 25 labels per class), through the same probe
harness as grading. Random-init encoders of the same seeds are scored the same way, and ``--random-seeds`` scores
more random inits without training (cheap: the floor must sit below all of them). The
committed floors pass a correct submission only if every trained seed clears them, and fail
untrained weights only if every random init stays below; the results file records both
margins.

``--head v1`` trains with SimCLR v1's projection head instead of the reference's (no
BatchNorm: Linear → ReLU → Linear, also a correct answer to task 3) and stores those seeds
apart (``v1_head_seeds``). ``--save-dir`` keeps every encoder's state_dict.

Usage: ``python bench/simclr_weights.py [--seeds 1,2,3 --steps 600 --random-seeds 4,5,6 --threads 1 --merge]``;
``--merge`` keeps the seeds of an existing results file measured with the same steps (run two
processes with disjoint seeds on a 2-core machine, then merge).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from _common import RESULTS, previous_rows, write_results

from fsl_utils import seed_everything
from fsl_utils.data import load_cifar10
from fsl_utils.grading import LocalProbe, load_hidden_tests
from fsl_utils.grading.notebook import grade_id, load_reference, read_notebook
from fsl_utils.encoders import CifarCNN

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "simclr" / "simclr.ipynb"


def notebook_namespace() -> dict:
    """The reference notebook's globals: setup, answers and ``train_simclr`` (not run)."""
    ns = dict(vars(load_reference(SOLUTION)))
    cells = {grade_id(c): c["source"] for c in read_notebook(SOLUTION)["cells"]}
    ns["skip_training"] = True  # the training cell then only defines train_simclr
    for gid in ("grading_mode", "training"):
        exec(compile(cells[gid], str(SOLUTION), "exec"), ns)  # noqa: S102 (the course's own notebook)
    return ns


class ProjectionHeadV1(nn.Module):
    """SimCLR v1's head: Linear -> ReLU -> Linear (no BatchNorm); a correct answer to the notebook's task 3."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))

    def forward(self, h):
        return self.net(h)


def margins(rows: list[dict], floors: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per floor: how far the lowest trained seed sits above it and the highest random init below it (points)."""
    out = {}
    trained = [r for r in rows if "trained" in r]
    random_init = [r for r in rows if "random_init" in r]
    for k, floor in floors.items():
        out[k] = {}
        if trained:
            out[k]["trained_above"] = round(min(r["trained"][k] for r in trained) - floor, 2)
        if random_init:
            out[k]["random_below"] = round(floor - max(r["random_init"][k] for r in random_init), 2)
    return out


def score(ns: dict, hidden, state: dict, folder: Path) -> dict:
    """The two weights tests' accuracies (%) for an encoder ``state`` saved in ``folder``."""
    torch.save(state, folder / hidden.WEIGHTS_FILE)
    previous = Path.cwd()
    os.chdir(folder)  # the probe reads the weights beside the "notebook", as in grading
    try:
        probe = LocalProbe(ns)
        return {f"{k}_per_class": round(hidden.weights_accuracy(probe, k), 2) for k in (10, 25)}
    finally:
        os.chdir(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated training seeds")
    parser.add_argument("--steps", type=int, default=600, help="pre-training steps (the notebook's default: 600)")
    parser.add_argument("--random-seeds", default="", help="comma-separated seeds of random inits scored without training")
    parser.add_argument("--batch", type=int, default=256, help="images per step (the notebook's default: 256)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the notebook uses 1 on a CPU)")
    parser.add_argument("--merge", action="store_true", help="keep the seeds of an existing results file with the same steps")
    parser.add_argument("--head", choices=("reference", "v1"), default="reference", help="v1: SimCLR v1's head without BatchNorm")
    parser.add_argument("--save-dir", default=None, help="also save every encoder's state_dict here")
    parser.add_argument("--update-floors", action="store_true",
                        help="only re-compute the margins of the results file against the hidden tests' current floors")
    args = parser.parse_args()
    if args.update_floors:
        hidden = load_hidden_tests("simclr", ROOT)
        path = RESULTS / "simclr_weights.json"
        payload = json.loads(path.read_text())  # its "machine" stays: the figures are the same measurement
        payload["floors"] = {"10_per_class": hidden.FLOOR_10, "25_per_class": hidden.FLOOR_25}
        payload["margins"] = {k: margins(list(payload[k].values()), payload["floors"]) for k in ("seeds", "v1_head_seeds") if payload[k]}
        print(f"floors {payload['floors']}: margins {payload['margins']}")
        path.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {path}")
        return

    ns = notebook_namespace()
    if args.head == "v1":
        ns["ProjectionHead"] = ProjectionHeadV1  # train_simclr looks the head up in the notebook's globals
    torch.set_num_threads(args.threads)  # after the setup cell, which sets its own
    hidden = load_hidden_tests("simclr", ROOT)
    protocol = (f"reference solution, {args.steps} steps x {args.batch} images, 16x16 views, tau {ns['TEMPERATURE']}; the hidden tests' "
                f"weights_accuracy (L2-normalised features, C = {hidden.PROBE_C})")
    payload = {"protocol": protocol, "floors": {"10_per_class": hidden.FLOOR_10, "25_per_class": hidden.FLOOR_25}, "steps": args.steps,
               "seeds": {}, "v1_head_seeds": {}}
    key = "seeds" if args.head == "reference" else "v1_head_seeds"
    if args.merge:
        for k in ("seeds", "v1_head_seeds"):
            try:
                payload[k] = previous_rows("simclr_weights", protocol, k)
            except KeyError:
                payload[k] = {}
    images = load_cifar10(train=True).images  # after --merge's check of the protocol: a refused merge loads nothing
    with tempfile.TemporaryDirectory(prefix="fsl-simclr-bench-") as tmp:
        for seed in (int(s) for s in args.seeds.split(",") if s):
            ns["generator"] = seed_everything(seed)
            random_init = {k: v.clone() for k, v in CifarCNN(n_classes=0).state_dict().items()}
            ns["generator"] = seed_everything(seed)
            start = time.process_time()
            with contextlib.redirect_stderr(open(os.devnull, "w")):  # the notebook's progress bar
                encoder, history = ns["train_simclr"](images, args.steps, args.batch)
            cpu = time.process_time() - start
            trained = {k: v.cpu() for k, v in encoder.state_dict().items()}
            row = {"train_cpu_s": round(cpu, 1), "final_loss": round(history[-1], 3), "trained": score(ns, hidden, trained, Path(tmp))}
            if args.head == "reference":
                row["random_init"] = score(ns, hidden, random_init, Path(tmp))
            if args.save_dir:
                Path(args.save_dir).mkdir(parents=True, exist_ok=True)
                torch.save(trained, Path(args.save_dir) / f"{args.head}_seed{seed}.pt")
                torch.save(random_init, Path(args.save_dir) / f"random_seed{seed}.pt")
            payload[key][str(seed)] = row
            print(f"seed {seed} ({args.head} head): trained {row['trained']} (loss {row['final_loss']}, {cpu:.0f} CPU-s), "
                  f"random init {row.get('random_init')}", flush=True)
            payload["margins"] = {k: margins(list(payload[k].values()), payload["floors"]) for k in ("seeds", "v1_head_seeds") if payload[k]}
            path = write_results("simclr_weights", payload)  # after every seed: a long run keeps what it finished
        for seed in (int(s) for s in args.random_seeds.split(",") if s):
            ns["generator"] = seed_everything(seed)
            row = {"random_init": score(ns, hidden, {k: v.clone() for k, v in CifarCNN(n_classes=0).state_dict().items()}, Path(tmp))}
            payload["seeds"].setdefault(str(seed), {}).update(row)
            print(f"seed {seed}: random init {row['random_init']}", flush=True)
            payload["margins"] = {k: margins(list(payload[k].values()), payload["floors"]) for k in ("seeds", "v1_head_seeds") if payload[k]}
            path = write_results("simclr_weights", payload)
    for name, m in payload["margins"].items():
        print(f"{name}: margins {m}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
