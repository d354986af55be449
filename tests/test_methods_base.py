from __future__ import annotations

import pytest
import torch

from fsl_utils.encoders import Conv4
from fsl_utils.data import EpisodeSampler
from fsl_utils.evaluation import evaluate
from fsl_utils.methods import FewShotClassifier, check_support


class NearestMean(FewShotClassifier):
    """A parameter-free reference method used to exercise the harness."""

    def process_support_set(self, support_x, support_y):
        n = check_support(support_x, support_y)
        flat = support_x.flatten(1)
        self.means = torch.stack([flat[support_y == c].mean(0) for c in range(n)])

    def forward(self, query_x):
        return -torch.cdist(query_x.flatten(1), self.means)


class Broken(NearestMean):
    def forward(self, query_x):
        return super().forward(query_x)[:, :-1]


def test_evaluate_reports_mean_and_ci_over_episodes():
    # 3 well-separated classes: every method that looks at the pixels gets 100%
    data = torch.stack([torch.full((10, 4), float(c)) + 0.01 * torch.randn(10, 4) for c in range(3)])
    result = evaluate(NearestMean(), EpisodeSampler(data, 3, 1, 2, n_episodes=20), progress=False)
    assert result.mean == 100.0 and result.ci95 == 0.0 and result.n_episodes == 20
    assert "100.00 ± 0.00%" in str(result)


def test_evaluate_on_noise_is_near_chance_with_a_sensible_ci():
    data = torch.randn(20, 20, 8, generator=torch.Generator().manual_seed(0))
    result = evaluate(NearestMean(), EpisodeSampler(data, 5, 1, 5, n_episodes=300), progress=False)
    assert abs(result.mean - 20) < 3 * result.ci95 + 1
    assert 0.5 < result.ci95 < 5


def test_evaluate_checks_logit_shape_and_restores_mode():
    data = torch.randn(10, 10, 4)
    method = Broken().train()
    with pytest.raises(ValueError, match="expected"):
        evaluate(method, EpisodeSampler(data, 3, 1, 2, n_episodes=2), progress=False)
    assert method.training


def test_check_support_errors():
    with pytest.raises(ValueError, match="one label per support item"):
        check_support(torch.zeros(4, 2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="must cover"):
        check_support(torch.zeros(3, 2), torch.tensor([0, 2, 2]))


def test_conv4_shapes():
    assert Conv4()(torch.zeros(3, 1, 28, 28)).shape == (3, 64)
    assert Conv4(in_channels=3).output_dim(84) == 1600


def test_conv4_is_channels_last_and_computes_the_same_numbers():
    """Channels-last weights are a speed choice only: same outputs as a contiguous copy,
    and the format survives .to(), deepcopy and load_state_dict."""
    import copy

    torch.manual_seed(0)
    net = Conv4(hidden=8).eval()
    convs = lambda m: [c.weight for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs(net))
    assert not any(w.is_contiguous() for w in convs(net)[1:])  # (the 1-channel first conv is both)
    plain = copy.deepcopy(net)
    for w in convs(plain):
        w.data = w.data.contiguous()
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(net(x), plain(x), atol=1e-5)
    fresh = Conv4(hidden=8)
    fresh.load_state_dict(plain.state_dict())
    for m in (copy.deepcopy(net), net.to("cpu", torch.float64), fresh):
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs(m))


@pytest.mark.parametrize("name", ["PrototypicalNetworks", "MatchingNetworks", "SiameseClassifier"])
def test_a_fitted_method_can_be_deep_copied_and_pickled(name):
    """Support-set state lives in the autograd graph (for episodic training); copies detach it."""
    import copy
    import io

    import fsl_utils.methods as methods
    from fsl_utils.methods import SiameseNetwork

    torch.manual_seed(0)
    backbone = Conv4()
    method = getattr(methods, name)(SiameseNetwork(backbone, 64) if name == "SiameseClassifier" else backbone)
    x, y = torch.rand(10, 1, 28, 28), torch.arange(5).repeat(2)
    query = torch.rand(7, 1, 28, 28)
    method.eval()
    method.process_support_set(x, y)
    expected = method(query)
    assert expected.requires_grad  # the graph through the support set is kept for training
    clone = copy.deepcopy(method)
    buffer = io.BytesIO()
    torch.save(method, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    for other in (clone, loaded):
        assert torch.allclose(other(query), expected)
    expected.sum().backward()  # the original still backpropagates into its encoder
    assert backbone[0][0].weight.grad is not None
