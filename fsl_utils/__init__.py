"""Helpers for the course "Learning with few labeled examples".

Layers, lowest first (lower layers never import higher ones):
``config``/``device``/``seeding`` -> ``data`` (datasets, episodes) -> methods and SSL
pieces -> training/evaluation -> ``plotting``/widgets.
"""

from .config import FAST, budget, is_fast
from .device import describe_device, get_device
from .seeding import seed_everything

__version__ = "0.1.0"

__all__ = [
    "FAST",
    "budget",
    "describe_device",
    "get_device",
    "is_fast",
    "seed_everything",
]
