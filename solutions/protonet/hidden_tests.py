"""Hidden tests of the ProtoNet assignment (instructors only; never released).

Each check takes a probe (fsl_utils.grading.probe) and raises AssertionError with a
message for the student. Every expected value comes from a naive float64 oracle of the
paper's equations (Snell et al. 2017, eqs. 1-2), never from the reference solution, so
any correct implementation passes: loops or matrix products, float32 or float64,
F.cross_entropy or log_softmax + nll.

The encoder, loss and weights checks run kernel-side tasks (``probe.task("protonet", ...)``,
:mod:`fsl_utils.grading.checks.kernel.protonet`), which build the encoder and episode in the
student's kernel and return plain data; inputs and expected values stay here.
"""

from __future__ import annotations

import ast

import numpy as np

from fsl_utils.course.check import MAX_SUBMITTED_BYTES

WEIGHTS_FILE = "protonet.pt"
#: Accuracy floors on the fixed evaluation episodes below (see docs/instructors.md for
#: their calibration: a correct solution trained with the notebook's default budget).
FLOOR_5W5S = 97.0
FLOOR_5W1S = 90.0
EMBEDDING_DIM = 64
PARAMS_WITH_BIAS, PARAMS_WITHOUT_BIAS = 111_936, 111_680


# -- oracles (float64, loops, straight from the equations) ------------------------------
def oracle_prototypes(emb: np.ndarray, labels: np.ndarray, n_way: int) -> np.ndarray:
    emb = emb.astype(np.float64)
    return np.stack([np.mean([emb[i] for i in range(len(labels)) if labels[i] == c], axis=0) for c in range(n_way)])


def oracle_sqdist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = x.astype(np.float64), y.astype(np.float64)
    return np.array([[float(np.sum((x[i] - y[j]) ** 2)) for j in range(len(y))] for i in range(len(x))])


