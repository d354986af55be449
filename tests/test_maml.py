"""MAML wrapper: adapt = hand-computed SGD, first-/second-order meta-gradients against
independent oracles (finite differences), Meta-SGD, the zeroing trick, the classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fsl_utils.data import Episode, EpisodeSampler
from fsl_utils.evaluation import evaluate
from fsl_utils.encoders import maml_conv4
from fsl_utils.methods.maml import MAML, MAMLClassifier, meta_train_step


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread avoids thread hand-off costs on a busy CPU (measured 10x)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def toy_task(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    xs, xq = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(9, 4, generator=g, dtype=torch.float64)
    return xs, torch.tensor([0, 0, 1, 1, 2, 2]), xq, torch.tensor([0, 1, 2] * 3)


def mlp_forward(theta: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The tiny MLP written out by hand (the oracle does not use functional_call)."""
    w1, b1, w2, b2 = theta
    return torch.tanh(x @ w1.T + b1) @ w2.T + b2


def meta_loss_by_hand(theta: list[torch.Tensor], task, alpha: float, steps: int) -> torch.Tensor:
    xs, ys, xq, yq = task
    for _ in range(steps):
        grads = torch.autograd.grad(F.cross_entropy(mlp_forward(theta, xs), ys), theta, create_graph=True)
        theta = [t - alpha * g for t, g in zip(theta, grads)]
    return F.cross_entropy(mlp_forward(theta, xq), yq)


def test_adapt_is_a_hand_computed_sgd_step_and_mutates_nothing():
    model, (xs, ys, _, _) = tiny_mlp(), toy_task()
    maml = MAML(model, inner_lr=0.3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    start = maml.params()
    fast = maml.adapt(xs, ys, params=start, steps=1)
    theta = [p.detach().clone().requires_grad_() for p in model.parameters()]
    grads = torch.autograd.grad(F.cross_entropy(mlp_forward(theta, xs), ys), theta)
    for (name, _), t, g in zip(model.named_parameters(), theta, grads):
        torch.testing.assert_close(fast[name], t - 0.3 * g)
        torch.testing.assert_close(model.get_parameter(name), before[name])  # module untouched
        assert start[name] is model.get_parameter(name)  # the input dict untouched
    assert set(fast) == set(start) and fast is not start


def test_two_steps_equal_two_hand_steps_and_zero_steps_is_identity():
    model, (xs, ys, _, _) = tiny_mlp(), toy_task()
    maml = MAML(model, inner_lr=0.2)
    theta = [p.detach().clone().requires_grad_() for p in model.parameters()]
    for _ in range(2):
        grads = torch.autograd.grad(F.cross_entropy(mlp_forward(theta, xs), ys), theta)
        theta = [(t - 0.2 * g).detach().requires_grad_() for t, g in zip(theta, grads)]
    fast = maml.adapt(xs, ys, steps=2)
    for (name, _), t in zip(model.named_parameters(), theta):
        torch.testing.assert_close(fast[name], t)
    same = maml.adapt(xs, ys, steps=0)
    assert all(same[n] is p for n, p in model.named_parameters())


def test_first_order_meta_gradient_is_the_query_gradient_at_the_adapted_params():
    model, task = tiny_mlp(), toy_task()
    xs, ys, xq, yq = task
    maml = MAML(model, inner_lr=0.5, first_order=True)
    loss, _ = maml.query_loss(xs, ys, xq, yq, steps=2)
    loss.backward()
    fast = [t.detach().requires_grad_() for t in maml.adapt(xs, ys, steps=2).values()]
    expected = torch.autograd.grad(F.cross_entropy(mlp_forward(fast, xq), yq), fast)
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, g)


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences_and_differs_from_first_order(steps):
    model, task = tiny_mlp(), toy_task()
    xs, ys, xq, yq = task
    maml = MAML(model, inner_lr=0.5, first_order=False)
    loss, _ = maml.query_loss(xs, ys, xq, yq, steps=steps)
    loss.backward()
    second = [p.grad.clone() for p in model.parameters()]
    # central finite differences of the meta-loss w.r.t. every entry of theta (float64)
    theta = [p.detach().clone() for p in model.parameters()]
    eps = 1e-6
    for i, t in enumerate(theta):
        fd = torch.zeros_like(t)
        for j in range(t.numel()):
            plus = [u.clone() for u in theta]
            minus = [u.clone() for u in theta]
            plus[i].view(-1)[j] += eps
            minus[i].view(-1)[j] -= eps
            lp = meta_loss_by_hand([u.requires_grad_() for u in plus], task, 0.5, steps)
            lm = meta_loss_by_hand([u.requires_grad_() for u in minus], task, 0.5, steps)
            fd.view(-1)[j] = (lp - lm).item() / (2 * eps)
        torch.testing.assert_close(second[i], fd, rtol=1e-5, atol=1e-7)
    # the autograd-through-the-hand-written-loop reference agrees too
    leaves = [t.clone().requires_grad_() for t in theta]
    for g, ref in zip(second, torch.autograd.grad(meta_loss_by_hand(leaves, task, 0.5, steps), leaves)):
        torch.testing.assert_close(g, ref)
    model.zero_grad()
    maml.query_loss(xs, ys, xq, yq, steps=steps, first_order=True)[0].backward()
    first = [p.grad for p in model.parameters()]
    assert max((a - b).abs().max().item() for a, b in zip(first, second)) > 1e-4  # the Hessian term matters


