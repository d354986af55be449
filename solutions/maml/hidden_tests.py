"""Hidden tests of the MAML assignment (instructors only; never released).

Each check takes a probe (fsl_utils.grading.probe) and raises AssertionError with a
message for the student. Expected values come from a float64 oracle written straight
from the equations of Finn, Abbeel & Levine (2017) — an explicit tanh network, SGD
steps and autograd for the second-order terms — never from the reference solution, so
any correct implementation passes (any loop structure, ``torch.autograd.grad`` or
``backward``, ``F.cross_entropy`` or ``log_softmax`` + ``nll_loss``).

The student's functions take an ``nn.Module`` and parameter dictionaries, which the
probe's plain data cannot carry. So every check runs a kernel-side task
(``probe.task("maml", ...)``, :mod:`fsl_utils.grading.checks.kernel.maml`) with arrays: it
builds a small model in the student's kernel, calls the student's function and returns plain
tensors. The task module holds plumbing only; inputs and expected values stay here. The
reference helpers below stay here too (the task modules are readable inside the grading
sandbox) and travel with each call as the probe's ``substitutes``.
"""

from __future__ import annotations

import numpy as np

from fsl_utils.course.check import MAX_SUBMITTED_BYTES
from fsl_utils.grading.checks.plain import as_number as _number

WEIGHTS_FILE = "maml.pt"
#: Accuracy floors of the submitted weights on the fixed episodes below (calibration:
#: docs/assignments.md — the notebook's default training passes with margin, untrained fails).
FLOOR_5W1S = 75.0
FLOOR_5W5S = 82.0
#: Test-time adaptation of the weights tests: the notebook's (one step, alpha = 0.4, from a zero head).
TEST_LR, TEST_STEPS = 0.4, 1
PARAM_NAMES = ("features.1.weight", "features.1.bias", "head.weight", "head.bias")

# Reference helpers swapped in for the student's while another task is graded, so that one
# mistake costs one task (they are the notebook's equations; nothing secret).
INITIAL_HELPER = '''
def initial_params(model):
    params = dict(model.named_parameters())
    params["head.weight"] = torch.zeros_like(params["head.weight"], requires_grad=True)
    params["head.bias"] = torch.zeros_like(params["head.bias"], requires_grad=True)
    return params
'''
INNER_HELPER = '''
def inner_loop(model, params, support_x, support_y, inner_lr, n_steps, first_order=False):
    from torch.func import functional_call
    for _ in range(n_steps):
        loss = F.cross_entropy(functional_call(model, params, (support_x,)), support_y)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
        params = {n: p - inner_lr * g for (n, p), g in zip(params.items(), grads)}
    return params
'''
TASK_HELPER = '''
def maml_task_loss(model, params, episode, inner_lr, n_steps, first_order=False):
    from torch.func import functional_call
    adapted = inner_loop(model, params, episode.support_x, episode.support_y, inner_lr, n_steps, first_order)
    logits = functional_call(model, adapted, (episode.query_x,))
    return F.cross_entropy(logits, episode.query_y), (logits.argmax(1) == episode.query_y).float().mean().item()
'''


# -- oracle (float64, the equations written out) ------------------------------------------
def _forward(theta, x):
    """Logits of the probe network: head(tanh(W1 x + b1))."""
    w1, b1, w2, b2 = theta
    h = (x.reshape(x.shape[0], -1) @ w1.T + b1).tanh()
    return h @ w2.T + b2


def _xent(logits, y):
    import torch

    return -(logits - torch.logsumexp(logits, dim=1, keepdim=True))[torch.arange(len(y)), y].mean()


def _adapt(theta, x, y, lr: float, steps: int, first_order: bool):
    """theta' after `steps` SGD steps; second order keeps the graph of every step."""
    import torch

    for _ in range(steps):
        grads = torch.autograd.grad(_xent(_forward(theta, x), y), theta, create_graph=not first_order)
        theta = [p - lr * (g if not first_order else g.detach()) for p, g in zip(theta, grads)]
    return theta


def _t(arrays):
    import torch

    return [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]


def oracle_inner(arrays, sx, sy, lr, steps, first_order, weights):
    """theta' and d(sum_i <weights_i, theta'_i>)/d theta."""
    import torch

    theta = _t(arrays)
    x, y = torch.tensor(sx, dtype=torch.float64), torch.tensor(sy)
    adapted = _adapt(theta, x, y, lr, steps, first_order)
    total = sum((a * torch.tensor(w, dtype=torch.float64)).sum() for a, w in zip(adapted, weights))
    grads = torch.autograd.grad(total, theta)
    return [a.detach().numpy() for a in adapted], [g.numpy() for g in grads]