def oracle_episode(weight: np.ndarray, bias: np.ndarray, ep: dict) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Loss, accuracy and d loss / d (weight, bias) for a Flatten -> Linear encoder."""
    import torch

    w = torch.tensor(weight, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    zs = torch.tensor(ep["support_x"].reshape(len(ep["support_x"]), -1), dtype=torch.float64) @ w.T + b
    zq = torch.tensor(ep["query_x"].reshape(len(ep["query_x"]), -1), dtype=torch.float64) @ w.T + b
    n_way = len(ep["class_ids"])
    protos = torch.stack([torch.stack([zs[i] for i in range(len(zs)) if ep["support_y"][i] == c]).mean(0) for c in range(n_way)])
    logits = torch.stack([torch.stack([-((zq[i] - protos[c]) ** 2).sum() for c in range(n_way)]) for i in range(len(zq))])
    y = torch.tensor(ep["query_y"])
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    loss = -log_p[torch.arange(len(y)), y].mean()
    loss.backward()
    acc = float((logits.argmax(1) == y).double().mean())
    return float(loss.detach()), acc, w.grad.numpy(), b.grad.numpy()


# Differentiable reference helpers, swapped in for the student's own while one task is
# graded, so that a mistake in one task costs that task's points only. Sent as source code
# to the student's kernel (they are the notebook's hints, nothing secret).
SQDIST_HELPER = """
def squared_euclidean_distances(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
"""
HELPERS = SQDIST_HELPER + """
def compute_prototypes(embeddings, labels, n_way):
    return torch.stack([embeddings[labels == c].mean(0) for c in range(n_way)])

def prototype_logits(query_embeddings, prototypes):
    return -squared_euclidean_distances(query_embeddings, prototypes)
"""


# -- helpers -----------------------------------------------------------------------------
def _tensor(out: dict, what: str, shape: tuple[int, ...]) -> np.ndarray:
    assert out["kind"] == "tensor", f"{what} must return a torch.Tensor, got {out.get('type', out['kind'])}"
    arr = out["array"]
    assert tuple(arr.shape) == shape, f"{what} returned shape {tuple(arr.shape)}, expected {shape}"
    assert out["dtype"].startswith("float"), f"{what} returned dtype {out['dtype']}, expected a floating-point tensor"
    assert np.all(np.isfinite(arr)), f"{what} returned NaN or inf values"
    return arr.astype(np.float64)


def _close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-4, atol: float = 1e-4) -> bool:
    return bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b)))


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _shuffled_support(rng: np.random.Generator, n_way: int, k: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.permutation(np.repeat(np.arange(n_way), k))
    return rng.standard_normal((n_way * k, d)).astype(np.float32), labels.astype(np.int64)


# -- tests ---------------------------------------------------------------------------------
def check_prototypes(probe) -> None:
    rng = _rng(1001)
    for n_way, k, dtype in ((4, 3, np.float32), (5, 1, np.float32), (3, 5, np.float64)):
        emb, labels = _shuffled_support(rng, n_way, k, 8)
        emb = emb.astype(dtype)
        res = probe.call("compute_prototypes", emb, labels, n_way)
        got = _tensor(res["outputs"][0], "compute_prototypes", (n_way, 8))
        want = oracle_prototypes(emb, labels, n_way)
        if not _close(got, want):
            if _close(got, want * k):
                raise AssertionError("compute_prototypes returns the sum of each class's embeddings; a prototype is their mean.")
            sorted_guess = emb.astype(np.float64).reshape(n_way, k, -1).mean(1)
            if _close(got, sorted_guess):
                raise AssertionError("compute_prototypes assumes the support set is sorted by label; use the labels to group rows.")
            raise AssertionError(f"compute_prototypes gives wrong values for a {n_way}-way {k}-shot support set in random order.")
        assert res["inputs_unchanged"], "compute_prototypes modified its input tensors in place; compute a new tensor instead."
    emb, labels = _shuffled_support(rng, 3, 4, 6)
    weights = rng.standard_normal((3, 6))
    res = probe.call("compute_prototypes", emb, labels, 3, grad_weights=weights)
    assert res["grad"] is not None, "compute_prototypes must be differentiable (no .numpy(), .item() or torch.no_grad())."
    want = np.stack([weights[c] / 4 for c in labels])
    assert _close(res["grad"].astype(np.float64), want, 1e-4, 1e-5), "the gradient through compute_prototypes is wrong."


def _no_loops(source: str | None, what: str) -> None:
    if source is None:
        return
    tree = ast.parse(source.strip() if source.startswith((" ", "\t")) else source)
    loops = (ast.For, ast.While, ast.ListComp, ast.GeneratorExp, ast.SetComp, ast.DictComp, ast.AsyncFor)
    if any(isinstance(node, loops) for node in ast.walk(tree)):
        raise AssertionError(f"{what} must not use Python loops or comprehensions; write it with tensor operations.")


def check_distances(probe) -> None:
    rng = _rng(1002)
    for n, m, d, scale, dtype in ((7, 4, 5, 3.0, np.float32), (3, 6, 16, 1.0, np.float32), (5, 5, 10, 100.0, np.float64)):
        x = (scale * rng.standard_normal((n, d))).astype(dtype)
        y = (scale * rng.standard_normal((m, d))).astype(dtype)
        got = _tensor(probe.call("squared_euclidean_distances", x, y)["outputs"][0], "squared_euclidean_distances", (n, m))
        want = oracle_sqdist(x, y)
        if not _close(got, want, 1e-4, 1e-3 * scale**2):
            if _close(got, np.sqrt(want), 1e-4, 1e-3 * scale):
                raise AssertionError("squared_euclidean_distances returns Euclidean distances; do not take the square root.")
            if _close(got, -want, 1e-4, 1e-3 * scale**2):
                raise AssertionError("squared_euclidean_distances returns negative distances; distances are >= 0.")
            raise AssertionError(f"squared_euclidean_distances gives wrong values for x of shape {(n, d)} and y of shape {(m, d)}.")
    _no_loops(probe.source("squared_euclidean_distances"), "squared_euclidean_distances")


def check_logits(probe) -> None:
    rng = _rng(1003)
    q = rng.standard_normal((6, 5)).astype(np.float32)
    protos = rng.standard_normal((3, 5)).astype(np.float32)
    got = _tensor(probe.call("prototype_logits", q, protos, substitutes=SQDIST_HELPER)["outputs"][0], "prototype_logits", (6, 3))
    want = -oracle_sqdist(q, protos)
    if not _close(got, want, 1e-4, 1e-3):
        if _close(got, -want, 1e-4, 1e-3):
            raise AssertionError("prototype_logits has the wrong sign: the nearest prototype must get the largest logit.")
        if _close(got, -np.sqrt(-want), 1e-4, 1e-3):
            raise AssertionError("prototype_logits uses Euclidean distance; the paper's logits are negative *squared* distances.")
        raise AssertionError("prototype_logits gives wrong values (expected minus the squared Euclidean distances).")


def check_encoder(probe) -> None:
    x = _rng(1004).random((6, 1, 28, 28)).astype(np.float32)
    report = probe.task("protonet", "encoder_report", "ProtoNetEncoder", x)
    assert not report["foreign"], "ProtoNetEncoder must be built from torch.nn layers, not from " + ", ".join(report["foreign"])
    layers = report["layers"]
    convs = [l for l in layers if l.startswith("Conv2d")]
    assert len(convs) == 4, f"the Conv-4 encoder has 4 convolution layers, found {len(convs)}"
    for i, conv in enumerate(convs):
        spec = conv.split("(")[1].split(",")
        assert spec[0] == ("1" if i == 0 else "64") and spec[1] == "64", f"convolution {i + 1} should map {1 if i == 0 else 64} -> 64 channels, got {conv}"
        assert "k=3" in conv and "p=1" in conv and "s=1" in conv, f"convolution {i + 1} should be 3x3 with padding 1 and stride 1, got {conv}"
    assert layers.count("BatchNorm2d(64)") == 4, "each of the 4 blocks needs BatchNorm2d(64) after its convolution"
    assert layers.count("MaxPool2d(2)") == 4, "each of the 4 blocks ends with a 2x2 max-pool"
    assert report["n_params"] in (PARAMS_WITH_BIAS, PARAMS_WITHOUT_BIAS), (
        f"ProtoNetEncoder has {report['n_params']} trainable parameters; the paper's Conv-4 has {PARAMS_WITH_BIAS:,} "
        f"({PARAMS_WITHOUT_BIAS:,} without convolution biases)"
    )
    out = _tensor(report["out_eval"], "ProtoNetEncoder", (6, EMBEDDING_DIM))
    assert report["out_train_shape"] == [6, EMBEDDING_DIM], "in training mode the encoder must also return (batch, 64)"
    assert np.all(out >= 0), "the embeddings should come after ReLU and max-pool (non-negative): check the order conv -> BN -> ReLU -> pool"
    single = _tensor(report["out_single"], "ProtoNetEncoder on one image", (1, EMBEDDING_DIM))
    assert _close(single, out[:1], 1e-4, 1e-5), "in eval mode one image's embedding must not depend on the rest of the batch"


def _episode(rng: np.random.Generator, n_way: int, k: int, q: int) -> dict:
    support_x = rng.random((n_way * k, 1, 28, 28)).astype(np.float32)
    support_y = np.repeat(np.arange(n_way), k)
    order = rng.permutation(n_way * k)  # support in random order: labels are not sorted
    return {
        "support_x": support_x[order],
        "support_y": support_y[order].astype(np.int64),
        "query_x": rng.random((n_way * q, 1, 28, 28)).astype(np.float32),
        "query_y": np.repeat(np.arange(n_way), q).astype(np.int64),
        "class_ids": rng.permutation(100)[:n_way].astype(np.int64),
    }


def check_loss(probe) -> None:
    rng = _rng(1005)
    for n_way, k, q in ((4, 3, 2), (5, 1, 3)):
        ep = _episode(rng, n_way, k, q)
        weight = (0.05 * rng.standard_normal((16, 784))).astype(np.float32)
        bias = (0.1 * rng.standard_normal(16)).astype(np.float32)
        res = probe.task("protonet", "episode_loss", "episode_loss_and_accuracy", weight, bias, ep, substitutes=HELPERS)
        loss, acc = res["loss"], res["accuracy"]
        want_loss, want_acc, want_gw, want_gb = oracle_episode(weight, bias, ep)
        assert loss["kind"] == "tensor" and loss["array"].size == 1, "the loss must be a scalar torch.Tensor"
        got = float(loss["array"].reshape(()))
        assert abs(got - want_loss) <= 1e-3 + 1e-3 * abs(want_loss), (
            f"the loss of a {n_way}-way {k}-shot episode (support in random order) is wrong: check the softmax over "
            "classes (dim=1), the cross-entropy on the query labels, and that prototypes come from the support set."
        )
        got_acc = acc["value"] if acc["kind"] == "number" else float(acc["array"].reshape(())) if acc["kind"] == "tensor" else None
        assert got_acc is not None, "the accuracy must be a number (e.g. a Python float)"
        assert abs(got_acc - want_acc) < 1e-6 or abs(got_acc - 100 * want_acc) < 1e-4, "the accuracy (fraction of correctly classified queries) is wrong"
        assert res["grad_weight"] is not None, "no gradient reaches the encoder: keep the loss differentiable (no .item(), .detach(), .numpy() or no_grad)."
        assert _close(res["grad_weight"].astype(np.float64), want_gw, 1e-2, 1e-4 * np.abs(want_gw).max()), "the gradient of the loss with respect to the encoder is wrong"
        assert _close(res["grad_bias"].astype(np.float64), want_gb, 1e-2, 1e-4 * np.abs(want_gb).max() + 1e-7), "the gradient of the loss with respect to the encoder is wrong"
    # support-order invariance on the same episode
    ep = _episode(rng, 3, 4, 2)
    weight = (0.05 * rng.standard_normal((16, 784))).astype(np.float32)
    bias = np.zeros(16, np.float32)
    first = probe.task("protonet", "episode_loss", "episode_loss_and_accuracy", weight, bias, ep, substitutes=HELPERS)
    perm = rng.permutation(len(ep["support_y"]))
    ep2 = {**ep, "support_x": ep["support_x"][perm], "support_y": ep["support_y"][perm]}
    second = probe.task("protonet", "episode_loss", "episode_loss_and_accuracy", weight, bias, ep2, substitutes=HELPERS)
    a, b = float(first["loss"]["array"].reshape(())), float(second["loss"]["array"].reshape(()))
    assert abs(a - b) <= 1e-4 * (1 + abs(a)), "the loss changes when the support set is shuffled; group support rows by their labels"


def _evaluation_images(n_classes: int = 160, seed: int = 2024) -> tuple[np.ndarray, int]:
    """uint8 images (n_classes * 20, 1, 28, 28) of fixed evaluation classes, and 20."""
    from fsl_utils.data import load_omniglot

    data = load_omniglot("evaluation")
    classes = np.random.default_rng(seed).permutation(data.n_classes)[:n_classes]
    images = data.images[classes].unsqueeze(2).numpy()  # (C, 20, 1, 28, 28) uint8
    return images.reshape(-1, 1, 28, 28), data.images.shape[1]


def weights_accuracy(probe, k_shot: int, n_way: int = 5, n_query: int = 15, n_episodes: int = 500, seed: int = 7) -> float:
    """Accuracy (%) of the submitted weights on fixed episodes of 160 evaluation classes.

    Prototypes and nearest-prototype decisions use the oracle, so only the student's
    encoder class and weights matter here.
    """
    info = probe.file_info(WEIGHTS_FILE)
    assert info["exists"], f"{WEIGHTS_FILE} was not found beside the notebook: train with skip_training = False, then submit the file."
    size = int(info["size"])
    assert size <= MAX_SUBMITTED_BYTES, f"{WEIGHTS_FILE} is {size / 2**20:.1f} MB; save only model.state_dict() (a Conv-4 needs < 0.5 MB)."
    images, per_class = _evaluation_images()
    emb = probe.task("protonet", "embed_with_weights", "ProtoNetEncoder", WEIGHTS_FILE, images)
    assert isinstance(emb, np.ndarray) and emb.ndim == 2 and emb.shape[0] == len(images) and np.all(np.isfinite(emb)), "the encoder must return finite embeddings of shape (batch, d)"
    emb = emb.astype(np.float64).reshape(-1, per_class, emb.shape[1])
    rng = np.random.default_rng(seed)
    correct = total = 0
    for _ in range(n_episodes):
        classes = rng.permutation(emb.shape[0])[:n_way]
        picks = np.stack([rng.permutation(per_class)[: k_shot + n_query] for _ in classes])
        x = emb[classes[:, None], picks]  # (n_way, k+q, d)
        protos = x[:, :k_shot].mean(1)
        queries = x[:, k_shot:].reshape(-1, x.shape[-1])
        d = (queries**2).sum(1)[:, None] - 2 * queries @ protos.T + (protos**2).sum(1)[None]
        correct += int((d.argmin(1) == np.repeat(np.arange(n_way), n_query)).sum())
        total += n_way * n_query
    return 100.0 * correct / total


def check_weights_5w5s(probe) -> None:
    acc = weights_accuracy(probe, k_shot=5)
    assert acc >= FLOOR_5W5S, f"your trained weights reach {acc:.1f}% on 5-way 5-shot test episodes; at least {FLOOR_5W5S:.0f}% is expected. Train with the default budget and check your loss."


def check_weights_5w1s(probe) -> None:
    acc = weights_accuracy(probe, k_shot=1)
    assert acc >= FLOOR_5W1S, f"your trained weights reach {acc:.1f}% on 5-way 1-shot test episodes; at least {FLOOR_5W1S:.0f}% is expected. Train with the default budget and check your loss."


def check_environment(probe) -> None:
    """Nothing beyond the tampering check that runs before every hidden test."""


# -- the grader's own run of each visible test ------------------------------------------
# A visible test runs in the student's kernel, where a submission can replace torch.allclose or
# the tampering check itself. Each check below runs the same public example through the probe
# and compares in the grader (fsl_utils.grading.hidden.run_check runs it for its cell), so the
# visible points need the example's right answer from the student's code. (A submission can
# still hard-code a public example's answer: that is what the hidden tests are for.)
def _visible_output(probe, name: str, *args) -> np.ndarray:
    out = probe.call(name, *args)["outputs"][0]
    assert out["kind"] == "tensor", f"`{name}` must return a torch.Tensor, not {out.get('type', out['kind'])}"
    return out["array"]


def visible_prototypes(probe) -> None:
    emb = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 4.0]], np.float32)
    protos = _visible_output(probe, "compute_prototypes", emb, np.array([0, 1, 0, 1]), 2)
    assert protos.shape == (2, 2) and protos.dtype == np.float32, f"expected a float32 tensor of shape (2, 2), got {protos.dtype} {protos.shape}"
    assert np.allclose(protos, [[2.0, 0.0], [0.0, 3.0]]), "the worked example: expected [[2, 0], [0, 3]] (class means)"


def visible_distances(probe) -> None:
    x = np.array([[0.0, 0.0], [1.0, 1.0], [3.0, 4.0]], np.float32)
    d = _visible_output(probe, "squared_euclidean_distances", x, np.array([[0.0, 0.0], [3.0, 0.0]], np.float32))
    assert d.shape == (3, 2) and np.allclose(d, [[0.0, 9.0], [2.0, 5.0], [25.0, 16.0]]), "the worked example: expected [[0, 9], [2, 5], [25, 16]]"


def visible_logits(probe) -> None:
    q = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]], np.float32)
    logits = _visible_output(probe, "prototype_logits", q, np.array([[0.0, 0.0], [1.0, 0.0]], np.float32))
    assert logits.shape == (3, 2) and np.allclose(logits, [[0.0, -1.0], [-1.0, 0.0], [0.0, -1.0]]), "the worked example: expected [[0, -1], [-1, 0], [0, -1]]"


def visible_encoder(probe) -> None:
    report = probe.task("protonet", "encoder_report", "ProtoNetEncoder", _rng(1).random((8, 1, 28, 28)).astype(np.float32))
    assert report["out_train_shape"] == [8, EMBEDDING_DIM], f"expected embeddings of shape (8, 64), got {report['out_train_shape']}"
    convs = [l for l in report["layers"] if l.startswith("Conv2d")]
    assert len(convs) == 4, f"Conv-4 has 4 convolution layers, found {len(convs)}"


def visible_loss(probe) -> None:
    rng = _rng(2)
    ep = _episode(rng, 5, 2, 3)
    res = probe.task("protonet", "episode_loss", "episode_loss_and_accuracy", (0.05 * rng.standard_normal((16, 784))).astype(np.float32), np.zeros(16, np.float32), ep)
    loss, acc = res["loss"], res["accuracy"]
    assert loss["kind"] == "tensor" and loss["array"].size == 1, "the loss must be a scalar tensor"
    assert loss["grad_fn"], "the loss must be differentiable (do not call .item() or .detach() on it)"
    got_acc = acc["value"] if acc["kind"] == "number" else float(acc["array"].reshape(())) if acc["kind"] == "tensor" and acc["array"].size == 1 else None
    assert got_acc is not None and 0.0 <= got_acc <= 1.0, "the accuracy must be a fraction in [0, 1]"
    assert res["grad_weight"] is not None and np.abs(res["grad_weight"]).sum() > 0, "no gradient reached the encoder"


#: Grade id of each visible test cell -> the grader's own run of its examples.
VISIBLE = {
    "test_prototypes_visible": visible_prototypes,
    "test_distances_visible": visible_distances,
    "test_logits_visible": visible_logits,
    "test_encoder_visible": visible_encoder,
    "test_loss_visible": visible_loss,
}


def prepare() -> None:
    """Build the Omniglot caches the notebook's data cell reads (run by the grader before autograding:
    the sandboxed kernels can only read the cache, so a cold cache would be rebuilt in every kernel)."""
    from fsl_utils.data import load_omniglot

    load_omniglot("background")
    load_omniglot("evaluation")


TESTS = {
    "environment": check_environment,
    "prototypes": check_prototypes,
    "distances": check_distances,
    "logits": check_logits,
    "encoder": check_encoder,
    "loss": check_loss,
    "weights_5w5s": check_weights_5w5s,
    "weights_5w1s": check_weights_5w1s,
}
