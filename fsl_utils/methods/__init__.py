"""Few-shot methods behind one API: ``process_support_set`` then ``forward``."""

from .base import FewShotClassifier, check_support

__all__ = ["FewShotClassifier", "check_support"]
