"""C51's projection and QR-DQN's quantile Huber loss on hand-computed values; the distributional Q-networks'
outputs and Q-values; the plain QNetwork unchanged; bad hyperparameters refused."""

from __future__ import annotations

import math
import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rl_lightning.errors import ConfigurationError
from rl_lightning.nets import (
    CategoricalQNetwork,
    QNetwork,
    QuantileQNetwork,
    categorical_projection,
    categorical_support,
    example_observations,
    make_encoder,
    quantile_huber_loss,
    quantile_midpoints,
)

SUPPORT = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])  # 5 atoms on [-2, 2]: delta_z = 1
VECTOR = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
TWO_ACTIONS = gym.spaces.Discrete(2)


def project(probs: list[float], reward: float, discount: float, terminated: bool) -> list[float]:
    """The projection of one transition onto ``SUPPORT``."""
    target = categorical_projection(
        torch.tensor([probs]),
        torch.tensor([reward]),
        torch.tensor([discount]),
        torch.tensor([float(terminated)]),
        SUPPORT,
    )
    return target[0].tolist()


# ------------------------------------------------------------------------------------------------ C51 projection
def test_support_is_evenly_spaced_between_v_min_and_v_max() -> None:
    assert categorical_support(5, -2.0, 2.0).tolist() == SUPPORT.tolist()


def test_projection_splits_atoms_between_neighbours_and_keeps_exact_hits_whole() -> None:
    # r = 0.5, discount 0.5: Tz = 0.5 + 0.5 z = (-0.5, 0, 0.5, 1, 1.5).
    #   -0.5 (p 0.1): half to -1, half to 0;  0 (p 0.2): on a support point, all to 0;
    #    0.5 (p 0.3): half to 0, half to 1;   1 (p 0.2): all to 1;   1.5 (p 0.2): half to 1, half to 2.
    # Target: -2: 0, -1: 0.05, 0: 0.05 + 0.2 + 0.15 = 0.4, 1: 0.15 + 0.2 + 0.1 = 0.45, 2: 0.1.
    target = project([0.1, 0.2, 0.3, 0.2, 0.2], reward=0.5, discount=0.5, terminated=False)
    assert target == pytest.approx([0.0, 0.05, 0.4, 0.45, 0.1], abs=1e-6)


def test_projection_clamps_atoms_outside_the_support_to_its_ends() -> None:
    # r = 1.5, discount 1: Tz = (-0.5, 0.5, 1.5, 3.5, 4.5) -> the last two clamp to 2.
    #   -0.5: 0.1 to -1, 0.1 to 0;  0.5: 0.1 to 0, 0.1 to 1;  1.5: 0.1 to 1, 0.1 to 2;  2, 2: 0.2 + 0.2 to 2.
    target = project([0.2] * 5, reward=1.5, discount=1.0, terminated=False)
    assert target == pytest.approx([0.0, 0.1, 0.2, 0.2, 0.5], abs=1e-6)
    # r = -3, discount 0.25: Tz = (-3.5, ..., -2.5), all below -2: everything on -2.
    target = project([0.1, 0.2, 0.3, 0.2, 0.2], reward=-3.0, discount=0.25, terminated=False)
    assert target == pytest.approx([1.0, 0.0, 0.0, 0.0, 0.0], abs=1e-6)


def test_terminal_transition_puts_all_mass_on_the_reward() -> None:
    probs = [0.1, 0.2, 0.3, 0.2, 0.2]
    # r = 0.25, no bootstrap: every atom at 0.25, split 0.75 to 0 and 0.25 to 1, whatever the discount.
    assert project(probs, reward=0.25, discount=0.9, terminated=True) == pytest.approx([0, 0, 0.75, 0.25, 0], abs=1e-6)
    assert project(probs, reward=-1.0, discount=0.9, terminated=True) == pytest.approx([0, 1, 0, 0, 0], abs=1e-6)
    assert project(probs, reward=5.0, discount=0.9, terminated=True) == pytest.approx([0, 0, 0, 0, 1], abs=1e-6)


