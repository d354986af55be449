"""CLIP-style contrastive image-text learning and zero-shot classification.

CLIP (Radford et al., ICML 2021) embeds images and texts into one space and trains both
towers so that the n matching pairs of a batch score higher than the n² - n mismatched
ones. The paper's pseudocode::

    I_e = l2_normalize(I_f @ W_i)                 # (n, d_e)
    T_e = l2_normalize(T_f @ W_t)                 # (n, d_e)
    logits = I_e @ T_e.T * exp(t)                 # (n, n), t a learned log-scale
    loss = (CE(logits, arange(n), axis=0) + CE(logits, arange(n), axis=1)) / 2

Here the towers are frozen and pre-computed (the "locked tower" recipe of LiT, Zhai et
al. 2022): ImageNet EfficientNet-Lite0 image features and all-MiniLM-L6-v2 sentence
embeddings; only the two projections ``W_i``, ``W_t`` and the temperature are learned
(:class:`CLIPHeads`).

Zero-shot classification builds one classifier weight per class from its *name*:
prompts such as "a photo of a {name}." are embedded, projected, normalised and (prompt
ensembling) averaged over templates; an image goes to the class of highest cosine
similarity. :class:`ZeroShotClassifier` does that behind the course's few-shot API and
can also mix in the support images' mean embedding (text prior + few shots).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import FewShotClassifier, check_support

#: Prompt templates for photos of objects (in the spirit of CLIP's CIFAR prompts).
TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a cropped photo of a {}.",
    "a bright photo of a {}.",
    "a dark photo of a {}.",
    "a close-up photo of a {}.",
    "a pixelated photo of a {}.",
    "a picture of a {}.",
)


def clip_loss(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """CLIP's symmetric contrastive loss over the n x n similarity matrix.

    Args:
        image_embeddings: projected image features ``I_f @ W_i`` of shape (n, d_e);
            normalised here.
        text_embeddings: projected text features ``T_f @ W_t`` of shape (n, d_e); row i
            describes image i.
        logit_scale: ``t`` of the pseudocode, a scalar log-scale (logits are multiplied
            by ``exp(t)`` = 1 / temperature).

    Returns:
        Scalar: mean of the image->text and text->image cross-entropies.
    """
    if image_embeddings.ndim != 2 or image_embeddings.shape != text_embeddings.shape:
        raise ValueError(
            f"need two (n, d) tensors of the same shape (pair i = image i + text i), "
            f"got {tuple(image_embeddings.shape)} and {tuple(text_embeddings.shape)}"
        )
    scale = torch.as_tensor(logit_scale, dtype=image_embeddings.dtype, device=image_embeddings.device).exp()
    logits = scale * F.normalize(image_embeddings, dim=1) @ F.normalize(text_embeddings, dim=1).T
    labels = torch.arange(logits.shape[0], device=logits.device)
    # axis=0 of the pseudocode: for each text, which image (columns); axis=1: for each image, which text
    return (F.cross_entropy(logits.T, labels) + F.cross_entropy(logits, labels)) / 2


class CLIPHeads(nn.Module):
    """Trainable projections and temperature over two frozen towers' features.

    Args:
        image_dim: size of the frozen image features (1280 for EfficientNet-Lite0).
        text_dim: size of the frozen text features (384 for all-MiniLM-L6-v2).
        embed_dim: size of the joint embedding space.
        temperature: initial temperature (CLIP: 0.07, i.e. t = log(1/0.07)).
        max_logit_scale: cap on exp(t) (CLIP clips at 100 for stability).
    """

    def __init__(
        self, image_dim: int, text_dim: int, embed_dim: int = 256, temperature: float = 0.07, max_logit_scale: float = 100.0
    ) -> None:
        super().__init__()
        self.image_proj = nn.Linear(image_dim, embed_dim, bias=False)  # W_i
        self.text_proj = nn.Linear(text_dim, embed_dim, bias=False)  # W_t
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))  # t
        self.max_log_scale = math.log(max_logit_scale)

    def scale(self) -> torch.Tensor:
        """exp(t), clipped at ``max_logit_scale``."""
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def embed_images(self, image_features: torch.Tensor) -> torch.Tensor:
        """(n, image_dim) -> unit vectors (n, embed_dim)."""
        return F.normalize(self.image_proj(image_features), dim=-1)

    def embed_texts(self, text_features: torch.Tensor) -> torch.Tensor:
        """(..., text_dim) -> unit vectors (..., embed_dim)."""
        return F.normalize(self.text_proj(text_features), dim=-1)

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """Logits per image, ``exp(t) * cos(image_i, text_j)``, of shape (n_images, n_texts)."""
        return self.scale() * self.embed_images(image_features) @ self.embed_texts(text_features).T

    def loss(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """:func:`clip_loss` of a batch of n matching (image, text) feature pairs."""
        return clip_loss(self.image_proj(image_features), self.text_proj(text_features), self.logit_scale.clamp(max=self.max_log_scale))


def prompts(class_names: Sequence[str], templates: Sequence[str] = TEMPLATES) -> list[list[str]]:
    """Every template filled with every class name: ``[class][template]`` strings."""
    if not templates or any("{}" not in t for t in templates):
        raise ValueError("templates must be a non-empty list of strings with a '{}' slot for the class name")
    return [[t.format(name) for t in templates] for name in class_names]


def class_text_features(
    class_names: Sequence[str], encode: Callable[[list[str]], torch.Tensor], templates: Sequence[str] = TEMPLATES
) -> torch.Tensor:
    """Frozen text features of every prompt of every class.

    Args:
        class_names: n_classes names, e.g. ``["cat", "dog"]``.
        encode: sentences -> (n, text_dim), e.g. ``TextEncoder().encode``.
        templates: the prompt templates (one slot ``{}`` each).

    Returns:
        Tensor of shape (n_classes, n_templates, text_dim).
    """
    texts = prompts(class_names, templates)
    flat = encode([s for row in texts for s in row])
    return flat.view(len(class_names), len(templates), -1)


def zero_shot_weights(model: CLIPHeads, text_features: torch.Tensor) -> torch.Tensor:
    """One unit-norm classifier weight per class: prompt ensembling in the joint space.

    Args:
        model: the trained heads.
        text_features: (n_classes, n_templates, text_dim) or (n_classes, text_dim).

    Returns:
        (n_classes, embed_dim): the normalised mean of each class's normalised prompt
        embeddings (CLIP averages the embeddings, not the logits).
    """
    if text_features.ndim == 2:
        text_features = text_features.unsqueeze(1)
    return F.normalize(model.embed_texts(text_features).mean(dim=1), dim=-1)


class ZeroShotClassifier(FewShotClassifier):
    """Classify images by the names of their classes (optionally helped by a support set).

    The classifier weight of episode class c is

        w_c = normalize(λ · text_c + (1 - λ) · mean of the support embeddings of class c)

    with λ = 1 - ``support_weight``; ``support_weight=0`` (default) is pure zero-shot:
    the support images are not used at all, only the class names.

    Args:
        model: trained :class:`CLIPHeads`.
        text_features: frozen prompt features of *all* candidate classes, shape
            (n_classes, n_templates, text_dim) or (n_classes, text_dim).
        image_encoder: maps items to frozen image features; ``None`` when episodes
            already hold features of shape (n, image_dim).
        support_weight: 1 - λ above, in [0, 1].

    Call :meth:`select_classes` with an episode's ``class_ids`` (indices into
    ``text_features``) before :meth:`process_support_set`; by default every class, in
    order, is a candidate.
    """

    def __init__(
        self,
        model: CLIPHeads,
        text_features: torch.Tensor,
        image_encoder: nn.Module | None = None,
        support_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= support_weight <= 1:
            raise ValueError(f"support_weight must be in [0, 1], got {support_weight}")
        self.model, self.image_encoder, self.support_weight = model, image_encoder, support_weight
        self.text_features = text_features
        self.class_ids = torch.arange(text_features.shape[0])
        self.weights: torch.Tensor | None = None

    def select_classes(self, class_ids: torch.Tensor | Sequence[int]) -> "ZeroShotClassifier":
        """Use classes ``class_ids`` (episode label c = ``class_ids[c]``); returns self."""
        ids = torch.as_tensor(class_ids, dtype=torch.long).cpu()
        if ids.ndim != 1 or ids.numel() == 0 or int(ids.max()) >= self.text_features.shape[0] or int(ids.min()) < 0:
            raise ValueError(f"class_ids must index the {self.text_features.shape[0]} classes of text_features, got {ids.tolist()}")
        self.class_ids, self.weights = ids, None
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Items (or features) -> unit joint-space embeddings of shape (n, embed_dim)."""
        with torch.no_grad():
            feats = self.image_encoder(x) if self.image_encoder is not None else x
            return self.model.embed_images(feats.flatten(1).float())

    def process_support_set(self, support_x: torch.Tensor, support_y: torch.Tensor) -> None:
        """Build the class weights from the names (and the support if ``support_weight`` > 0)."""
        n_way = check_support(support_x, support_y)
        if n_way != len(self.class_ids):
            raise ValueError(
                f"the episode has {n_way} ways but {len(self.class_ids)} classes are selected; "
                "call select_classes(episode.class_ids) first"
            )
        with torch.no_grad():
            text = zero_shot_weights(self.model, self.text_features[self.class_ids].to(self.device))
            if self.support_weight > 0:
                z = self.embed(support_x)
                means = torch.zeros_like(text).index_add_(0, support_y, z) / torch.bincount(support_y, minlength=n_way)[:, None]
                text = (1 - self.support_weight) * text + self.support_weight * F.normalize(means, dim=-1)
            self.weights = F.normalize(text, dim=-1)

    def forward(self, query_x: torch.Tensor) -> torch.Tensor:
        """Logits ``exp(t) * cos(image, w_c)`` of shape (n_query, n_way)."""
        if self.weights is None:
            raise RuntimeError("call process_support_set(support_x, support_y) before forward(query_x)")
        return self.model.scale().detach() * self.embed(query_x) @ self.weights.T