def test_meta_sgd_uses_per_entry_rates_and_learns_them():
    model, task = tiny_mlp(), toy_task()
    xs, ys, xq, yq = task
    maml = MAML(model, inner_lr=0.1, learn_inner_lr=True).double()
    torch.manual_seed(3)
    with torch.no_grad():
        for lr in maml.lrs.values():
            lr.uniform_(0.01, 0.5)
    rates = maml.step_sizes()
    theta = [p.detach().clone().requires_grad_() for p in model.parameters()]
    grads = torch.autograd.grad(F.cross_entropy(mlp_forward(theta, xs), ys), theta)
    fast = maml.adapt(xs, ys, steps=1)
    for (name, _), t, g in zip(model.named_parameters(), theta, grads):
        assert rates[name].shape == t.shape
        torch.testing.assert_close(fast[name], t - rates[name] * g)
    loss, _ = maml.query_loss(xs, ys, xq, yq)
    loss.backward()
    assert all(lr.grad is not None and lr.grad.abs().sum() > 0 for lr in maml.lrs.values())


def test_zero_init_starts_every_task_with_a_zero_head():
    model = maml_conv4(5, hidden=8)
    maml = MAML(model, inner_lr=0.4, zero_init=("1.weight", "1.bias"))
    params = maml.params()
    assert params["1.weight"].abs().sum() == 0 and params["1.bias"].abs().sum() == 0
    x, y = torch.rand(10, 1, 28, 28), torch.arange(5).repeat_interleave(2)
    assert maml(x).abs().max() == 0  # uniform predictions before adaptation
    fast = maml.adapt(x, y, steps=1)
    # one step from a zero head: W_c = alpha/N * sum_i (1[y_i=c] - 1/5) phi(x_i)
    feats = model[0](x)
    expected = 0.4 / 10 * (F.one_hot(y, 5).double() - 0.2).T.float() @ feats
    torch.testing.assert_close(fast["1.weight"], expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="not parameters of the model"):
        MAML(model, zero_init=("head.weight",))


