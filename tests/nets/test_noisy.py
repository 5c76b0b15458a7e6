"""NoisyLinear: the factorised initialisation, the noise and its generator, hand-computed outputs in train and
eval mode, the state_dict, and switching the noise off."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rl_lightning.errors import ConfigurationError
from rl_lightning.nets import CategoricalQNetwork, NoisyLinear, QNetwork, noise_disabled, reset_noise

VECTOR = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
TWO_ACTIONS = gym.spaces.Discrete(2)


def seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def hand_set_layer() -> NoisyLinear:
    """A 2 -> 2 layer with chosen means, standard deviations and noise factors."""
    layer = NoisyLinear(2, 2)
    with torch.no_grad():
        layer.weight_mu.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        layer.weight_sigma.copy_(torch.tensor([[0.5, 0.5], [1.0, 1.0]]))
        layer.bias_mu.copy_(torch.tensor([0.0, 1.0]))
        layer.bias_sigma.copy_(torch.tensor([2.0, 2.0]))
        layer.epsilon_in.copy_(torch.tensor([1.0, -2.0]))
        layer.epsilon_out.copy_(torch.tensor([3.0, 0.5]))
    return layer


def test_initialisation_is_the_papers_factorised_one() -> None:
    torch.manual_seed(0)
    layer = NoisyLinear(16, 64)  # p = 16 inputs: means in U(-1/4, 1/4), sigmas 0.5 / 4
    for mu in (layer.weight_mu, layer.bias_mu):
        assert mu.abs().max() <= 0.25
        # 1/sqrt(out_features) = 1/8 would be the wrong bound; draws reach past it.
        assert mu.abs().max() > 0.2
    # Weights and biases alike (scaling the bias by 1/sqrt(out_features) instead would give 0.0625).
    assert torch.equal(layer.weight_sigma, torch.full((64, 16), 0.125))
    assert torch.equal(layer.bias_sigma, torch.full((64,), 0.125))


def test_noise_factors_are_signed_square_roots_of_the_generators_normal_draws() -> None:
    layer = NoisyLinear(3, 2)
    layer.reset_noise(seeded_generator(7))
    draws = torch.randn(5, generator=seeded_generator(7))  # the 3 input factors, then the 2 output factors
    expected = draws.sign() * draws.abs().sqrt()
    assert torch.equal(layer.epsilon_in, expected[:3])
    assert torch.equal(layer.epsilon_out, expected[3:])


def test_train_mode_output_uses_factorised_noise() -> None:
    layer = hand_set_layer()
    # eps_w = outer(eps_out, eps_in) = [[3, -6], [0.5, -1]]; W = mu + sigma * eps_w = [[2.5, -1], [3.5, 3]];
    # b = mu_b + sigma_b * eps_out = (0 + 2 * 3, 1 + 2 * 0.5) = (6, 2).
    # x = (1, 1): (2.5 - 1 + 6, 3.5 + 3 + 2) = (7.5, 8.5); x = (2, -1): (5 + 1 + 6, 7 - 3 + 2) = (12, 6).
    outputs = layer(torch.tensor([[1.0, 1.0], [2.0, -1.0]]))
    assert outputs.tolist() == [[7.5, 8.5], [12.0, 6.0]]


def test_eval_mode_output_is_the_mean_linear_layer() -> None:
    layer = hand_set_layer().eval()
    # W_mu x + b_mu: x = (1, 1): (3, 8); x = (2, -1): (0, 3).
    assert layer(torch.tensor([[1.0, 1.0], [2.0, -1.0]])).tolist() == [[3.0, 8.0], [0.0, 3.0]]


def test_gradients_reach_the_sigmas_in_train_mode_only() -> None:
    layer = hand_set_layer()
    layer(torch.tensor([[1.0, 1.0]])).sum().backward()
    # d/d sigma_w[i, j] of sum_i y_i = eps_out[i] * eps_in[j] * x[j]: [[3, -6], [0.5, -1]] at x = (1, 1).
    assert layer.weight_sigma.grad.tolist() == [[3.0, -6.0], [0.5, -1.0]]
    assert layer.bias_sigma.grad.tolist() == [3.0, 0.5]
    layer.zero_grad(set_to_none=True)
    layer.eval()
    layer(torch.tensor([[1.0, 1.0]])).sum().backward()
    assert layer.weight_sigma.grad is None and layer.bias_sigma.grad is None


def test_reset_noise_changes_train_outputs_and_leaves_eval_outputs() -> None:
    torch.manual_seed(0)
    net = CategoricalQNetwork(VECTOR, TWO_ACTIONS, (8,), n_atoms=5, dueling=True, noisy=True)
    observations = torch.randn(3, 4)
    generator = seeded_generator(1)
    before = net(observations)
    reset_noise(net, generator)
    assert not torch.allclose(net(observations), before)
    net.eval()
    means = net(observations)
    reset_noise(net, generator)
    assert torch.equal(net(observations), means)


def test_reset_noise_redraws_every_noisy_layer() -> None:
    torch.manual_seed(0)
    net = QNetwork(VECTOR, TWO_ACTIONS, (8, 8), dueling=True, noisy=True)
    layers = [layer for layer in net.modules() if isinstance(layer, NoisyLinear)]
    assert len(layers) == 4  # two hidden layers, the advantage and the value head
    before = [(layer.epsilon_in.clone(), layer.epsilon_out.clone()) for layer in layers]
    reset_noise(net, seeded_generator(3))
    for layer, (epsilon_in, epsilon_out) in zip(layers, before):
        assert not torch.equal(layer.epsilon_in, epsilon_in)
        assert not torch.equal(layer.epsilon_out, epsilon_out)


def test_same_generator_seed_gives_the_same_noise() -> None:
    torch.manual_seed(0)
    net = QNetwork(VECTOR, TWO_ACTIONS, (8,), noisy=True)
    twin = copy.deepcopy(net)
    observations = torch.randn(3, 4)
    reset_noise(net, seeded_generator(5))
    reset_noise(twin, seeded_generator(5))
    assert torch.equal(net(observations), twin(observations))
    reset_noise(twin, seeded_generator(6))
    assert not torch.allclose(net(observations), twin(observations))


def test_noise_comes_from_the_generator_passed_in_not_the_global_one() -> None:
    torch.manual_seed(0)
    net = QNetwork(VECTOR, TWO_ACTIONS, (8,), noisy=True)
    global_state = torch.get_rng_state()
    reset_noise(net, seeded_generator(5))
    assert torch.equal(torch.get_rng_state(), global_state)


def test_noise_is_in_the_state_dict_so_a_restored_network_repeats() -> None:
    torch.manual_seed(0)
    net = QNetwork(VECTOR, TWO_ACTIONS, (8,), noisy=True)
    reset_noise(net, seeded_generator(5))
    state = net.state_dict()
    assert {"torso.0.epsilon_in", "torso.0.epsilon_out", "advantage.epsilon_in", "advantage.epsilon_out"} <= set(state)
    torch.manual_seed(1)
    restored = QNetwork(VECTOR, TWO_ACTIONS, (8,), noisy=True)
    observations = torch.randn(3, 4)
    assert not torch.allclose(restored(observations), net(observations))
    restored.load_state_dict(state)
    assert torch.equal(restored(observations), net(observations))


def test_noise_disabled_uses_the_means_and_restores_each_layers_mode() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(NoisyLinear(4, 8), nn.Dropout(0.5), NoisyLinear(8, 2))
    net[2].eval()  # a layer already in eval mode must stay so
    observations = torch.randn(3, 4)
    noisy = net[0](observations)
    with noise_disabled(net):
        assert net[1].training  # the rest of the module keeps its mode
        means = net[0](observations)
    assert torch.equal(means, nn.functional.linear(observations, net[0].weight_mu, net[0].bias_mu))
    assert not torch.allclose(means, noisy)
    assert net[0].training and not net[2].training
    assert torch.equal(net[0](observations), noisy)


@pytest.mark.parametrize("sigma0", [0.0, -0.5])
def test_a_non_positive_sigma0_is_refused(sigma0: float) -> None:
    with pytest.raises(ConfigurationError, match="sigma0"):
        NoisyLinear(2, 2, sigma0=sigma0)
