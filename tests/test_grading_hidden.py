"""The hidden checks of the ProtoNet homework, run directly (no nbgrader): the reference
passes, each typical mistake fails with its own message, borrowing and tampering are caught.
The full nbgrader flow is in test_grading_pipeline.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fsl_utils.grading import HiddenTestError, LocalProbe, load_hidden_tests, run_hidden_test
from fsl_utils.grading.notebook import load_reference
from grading import cases
from grading.hidden import CODE_TESTS, HIDDEN, MESSAGES, SSL_FORBIDDEN, forbidding_module, namespace, run_cell, ssl_namespace

@pytest.fixture(scope="module")
def reference() -> dict:
    return namespace()


@pytest.mark.parametrize("test", CODE_TESTS)
def test_reference_passes(reference, test):
    HIDDEN.TESTS[test](LocalProbe(reference))


def test_any_correct_implementation_passes():
    """Loops instead of matrix products, float64 on the way, log_softmax + nll: full marks."""
    ns = namespace()
    exec(
        "def compute_prototypes(embeddings, labels, n_way):\n"
        "    return torch.stack([embeddings[labels == c].double().mean(0) for c in range(n_way)]).to(embeddings.dtype)\n"
        "def squared_euclidean_distances(x, y):\n"
        "    return (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T\n"
        "def episode_loss_and_accuracy(model, episode):\n"
        "    zs, zq = model(episode.support_x), model(episode.query_x)\n"
        "    logits = prototype_logits(zq, compute_prototypes(zs, episode.support_y, len(episode.class_ids)))\n"
        "    loss = F.nll_loss(F.log_softmax(logits, dim=-1), episode.query_y)\n"
        "    return loss, (logits.argmax(-1) == episode.query_y).double().mean()\n",
        ns,
    )
    for test in CODE_TESTS:
        HIDDEN.TESTS[test](LocalProbe(ns))


@pytest.mark.parametrize("mutant", sorted(MESSAGES))
def test_each_mistake_fails_its_own_test_only(mutant):
    ns = namespace(mutant)
    failing, message = MESSAGES[mutant]
    with pytest.raises(AssertionError, match=message):
        HIDDEN.TESTS[failing](LocalProbe(ns))
    for other in set(CODE_TESTS) - {failing}:
        HIDDEN.TESTS[other](LocalProbe(ns))  # helpers are swapped for references: no cascade


def test_loop_distances_lose_the_no_loop_point(reference):
    ns = dict(reference)
    run_cell(
        "def squared_euclidean_distances(x, y):\n"
        "    return torch.stack([((x[i] - y) ** 2).sum(1) for i in range(len(x))])\n",
        ns,
    )
    with pytest.raises(AssertionError, match="Python loops"):
        HIDDEN.TESTS["distances"](LocalProbe(ns))


def test_not_differentiable_prototypes_fail(reference):
    ns = dict(reference)
    exec(
        "def compute_prototypes(embeddings, labels, n_way):\n"
        "    e = embeddings.detach()\n"
        "    return torch.stack([e[labels == c].mean(0) for c in range(n_way)])\n",
        ns,
    )
    with pytest.raises(AssertionError, match="differentiable"):
        HIDDEN.TESTS["prototypes"](LocalProbe(ns))


def test_borrowed_code_is_detected(reference, tmp_path, monkeypatch):
    """Calling easyfsl or fsl_utils.methods from an answer gives no points for that task."""
    monkeypatch.setenv("FSL_COURSE_ROOT", str(cases.ROOT))
    for body in (
        "from easyfsl.methods.utils import compute_prototypes as cp\n    return cp(embeddings, labels)",
        "from fsl_utils.methods.base import check_support\n    check_support(embeddings, labels)\n"
        "    return torch.stack([embeddings[labels == c].mean(0) for c in range(n_way)])",
    ):
        ns = dict(reference)
        exec(f"def compute_prototypes(embeddings, labels, n_way):\n    {body}\n", ns)
        with pytest.raises(HiddenTestError, match="your own code"):
            run_hidden_test("protonet", "prototypes", ns)


def test_forbidden_of_the_hidden_tests_is_passed_to_the_probe():
    """An assignment's ``FORBIDDEN`` (hidden_tests.py) adds packages, modules and single functions to
    the default forbidden list, only for calls made by its checks."""
    from fsl_utils.grading.checks.hidden import run_check

    ns = ssl_namespace()
    run_check(forbidding_module(None), "t", LocalProbe(ns))  # fsl_utils.ssl is allowed by default
    with pytest.raises(HiddenTestError, match="your own code.*losses.py"):
        run_check(forbidding_module(SSL_FORBIDDEN), "t", LocalProbe(ns))
    with pytest.raises(HiddenTestError, match="your own code.*losses.py"):
        run_check(forbidding_module(("fsl_utils.ssl",)), "t", LocalProbe(ns))  # a whole package
    ns["f"] = ns["g"]  # a forbidden function of a module ...
    with pytest.raises(HiddenTestError, match=r"evaluation.py:linear_probe"):
        run_check(forbidding_module(SSL_FORBIDDEN), "t", LocalProbe(ns))
    ns["f"] = ns["h"]  # ... whose other functions stay allowed
    run_check(forbidding_module(SSL_FORBIDDEN), "t", LocalProbe(ns))
    # the default list still applies, and a bad FORBIDDEN is the instructor's error, not the student's
    exec("def f(z1, z2):\n    from easyfsl.methods.utils import compute_prototypes as cp\n    return cp(z1, torch.tensor([0, 1]))\n", ns)
    with pytest.raises(HiddenTestError, match="your own code"):
        run_check(forbidding_module(SSL_FORBIDDEN), "t", LocalProbe(ns))
    with pytest.raises(TypeError, match="FORBIDDEN"):
        run_check(forbidding_module("fsl_utils.ssl"), "t", LocalProbe(ssl_namespace()))


def test_forbidden_modules_count_in_encoder_reports():
    probe = LocalProbe({"Head": lambda: __import__("fsl_utils.ssl", fromlist=["ProjectionHead"]).ProjectionHead(4, 8, 2)})
    assert probe.task("protonet", "encoder_report", "Head", np.ones((3, 4), np.float32))["foreign"] == []
    probe = LocalProbe(probe.namespace, forbidden=SSL_FORBIDDEN + ("fsl_utils.ssl.heads",))
    assert probe.task("protonet", "encoder_report", "Head", np.ones((3, 4), np.float32))["foreign"] == ["fsl_utils.ssl.heads.ProjectionHead"]
    assert "heads.py" in probe.borrowed()


def test_simclr_forbids_the_course_simclr_but_not_its_encoder():
    """solutions/simclr/hidden_tests.py: every FORBIDDEN entry is installed, and its checks fail at once, naming
    what ran, after a call that ran one of them."""
    from fsl_utils.grading.checks.hidden import forbidden_extra
    from fsl_utils.grading.checks.plain import forbidden_functions, forbidden_roots

    simclr = load_hidden_tests("simclr", cases.ROOT)
    extra = forbidden_extra(simclr)
    assert len(forbidden_roots(extra)) + len(forbidden_functions(extra)) == len(extra) == 4
    assert not any(e.split(":")[0] in ("fsl_utils.ssl", "fsl_utils.encoders.cifar_cnn", "fsl_utils.ssl.evaluation") for e in extra if ":" not in e)
    from fsl_utils.ssl import nt_xent

    probe = LocalProbe({"own": lambda z: (z * z).sum(), "course": lambda z: nt_xent(z, z.flip(0), 0.5)}, forbidden=extra)
    probe.call("own", np.ones((4, 3), np.float32))
    simclr._not_borrowed(probe)  # the student's own code: no complaint
    probe.call("course", np.ones((4, 3), np.float32))
    with pytest.raises(AssertionError, match=r"\(losses\.py\).*write it yourself"):
        simclr._not_borrowed(probe)


@pytest.mark.parametrize(
    "patch",
    [
        "torch.allclose = lambda *a, **k: True",
        "np.testing.assert_allclose = lambda *a, **k: None",
        "torch.testing.assert_close = lambda *a, **k: None",
        "import builtins; builtins.abs = lambda x: 0",
    ],
)
def test_tampering_is_detected(reference, monkeypatch, patch):
    monkeypatch.setenv("FSL_COURSE_ROOT", str(cases.ROOT))
    import builtins

    saved = (torch.allclose, np.testing.assert_allclose, torch.testing.assert_close, builtins.abs)
    try:
        exec(patch, {"torch": torch, "np": np})
        with pytest.raises(HiddenTestError, match="test environment was modified"):
            run_hidden_test("protonet", "environment", reference)
    finally:
        torch.allclose, np.testing.assert_allclose, torch.testing.assert_close, builtins.abs = saved
    run_hidden_test("protonet", "environment", reference)


def test_student_errors_are_reported_without_hidden_frames(reference, monkeypatch):
    monkeypatch.setenv("FSL_COURSE_ROOT", str(cases.ROOT))
    ns = dict(reference)
    exec("def compute_prototypes(embeddings, labels, n_way):\n    raise NotImplementedError()\n", ns)
    with pytest.raises(HiddenTestError) as info:
        run_hidden_test("protonet", "prototypes", ns)
    assert "NotImplementedError" in str(info.value)
    assert "hidden_tests.py" not in str(info.value) and "oracle" not in str(info.value)


# -- the submitted weights ---------------------------------------------------------------------
def test_reference_weights_pass_and_fast(reference, tmp_path, monkeypatch):
    import shutil
    import time

    shutil.copy(cases.WEIGHTS, tmp_path / "protonet.pt")
    monkeypatch.chdir(tmp_path)
    start = time.process_time()
    acc5 = HIDDEN.weights_accuracy(LocalProbe(reference), k_shot=5)
    acc1 = HIDDEN.weights_accuracy(LocalProbe(reference), k_shot=1)
    assert acc5 >= HIDDEN.FLOOR_5W5S and acc1 >= HIDDEN.FLOOR_5W1S, (acc5, acc1)
    # < 30 s of wall time on a quiet 2-core CPU for both checks (CPU seconds / 2)
    assert (time.process_time() - start) / 2 < 30


def test_bad_weight_files(reference, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    probe = LocalProbe(reference)
    with pytest.raises(AssertionError, match="not found"):
        HIDDEN.weights_accuracy(probe, k_shot=5)
    torch.save(reference["ProtoNetEncoder"]().state_dict(), "protonet.pt")  # untrained
    with pytest.raises(AssertionError, match="at least"):
        HIDDEN.check_weights_5w5s(probe)
    (tmp_path / "protonet.pt").write_bytes(os.urandom(3 * 2**20))
    with pytest.raises(AssertionError, match="MB"):
        HIDDEN.weights_accuracy(probe, k_shot=5)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    torch.save({"x": Evil()}, "protonet.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        HIDDEN.weights_accuracy(probe, k_shot=5)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("assignment", ["protonet", "maml"])
def test_prepare_builds_the_caches_the_sandboxed_kernels_read(assignment, tmp_path, monkeypatch):
    """``make grade`` runs the hidden tests' ``prepare()`` first: a sandboxed kernel may only read
    FSL_CACHE_DIR, so without it every submission would decode Omniglot again."""
    from fsl_utils.grading.autograde import prepare

    cache = tmp_path / "cache"
    monkeypatch.setenv("FSL_CACHE_DIR", str(cache))
    assert prepare(Path(__file__).resolve().parents[1], assignment) is True
    assert sorted(p.name.split("-")[1] for p in cache.glob("omniglot-*.pt")) == ["background", "evaluation"]
    assert prepare(tmp_path, assignment) is False  # no hidden tests there: nothing to prepare


@pytest.mark.parametrize("assignment", ["protonet", "simclr"])
def test_the_graders_visible_rechecks_pass_the_reference_and_fail_a_wrong_example(assignment):
    """``VISIBLE`` of the hidden tests: the grader's own run of each visible test's example (compared in the
    grader, so a kernel that replaces torch.allclose or the tampering check cannot pass it) passes the
    reference and fails an answer that is wrong on the example."""
    hidden = load_hidden_tests(assignment, cases.ROOT)
    reference = vars(load_reference(cases.ROOT / "solutions" / assignment / f"{assignment}.ipynb"))
    assert set(hidden.VISIBLE) <= {c for c in _grade_ids(assignment) if c.endswith("_visible")}
    for check in hidden.VISIBLE.values():
        check(LocalProbe(dict(reference)))
    name = {"protonet": "compute_prototypes", "simclr": "nt_xent"}[assignment]
    wrong = {**reference, name: lambda *args, _f=reference[name]: _f(*args) * 2}
    with pytest.raises(AssertionError):
        hidden.VISIBLE[{"protonet": "test_prototypes_visible", "simclr": "test_nt_xent_visible"}[assignment]](LocalProbe(wrong))


def _grade_ids(assignment: str) -> set[str]:
    from fsl_utils.grading.notebook import grade_id, read_notebook

    return {grade_id(c) for c in read_notebook(cases.ROOT / "solutions" / assignment / f"{assignment}.ipynb")["cells"]} - {None}
