"""Few-shot methods behind one API: ``process_support_set`` then ``forward``."""

from .base import FewShotClassifier, check_support
from .matching import MatchingNetworks
from .probe import LinearProbe
from .protonet import NearestCentroid, PrototypicalNetworks
from .siamese import SiameseClassifier, SiameseNetwork, contrastive_loss

__all__ = ["FewShotClassifier", "check_support"]
__all__ += [
    "LinearProbe",
    "MatchingNetworks",
    "NearestCentroid",
    "PrototypicalNetworks",
    "SiameseClassifier",
    "SiameseNetwork",
    "contrastive_loss",
]
