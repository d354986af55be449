"""Hidden tests of the SimCLR assignment (instructors only; never released).

Each check takes a probe (fsl_utils.grading.probe) and raises AssertionError with a
message for the student. Expected values come from the grader: NT-Xent from a float64
oracle written straight from the slide's l(i, j) (Chen et al. 2020, eq. 1), the linear
evaluation and the weights test from the grader's own logistic regression, and the
augmentation test from statistics of the views of images built for the purpose — never
from the reference solution, so any correct implementation passes (masked matrices or
loops, scikit-learn or a torch classifier, any torchvision pipeline with the right parts).

Like the maml assignment, every check runs a kernel-side task (``probe.task("simclr", ...)``,
:mod:`fsl_utils.grading.checks.kernel.simclr`): it calls the student's function in the student's
kernel on the arrays it receives (building the modules it needs) and returns plain tensors. The
task module holds plumbing only; inputs and expected values stay here. The course's own SimCLR pieces (``fsl_utils.ssl``'s augmentations,
``nt_xent``, ``ProjectionHead``, ``linear_probe``) are in :data:`FORBIDDEN`, which the grader
adds to the probe's forbidden packages: their code running during a check's call counts as
borrowed (the rest of the course stays allowed: the notebook uses its encoder
(``fsl_utils.encoders``) and ``fsl_utils.evaluation.embed``, and its given cells run outside the
checks' calls, untraced). Every check asks
the probe after each call, so borrowing fails the task with :data:`BORROWED` at once.
"""

from __future__ import annotations

import numpy as np

from fsl_utils.course.check import MAX_SUBMITTED_BYTES
from fsl_utils.grading.checks.plain import as_number as _number

WEIGHTS_FILE = "simclr.pt"
#: Accuracy floors (%) of the grader's linear probe on the submitted encoder (calibration: bench/simclr_weights.py,
#: docs/assignments.md — every seed of the notebook's default pre-training passes with >= 5 points to spare, every
#: random init fails with >= 5 points to spare).
FLOOR_10 = 29.0
FLOOR_25 = 33.0
#: Inverse L2 strength of the grader's logistic regression, fit on L2-normalised features (the cosine geometry NT-Xent
#: trains; per-dimension standardisation would rescue random features, whose classes differ by tiny offsets).
PROBE_C = 1.0
#: The fixed evaluation data: a pool of training images (the labelled draws come from it) and the test images.
POOL_SIZE, POOL_SEED, N_DRAWS = 2000, 2026, 5
#: The weights tests score the first 1,000 official test images, whatever the copy holds: all of the course's
#: offline copy (on which the floors were calibrated) and a fixed tenth of the 10,000 that `make data` downloads.
TEST_IMAGES = 1000

#: Forbidden in addition to the probe's FORBIDDEN_PACKAGES while a check's call runs (fsl_utils.grading.hidden.run_check):
#: the course's SimCLR augmentations, losses and heads, and its linear probe (not ``embed``, which the notebook uses).
FORBIDDEN = ("fsl_utils.ssl.augment", "fsl_utils.ssl.losses", "fsl_utils.ssl.heads", "fsl_utils.ssl.evaluation:linear_probe")

BORROWED = ("this task must be solved with your own code, but it ran the course's implementation ({}); the course's SimCLR "
            "pieces (fsl_utils.ssl's simclr_augment/BatchAugment, nt_xent, ProjectionHead, linear_probe) and its few-shot "
            "methods are off limits in graded functions: write it yourself with torch operations.")


# -- helpers --------------------------------------------------------------------------------
def _call(probe, task: str, *args) -> list:
    """The outputs of kernel-side task ``task`` (fsl_utils.grading.checks.kernel.simclr), encoded."""
    out = probe.task("simclr", task, *args)
    assert isinstance(out, list) and all(isinstance(o, dict) and "kind" in o for o in out), "the grader could not read your code's results"
    return out


def _not_borrowed(probe) -> None:
    """Fails at once when the call just made ran forbidden code — :data:`FORBIDDEN` or the probe's default
    packages, as the probe reports it (the grader's ``run_check`` would only report it after the whole check)."""
    borrowed = probe.borrowed()
    assert not borrowed, BORROWED.format(", ".join(borrowed))


