"""Action distributions against torch.distributions, heads, default actor-critics, running statistics."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import distributions as D

from rl_lightning import ConfigurationError
from rl_lightning.nets import (
    ActorCritic,
    Categorical,
    CategoricalHead,
    DiagGaussian,
    DiagGaussianHead,
    MultiCategorical,
    MultiCategoricalHead,
    RunningMeanStd,
    make_action_head,
)

LOGITS = torch.tensor([[0.0, 1.0, -2.0], [3.0, 3.0, 3.0]])


# ---------------------------------------------------------------------------------------------- distributions
def test_categorical_log_prob_and_entropy_match_torch():
    actions = torch.tensor([1, 2])
    ours, theirs = Categorical(LOGITS), D.Categorical(logits=LOGITS)
    torch.testing.assert_close(ours.log_prob(actions), theirs.log_prob(actions))
    torch.testing.assert_close(ours.entropy(), theirs.entropy())
    # By hand for the uniform row: log(1/3) and entropy log(3).
    assert ours.log_prob(actions)[1].item() == pytest.approx(-math.log(3.0))
    assert ours.entropy()[1].item() == pytest.approx(math.log(3.0))
    assert ours.mode().tolist() == [1, 0]


def test_categorical_entropy_is_finite_with_a_masked_action():
    logits = torch.tensor([[0.0, -math.inf]])
    assert Categorical(logits).entropy().item() == pytest.approx(0.0)


def test_categorical_samples_follow_the_probabilities_and_the_generator():
    logits = torch.log(torch.tensor([[0.2, 0.8]])).expand(20_000, 2)
    first = Categorical(logits).sample(torch.Generator().manual_seed(1))
    again = Categorical(logits).sample(torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    assert first.float().mean().item() == pytest.approx(0.8, abs=0.01)


def test_multi_categorical_sums_independent_dimensions():
    nvec = [3, 2]
    logits = torch.tensor([[0.0, 1.0, -2.0, 0.5, -0.5], [1.0, 1.0, 1.0, 2.0, 0.0]])
    actions = torch.tensor([[2, 0], [1, 1]])
    ours = MultiCategorical(logits, nvec)
    first, second = D.Categorical(logits=logits[:, :3]), D.Categorical(logits=logits[:, 3:])
    torch.testing.assert_close(ours.log_prob(actions), first.log_prob(actions[:, 0]) + second.log_prob(actions[:, 1]))
    torch.testing.assert_close(ours.entropy(), first.entropy() + second.entropy())
    assert ours.mode().tolist() == [[1, 0], [0, 0]]
    samples = ours.sample(torch.Generator().manual_seed(0))
    assert samples.shape == (2, 2) and (samples[:, 0] < 3).all() and (samples[:, 1] < 2).all()


def test_diag_gaussian_log_prob_and_entropy_match_torch():
    mean = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    log_std = torch.tensor([0.0, math.log(2.0)])
    actions = torch.tensor([[0.5, 1.0], [2.0, 3.0]])
    ours = DiagGaussian(mean, log_std)
    theirs = D.Independent(D.Normal(mean, log_std.exp()), 1)
    torch.testing.assert_close(ours.log_prob(actions), theirs.log_prob(actions))
    torch.testing.assert_close(ours.entropy(), theirs.entropy())
    # By hand, first row: N(0.5; 0, 1) * N(1; 1, 2) -> -0.125 - log(2) - log(2 pi).
    assert ours.log_prob(actions)[0].item() == pytest.approx(-0.125 - math.log(2.0) - math.log(2 * math.pi))
    assert torch.equal(ours.mode(), mean)


def test_diag_gaussian_samples_have_the_right_moments():
    mean = torch.tensor([[1.0, -2.0]]).expand(50_000, 2)
    samples = DiagGaussian(mean, torch.tensor([0.0, math.log(0.5)])).sample(torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples.mean(0), torch.tensor([1.0, -2.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(samples.std(0), torch.tensor([1.0, 0.5]), atol=0.02, rtol=0)


# ---------------------------------------------------------------------------------------------- heads
def test_box_head_clips_only_what_the_env_receives():
    head = make_action_head(gym.spaces.Box(-1.0, 2.0, (2, 1), np.float32), "PPO", log_std_init=-0.5)
    assert isinstance(head, DiagGaussianHead) and head.outputs == 2
    assert head.log_std.tolist() == [-0.5, -0.5] and head.log_std.requires_grad
    sampled = torch.tensor([[-3.0, 5.0], [0.5, 1.0]])
    assert head.to_env(sampled).tolist() == [[[-1.0], [2.0]], [[0.5], [1.0]]]
    assert sampled.tolist() == [[-3.0, 5.0], [0.5, 1.0]]  # the sample itself is left as it was


def test_discrete_heads_shift_by_the_space_start():
    head = make_action_head(gym.spaces.Discrete(3, start=-1), "PPO")
    assert isinstance(head, CategoricalHead) and head.outputs == 3
    assert head.to_env(torch.tensor([0, 2])).tolist() == [-1, 1]
    multi = make_action_head(gym.spaces.MultiDiscrete([3, 2], start=[1, 0]), "PPO")
    assert isinstance(multi, MultiCategoricalHead) and multi.outputs == 5 and multi.action_shape == (2,)
    assert multi.to_env(torch.tensor([[0, 1]])).tolist() == [[1, 1]]


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3))),
        gym.spaces.Box(0, 5, (2,), np.int64),
    ],
)
def test_unsupported_action_spaces_are_named(space):
    with pytest.raises(ConfigurationError, match=r"PPO cannot handle the action space .*supported are Discrete"):
        make_action_head(space, "PPO")


# ---------------------------------------------------------------------------------------------- actor-critics
BOX = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_default_actor_critic_separate_and_shared():
    observations = torch.randn(5, 4)
    separate = ActorCritic.default(BOX, 3, (16, 8), shared=False)
    shared = ActorCritic.default(BOX, 3, (16, 8), shared=True)
    for net in (separate, shared):
        outputs, values = net(observations)
        assert outputs.shape == (5, 3) and values.shape == (5,)
        torch.testing.assert_close(net.actor_outputs(observations), outputs)
        torch.testing.assert_close(net.values(observations), values)
    # Separate: two MLPs 4-16-8 plus heads; shared: one MLP plus the two heads.
    assert parameter_count(separate) == 2 * (4 * 16 + 16 + 16 * 8 + 8) + (8 * 3 + 3) + (8 + 1)
    assert parameter_count(shared) == (4 * 16 + 16 + 16 * 8 + 8) + (8 * 3 + 3) + (8 + 1)


def test_orthogonal_initialisation_gains():
    net = ActorCritic.default(BOX, 3, (64, 64), shared=False)
    hidden = net.actor[0].weight  # 64 x 4: orthonormal columns scaled by sqrt(2)
    torch.testing.assert_close(hidden.T @ hidden, 2.0 * torch.eye(4), atol=1e-5, rtol=0)
    policy_out, value_out = net.actor[-1].weight, net.critic[-1].weight
    torch.testing.assert_close(policy_out @ policy_out.T, 0.01**2 * torch.eye(3), atol=1e-7, rtol=0)
    assert (value_out @ value_out.T).item() == pytest.approx(1.0, abs=1e-5)
    assert all((layer.bias == 0).all() for layer in (net.actor[0], net.actor[-1], net.critic[-1]))


def test_discrete_observations_are_one_hot_encoded():
    net = ActorCritic.default(gym.spaces.Discrete(5), 2, (8,))
    outputs, values = net(torch.tensor([0, 4, 2]))
    assert outputs.shape == (3, 2) and values.shape == (3,)


# ---------------------------------------------------------------------------------------------- normalization
def test_running_mean_std_matches_the_statistics_of_all_batches():
    stats = RunningMeanStd((3,))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=[1.0, -2.0, 5.0], scale=[1.0, 3.0, 0.1], size=(n, 3)) for n in (7, 1, 50, 13)]
    for batch in batches:
        stats.update(torch.tensor(batch, dtype=torch.float32))
    everything = np.concatenate(batches)
    # The initial count of 1e-4 (mean 0, variance 1) shifts the result by about 1e-6.
    np.testing.assert_allclose(stats.mean.numpy(), everything.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats.var.numpy(), everything.var(0), rtol=1e-4, atol=1e-4)
    assert stats.count.item() == pytest.approx(len(everything), abs=1e-3)
    normalized = stats.normalize(torch.tensor(everything, dtype=torch.float32), clip=10.0)
    np.testing.assert_allclose(normalized.mean(0).numpy(), 0.0, atol=1e-3)
    assert stats.normalize(torch.tensor([[1e6, 0.0, 0.0]]), clip=10.0)[0, 0].item() == 10.0


def test_running_statistics_are_in_the_state_dict():
    stats = RunningMeanStd((2,))
    stats.update(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
    restored = RunningMeanStd((2,))
    restored.load_state_dict(stats.state_dict())
    assert torch.equal(restored.mean, stats.mean) and torch.equal(restored.var, stats.var)
    assert torch.equal(restored.count, stats.count)


def test_an_empty_batch_leaves_the_running_statistics_alone():
    stats = RunningMeanStd()
    stats.update(torch.tensor([1.0, 3.0]))
    before = {name: tensor.clone() for name, tensor in stats.state_dict().items()}
    stats.update(torch.zeros(0))  # a step where every env was at its autoreset step: no reward to count
    for name, tensor in stats.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_the_moments_combined_over_ranks_are_those_of_the_batch():
    # Under DDP the count, sum and sum of squares are summed over ranks; in one process they are the batch's own.
    batch = torch.tensor(np.random.default_rng(0).normal(2.0, 3.0, size=(40, 2, 3)), dtype=torch.float32)
    count, mean, var = RunningMeanStd._moments_over_ranks(batch)
    expected_var, expected_mean = torch.var_mean(batch, dim=0, correction=0)
    assert count == 40 and mean.shape == var.shape == (2, 3)
    torch.testing.assert_close(mean, expected_mean)
    torch.testing.assert_close(var, expected_var)
    assert RunningMeanStd._moments_over_ranks(torch.zeros(0))[0] == 0