def test_inner_params_adapts_only_the_named_parameters():
    model, task = tiny_mlp(), toy_task()
    xs, ys, xq, yq = task
    maml = MAML(model, inner_lr=0.3, inner_params=("2.weight", "2.bias"))
    fast = maml.adapt(xs, ys, steps=2)
    assert fast["0.weight"] is model.get_parameter("0.weight") and fast["0.bias"] is model.get_parameter("0.bias")
    # by hand: two SGD steps on the head only, on fixed hidden features
    h = torch.tanh(xs @ model[0].weight.detach().T + model[0].bias.detach())
    w, b = model[2].weight.detach().clone(), model[2].bias.detach().clone()
    for _ in range(2):
        w, b = w.requires_grad_(), b.requires_grad_()
        gw, gb = torch.autograd.grad(F.cross_entropy(h @ w.T + b, ys), (w, b))
        w, b = (w - 0.3 * gw).detach(), (b - 0.3 * gb).detach()
    torch.testing.assert_close(fast["2.weight"], w)
    torch.testing.assert_close(fast["2.bias"], b)
    # the body is still meta-learned: the meta-gradient reaches it
    maml.query_loss(xs, ys, xq, yq)[0].backward()
    assert model[0].weight.grad.abs().sum() > 0
    assert set(MAML(model, learn_inner_lr=True, inner_params=("2.bias",)).lrs) == {"2__bias"}
    with pytest.raises(ValueError, match="not parameters of the model"):
        MAML(model, inner_params=("head.weight",))
    with pytest.raises(ValueError, match="adapt nothing"):
        MAML(model, inner_params=())


@pytest.mark.parametrize("first_order", [False, True])
def test_head_only_inner_loop_is_exact_maml_with_the_zeroing_trick_and_one_step(first_order):
    """At a zero head the features' gradient W^T(p - y) is 0, so step one never moves the body:
    restricting the inner loop to the head must give MAML's meta-gradient exactly."""
    torch.manual_seed(0)
    model, head = maml_conv4(3, hidden=8), ("1.weight", "1.bias")
    sx, sy = torch.rand(6, 1, 28, 28), torch.tensor([0, 0, 1, 1, 2, 2])
    qx, qy = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2] * 2)
    body = list(model[0].parameters())
    grads = []
    for inner in (None, head):
        maml = MAML(model, inner_lr=0.4, zero_init=head, inner_params=inner)
        grads.append(torch.autograd.grad(maml.query_loss(sx, sy, qx, qy, steps=1, first_order=first_order)[0], body))
    # relative to the whole meta-gradient: the conv biases feed BatchNorm, so their exact
    # gradient is 0 and what the two paths compute for them is rounding noise of either sign
    flat = lambda grads: torch.cat([g.flatten() for g in grads])
    relative_gap = lambda pair: (flat(pair[0]) - flat(pair[1])).norm() / flat(pair[0]).norm()
    assert relative_gap(grads) < 1e-5
    # with two steps the body does move in step two, so the two differ (the check can fail)
    two = [torch.autograd.grad(MAML(model, 0.4, zero_init=head, inner_params=inner).query_loss(sx, sy, qx, qy, steps=2)[0], body)
           for inner in (None, head)]
    assert relative_gap(two) > 0.1


def test_maml_conv4_normalises_with_batch_statistics():
    model = maml_conv4(5, hidden=8).eval()
    assert model(torch.rand(7, 1, 28, 28)).shape == (7, 5)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 4 and all(m.running_mean is None for m in bns)
    # eval mode still uses batch statistics: a batch's outputs depend on the other items
    x = torch.rand(6, 1, 28, 28)
    assert not torch.allclose(model(x)[:3], model(x[:3]))


def test_classifier_adapts_without_touching_meta_params_and_checks_its_input():
    torch.manual_seed(0)
    maml = MAML(maml_conv4(3, hidden=8), inner_lr=0.4)
    clf = MAMLClassifier(maml, test_steps=2)
    assert clf.needs_grad_at_test
    with pytest.raises(RuntimeError, match="process_support_set"):
        clf(torch.rand(2, 1, 28, 28))
    before = [p.detach().clone() for p in maml.parameters()]
    sx, sy = torch.rand(6, 1, 28, 28), torch.tensor([0, 0, 1, 1, 2, 2])
    with torch.no_grad():  # adaptation must still work inside no_grad
        clf.process_support_set(sx, sy)
        logits = clf(torch.rand(4, 1, 28, 28))
    assert logits.shape == (4, 3) and not logits.requires_grad
    assert all(torch.equal(a, b) for a, b in zip(before, maml.parameters()))
    assert all(p.grad is None for p in maml.parameters())
    with pytest.raises(ValueError, match="outputs"):
        clf.process_support_set(torch.rand(8, 1, 28, 28), torch.arange(4).repeat_interleave(2))