def oracle_task(arrays, sx, sy, qx, qy, lr, steps, first_order):
    """Query loss after adaptation, query accuracy, and the meta-gradient d L_Q / d theta."""
    import torch

    theta = _t(arrays)
    adapted = _adapt(theta, torch.tensor(sx, dtype=torch.float64), torch.tensor(sy), lr, steps, first_order)
    logits = _forward(adapted, torch.tensor(qx, dtype=torch.float64))
    y = torch.tensor(qy)
    loss = _xent(logits, y)
    # first order: d theta'/d theta = I, i.e. the query gradient at theta'
    grads = torch.autograd.grad(loss, adapted if first_order else theta)
    return float(loss.detach()), float((logits.argmax(1) == y).double().mean()), [g.numpy() for g in grads]


def oracle_meta_update(arrays, batches, lr, steps, first_order, beta):
    """Parameters after each of two SGD meta-steps on the mean query loss of a meta-batch
    (head starting every task at zero), and the mean query losses."""
    import torch

    theta = [np.array(a, dtype=np.float64) for a in arrays]
    out = []
    for batch in batches:
        leaves = _t(theta)
        start = [leaves[0], leaves[1], torch.zeros_like(leaves[2], requires_grad=True), torch.zeros_like(leaves[3], requires_grad=True)]
        losses = []
        for sx, sy, qx, qy in batch:
            adapted = _adapt(start, torch.tensor(sx, dtype=torch.float64), torch.tensor(sy), lr, steps, first_order)
            losses.append(_xent(_forward(adapted, torch.tensor(qx, dtype=torch.float64)), torch.tensor(qy)))
        loss = torch.stack(losses).mean()
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        theta = [p - beta * (np.zeros_like(p) if g is None else g.numpy()) for p, g in zip(theta, grads)]
        out.append(([p.copy() for p in theta], float(loss.detach())))
    return out


# -- helpers --------------------------------------------------------------------------------
def _close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-3, atol: float = 1e-5) -> bool:
    return bool(np.shape(a) == np.shape(b) and np.all(np.abs(np.asarray(a, np.float64) - b) <= atol + rtol * np.abs(b)))


def _array(out: dict, what: str) -> np.ndarray:
    assert out["kind"] == "tensor", f"{what} must be a torch.Tensor, got {out.get('type', out['kind'])}"
    assert np.all(np.isfinite(out["array"])), f"{what} contains NaN or inf values"
    return out["array"].astype(np.float64)


def _probe_net(rng: np.random.Generator, d: int = 9, h: int = 6, n: int = 3) -> list[np.ndarray]:
    return [(0.5 * rng.standard_normal((h, d))).astype(np.float32), (0.1 * rng.standard_normal(h)).astype(np.float32),
            (0.5 * rng.standard_normal((n, h))).astype(np.float32), (0.1 * rng.standard_normal(n)).astype(np.float32)]


def _task(rng: np.random.Generator, n_way: int, k: int, q: int, d: int = 9) -> tuple[np.ndarray, ...]:
    """Support in random label order, query class-major; images (n, 1, 3, 3)."""
    sy = rng.permutation(np.repeat(np.arange(n_way), k)).astype(np.int64)
    qy = np.repeat(np.arange(n_way), q).astype(np.int64)
    side = int(round(d**0.5))
    centers = rng.standard_normal((n_way, d))
    sx = (centers[sy] + 0.7 * rng.standard_normal((len(sy), d))).reshape(-1, 1, side, side).astype(np.float32)
    qx = (centers[qy] + 0.7 * rng.standard_normal((len(qy), d))).reshape(-1, 1, side, side).astype(np.float32)
    return sx, sy, qx, qy


def _call(probe, task: str, *args, helpers: str | None = None) -> list:
    """The outputs of kernel-side task ``task`` (fsl_utils.grading.checks.kernel.maml), encoded."""
    out = probe.task("maml", task, *args, substitutes=helpers)
    assert isinstance(out, list) and all(isinstance(o, dict) and "kind" in o for o in out), "the grader could not read your code's results"
    return out


