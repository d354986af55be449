"""Pieces of semi- and self-supervised learning: losses, heads, EMA updates."""

from .losses import nt_xent

__all__ = ["nt_xent"]
