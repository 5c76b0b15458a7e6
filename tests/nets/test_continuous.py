"""Networks for continuous actions: the squashed Gaussian against torch.distributions, scaling, Polyak."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

from rl_lightning.nets import (
    ActionScaling,
    ContinuousQNetworks,
    DeterministicActor,
    SquashedGaussianActor,
    polyak_update,
    sample_squashed_gaussian,
)
from rl_lightning.nets.continuous import LOG_STD_MAX, stack_separate_critics_optimizer_state
from rl_lightning.nets.mlp import mlp

OBSERVATIONS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTIONS = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 10.0], np.float32))


def gaussian(batch: int = 5, dim: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Means, log-stds and noise of moderate size, so that tanh stays invertible in float32."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(batch, dim, generator=generator) * 0.5
    log_std = torch.rand(batch, dim, generator=generator) - 1.0
    noise = torch.randn(batch, dim, generator=generator)
    return mean, log_std, noise


# ---------------------------------------------------------------------------------------------- squashed Gaussian
def test_squashed_gaussian_log_prob_matches_torch_tanh_transformed_normal():
    mean, log_std, noise = gaussian()
    actions, log_prob = sample_squashed_gaussian(torch.cat([mean, log_std], dim=1), noise)
    distribution = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    assert torch.allclose(actions, torch.tanh(mean + log_std.exp() * noise))
    assert torch.allclose(log_prob, distribution.log_prob(actions).sum(dim=1), atol=1e-4)


def test_scaling_to_the_bounds_is_the_affine_transform_and_shifts_the_log_density_by_a_constant():
    mean, log_std, noise = gaussian()
    actions, log_prob = sample_squashed_gaussian(torch.cat([mean, log_std], dim=1), noise)
    scaling = ActionScaling(ACTIONS)
    center, half_range = torch.tensor([0.0, 5.0]), torch.tensor([2.0, 5.0])
    bounded = TransformedDistribution(
        Normal(mean, log_std.exp()), [TanhTransform(), AffineTransform(center, half_range)]
    )
    env_actions = scaling.to_bounds(actions)
    pre_tanh = mean + log_std.exp() * noise
    assert torch.allclose(env_actions, bounded.transforms[1](bounded.transforms[0](pre_tanh)))
    # The density of the bounded action differs by log|det| of the affine map, the same for every action:
    # which is why SAC measures entropy on the [-1, 1] actions (target_entropy then ignores the env's units).
    expected = log_prob - half_range.log().sum()
    assert torch.allclose(bounded.log_prob(env_actions).sum(dim=1), expected, atol=1e-4)
    assert torch.allclose(scaling.from_bounds(env_actions), actions, atol=1e-6)


def test_bounds_of_the_unit_box_map_to_the_bounds_of_the_action_space():
    scaling = ActionScaling(ACTIONS)
    corners = scaling.to_bounds(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
    assert torch.equal(corners, torch.tensor([[-2.0, 0.0], [2.0, 10.0]]))
    assert torch.equal(scaling.from_bounds(torch.tensor([[0.0, 7.5]])), torch.tensor([[0.0, 0.5]]))


def test_log_std_is_clamped_and_saturated_actions_keep_a_finite_log_prob():
    mean, _, noise = gaussian(batch=1, dim=1)
    _, clamped = sample_squashed_gaussian(torch.cat([mean, torch.full_like(mean, 50.0)], dim=1), noise)
    _, at_max = sample_squashed_gaussian(torch.cat([mean, torch.full_like(mean, LOG_STD_MAX)], dim=1), noise)
    assert torch.equal(clamped, at_max)
    # tanh(30) rounds to 1 in float32: log(1 - tanh^2) would be log(0); the softplus form stays exact.
    actions, log_prob = sample_squashed_gaussian(torch.tensor([[30.0, -5.0]]), torch.zeros(1, 1))
    assert actions.item() == 1.0 and torch.isfinite(log_prob).all()
    # At u = mean: log N = -log_std - log(2 pi) / 2, and -log(1 - tanh(30)^2) = 2 (30 - log 2) + O(e^-60).
    assert log_prob.item() == pytest.approx(5.0 - 0.5 * np.log(2 * np.pi) + 2 * (30.0 - np.log(2.0)), rel=1e-6)


# ---------------------------------------------------------------------------------------------- networks
def test_default_networks_have_the_documented_shapes():
    observations = torch.randn(4, 3)
    assert SquashedGaussianActor(OBSERVATIONS, ACTIONS)(observations).shape == (4, 4)
    actions = DeterministicActor(OBSERVATIONS, ACTIONS)(observations)
    assert actions.shape == (4, 2) and actions.abs().max() <= 1.0
    critic = ContinuousQNetworks(OBSERVATIONS, ACTIONS, hidden_sizes=(8,), n_critics=3)
    q = critic(observations, torch.zeros(4, 2))
    assert q.shape == (4, 3)
    assert not torch.allclose(q[:, 0], q[:, 1]), "twin critics must start from different weights"


def test_batched_critics_are_separate_mlps_computed_together():
    torch.manual_seed(0)
    critic = ContinuousQNetworks(OBSERVATIONS, ACTIONS, hidden_sizes=(8, 5), n_critics=3)
    torch.manual_seed(0)  # the same draws: separate MLPs as the critics were before they were batched
    separate = nn.ModuleList(mlp(3 + 2, 1, (8, 5)) for _ in range(3))
    observations, actions = torch.randn(6, 3), torch.rand(6, 2) * 2 - 1
    expected = torch.cat([q(torch.cat([observations, actions], dim=1)) for q in separate], dim=1)
    torch.testing.assert_close(critic(observations, actions), expected)
    # A state dict of separate critics (q_networks.<critic>.<layer>.weight) loads into the batched layers.
    with torch.no_grad():
        for parameter in separate.parameters():
            parameter.add_(torch.randn_like(parameter))
    critic.load_state_dict({f"q_networks.{key}": value for key, value in separate.state_dict().items()})
    expected = torch.cat([q(torch.cat([observations, actions], dim=1)) for q in separate], dim=1)
    torch.testing.assert_close(critic(observations, actions), expected)


# ---------------------------------------------------------------------------------------------- Polyak averaging
def test_polyak_update_moves_parameters_by_tau_and_copies_buffers():
    online, target = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    with torch.no_grad():
        online.weight.fill_(1.0)
        target.weight.fill_(0.0)
        online.running_mean.fill_(3.0)
    online.num_batches_tracked += 7
    polyak_update(target, online, tau=0.25)
    assert torch.allclose(target.weight, torch.full((2,), 0.25))
    polyak_update(target, online, tau=0.25)  # 0.25 + 0.25 * (1 - 0.25)
    assert torch.allclose(target.weight, torch.full((2,), 0.4375))
    assert torch.equal(target.running_mean, online.running_mean)
    assert target.num_batches_tracked.item() == 7
    polyak_update(target, online, tau=1.0)
    assert torch.equal(target.weight, online.weight)


def test_an_optimizer_state_of_separate_critics_loads_into_the_batched_critics():
    torch.manual_seed(0)
    critic = ContinuousQNetworks(OBSERVATIONS, ACTIONS, hidden_sizes=(8,), n_critics=2)
    torch.manual_seed(0)
    separate = nn.ModuleList(mlp(3 + 2, 1, (8,)) for _ in range(2))  # as the critics were saved before batching
    observations, actions = torch.randn(6, 3), torch.rand(6, 2) * 2 - 1
    inputs = torch.cat([observations, actions], dim=1)
    old = torch.optim.Adam(separate.parameters(), lr=0.1)
    torch.cat([q(inputs) for q in separate], dim=1).square().sum().backward()
    old.step()
    saved = copy.deepcopy(old.state_dict())  # the optimizer goes on stepping its own tensors
    stack_separate_critics_optimizer_state(critic, saved)
    critic.load_state_dict({f"q_networks.{key}": value for key, value in separate.state_dict().items()})
    new = torch.optim.Adam(critic.parameters(), lr=0.1)
    new.load_state_dict(saved)
    # One more step on both gives the same critics: the moments went to the batched layers' matching entries.
    for optimizer, loss in ((old, lambda: torch.cat([q(inputs) for q in separate], dim=1)),
                            (new, lambda: critic(observations, actions))):
        optimizer.zero_grad()
        loss().square().sum().backward()
        optimizer.step()
    expected = torch.cat([q(inputs) for q in separate], dim=1)
    torch.testing.assert_close(critic(observations, actions), expected)
    assert new.state[critic.q_networks[0].weight]["exp_avg"].shape == (2, 5, 8)