# -- tests ------------------------------------------------------------------------------------
def check_inner_loop(probe) -> None:
    rng = np.random.default_rng(2001)
    for n_way, k, steps, first_order in ((3, 2, 1, False), (3, 1, 2, False), (3, 2, 2, True)):
        arrays = _probe_net(rng, n=n_way)
        sx, sy, _, _ = _task(rng, n_way, k, 1)
        lr = 0.3
        weights = [rng.standard_normal(a.shape) for a in arrays]
        out = _call(probe, "inner", *arrays, sx, sy, lr, steps, first_order, *weights)
        adapted = [_array(o, f"inner_loop's {n}") for o, n in zip(out[:4], PARAM_NAMES)]
        grads = [o["array"].astype(np.float64) for o in out[4:8]]
        connected, unchanged, model_unchanged = (_number(o) for o in out[8:11])
        want_adapted, want_grads = oracle_inner(arrays, sx, sy, lr, steps, first_order, weights)
        mode = "first-order" if first_order else "second-order"
        assert unchanged == 1.0, "inner_loop modified the tensors of `params` in place; build a new dict of new tensors."
        assert model_unchanged == 1.0, "inner_loop changed the model's own parameters; it must only return adapted copies."
        if not all(_close(a, w) for a, w in zip(adapted, want_adapted)):
            minus = [a0 - (a - a0) for a, a0 in zip(adapted, [x.astype(np.float64) for x in arrays])]
            if all(_close(m, w) for m, w in zip(minus, want_adapted)):
                raise AssertionError("inner_loop moves the parameters up the gradient: an SGD step is theta - lr * grad.")
            raise AssertionError(f"inner_loop gives wrong adapted parameters ({mode}, {steps} step(s), {n_way}-way {k}-shot): "
                                 "use the support loss at the current parameters for every step, with functional_call(model, params, ...).")
        assert connected == 1.0, "the adapted parameters must stay differentiable functions of `params` (do not detach the parameters themselves)."
        if not all(_close(g, w, 1e-3, 1e-5 * max(1.0, np.abs(w).max())) for g, w in zip(grads, want_grads)):
            if first_order:
                raise AssertionError("with first_order=True the inner gradients must be treated as constants (no create_graph / "
                                     "detach them): then d theta'/d theta is the identity.")
            raise AssertionError("with first_order=False the adapted parameters must be differentiable through the inner gradients "
                                 "(torch.autograd.grad(..., create_graph=True)): the meta-gradient misses the second-order term.")


def check_task_loss(probe) -> None:
    rng = np.random.default_rng(2002)
    for n_way, k, q, steps, first_order in ((3, 2, 2, 1, False), (3, 1, 3, 2, False), (3, 2, 2, 2, True)):
        arrays = _probe_net(rng, n=n_way)
        sx, sy, qx, qy = _task(rng, n_way, k, q)
        lr = 0.3
        out = _call(probe, "task_loss", *arrays, sx, sy, qx, qy, lr, steps, first_order, helpers=INITIAL_HELPER + INNER_HELPER)
        want_loss, want_acc, want_grads = oracle_task(arrays, sx, sy, qx, qy, lr, steps, first_order)
        loss = _number(out[0])
        assert loss is not None, "maml_task_loss must return the query loss as a scalar tensor"
        mode = "first-order" if first_order else "second-order"
        assert abs(loss - want_loss) <= 1e-4 + 1e-3 * abs(want_loss), (
            f"the query loss of a {n_way}-way {k}-shot task ({mode}, {steps} inner step(s)) is wrong: adapt on the support set "
            "with inner_loop, then evaluate the cross-entropy of the QUERY set with the adapted parameters."
        )
        acc = _number(out[1])
        assert acc is not None and (abs(acc - want_acc) < 1e-6 or abs(acc - 100 * want_acc) < 1e-4), "the query accuracy (fraction correct) is wrong"
        assert _number(out[6]) == 1.0, "no meta-gradient reaches `params`: keep the query loss differentiable (no .item(), .detach() or no_grad)."
        grads = [o["array"].astype(np.float64) for o in out[2:6]]
        assert all(_close(g, w, 2e-3, 1e-5 * max(1.0, np.abs(w).max())) for g, w in zip(grads, want_grads)), (
            f"the meta-gradient of the query loss ({mode}) is wrong: pass first_order on to inner_loop and compute the loss from the adapted parameters."
        )


