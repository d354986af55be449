"""Pieces of semi- and self-supervised learning: losses, regularisers, heads, EMA updates."""

from .augment import BatchAugment, BatchedSimCLR, simclr_augment, strong_augment, weak_augment
from .ema import cosine_ema_decay, ema_copy, ema_update
from .evaluation import embedding_std, linear_probe
from .heads import PredictionHead, ProjectionHead
from .losses import byol_loss, fixmatch_loss, mean_teacher_loss, nt_xent, pi_model_loss, sigmoid_rampup, softmax_mse
from .regularisers import entropy_loss, mixup, pseudo_label_loss, sample_beta, sharpen, vat_loss
from .splits import SemiSupervisedSplit, random_batches, semi_supervised_split

__all__ = [
    "BatchAugment",
    "BatchedSimCLR",
    "PredictionHead",
    "ProjectionHead",
    "SemiSupervisedSplit",
    "byol_loss",
    "cosine_ema_decay",
    "ema_copy",
    "ema_update",
    "embedding_std",
    "entropy_loss",
    "fixmatch_loss",
    "linear_probe",
    "mean_teacher_loss",
    "mixup",
    "nt_xent",
    "pi_model_loss",
    "pseudo_label_loss",
    "random_batches",
    "sample_beta",
    "semi_supervised_split",
    "sharpen",
    "sigmoid_rampup",
    "simclr_augment",
    "softmax_mse",
    "strong_augment",
    "vat_loss",
    "weak_augment",
]
