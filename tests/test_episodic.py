"""The episodic training loop: it learns, logs a usable history, validates, and fails loudly."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fsl_utils.data import ClassImages, EpisodeSampler
from fsl_utils.data import split_alphabets
from fsl_utils.training import History, episode_loss, train, train_episodic
from fsl_utils.evaluation import evaluate
from fsl_utils.methods import PrototypicalNetworks
from seeds import rng


def hidden_signal_data(n_classes=40, per_class=12, seed=0):
    """Classes differ only in 2 of 20 features; 18 noisy features drown them unless learned away."""
    g = rng(seed)
    x = torch.randn(n_classes, per_class, 20, generator=g)
    x[:, :, :2] = 0.3 * x[:, :, :2] + 2.0 * torch.randn(n_classes, 1, 2, generator=g)
    x[:, :, 2:] *= 3.0
    return x


def test_episodic_training_learns_what_matters():
    torch.manual_seed(0)
    data = hidden_signal_data()
    train_split, test_split = data[:30], data[30:]
    method = PrototypicalNetworks(nn.Linear(20, 4))

    def val():
        return evaluate(method, EpisodeSampler(test_split, 5, 1, 5, n_episodes=100, generator=rng(1)), progress=False)

    before = val().mean
    history = train_episodic(
        method,
        EpisodeSampler(train_split, 5, 2, 5, generator=rng(2)),
        torch.optim.Adam(method.parameters(), 1e-2),
        n_steps=150,
        validate=val,
        val_every=50,
        progress=False,
    )
    after = history.last("val acc")
    assert after > before + 20, (before, after)  # novel classes, so the embedding learned the signal
    assert history.steps["val acc"] == [50, 100, 150]
    assert len(history.values["train loss"]) == len(history.values["train acc"]) == 150
    assert history.steps["train loss"] == list(range(1, 151))
    assert sum(history.values["train loss"][-20:]) < sum(history.values["train loss"][:20])
    assert 0 <= min(history.values["train acc"]) and max(history.values["train acc"]) <= 100
    assert history.seconds > 0 and history.cpu_seconds > 0 and method.training


def test_episode_loss_is_query_cross_entropy():
    data = hidden_signal_data()
    episode = EpisodeSampler(data, 4, 2, 3, generator=rng(3)).sample()
    method = PrototypicalNetworks(nn.Identity())
    loss, metrics = episode_loss(method, episode)
    logits = method(episode.query_x)
    manual = -logits.log_softmax(1)[torch.arange(12), episode.query_y].mean()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-6)
    assert metrics["acc"] == pytest.approx(100 * (logits.argmax(1) == episode.query_y).float().mean().item())


def test_generic_train_with_dict_validation_and_continued_history():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    xs = torch.randn(64, 3, generator=rng(4))
    ys = xs @ torch.tensor([1.0, -2.0, 0.5])
    batches = [(xs[i : i + 8], ys[i : i + 8]) for i in range(0, 64, 8)] * 10
    opt = torch.optim.SGD(model.parameters(), 0.1)
    loss_fn = lambda b: ((model(b[0]).squeeze(1) - b[1]) ** 2).mean()  # noqa: E731
    h = train(model, batches, loss_fn, opt, 40, validate=lambda: {"mse": loss_fn((xs, ys)).item()}, val_every=20, progress=False)
    assert h.steps["val mse"] == [20, 40] and h.values["val mse"][-1] < 0.05
    h = train(model, batches, loss_fn, opt, 10, history=h, progress=False)
    assert h.steps["train loss"][-1] == 50 and len(h.values["train loss"]) == 50
    values, steps = h.select("train loss", "val mse")
    assert set(values) == {"train loss", "val mse"} and steps["val mse"] == [20, 40]


def test_train_errors():
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    batches = [torch.ones(4, 2)] * 3
    with pytest.raises(ValueError, match="ran out after 3 of 5"):
        train(model, batches, lambda b: model(b).sum(), opt, 5, progress=False)
    with pytest.raises(ValueError, match="n_steps"):
        train(model, batches, lambda b: model(b).sum(), opt, 0, progress=False)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train(model, batches, lambda b: model(b).sum() * math.inf, opt, 2, progress=False)
    with pytest.raises(KeyError, match="logged"):
        History().last("val acc")


def test_split_alphabets_holds_out_whole_alphabets_with_their_rotations():
    names = [f"{a}/character{c:02d}/rot{r:03d}" for a in "ABCDE" for c in range(3) for r in (0, 90)]
    data = ClassImages(torch.zeros(len(names), 2, 4, 4, dtype=torch.uint8), names)
    train_part, held = split_alphabets(data, 2, generator=rng(0))
    alphabets = lambda d: {n.split("/")[0] for n in d.class_names}  # noqa: E731
    assert len(alphabets(held)) == 2 and not alphabets(held) & alphabets(train_part)
    assert len(held.class_names) == 12 and len(train_part.class_names) == 18
    assert split_alphabets(data, 2, generator=rng(0))[1].class_names == held.class_names
    with pytest.raises(ValueError, match="n_holdout"):
        split_alphabets(data, 5)