# -- oracle (float64, the equations written out) ------------------------------------------
def oracle_nt_xent(z1: np.ndarray, z2: np.ndarray, tau: float, *, exclude_self: bool = True, normalise: bool = True,
                   anchors: str = "all") -> tuple[float, np.ndarray, np.ndarray]:
    """NT-Xent = mean over the 2N anchors i of l(i, j), and its gradients w.r.t. z1 and z2.
    The keyword arguments give the classic mistakes (for diagnosing a wrong answer)."""
    import torch

    a = torch.tensor(z1, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(z2, dtype=torch.float64, requires_grad=True)
    n = a.shape[0]
    z = torch.cat([a, b])
    if normalise:
        z = z / z.norm(dim=1, keepdim=True)
    sim = z @ z.T / tau
    terms = []
    for i in range(2 * n if anchors == "all" else n):
        j = (i + n) % (2 * n)
        others = [k for k in range(2 * n) if k != i or not exclude_self]
        terms.append(-(sim[i, j] - torch.logsumexp(sim[i, others], dim=0)))
    loss = torch.stack(terms).mean()
    ga, gb = torch.autograd.grad(loss, (a, b))
    return float(loss.detach()), ga.numpy(), gb.numpy()


def _close(a: np.ndarray, b: np.ndarray, rtol: float = 2e-3, atol: float = 1e-5) -> bool:
    return bool(np.shape(a) == np.shape(b) and np.all(np.abs(np.asarray(a, np.float64) - b) <= atol + rtol * np.abs(b)))


# -- augment_pair ---------------------------------------------------------------------------------
def _blocks(rng: np.random.Generator, n: int, gray: bool) -> np.ndarray:
    """uint8 (n, 3, 32, 32): random 8x8 patterns of 4-pixel blocks, values 80..170 (little clamping by jitter)."""
    small = rng.integers(80, 171, size=(n, 1 if gray else 3, 8, 8))
    big = np.repeat(np.repeat(small, 4, axis=2), 4, axis=3)
    return np.broadcast_to(big, (n, 3, 32, 32)).astype(np.uint8).copy()


def _views(probe, images: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    out = _call(probe, "augment", images, size, seed)
    _not_borrowed(probe)
    assert _number(out[3]) == 1.0, "augment_pair modified the images it was given; build new tensors."
    views = []
    for o, which in zip(out[:2], ("view1", "view2")):
        assert o["kind"] == "tensor", f"{which} must be a torch.Tensor, got {o.get('type', o['kind'])}"
        assert o["dtype"] == "float32", f"{which} must be float32 in [0, 1] (divide uint8 by 255), got {o['dtype']}"
        arr = o["array"]
        want = (len(images), 3, size, size)
        assert arr.shape == want, f"for a batch of shape {images.shape} and size={size}, {which} must have shape {want}, got {arr.shape}"
        assert np.all(np.isfinite(arr)) and arr.min() >= 0.0 and arr.max() <= 1.0, f"{which} must lie in [0, 1]"
        views.append(arr.astype(np.float64))
    assert _number(out[2]) == 1.0, ("augment_pair is not reproducible with torch.manual_seed: draw every random choice from torch's "
                                    "generator (torchvision's transforms do; not numpy's or Python's random).")
    return views[0], views[1]


def _luminance_corr(view: np.ndarray, reference: np.ndarray) -> float:
    a = view.mean(0).ravel() - view.mean()
    b = reference.mean(0).ravel() - reference.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def check_augment_pair(probe) -> None:
    rng = np.random.default_rng(3001)
    # 1. a batch of different images, another view size: the two views of an image differ
    mixed = _blocks(rng, 16, gray=False)
    v1, v2 = _views(probe, mixed, 24, 11)
    differ = np.abs(v1 - v2).reshape(16, -1).max(1) > 1e-3
    assert differ.mean() >= 0.9, "the two views of an image are (almost always) identical: draw the augmentation independently for each view."
    # 2. one gray textured image, 64 times: every image needs its own crop/flip; crops move the content
    pattern = _blocks(rng, 1, gray=True)
    same = np.repeat(pattern, 64, axis=0)
    v1, v2 = _views(probe, same, 32, 12)
    views = np.concatenate([v1, v2])
    ref = pattern[0].astype(np.float64) / 255
    moved = np.mean([max(_luminance_corr(v, ref), _luminance_corr(v, ref[:, :, ::-1])) < 0.9 for v in views])
    assert moved >= 0.3, ("the views keep the image's layout (no random resized crop?): SimCLR's views are random crops of 20-100% of "
                          "the image, resized to `size`, and flipped at random.")
    distinct = len({np.round(v, 3).tobytes() for v in v1})
    assert distinct >= 48, (f"64 copies of one image gave only {distinct} different first views: every image of the batch needs its own "
                            "random parameters (a transform applied to a whole batch tensor draws them once).")
    # 3. one flat coloured image, 64 times: colour jitter and grayscale change its colours (a crop does not)
    flat = np.zeros((64, 3, 32, 32), np.uint8)
    flat[:, 0], flat[:, 1], flat[:, 2] = 170, 110, 70
    flat[:, :, ::2, ::2] += 6  # a faint texture
    v1, v2 = _views(probe, flat, 32, 13)
    views = np.concatenate([v1, v2]) * 255
    means = views.mean(axis=(2, 3))
    original = flat[0].astype(np.float64).mean(axis=(1, 2))
    jittered = np.mean(np.abs(means - original).max(1) > 8)
    gray = np.mean(np.abs(views - views.mean(1, keepdims=True)).max(axis=(1, 2, 3)) < 2.0)
    assert jittered >= 0.3, ("the views keep the image's colours: apply colour jitter (brightness, contrast, saturation, hue; "
                             "with probability 0.8) to every view.")
    assert gray > 0, "no view was converted to grayscale in 128 draws: add random grayscale (probability 0.2)."


# -- nt_xent --------------------------------------------------------------------------------
def check_nt_xent(probe) -> None:
    rng = np.random.default_rng(3002)
    for n, d, tau in ((4, 8, 0.5), (6, 5, 0.1), (3, 16, 1.0), (5, 3, 2.0), (8, 12, 0.2)):
        scale = rng.uniform(0.3, 3.0, size=(2 * n, 1))
        base = rng.standard_normal((n, d))
        z1 = (scale[:n] * (base + 0.6 * rng.standard_normal((n, d)))).astype(np.float32)
        z2 = (scale[n:] * (base + 0.6 * rng.standard_normal((n, d)))).astype(np.float32)
        out = _call(probe, "nt_xent", z1, z2, tau)
        _not_borrowed(probe)
        loss = _number(out[0])
        assert loss is not None and np.isfinite(loss), "nt_xent must return a finite scalar tensor"
        want, ga, gb = oracle_nt_xent(z1, z2, tau)
        if abs(loss - want) > 1e-4 + 2e-3 * abs(want):
            hints = (
                ({"exclude_self": False}, "the denominator must leave out k = i (mask the diagonal of the similarity matrix with -inf)."),
                ({"normalise": False}, "sim is the COSINE similarity: L2-normalise the projections before the dot products."),
                ({"anchors": "first"}, "average l(i, j) over all 2N anchors: the views in z2 are anchors too, with their partners in z1."),
            )
            for kwargs, hint in hints:
                if abs(loss - oracle_nt_xent(z1, z2, tau, **kwargs)[0]) <= 1e-4 + 2e-3 * abs(want):
                    raise AssertionError(f"nt_xent is wrong (N={n}, tau={tau}): {hint}")
            for wrong_tau in (1.0, 1.0 / tau):
                if abs(loss - oracle_nt_xent(z1, z2, wrong_tau)[0]) <= 1e-4 + 2e-3 * abs(want):
                    raise AssertionError(f"nt_xent uses the temperature wrongly (N={n}, tau={tau}): divide the cosine similarities by tau.")
            raise AssertionError(f"nt_xent gives {loss:.5f} for N={n}, d={d}, tau={tau}; l(i, j) averaged over the 2N anchors gives "
                                 "another value. Check the similarity, the temperature, the excluded k = i and the partners.")
        assert _number(out[3]) == 1.0, "no gradient reaches z1 and z2: keep the loss differentiable (no .item(), .detach(), numpy or no_grad)."
        scale_g = max(1.0, np.abs(ga).max(), np.abs(gb).max())
        assert _close(out[1]["array"], ga, 2e-3, 1e-5 * scale_g) and _close(out[2]["array"], gb, 2e-3, 1e-5 * scale_g), (
            f"the gradients of nt_xent with respect to z1 and z2 are wrong (N={n}, tau={tau}); is something detached?")


# -- ProjectionHead -------------------------------------------------------------------------
def check_projection_head(probe) -> None:
    rng = np.random.default_rng(3003)
    for in_dim, hidden_dim, out_dim in ((20, 24, 6), (12, 40, 16)):
        h = rng.standard_normal((8, in_dim)).astype(np.float32)
        out = _call(probe, "head", in_dim, hidden_dim, out_dim, h, 5)
        _not_borrowed(probe)
        assert out[0]["kind"] == "tensor" and out[0]["array"].shape == (8, out_dim), (
            f"ProjectionHead({in_dim}, {hidden_dim}, {out_dim}) must map (8, {in_dim}) to (8, {out_dim})")
        shapes = {tuple(s) for s in out[2]["array"].tolist()}
        assert (hidden_dim, in_dim) in shapes and (out_dim, hidden_dim) in shapes, (
            f"ProjectionHead({in_dim}, {hidden_dim}, {out_dim}) needs a hidden layer: nn.Linear(in_dim, hidden_dim) then "
            f"nn.Linear(hidden_dim, out_dim) (found linear layers {sorted(shapes)})")
        assert _number(out[1]) == 1.0, "every parameter of the head must receive a gradient (is a layer unused or detached?)"
        f = out[3]["array"].astype(np.float64)
        g = f - f[3]  # minus g(0): zero for a linear map
        linear = np.allclose(g[2], g[0] + g[1], atol=1e-4) and np.allclose(g[4], 2 * g[0], atol=1e-4) and np.allclose(g[5], -g[1], atol=1e-4)
        assert not linear, "the head is a linear (affine) map: put a ReLU between the two linear layers (SimCLR's head is nonlinear)."


# -- linear_eval ----------------------------------------------------------------------------
def _toy_data(rng: np.random.Generator, n_classes: int, n_train: int, n_test: int):
    """uint8 images (n, 3, 6, 6) around one random prototype per class."""
    protos = rng.integers(30, 226, size=(n_classes, 3, 6, 6))

    def draw(k):
        y = np.repeat(np.arange(n_classes), k)
        x = np.clip(protos[y] + rng.normal(0, 25, size=(len(y), 3, 6, 6)), 0, 255).astype(np.uint8)
        return x, y.astype(np.int64)

    return (*draw(n_train), *draw(n_test))


def check_linear_eval(probe) -> None:
    rng = np.random.default_rng(3004)
    weight = (rng.standard_normal((24, 108)) / np.sqrt(108)).astype(np.float32)
    bias = (0.1 * rng.standard_normal(24)).astype(np.float32)
    for n_classes, n_train in ((4, 5), (6, 3)):
        train_x, train_y, test_x, test_y = _toy_data(rng, n_classes, n_train, 30)
        for permuted in (False, True):
            labels = (test_y + 1) % n_classes if permuted else test_y
            out = _call(probe, "linear_eval", weight, bias, train_x, train_y, test_x, labels)
            _not_borrowed(probe)
            acc = _number(out[0])
            assert acc is not None and np.isfinite(acc), "linear_eval must return the accuracy as a number"
            assert _number(out[1]) == 1.0, ("linear_eval changed the encoder (its weights or its BatchNorm running statistics): keep it frozen — "
                                            "eval mode and no gradients (e.g. with embed).")
            assert _number(out[2]) == 1.0, "linear_eval modified test_labels"
            if not permuted:
                if 0.9 <= acc <= 1.0:
                    raise AssertionError("return the accuracy in percent (0-100), not as a fraction")
                assert acc >= 90.0, (f"{n_classes} well separated classes with {n_train} labels each: a linear classifier on the frozen "
                                     f"features reaches 100%, your linear_eval returns {acc:.1f}%.")
            else:
                assert acc <= 10.0, ("linear_eval scores well even when the test labels are wrong: the classifier must be fit on the "
                                     "training features and labels only; test labels only count the hits.")


# -- weights --------------------------------------------------------------------------------
def _evaluation_pool() -> np.ndarray:
    rng = np.random.default_rng(POOL_SEED)
    from fsl_utils.data import load_cifar10

    return np.sort(rng.permutation(len(load_cifar10(train=True).labels))[:POOL_SIZE]).astype(np.int64)


def weights_accuracy(probe, per_class: int) -> float:
    """Mean test accuracy (%) of the grader's logistic regression (L2-normalised features, C = PROBE_C) on the
    submitted encoder's features, over N_DRAWS fixed draws of `per_class` labelled images from a fixed pool."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    from fsl_utils.data import load_cifar10

    info = probe.file_info(WEIGHTS_FILE)
    assert info["exists"], f"{WEIGHTS_FILE} was not found beside the notebook: train with skip_training = False, then submit the file."
    size = int(info["size"])
    assert size <= MAX_SUBMITTED_BYTES, f"{WEIGHTS_FILE} is {size / 2**20:.1f} MB; save only encoder.state_dict() (this encoder needs ~1 MB)."
    pool = _evaluation_pool()
    out = _call(probe, "weights", pool, WEIGHTS_FILE, TEST_IMAGES)
    assert all(o["kind"] == "tensor" for o in out[:2]), "the weights could not be evaluated"
    train_f, test_f = (o["array"].astype(np.float64) for o in out[:2])
    assert train_f.shape[0] == POOL_SIZE and np.all(np.isfinite(train_f)) and np.all(np.isfinite(test_f)), "the encoder's features are not finite"
    test_y = load_cifar10(train=False).labels.numpy()[:TEST_IMAGES]
    if len(test_f) != TEST_IMAGES or len(test_y) != TEST_IMAGES:
        raise RuntimeError(f"the grader's CIFAR-10 copy holds {len(test_y)} test images; the weights tests need the first {TEST_IMAGES}")
    pool_y = load_cifar10(train=True).labels.numpy()[pool]
    rng = np.random.default_rng(POOL_SEED + per_class)
    accs = []
    for _ in range(N_DRAWS):
        idx = np.concatenate([rng.choice(np.flatnonzero(pool_y == c), per_class, replace=False) for c in range(10)])
        clf = make_pipeline(Normalizer(), LogisticRegression(C=PROBE_C, max_iter=2000)).fit(train_f[idx], pool_y[idx])
        accs.append(100.0 * float(np.mean(clf.predict(test_f) == test_y)))
    return float(np.mean(accs))


def check_weights_10(probe) -> None:
    acc = weights_accuracy(probe, 10)
    assert acc >= FLOOR_10, (f"your pre-trained encoder reaches {acc:.1f}% under a linear probe with 10 labels per class; at least "
                             f"{FLOOR_10:.1f}% is expected (a random-init encoder gets about 26%). Train with the default budget and check nt_xent and augment_pair.")


def check_weights_25(probe) -> None:
    acc = weights_accuracy(probe, 25)
    assert acc >= FLOOR_25, (f"your pre-trained encoder reaches {acc:.1f}% under a linear probe with 25 labels per class; at least "
                             f"{FLOOR_25:.1f}% is expected (a random-init encoder gets about 31%). Train with the default budget and check nt_xent and augment_pair.")


def check_environment(probe) -> None:
    """Nothing beyond the tampering check that runs before every hidden test."""


# -- the grader's own run of visible tests ---------------------------------------------------
# A visible test runs in the student's kernel, where a submission can replace torch.allclose or the
# tampering check itself. These run the same public examples through the probe and compare in the
# grader (fsl_utils.grading.hidden.run_check runs each for its cell). The visible projection-head and
# linear-eval tests build modules in the kernel, which the probe does not pass: they rest on the
# in-kernel tampering check (docs/instructors.md).
def visible_nt_xent(probe) -> None:
    z = np.array([[1.0, 0.0], [0.0, 3.0]], np.float32)
    out = probe.call("nt_xent", z, z.copy(), 0.5, grad_weights=np.ones(1, np.float32))["outputs"][0]  # (z1 requires grad)
    assert out["kind"] == "tensor" and out["array"].size == 1, "return a scalar tensor"
    want = -np.log(np.e**2 / (np.e**2 + 2))
    assert abs(float(out["array"].reshape(())) - want) < 1e-5, f"the worked example: expected {want:.5f}"
    assert out["grad_fn"], "the loss must be differentiable (no .item(), .detach() or numpy)"


def visible_augment_pair(probe) -> None:
    images = np.random.default_rng(3).integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    res = probe.call("augment_pair", images, 24)
    assert len(res["outputs"]) == 2 and all(o["kind"] == "tensor" for o in res["outputs"]), "return two tensors"
    v1, v2 = (o["array"] for o in res["outputs"])
    assert v1.shape == v2.shape == (8, 3, 24, 24) and v1.dtype == v2.dtype == np.float32, "expected two float32 batches of shape (8, 3, 24, 24)"
    assert v1.min() >= 0.0 and v1.max() <= 1.0 and v2.min() >= 0.0 and v2.max() <= 1.0, "the views must lie in [0, 1]"
    assert (np.abs(v1 - v2).reshape(8, -1).max(1) > 1e-3).mean() > 0.5, "the two views of an image must differ"
    assert res["inputs_unchanged"], "augment_pair must not modify its input"


#: Grade id of a visible test cell -> the grader's own run of its example.
VISIBLE = {"test_nt_xent_visible": visible_nt_xent, "test_augment_pair_visible": visible_augment_pair}


TESTS = {
    "environment": check_environment,
    "augment_pair": check_augment_pair,
    "nt_xent": check_nt_xent,
    "projection_head": check_projection_head,
    "linear_eval": check_linear_eval,
    "weights_10": check_weights_10,
    "weights_25": check_weights_25,
}