def algorithm_1(next_probs: torch.Tensor, reward: float, discount: float, support: torch.Tensor) -> torch.Tensor:
    """Bellemare et al. (2017), Algorithm 1, one atom at a time; an atom on a support point goes there whole."""
    v_min, v_max = support[0].item(), support[-1].item()
    delta = (v_max - v_min) / (len(support) - 1)
    target = torch.zeros(len(support), dtype=torch.float64)
    for z, p in zip(support.tolist(), next_probs.tolist()):
        b = (min(max(reward + discount * z, v_min), v_max) - v_min) / delta
        lower, upper = math.floor(b), math.ceil(b)
        if lower == upper:
            target[lower] += p
        else:
            target[lower] += p * (upper - b)
            target[upper] += p * (b - lower)
    return target


def test_projection_matches_the_papers_algorithm_on_random_transitions() -> None:
    generator = torch.Generator().manual_seed(0)
    # In float64, so that both compute with support points at v_min + j * delta_z to 1e-15.
    batch, support = 64, torch.linspace(-10.0, 10.0, 51, dtype=torch.float64)
    next_probs = torch.rand(batch, 51, generator=generator, dtype=torch.float64).softmax(dim=1)
    rewards = torch.rand(batch, generator=generator, dtype=torch.float64) * 30 - 15  # some beyond +-10
    discounts = torch.rand(batch, generator=generator, dtype=torch.float64)
    terminations = (torch.rand(batch, generator=generator) < 0.25).double()
    target = categorical_projection(next_probs, rewards, discounts, terminations, support)
    for i in range(batch):
        bootstrap = discounts[i].item() * (1.0 - terminations[i].item())
        expected = algorithm_1(next_probs[i], rewards[i].item(), bootstrap, support)
        torch.testing.assert_close(target[i], expected)


def test_projection_conserves_mass_even_when_every_atom_hits_a_support_point() -> None:
    generator = torch.Generator().manual_seed(1)
    next_probs = torch.rand(6, 5, generator=generator).softmax(dim=1)
    # Integer rewards, discount 1 on a unit-spaced support: every moved atom lies exactly on a support point
    # (or is clamped to an end), where a naive floor/ceil split (l == u) would drop its mass.
    rewards = torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.0, 4.0])
    target = categorical_projection(next_probs, rewards, torch.ones(6), torch.zeros(6), SUPPORT)
    torch.testing.assert_close(target.sum(dim=1), torch.ones(6))
    assert (target >= 0).all()
    # Reward 1: z + 1 shifts every atom one place up; the two top atoms (2 and 3 -> clamped) pile on 2.
    expected = torch.cat([torch.zeros(1), next_probs[3, :3], next_probs[3, 3:].sum(0, keepdim=True)])
    torch.testing.assert_close(target[3], expected)


# --------------------------------------------------------------------------------------------- quantile Huber loss
def test_quantile_midpoints() -> None:
    assert quantile_midpoints(2).tolist() == [0.25, 0.75]
    assert quantile_midpoints(4).tolist() == [0.125, 0.375, 0.625, 0.875]


# Two samples, 2 quantiles at tau_hat = (0.25, 0.75); u_ij = target_j - theta_i, weight |tau_i - 1{u < 0}|.
#   Sample 1: theta = (0, 1), targets (0.5, -1).
#     i=0: u = (0.5, -1):   weights (0.25, 0.75), huber (0.125, 0.5)         -> mean(0.03125, 0.375) = 0.203125
#     i=1: u = (-0.5, -2):  weights (0.25, 0.25), huber (0.125, 2 - 0.5 = 1.5) -> mean(0.03125, 0.375) = 0.203125
#     loss = 0.40625 (|u| = 2 lies outside kappa = 1: the linear branch).
#   Sample 2: theta = (1, 3), targets (0, 4).
#     i=0: u = (-1, 3):  weights (0.75, 0.25), huber (0.5, 2.5) -> mean(0.375, 0.625) = 0.5
#     i=1: u = (-3, 1):  weights (0.25, 0.75), huber (2.5, 0.5) -> mean(0.625, 0.375) = 0.5
#     loss = 1.0 (swapping tau and 1 - tau would give 2.0).
QUANTILES = torch.tensor([[0.0, 1.0], [1.0, 3.0]])
TARGETS = torch.tensor([[0.5, -1.0], [0.0, 4.0]])


def test_quantile_huber_loss_by_hand_inside_and_outside_kappa() -> None:
    assert quantile_huber_loss(QUANTILES, TARGETS).tolist() == [0.40625, 1.0]