def check_meta_update(probe) -> None:
    rng = np.random.default_rng(2003)
    for first_order in (False, True):
        arrays = _probe_net(rng, n=3)
        batches = [[_task(rng, 3, 1, 2) for _ in range(2)] for _ in range(2)]
        lr, steps, beta = 0.3, 1, 0.5
        flat = [a for batch in batches for task in batch for a in task]
        out = _call(probe, "meta_update", *arrays, lr, steps, first_order, beta, *flat, helpers=INITIAL_HELPER + INNER_HELPER + TASK_HELPER)
        want = oracle_meta_update(arrays, batches, lr, steps, first_order, beta)
        for b, (want_params, want_loss) in enumerate(want):
            got = [_array(o, "a parameter") for o in out[5 * b: 5 * b + 4]]
            what = "first" if b == 0 else "second"
            if not all(_close(g, w, 1e-3, 1e-5) for g, w in zip(got, want_params)):
                hint = " (did you call optimizer.zero_grad() first? gradients accumulate between calls)" if b == 1 else ""
                raise AssertionError(
                    f"after the {what} meta_update the model's parameters are wrong{hint}: average the query losses of the tasks "
                    "(each starting from initial_params(model)), back-propagate once and take one optimizer step."
                )
            loss = _number(out[5 * b + 4])
            assert loss is not None and abs(loss - want_loss) <= 1e-4 + 1e-3 * abs(want_loss), (
                "meta_update must return (mean query loss, mean query accuracy) of the meta-batch as numbers"
            )


def _evaluation_episodes(k_shot: int, n_episodes: int, n_way: int = 5, n_query: int = 15, n_classes: int = 200, seed: int = 2024):
    """uint8 images (n_classes, 20, 28, 28) of fixed evaluation characters and fixed episodes."""
    from fsl_utils.data import load_omniglot

    data = load_omniglot("evaluation")
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(data.n_classes)[:n_classes]
    images = data.images[chosen].numpy()
    classes = np.stack([rng.permutation(n_classes)[:n_way] for _ in range(n_episodes)]).astype(np.int64)
    picks = np.stack([np.stack([rng.permutation(images.shape[1])[: k_shot + n_query] for _ in range(n_way)]) for _ in range(n_episodes)]).astype(np.int64)
    return images, classes, picks


def weights_accuracy(probe, k_shot: int, n_episodes: int = 100, n_query: int = 10) -> float:
    """Accuracy (%) of the submitted weights on fixed 5-way episodes of evaluation characters,
    adapted by the reference inner loop (one step from a zero head, as the notebook trains)."""
    info = probe.file_info(WEIGHTS_FILE)
    assert info["exists"], f"{WEIGHTS_FILE} was not found beside the notebook: train with skip_training = False, then submit the file."
    size = int(info["size"])
    assert size <= MAX_SUBMITTED_BYTES, f"{WEIGHTS_FILE} is {size / 2**20:.1f} MB; save only model.state_dict() (this network needs < 0.2 MB)."
    images, classes, picks = _evaluation_episodes(k_shot, n_episodes, n_query=n_query)
    out = _call(probe, "weights", images, classes, picks, k_shot, TEST_LR, TEST_STEPS, WEIGHTS_FILE)[0]
    assert out["kind"] == "tensor" and out["array"].shape == (n_episodes, 5 * n_query), "the weights could not be evaluated"
    labels = np.repeat(np.arange(5), n_query)[None]
    return 100.0 * float((out["array"] == labels).mean())


def check_weights_5w1s(probe) -> None:
    acc = weights_accuracy(probe, k_shot=1)
    assert acc >= FLOOR_5W1S, (f"your trained weights reach {acc:.1f}% on 5-way 1-shot test episodes; at least {FLOOR_5W1S:.0f}% "
                               "is expected. Train with the default budget and check meta_update.")


def check_weights_5w5s(probe) -> None:
    acc = weights_accuracy(probe, k_shot=5)
    assert acc >= FLOOR_5W5S, (f"your trained weights reach {acc:.1f}% on 5-way 5-shot test episodes; at least {FLOOR_5W5S:.0f}% "
                               "is expected. Train with the default budget and check meta_update.")


def check_environment(probe) -> None:
    """Nothing beyond the tampering check that runs before every hidden test."""


def prepare() -> None:
    """Build the Omniglot caches the notebook's data cell reads (run by the grader before autograding:
    the sandboxed kernels can only read the cache, so a cold cache would be rebuilt in every kernel)."""
    from fsl_utils.data import load_omniglot

    load_omniglot("background")
    load_omniglot("evaluation")


TESTS = {
    "environment": check_environment,
    "inner_loop": check_inner_loop,
    "task_loss": check_task_loss,
    "meta_update": check_meta_update,
    "weights_5w1s": check_weights_5w1s,
    "weights_5w5s": check_weights_5w5s,
}
