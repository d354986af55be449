"""Helpers for the course "Learning with few labeled examples".

Layers, lowest first (lower layers never import higher ones):
``config``/``device``/``seeding`` -> ``data`` (datasets, episodes) -> methods and SSL
pieces -> training/evaluation -> ``plotting``/widgets.
"""

from .config import FAST, budget, is_fast
from .device import autocast, dataloader_kwargs, describe_device, get_device
from .seeding import seed_everything

__version__ = "0.1.0"

__all__ = [
    "FAST",
    "autocast",
    "budget",
    "dataloader_kwargs",
    "describe_device",
    "get_device",
    "is_fast",
    "seed_everything",
]
