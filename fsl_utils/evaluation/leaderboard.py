"""Every few-shot method of the course on identical seeded episodes (lecture 9).

A :class:`Contender` is a name plus a ``build()`` function that trains (or just assembles)
a :class:`~fsl_utils.methods.base.FewShotClassifier`. :func:`run_leaderboard` builds each
contender once under :class:`measure` (wall time, CPU time, peak memory), then evaluates it
on the *same* episodes for every number of shots::

    rows = run_leaderboard(
        [Contender("ProtoNet", build_protonet), Contender("probe on ImageNet", build_probe, inputs="lite0")],
        data={"images": test_images, "lite0": test_features},   # (n_classes, n_per_class, ...) each
        dataset="Omniglot", shots=(1, 5, 10), n_way=5, n_query=5, n_episodes=200, seed=0)
    print(table_markdown(rows))

Episodes are identical across contenders because an :class:`~fsl_utils.data.EpisodeSampler`'s
draws depend only on its generator and on the data's first two dimensions: images of shape
(n_classes, n_per_class, C, H, W) and their features (n_classes, n_per_class, d) give the
same classes and the same examples for the same seed. Methods that only need embeddings
(probes, nearest centroid on frozen features) therefore read cached features, and
methods that adapt on pixels (MAML) read the images.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .cost import Cost, measure  # re-exported: the leaderboard reports a Cost per method
from ..data.containers import ClassImages
from ..data.episodes import Episode, EpisodeSampler
from .episodes import embed_classes, evaluate

__all__ = ["Contender", "Cost", "Row", "episodes", "measure", "plot_accuracy_vs_shots", "run_leaderboard", "table_markdown"]

@dataclass
class Contender:
    """One method of the leaderboard.

    Attributes:
        name: label in tables and plots, e.g. ``"ProtoNet (Conv-4)"``.
        build: trains or assembles the method and returns a ``FewShotClassifier``; timed.
        inputs: key of the evaluation data this method reads (``"images"``, or the name
            of a feature tensor such as ``"imagenet"``).
        family: a group label for the table, e.g. ``"episodic"`` or ``"frozen features"``.
        encoder: dotted attribute path of the built method's encoder (e.g. ``"backbone"``,
            ``"network.encoder"``), or None. When set, every evaluation item is embedded
            once by that encoder (eval mode, no gradients), the attribute is replaced by
            ``nn.Identity()`` and the method is evaluated on the embeddings: the same
            predictions as on the items (the encoder sees one item at a time in eval mode),
            computed once instead of in every episode.
    """

    name: str
    build: Callable[[], nn.Module]
    inputs: str = "images"
    family: str = ""
    encoder: str | None = None


@dataclass(frozen=True)
class Row:
    """One method at one number of shots.

    ``mean`` and ``ci95`` are in percent; ``train_*`` and ``peak_mb`` are the build's
    :class:`Cost` (the same for every k); ``eval_ms_per_episode`` includes a share of the
    one-off embedding of the evaluation items when the contender names an ``encoder``.
    ``accuracies`` holds the per-episode accuracies (%), episode i being the same episode
    for every method: differences between two methods can be compared episode by episode
    (a paired comparison, with a tighter interval than two separate ones).
    """

    method: str
    dataset: str
    family: str
    k_shot: int
    mean: float
    ci95: float
    n_episodes: int
    train_seconds: float
    train_cpu_seconds: float
    peak_mb: float
    eval_ms_per_episode: float
    accuracies: tuple[float, ...] = ()


def episodes(
    data: ClassImages | torch.Tensor, n_way: int, k_shot: int, n_query: int, n_episodes: int, seed: int,
    device: torch.device | str | None = None,
) -> EpisodeSampler:
    """The leaderboard's episodes for one number of shots: a fresh sampler seeded with ``seed``.

    Any two tensors whose first two dimensions agree (images and their features) give
    the same classes and examples for the same arguments.
    """
    return EpisodeSampler(data, n_way, k_shot, n_query, n_episodes=n_episodes,
                          generator=torch.Generator().manual_seed(seed), device=device)


def _shape(x: ClassImages | torch.Tensor) -> tuple[int, int]:
    t = x.images if isinstance(x, ClassImages) else x
    return int(t.shape[0]), int(t.shape[1])


def run_leaderboard(
    contenders: Sequence[Contender],
    data: Mapping[str, ClassImages | torch.Tensor],
    dataset: str,
    shots: Sequence[int] = (1, 5, 10, 20),
    n_way: int = 5,
    n_query: int = 15,
    n_episodes: int = 100,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> list[Row]:
    """Build every contender once, then evaluate it on identical seeded episodes per shot count.

    Args:
        contenders: the methods.
        data: evaluation classes under each input key: :class:`ClassImages` or tensors of
            shape (n_classes, n_per_class, ...), all with the same first two dimensions
            (the same classes and examples in the same order).
        dataset: label of the rows, e.g. ``"Omniglot"``.
        shots: values of k; ``k + n_query`` must not exceed the examples per class.
        n_way: classes per episode.
        n_query: queries per class.
        n_episodes: episodes per (method, k).
        seed: episodes for k shots use seed ``seed + k`` for every method.
            A method with a ``select_classes(class_ids)`` method (e.g.
            :class:`~fsl_utils.methods.zeroshot.ZeroShotClassifier`) is told each episode's
            ``class_ids`` (indices into the data's classes) before its support set.
        device: where episodes and methods run.
        progress: a progress bar per evaluation.

    Returns:
        One :class:`Row` per (contender, k), contenders in the given order.

    Raises:
        ValueError: a contender reads a missing input key, or the inputs disagree in shape.
    """
    shapes = {key: _shape(value) for key, value in data.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"every input must hold the same classes and examples (first two dimensions); got {shapes}")
    missing = sorted({c.inputs for c in contenders} - set(data))
    if missing:
        raise ValueError(f"contenders read inputs {missing} that are not in data (available: {sorted(data)})")
    rows = []
    for contender in contenders:
        with measure(device) as meter:
            method = contender.build()
        assert meter.cost is not None
        if device is not None:
            method = method.to(device)
        items, embed_seconds = data[contender.inputs], 0.0
        if contender.encoder is not None:
            start = time.perf_counter()
            items = _embed_with(method, contender.encoder, items, device, progress)
            embed_seconds = time.perf_counter() - start
        for k in shots:
            sampler = episodes(items, n_way, k, n_query, n_episodes, seed + k, device)
            result = evaluate(method, _announce_classes(method, sampler), n_episodes=n_episodes,
                              progress=progress, desc=f"{contender.name} {k}-shot")
            rows.append(Row(contender.name, dataset, contender.family, k, result.mean, result.ci95, result.n_episodes,
                            meter.cost.wall_seconds, meter.cost.cpu_seconds, meter.cost.peak_mb,
                            1000 * (result.seconds + embed_seconds / len(shots)) / result.n_episodes,
                            tuple(result.accuracies.tolist())))
    return rows


def _embed_with(method: nn.Module, path: str, items: ClassImages | torch.Tensor, device: torch.device | str | None,
                progress: bool) -> torch.Tensor:
    """Embed all items with ``method.<path>`` and put ``nn.Identity()`` in its place."""
    *parents, last = path.split(".")
    owner: Any = method
    for name in parents:
        owner = getattr(owner, name, None)
    encoder = getattr(owner, last, None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(f"the built {type(method).__name__} has no module at {path!r}; name its encoder, e.g. 'backbone'")
    embedded = embed_classes(encoder, items, device=device, progress=progress)
    setattr(owner, last, nn.Identity())
    return embedded


def _announce_classes(method: nn.Module, sampler: EpisodeSampler) -> Iterator[Episode]:
    """Yield the sampler's episodes, first telling a method with a ``select_classes`` hook
    (zero-shot classifiers, which need the class names) which classes each episode holds."""
    select = getattr(method, "select_classes", None)
    for episode in sampler:
        if select is not None:
            select(episode.class_ids)
        yield episode


def table_markdown(rows: Sequence[Row]) -> str:
    """A Markdown table: one line per (dataset, method), accuracy ± CI per k, then the costs."""
    shots = sorted({r.k_shot for r in rows})
    groups: dict[tuple[str, str], dict[int, Row]] = {}
    for r in rows:
        groups.setdefault((r.dataset, r.method), {})[r.k_shot] = r
    head = ["dataset", "method"] + [f"{k}-shot (%)" for k in shots] + ["train wall (s)", "train CPU (s)", "peak memory (MB)", "eval ms/episode"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (dataset, method), by_k in groups.items():
        any_row = next(iter(by_k.values()))
        cells = [dataset, method] + [f"{by_k[k].mean:.1f} ± {by_k[k].ci95:.1f}" if k in by_k else "" for k in shots]
        cells += [f"{any_row.train_seconds:.1f}", f"{any_row.train_cpu_seconds:.1f}", f"{any_row.peak_mb:.0f}",
                  f"{sum(r.eval_ms_per_episode for r in by_k.values()) / len(by_k):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_accuracy_vs_shots(rows: Sequence[Row], ax: Any = None, title: str | None = None, chance: float | None = None) -> Any:
    """Accuracy (with 95% CI error bars) against the number of shots, one line per method.

    Args:
        rows: rows of one dataset.
        ax: matplotlib Axes to draw on (default: a new figure).
        title: axes title.
        chance: draw a dotted line at this accuracy (e.g. ``100 / n_way``).

    Returns:
        The Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    methods = list(dict.fromkeys(r.method for r in rows))
    for i, method in enumerate(methods):
        mine = sorted((r for r in rows if r.method == method), key=lambda r: r.k_shot)
        ax.errorbar([r.k_shot for r in mine], [r.mean for r in mine], yerr=[r.ci95 for r in mine],
                    marker="os^vD<>ph*"[i % 10], capsize=3, label=method)
    if chance is not None:
        ax.axhline(chance, color="gray", ls=":", lw=1, label="chance")
    ax.set_xscale("log")
    ks = sorted({r.k_shot for r in rows})
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("labelled examples per class (k)")
    ax.set_ylabel("query accuracy (%)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    return ax
