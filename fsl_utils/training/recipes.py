"""Small-budget training recipes for the leaderboard (lecture 9): one function per method.

Each is a condensed version of its lecture's training loop and returns a ready
:class:`~fsl_utils.methods.base.FewShotClassifier` (or the pre-trained encoder / heads it
needs), so that lecture 9 can train every method of the course on the same machine and
compare them on identical episodes. The budgets are the caller's: pass few steps on a CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import trange

from ..data.containers import ClassImages, to_float
from ..data.episodes import EpisodeSampler
from ..encoders.cifar_cnn import CifarCNN
from ..encoders.conv4 import maml_conv4
from ..methods import MatchingNetworks, PrototypicalNetworks, SiameseClassifier, SiameseNetwork
from ..methods.baseline import BaselineFinetune, pretrain_classifier
from ..methods.maml import MAML, MAMLClassifier, meta_train_step
from ..methods.zeroshot import CLIPHeads
from ..ssl import PredictionHead, ProjectionHead, byol_loss, cosine_ema_decay, ema_copy, ema_update, nt_xent
from ..ssl import random_batches, simclr_augment
from .loop import train_episodic


def _device(device: torch.device | str | None) -> torch.device:
    return torch.device(device) if device is not None else torch.device("cpu")


def train_protonet(
    train: ClassImages, backbone: nn.Module, steps: int, n_way: int = 20, k_shot: int = 5, n_query: int = 5,
    lr: float = 1e-3, seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
) -> PrototypicalNetworks:
    """Episodic training of a prototypical network (Snell et al.; lecture 6), Adam, ``steps`` episodes.

    Args:
        train: training classes (n_classes, n_per_class, ...).
        backbone: the embedding network, e.g. ``Conv4()``; trained in place.
        steps: episodes (= optimiser steps).
        n_way, k_shot, n_query: training episode shape (more ways than at test time helps).
        lr: Adam learning rate.
        seed: episodes and initialisation order.
        device: where to train.
        progress: progress bar.
    """
    device = _device(device)
    method = PrototypicalNetworks(backbone.to(device))
    sampler = EpisodeSampler(train, n_way, k_shot, n_query, generator=torch.Generator().manual_seed(seed), device=device)
    train_episodic(method, sampler, torch.optim.Adam(method.parameters(), lr=lr), steps, progress=progress, desc="ProtoNet")
    return method.eval()


def train_matching(
    train: ClassImages, backbone: nn.Module, steps: int, n_way: int = 20, k_shot: int = 5, n_query: int = 5,
    scale: float = 10.0, lr: float = 1e-3, seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
) -> MatchingNetworks:
    """Episodic training of matching networks (Vinyals et al., cosine attention, no FCE; lecture 6).

    ``scale`` multiplies the cosine similarities (an inverse temperature): with the paper's
    plain cosines (scale 1) the attention is nearly uniform and training starts slowly.
    Other arguments as in :func:`train_protonet`.
    """
    device = _device(device)
    method = MatchingNetworks(backbone.to(device), distance="cosine", scale=scale)
    sampler = EpisodeSampler(train, n_way, k_shot, n_query, generator=torch.Generator().manual_seed(seed), device=device)
    train_episodic(method, sampler, torch.optim.Adam(method.parameters(), lr=lr), steps, progress=progress, desc="Matching")
    return method.eval()


def train_siamese(
    train: ClassImages, encoder: nn.Module, feature_dim: int, steps: int, n_classes: int = 16, per_class: int = 4,
    lr: float = 1e-3, seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
) -> SiameseClassifier:
    """Siamese network with Koch et al.'s weighted-L1 head and binary cross-entropy (lecture 5).

    Each step embeds ``n_classes * per_class`` images once and scores *every* pair of them
    (``network.score_matrix``): far more pairs per forward pass than separate pairs. Same
    pairs are rare among all pairs, so the BCE is averaged over same and different pairs
    separately and the two halves weighted equally (balanced, as Koch's pair sampler).

    Args:
        train: training classes.
        encoder: twin encoder (B, ...) -> (B, feature_dim), trained in place.
        feature_dim: its output size.
        steps: optimiser steps.
        n_classes, per_class: images per step (``per_class`` >= 2 so same pairs exist).
        lr, seed, device, progress: as in :func:`train_protonet`.

    Returns:
        A nearest-neighbour :class:`SiameseClassifier` (a class scores its best pair logit).
    """
    if per_class < 2:
        raise ValueError(f"per_class must be >= 2 so that a batch has same-class pairs, got {per_class}")
    device = _device(device)
    network = SiameseNetwork(encoder, feature_dim).to(device)
    half = per_class // 2
    batches = iter(EpisodeSampler(train, n_classes, half, per_class - half, generator=torch.Generator().manual_seed(seed), device=device))
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    off_diagonal = ~torch.eye(n_classes * per_class, dtype=torch.bool, device=device)
    network.train()
    for _ in trange(steps, desc="Siamese", disable=not progress, leave=False):
        ep = next(batches)
        x, y = torch.cat([ep.support_x, ep.query_x]), torch.cat([ep.support_y, ep.query_y])
        z = network.embed(x)
        same = y[:, None] == y[None, :]
        bce = F.binary_cross_entropy_with_logits(network.score_matrix(z, z), same.float(), reduction="none")
        loss = 0.5 * (bce[same & off_diagonal].mean() + bce[~same].mean())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return SiameseClassifier(network.eval())


def train_baseline(
    train: ClassImages, backbone: nn.Module, feature_dim: int, steps: int, cosine: bool = False, batch_size: int = 128,
    lr: float = 1e-3, seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
) -> BaselineFinetune:
    """Chen et al.'s Baseline (``cosine=False``) or Baseline++: supervised pre-training on every class
    of ``train`` (``steps`` batches of ``batch_size`` random images, Adam), then a classifier that
    trains a new head on each episode's frozen support features (lecture 9). Other arguments as in
    :func:`train_protonet`."""
    encoder, _ = pretrain_classifier(train, backbone, feature_dim, steps, cosine=cosine, batch_size=batch_size, lr=lr, seed=seed,
                                     device=device, progress=progress)
    return BaselineFinetune(encoder, cosine=cosine)


def train_maml(
    train: ClassImages, steps: int, first_order: bool, n_way: int = 5, k_shot: int = 1, meta_batch: int = 4,
    hidden: int = 32, inner_lr: float = 0.4, test_steps: int = 1, lr: float = 1e-3, seed: int = 0,
    device: torch.device | str | None = None, progress: bool = True,
) -> MAMLClassifier:
    """(FO)MAML on ``n_way``-way ``k_shot``-shot tasks with the zeroing trick (lecture 7).

    One inner step of size ``inner_lr``, one query per class, Adam on θ, ``meta_batch``
    tasks per outer step; the returned classifier adapts ``test_steps`` steps per episode
    and only answers ``n_way``-way episodes.
    """
    device = _device(device)
    torch.manual_seed(seed)
    channels = 1 if train.images.ndim == 4 else int(train.images.shape[2])  # (n, per, H, W) is grayscale
    maml = MAML(maml_conv4(n_way, in_channels=channels, hidden=hidden, image_size=int(train.images.shape[-1])).to(device),
                inner_lr=inner_lr, inner_steps=1, first_order=first_order, zero_init=("1.weight", "1.bias"))
    optimizer = torch.optim.Adam(maml.parameters(), lr=lr)
    tasks = iter(EpisodeSampler(train, n_way, k_shot, 1, generator=torch.Generator().manual_seed(seed), device=device))
    for _ in trange(steps, desc="FOMAML" if first_order else "MAML", disable=not progress, leave=False):
        meta_train_step(maml, [next(tasks) for _ in range(meta_batch)], optimizer)
    return MAMLClassifier(maml, test_steps=test_steps)


def pretrain_ssl(
    images: torch.Tensor, method: str, steps: int, batch_size: int = 256, view_size: int = 16, lr: float = 2e-3,
    seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
) -> CifarCNN:
    """SimCLR or BYOL pre-training of the course's CIFAR CNN on unlabelled images (lecture 4).

    Args:
        images: uint8 (n, 3, H, W); labels are never used.
        method: ``"simclr"`` (NT-Xent, temperature 0.5) or ``"byol"`` (predictor + EMA target).
        steps: optimiser steps (AdamW, cosine schedule).
        batch_size: images per step (two views each).
        view_size: side of the augmented views (16 is ~2x cheaper than 32 on a CPU).
        lr, seed, device, progress: as in :func:`train_protonet`.

    Returns:
        The encoder, ``CifarCNN(n_classes=0)``: float (B, 3, H, W) in [0, 1] -> (B, 128), eval mode.
    """
    if method not in ("simclr", "byol"):
        raise ValueError(f"method must be 'simclr' or 'byol', got {method!r}")
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images (n, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    device = _device(device)
    torch.manual_seed(seed)
    encoder = CifarCNN(0)
    online = nn.Sequential(encoder, ProjectionHead(encoder.feature_dim, 512, 128)).to(device)
    params = list(online.parameters())
    if method == "byol":
        target = ema_copy(online)
        predictor = PredictionHead(128, 512).to(device)
        params += list(predictor.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-6)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
    augment = simclr_augment(size=view_size)
    batches = random_batches(len(images), batch_size, torch.Generator().manual_seed(seed))
    online.train()
    for step in trange(steps, desc=method, disable=not progress, leave=False):
        x = images[next(batches)]
        views = torch.cat([to_float(augment(x)), to_float(augment(x))]).to(device)
        z = online(views)
        if method == "simclr":
            loss = nt_xent(*z.chunk(2), temperature=0.5)
        else:
            q1, q2 = predictor(z).chunk(2)
            with torch.no_grad():
                t1, t2 = target(views).chunk(2)
            loss = byol_loss(q1, t2) + byol_loss(q2, t1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if method == "byol":
            ema_update(target, online, cosine_ema_decay(step, steps, 0.99))
    return encoder.eval()


def train_clip_heads(
    image_features: torch.Tensor, labels: torch.Tensor, text_features: torch.Tensor, epochs: int, batch_size: int = 64,
    embed_dim: int = 256, lr: float = 1e-3, seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
) -> CLIPHeads:
    """CLIP-style locked-tower heads on (image, caption) pairs (lecture 8).

    Every image gets a caption from a random template of its class each epoch.

    Args:
        image_features: frozen image features of shape (n, image_dim).
        labels: class of each image, shape (n,), indexing ``text_features``.
        text_features: frozen prompt features (n_classes, n_templates, text_dim).
        epochs: passes over the images (AdamW, weight decay 0.1).
        batch_size, embed_dim, lr, seed, device, progress: training settings.
    """
    if len(image_features) != len(labels):
        raise ValueError(f"{len(image_features)} image features but {len(labels)} labels")
    device = _device(device)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    heads = CLIPHeads(image_features.shape[1], text_features.shape[-1], embed_dim).to(device)
    optimizer = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=0.1)
    x = image_features.to(device)
    for _ in trange(epochs, desc="CLIP heads", disable=not progress, leave=False):
        for idx in torch.randperm(len(x), generator=g).split(batch_size):
            template = torch.randint(text_features.shape[1], (len(idx),), generator=g)
            loss = heads.loss(x[idx], text_features[labels[idx], template].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return heads.eval()