def test_classifier_matches_adapt_then_forward():
    torch.manual_seed(0)
    maml = MAML(maml_conv4(3, hidden=8), inner_lr=0.4)
    sx, sy, qx = torch.rand(6, 1, 28, 28), torch.tensor([0, 0, 1, 1, 2, 2]), torch.rand(5, 1, 28, 28)
    clf = MAMLClassifier(maml, test_steps=3)
    clf.process_support_set(sx, sy)
    expected = maml(qx, maml.adapt(sx, sy, steps=3))
    torch.testing.assert_close(clf(qx), expected.detach())


def test_meta_training_learns_a_toy_task_family():
    """Tasks: 2-way, the class is the sign of input coordinate 0 or 1 (drawn per task);
    coordinates 2 and 3 are loud noise. One SGD step from a random init is distracted by
    the noise; meta-training must learn an init that is not (measured: 60% -> 77%)."""
    g = torch.Generator().manual_seed(0)

    def task() -> Episode:
        axis = int(torch.randint(0, 2, (1,), generator=g))
        y = torch.tensor([0] * 5 + [1] * 5)
        x = torch.randn(2, 10, 4, generator=g) * torch.tensor([1.0, 1.0, 3.0, 3.0])
        x[:, :, axis] = x[:, :, axis].abs() * (2 * y - 1)  # class-major, balanced
        return Episode(x[0], y, x[1], y, torch.arange(2))

    torch.manual_seed(0)
    maml = MAML(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)), inner_lr=0.5, inner_steps=1)
    opt = torch.optim.Adam(maml.parameters(), 3e-3)

    def score() -> float:
        clf = MAMLClassifier(maml)
        return evaluate(clf, [task() for _ in range(100)], progress=False).mean

    before = score()
    for _ in range(150):
        meta_train_step(maml, [task() for _ in range(4)], opt)
    after = score()
    assert after > 70 and after > before + 10, (before, after)


def test_adapt_errors_are_clear():
    maml = MAML(maml_conv4(2, hidden=8))
    with pytest.raises(ValueError, match="outputs"):
        maml.adapt(torch.rand(3, 1, 28, 28), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="inner_lr"):
        MAML(maml_conv4(2, hidden=8), inner_lr=0)


def test_one_omniglot_meta_step_runs_on_real_episodes(omniglot_background):
    torch.manual_seed(0)
    maml = MAML(maml_conv4(5, hidden=8))
    opt = torch.optim.Adam(maml.parameters(), 1e-3)
    sampler = EpisodeSampler(omniglot_background, 5, 1, 2, n_episodes=2, generator=torch.Generator().manual_seed(0))
    before = [p.detach().clone() for p in maml.parameters()]
    loss, acc = meta_train_step(maml, sampler, opt)
    assert loss > 0 and 0 <= acc <= 1
    assert any(not torch.equal(a, b) for a, b in zip(before, maml.parameters()))


def test_maml_bench_runs(run_bench):
    r = run_bench("maml.py", "--steps", "2", "--meta-batch", "1", "--eval-episodes", "2", "--curve-episodes", "1",
                  "--cost-repeats", "1", "--cost-shots", "5", "--cost-inner-steps", "2")
    second, first = r["cost_per_task"]["5w5s 2 inner steps second order"], r["cost_per_task"]["5w5s 2 inner steps first order"]
    assert second["saved_for_backward_mb"] > first["saved_for_backward_mb"] > 0  # second order keeps the inner graph
    assert set(r["accuracy"]) == {"MAML 5w1s", "MAML 5w5s", "FOMAML 5w1s", "FOMAML 5w5s"}
    assert all(0 <= v["mean"] <= 100 for v in r["accuracy"].values())
    assert set(r["accuracy_vs_test_inner_steps"]["5w1s"]) == {"0", "1", "2", "3", "5", "10"}
