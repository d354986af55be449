"""Datasets held in memory, and the episodic samplers over them."""

from .cifar import CLASSES as CIFAR10_CLASSES
from .cifar import by_class, load_cifar10
from .containers import ClassImages, LabeledImages
from .folder import load_image_folder, load_images
from .intents import TextClasses, load_intents
from .episodes import Episode, EpisodeSampler
from .omniglot import load_omniglot
from .paths import CorruptDataError, DataNotFoundError, cache_dir, course_checkout, data_root, locate_data

__all__ = [
    "CIFAR10_CLASSES",
    "ClassImages",
    "CorruptDataError",
    "DataNotFoundError",
    "Episode",
    "EpisodeSampler",
    "LabeledImages",
    "TextClasses",
    "by_class",
    "cache_dir",
    "course_checkout",
    "data_root",
    "load_cifar10",
    "load_image_folder",
    "load_images",
    "load_intents",
    "load_omniglot",
    "locate_data",
]
