"""The ProtoNet hidden tests (solutions/protonet/hidden_tests.py) on notebook namespaces built in
this process, without nbgrader: what tests/test_grading_hidden.py (local probe) and
tests/test_grading_remote.py (a simulated kernel) share.
"""

from __future__ import annotations

import linecache
import types

import numpy as np

from fsl_utils.grading import load_hidden_tests
from fsl_utils.grading.notebook import load_reference
from grading import cases

HIDDEN = load_hidden_tests("protonet", cases.ROOT)
CODE_TESTS = ("prototypes", "distances", "logits", "encoder", "loss")

#: mutant of cases.MUTANTS -> (the hidden check it fails, a phrase of that check's message)
MESSAGES = {
    "sum_not_mean": ("prototypes", "sum of each class"),
    "labels_assumed_sorted": ("prototypes", "sorted by label"),
    "euclidean_not_squared": ("distances", "do not take the square root"),
    "distances_wrong_sign": ("logits", "wrong sign"),
    "softmax_wrong_dim": ("loss", "softmax over classes"),
    "prototypes_from_query": ("loss", "support set"),
    "three_conv_blocks": ("encoder", "4 convolution layers"),
}

SSL_FORBIDDEN = ("fsl_utils.ssl.losses", "fsl_utils.ssl.evaluation:linear_probe")


def run_cell(source: str, ns: dict) -> None:
    """Execute ``source`` like a notebook cell (its source stays readable by ``inspect``)."""
    name = f"<cell-{abs(hash(source))}>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    exec(compile(source, name, "exec"), ns)  # noqa: S102 (our own cases)


def namespace(mutant: str | None = None) -> dict:
    """The notebook's globals after running the setup cell and the (mutated) answers."""
    ns: dict = {"__name__": "__main__"}
    nb_setup = load_reference(cases.SOURCE)  # imports the setup cell defines
    ns.update(vars(nb_setup))
    for source in cases.answers(mutant).values():
        run_cell(source, ns)
    return ns


def forbidding_module(forbidden: tuple[str, ...] | None) -> types.ModuleType:
    """A hidden-tests module with one check ``t`` that calls the student's ``f``, and ``FORBIDDEN``."""
    module = types.ModuleType("hidden_forbidding")
    module.TESTS = {"t": lambda probe: probe.call("f", np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32))}
    if forbidden is not None:
        module.FORBIDDEN = forbidden
    return module


def ssl_namespace() -> dict:
    """``f`` borrows fsl_utils.ssl's nt_xent, ``g`` its linear_probe, ``h`` uses its (allowed) embedding_std
    (a function of linear_probe's module, fsl_utils.ssl.evaluation);
    the given code runs the course's nt_xent outside any check."""
    ns: dict = {}
    exec(  # noqa: S102 (our own cases)
        "import torch\nfrom fsl_utils import ssl\n"
        "given = ssl.nt_xent(torch.ones(2, 3), torch.ones(2, 3))  # given notebook code, outside the checks\n"
        "def f(z1, z2):\n    return ssl.nt_xent(z1, z2)\n"
        "def g(z1, z2):\n    return torch.tensor(ssl.linear_probe(z1, torch.tensor([0, 1]), z1, torch.tensor([0, 1])))\n"
        "def h(z1, z2):\n    return torch.tensor(ssl.embedding_std(z1))\n",
        ns,
    )
    return ns