def test_quantile_huber_loss_with_a_wider_kappa_is_quadratic_throughout_and_not_divided_by_kappa() -> None:
    # kappa = 2, sample 1: every |u| <= 2, huber = u^2 / 2 = (0.125, 0.5) and (0.125, 2).
    #   i=0: mean(0.25 * 0.125, 0.75 * 0.5) = 0.203125;  i=1: mean(0.25 * 0.125, 0.25 * 2) = 0.265625.
    loss = quantile_huber_loss(QUANTILES[:1], TARGETS[:1], kappa=2.0)
    assert loss.tolist() == [0.46875]


def test_quantile_loss_with_kappa_zero_is_the_plain_quantile_regression_loss() -> None:
    # Sample 1, |u| in place of the Huber loss: i=0: mean(0.25 * 0.5, 0.75 * 1) = 0.4375;
    # i=1: mean(0.25 * 0.5, 0.25 * 2) = 0.3125.
    assert quantile_huber_loss(QUANTILES[:1], TARGETS[:1], kappa=0.0).tolist() == [0.75]


def test_quantile_huber_loss_averages_over_targets_of_another_count() -> None:
    # Sample 1 with a third target 0.5: i=0 adds u = 0.5 (0.03125); i=1 adds u = -0.5 (0.03125).
    # i=0: (0.03125 + 0.375 + 0.03125) / 3; i=1: (0.03125 + 0.375 + 0.03125) / 3; sum 0.875 / 3.
    loss = quantile_huber_loss(QUANTILES[:1], torch.tensor([[0.5, -1.0, 0.5]]))
    assert loss.item() == pytest.approx(0.875 / 3)


def test_quantile_huber_loss_treats_targets_as_constants() -> None:
    quantiles, targets = QUANTILES.clone().requires_grad_(), TARGETS.clone().requires_grad_()
    quantile_huber_loss(quantiles, targets).sum().backward()
    assert targets.grad is None
    # Sample 2, quantile 0 at 1: d/dtheta of mean(0.75 * (u^2 / 2) at u = -1, 0.25 * (|u| - 0.5) at u = 3)
    # = mean(0.75 * 1, 0.25 * -1) = 0.25: pushed down more by the target below than up by the one above.
    assert quantiles.grad[1, 0].item() == pytest.approx(0.25)


# ------------------------------------------------------------------------------------------ distributional networks
@pytest.mark.parametrize("noisy", [False, True], ids=["plain", "noisy"])
@pytest.mark.parametrize("dueling", [False, True], ids=["linear", "dueling"])
@pytest.mark.parametrize(
    "observation_space",
    [gym.spaces.Box(-1.0, 1.0, (4,), np.float32), gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)],
    ids=["vector", "image"],
)
def test_distributional_outputs_and_q_values_have_their_shapes(observation_space, dueling: bool, noisy: bool) -> None:
    observations = example_observations(observation_space, batch=5)
    three_actions = gym.spaces.Discrete(3)
    categorical = CategoricalQNetwork(observation_space, three_actions, (8,), n_atoms=7, dueling=dueling, noisy=noisy)
    logits = categorical(observations)
    assert logits.shape == (5, 3, 7)
    assert categorical.q_values(logits).shape == (5, 3)
    quantile = QuantileQNetwork(observation_space, three_actions, (8,), n_quantiles=4, dueling=dueling, noisy=noisy)
    quantiles = quantile(observations)
    assert quantiles.shape == (5, 3, 4)
    assert quantile.q_values(quantiles).shape == (5, 3)


def set_heads(net: nn.Module, advantage_bias: list[float], value_bias: list[float] | None) -> None:
    """Zero weights, so the outputs are the head biases whatever the (encoder-only) features."""
    with torch.no_grad():
        net.advantage.weight.zero_()
        net.advantage.bias.copy_(torch.tensor(advantage_bias))
        if value_bias is not None:
            net.value.weight.zero_()
            net.value.bias.copy_(torch.tensor(value_bias))


def test_categorical_q_values_are_expected_returns_on_the_support() -> None:
    net = CategoricalQNetwork(VECTOR, TWO_ACTIONS, (), n_atoms=3, v_min=-1.0, v_max=1.0)
    # Action 0: logits (0, 0, 0) -> uniform -> Q = 0. Action 1: logits (0, 0, ln 3) -> (0.2, 0.2, 0.6) -> Q = 0.4.
    set_heads(net, [0.0, 0.0, 0.0, 0.0, 0.0, math.log(3.0)], None)
    logits = net(torch.zeros(1, 2))
    assert logits.tolist() == [[[0.0, 0.0, 0.0], [0.0, 0.0, pytest.approx(math.log(3.0))]]]
    assert net.q_values(logits)[0].tolist() == pytest.approx([0.0, 0.4])


