"""Datasets held in memory, and the episodic samplers over them."""

from .cifar import CLASSES as CIFAR10_CLASSES
from .cifar import by_class, load_cifar10
from .containers import ClassImages, LabeledImages, few_labels, to_float
from .folder import load_image_folder, load_images, write_image_folder
from .intents import TextClasses, load_intents
from .episodes import Episode, EpisodeSampler
from .pairs import Pairs, PairSampler
from .omniglot import load_omniglot, split_alphabets
from .paths import CorruptDataError, DataNotFoundError, cache_dir, course_checkout, data_root, locate_data

__all__ = [
    "CIFAR10_CLASSES",
    "ClassImages",
    "CorruptDataError",
    "DataNotFoundError",
    "Episode",
    "EpisodeSampler",
    "LabeledImages",
    "PairSampler",
    "Pairs",
    "TextClasses",
    "by_class",
    "cache_dir",
    "course_checkout",
    "data_root",
    "few_labels",
    "load_cifar10",
    "load_image_folder",
    "load_images",
    "load_intents",
    "load_omniglot",
    "locate_data",
    "split_alphabets",
    "to_float",
    "write_image_folder",
]
