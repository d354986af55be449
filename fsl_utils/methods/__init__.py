"""Few-shot methods behind one API: ``process_support_set`` then ``forward``."""

from .base import FewShotClassifier, check_support
from .matching import MatchingNetworks
from .probe import LinearProbe
from .protonet import NearestCentroid, PrototypicalNetworks
from .siamese import SiameseClassifier, SiameseNetwork, balanced_pair_bce, contrastive_loss

__all__ = ["FewShotClassifier", "check_support"]
__all__ += [
    "LinearProbe",
    "MatchingNetworks",
    "NearestCentroid",
    "PrototypicalNetworks",
    "SiameseClassifier",
    "SiameseNetwork",
    "balanced_pair_bce",
    "contrastive_loss",
]

from .maml import MAML, MAMLClassifier, meta_train_step  # noqa: E402
from .zeroshot import CLIPHeads, ZeroShotClassifier, clip_loss  # noqa: E402

__all__ += ["CLIPHeads", "MAML", "MAMLClassifier", "ZeroShotClassifier", "clip_loss", "meta_train_step"]

from .baseline import BaselineFinetune, CosineClassifier, pretrain_classifier  # noqa: E402
from .triplet import L2Normalize, triplet_loss  # noqa: E402

__all__ += ["BaselineFinetune", "CosineClassifier", "L2Normalize", "pretrain_classifier", "triplet_loss"]