def test_categorical_dueling_combines_streams_per_atom_before_the_softmax() -> None:
    net = CategoricalQNetwork(VECTOR, TWO_ACTIONS, (), n_atoms=2, v_min=-1.0, v_max=1.0, dueling=True)
    # V = (1, 2); A(a0) = (1, 0), A(a1) = (5, 2); mean_a A = (3, 1).
    # Logits: a0 = (1 + 1 - 3, 2 + 0 - 1) = (-1, 1); a1 = (1 + 5 - 3, 2 + 2 - 1) = (3, 3).
    set_heads(net, [1.0, 0.0, 5.0, 2.0], [1.0, 2.0])
    logits = net(torch.zeros(1, 2))
    assert logits.tolist() == [[[-1.0, 1.0], [3.0, 3.0]]]
    # a0: softmax(-1, 1) = (1, e^2) / (1 + e^2) -> Q = tanh(1); a1: equal logits -> Q = 0.
    assert net.q_values(logits)[0].tolist() == pytest.approx([math.tanh(1.0), 0.0])


def test_quantile_dueling_combines_streams_per_quantile_and_q_is_their_mean() -> None:
    net = QuantileQNetwork(VECTOR, TWO_ACTIONS, (), n_quantiles=2, dueling=True)
    # Same streams as above: quantiles a0 = (-1, 1), a1 = (3, 3); Q = (0, 3).
    set_heads(net, [1.0, 0.0, 5.0, 2.0], [1.0, 2.0])
    quantiles = net(torch.zeros(1, 2))
    assert quantiles.tolist() == [[[-1.0, 1.0], [3.0, 3.0]]]
    assert net.q_values(quantiles).tolist() == [[0.0, 3.0]]
    assert net.taus.tolist() == [0.25, 0.75]


@pytest.mark.parametrize("dueling", [False, True], ids=["linear-head", "dueling-head"])
@pytest.mark.parametrize(
    "observation_space",
    [gym.spaces.Box(-1.0, 1.0, (4,), np.float32), gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)],
    ids=["vector", "image"],
)
def test_plain_q_network_builds_the_same_parameters_as_before(observation_space, dueling: bool) -> None:
    # The layers the QNetwork of before the distributional options built, in its order, from the same seed.
    torch.manual_seed(11)
    encoder = make_encoder(observation_space)
    torso = nn.Sequential(nn.Linear(encoder.out_features, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU())
    reference = {"advantage": nn.Linear(8, 3)}
    if dueling:
        reference["value"] = nn.Linear(8, 1)
    expected = {
        **{f"encoder.{k}": v for k, v in encoder.state_dict().items()},
        **{f"torso.{k}": v for k, v in torso.state_dict().items()},
        **{f"{name}.{k}": v for name, layer in reference.items() for k, v in layer.state_dict().items()},
    }
    torch.manual_seed(11)
    state = QNetwork(observation_space, gym.spaces.Discrete(3), (16, 8), dueling=dueling).state_dict()
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


# ---------------------------------------------------------------------------------------------- bad hyperparameters
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_atoms": 1}, "n_atoms=1 must be an integer of at least 2"),
        ({"n_atoms": 51.0}, "n_atoms=51.0 must be an integer"),
        ({"v_min": 10.0, "v_max": 10.0}, "v_min=10.0 must be below v_max=10.0"),
        ({"v_min": 5.0, "v_max": -5.0}, "v_min=5.0 must be below v_max=-5.0"),
    ],
)
def test_bad_categorical_support_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        CategoricalQNetwork(VECTOR, TWO_ACTIONS, **kwargs)


@pytest.mark.parametrize("n_quantiles", [0, -3])
def test_fewer_than_one_quantile_is_refused(n_quantiles: int) -> None:
    with pytest.raises(ConfigurationError, match=f"n_quantiles={n_quantiles} must be an integer of at least 1"):
        QuantileQNetwork(VECTOR, TWO_ACTIONS, n_quantiles=n_quantiles)


def test_negative_kappa_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("kappa=-1.0 must be >= 0")):
        quantile_huber_loss(QUANTILES, TARGETS, kappa=-1.0)
