"""MAML (Finn, Abbeel, Levine 2017), first-order MAML and Meta-SGD (Li et al. 2017).

Learning a task = a few gradient steps from a meta-learned start θ:

    θ' = θ - α ∇_θ L_support(θ)                    (inner loop, per task)
    θ ← θ - β ∇_θ Σ_tasks L_query(θ'(θ))          (outer loop, over a meta-batch)

Built on ``torch.func.functional_call``: parameters are plain dicts ``name -> tensor``,
so a model can be run with any set of weights without copying or mutating it.

Clone/adapt semantics of :class:`MAML`:

* ``maml.params()`` is the meta-parameters θ — the module's own ``nn.Parameter``
  objects, not copies — in a new dict. A loss computed from them back-propagates into
  the module, which is what the outer optimiser steps.
* ``maml.adapt(x, y, params)`` is a pure function: it returns a *new* dict θ' after
  ``steps`` SGD steps on the support loss and never modifies the module or ``params``.
  With ``first_order=False`` θ' is a differentiable function of θ (``create_graph=True``),
  so ``L_query(θ').backward()`` includes the second-order terms. With
  ``first_order=True`` the inner gradients are detached (stop-gradient), so
  ``dθ'/dθ = I`` and the meta-gradient is simply ``∇L_query`` evaluated at θ'.
* ``maml(x, params)`` runs the wrapped model with those weights (buffers come from the
  module). ``maml(x)`` uses θ.

Meta-SGD: ``learn_inner_lr=True`` gives every parameter tensor its own tensor of inner
learning rates α (same shape, initialised to ``inner_lr``), meta-learned with θ.

``inner_params`` restricts the inner loop to some parameters (ANIL, Raghu et al. 2020: "almost
no inner loop"); the others are still meta-learned. With the zeroing trick and ONE inner step
this is exactly MAML, not an approximation: at a zero head the loss's gradient w.r.t. the
features is ``W^T (p - y) = 0``, so the first inner step never moves the body — and skipping
that all-zero backward pass makes a second-order meta-step ~2x cheaper (measured).

MAML's network is :func:`fsl_utils.encoders.maml_conv4` (Conv-4 and a linear head, with
batch-statistics BatchNorm).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .base import FewShotClassifier, check_support

Params = dict[str, torch.Tensor]


class MAML(nn.Module):
    """Model-agnostic meta-learning wrapper (second order, first order, Meta-SGD).

    Args:
        model: any module; its trainable parameters are the meta-learned init θ.
            Parameters with ``requires_grad=False`` are used but never adapted.
        inner_lr: inner-loop step size α (MAML used 0.4 on Omniglot).
        inner_steps: default number of inner SGD steps.
        first_order: default mode of :meth:`adapt` (True: FOMAML).
        learn_inner_lr: Meta-SGD — one learned step size per parameter entry.
        zero_init: parameter names (e.g. the head's ``"1.weight", "1.bias"``) that
            start every task at zero instead of a meta-learned value: the "zeroing
            trick" of Kao et al. (ICLR 2022). The first inner step then turns the head
            into class-mean features, and any label permutation looks the same.
        loss_fn: inner-loop loss ``loss_fn(logits, labels)``.
        inner_params: names of the parameters the inner loop adapts (default: every
            trainable one). The rest are meta-learned but fixed within a task (ANIL).
    """

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        first_order: bool = False,
        learn_inner_lr: bool = False,
        zero_init: Sequence[str] = (),
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
        inner_params: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if inner_lr <= 0 or inner_steps < 0:
            raise ValueError(f"need inner_lr > 0 and inner_steps >= 0, got {inner_lr} and {inner_steps}")
        self.model, self.inner_steps, self.first_order, self.loss_fn = model, inner_steps, first_order, loss_fn
        self.inner_lr, self.learn_inner_lr = inner_lr, learn_inner_lr
        names = dict(model.named_parameters())
        for arg, value in (("zero_init", zero_init), ("inner_params", inner_params or ())):
            unknown = set(value) - set(names)
            if unknown:
                raise ValueError(f"{arg} names {sorted(unknown)} are not parameters of the model; see model.named_parameters()")
        self.zero_init = tuple(zero_init)
        inner = set(names if inner_params is None else inner_params)
        self.inner_params = tuple(n for n, p in names.items() if p.requires_grad and n in inner)
        if not self.inner_params:
            raise ValueError("inner_params selects no trainable parameter: the inner loop would adapt nothing")
        rates = {n.replace(".", "__"): nn.Parameter(torch.full_like(names[n], inner_lr)) for n in self.inner_params} if learn_inner_lr else {}
        self.lrs = nn.ParameterDict(rates)  # ParameterDict keys may not contain dots

    def params(self) -> Params:
        """The task initialisation θ: ``{name: nn.Parameter}`` of the wrapped model (no copies).

        Names listed in ``zero_init`` map to fresh zero tensors instead (requiring grad,
        so the inner loop adapts them).
        """
        params = dict(self.model.named_parameters())
        for n in self.zero_init:
            params[n] = torch.zeros_like(params[n], requires_grad=True)
        return params

    def step_sizes(self) -> dict[str, torch.Tensor | float]:
        """Inner step size α per adapted parameter name (tensors under Meta-SGD, else floats)."""
        if self.learn_inner_lr:
            return {n: self.lrs[n.replace(".", "__")] for n in self.inner_params}
        return {n: self.inner_lr for n in self.inner_params}

    def forward(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """Run the wrapped model with ``params`` (default θ).

        Args:
            x: inputs of shape (B, ...).
            params: a dict from :meth:`params` or :meth:`adapt`; missing names fall
                back to the module's own tensors.

        Returns:
            The model's output, e.g. logits of shape (B, n_way).
        """
        if params is None:
            params = self.params()
        return functional_call(self.model, params, (x,), strict=False)

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        params: Params | None = None,
        steps: int | None = None,
        first_order: bool | None = None,
    ) -> Params:
        """θ' after ``steps`` SGD steps on the support loss; never mutates anything.

        Args:
            support_x: support inputs of shape (n_way * k_shot, ...).
            support_y: labels in 0..n_way-1 of shape (n_way * k_shot,).
            params: start point (default θ = :meth:`params`).
            steps: inner steps (default ``self.inner_steps``).
            first_order: stop-gradient through the inner gradients (default
                ``self.first_order``).

        Returns:
            A new dict with the adapted tensors (same names and shapes as ``params``).
        """
        params = dict(self.params() if params is None else params)
        steps = self.inner_steps if steps is None else steps
        first_order = self.first_order if first_order is None else first_order
        rates = self.step_sizes()
        names = [n for n in rates if n in params and params[n].requires_grad]
        if not names and steps > 0:
            raise ValueError("no parameter requires grad, so there is nothing to adapt; pass params that require grad")
        with torch.enable_grad():  # adapting needs gradients even inside torch.no_grad()
            for _ in range(steps):
                logits = self(support_x, params)
                if support_y.numel() and int(support_y.max()) >= logits.shape[-1]:
                    raise ValueError(f"the model has {logits.shape[-1]} outputs but the support labels reach {int(support_y.max())}; "
                                     "build the model with n_way outputs for this episode")
                loss = self.loss_fn(logits, support_y)
                grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=not first_order)
                for n, g in zip(names, grads):
                    params[n] = params[n] - rates[n] * (g.detach() if first_order else g)
        return params

    def query_loss(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        query_y: torch.Tensor,
        steps: int | None = None,
        first_order: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One task's meta-loss: adapt on the support set, score the query set.

        Returns:
            ``(loss, logits)``: the scalar query loss (differentiable w.r.t. θ and the
            Meta-SGD rates) and the query logits of shape (n_query, n_way).
        """
        fast = self.adapt(support_x, support_y, steps=steps, first_order=first_order)
        logits = self(query_x, fast)
        return self.loss_fn(logits, query_y), logits


def meta_train_step(
    maml: MAML,
    episodes: Iterable,
    optimizer: torch.optim.Optimizer,
    first_order: bool | None = None,
    steps: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    """One outer step: average the query loss over a meta-batch of episodes and step θ.

    Args:
        maml: the wrapper whose parameters ``optimizer`` holds.
        episodes: the meta-batch, an iterable of :class:`~fsl_utils.data.Episode`.
        optimizer: outer optimiser (Adam in the paper).
        first_order, steps: override the wrapper's defaults for this step.
        device: where to run (default: leave the episodes where they are).

    Returns:
        ``(mean query loss, mean query accuracy in [0, 1])`` over the meta-batch.
    """
    optimizer.zero_grad(set_to_none=True)
    losses, accs = [], []
    episodes = list(episodes)
    for ep in episodes:
        ep = ep.to(device) if device is not None else ep
        loss, logits = maml.query_loss(ep.support_x, ep.support_y, ep.query_x, ep.query_y, steps=steps, first_order=first_order)
        (loss / len(episodes)).backward()  # backward per task frees each task's graph early
        losses.append(loss.item())
        accs.append((logits.argmax(1) == ep.query_y).float().mean().item())
    optimizer.step()
    return sum(losses) / len(losses), sum(accs) / len(accs)


class MAMLClassifier(FewShotClassifier):
    """MAML behind the course's few-shot API: adapt on the support set, then classify.

    ``process_support_set`` runs ``test_steps`` inner steps from θ (first order: no
    outer gradient is needed at test time) and keeps the adapted weights, detached;
    ``forward`` scores queries with them. The meta-parameters are never changed.

    Args:
        maml: a trained :class:`MAML` wrapper.
        test_steps: inner steps at test time (default the wrapper's ``inner_steps``).
    """

    needs_grad_at_test = True

    def __init__(self, maml: MAML, test_steps: int | None = None) -> None:
        super().__init__()
        self.maml, self.test_steps = maml, test_steps
        self._fast: Params | None = None
        self._n_way = 0

    def process_support_set(self, support_x: torch.Tensor, support_y: torch.Tensor) -> None:
        """Adapt a detached copy of θ on the support set (shapes as in the base class)."""
        self._n_way = check_support(support_x, support_y)
        start = {n: p.detach().requires_grad_(p.requires_grad) for n, p in self.maml.params().items()}
        fast = self.maml.adapt(support_x, support_y, params=start, steps=self.test_steps, first_order=True)
        self._fast = {n: t.detach() for n, t in fast.items()}

    def forward(self, query_x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (n_query, n_way) from the adapted weights."""
        if self._fast is None:
            raise RuntimeError("call process_support_set(support_x, support_y) before forward(query_x)")
        logits = self.maml(query_x, self._fast)
        if logits.shape[-1] != self._n_way:
            raise ValueError(f"the model has {logits.shape[-1]} outputs but the episode has {self._n_way} ways")
        return logits
