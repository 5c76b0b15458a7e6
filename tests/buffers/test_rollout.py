"""The rollout buffer: GAE(lambda) against hand-computed values, autoreset steps, minibatch gathering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl_lightning.buffers import RolloutBuffer


def buffer(n_steps: int = 4, num_envs: int = 2, gamma: float = 0.5, gae_lambda: float = 0.5) -> RolloutBuffer:
    return RolloutBuffer(n_steps, num_envs, (1,), torch.float32, (), torch.long, gamma, gae_lambda)


def fill(
    rollout: RolloutBuffer,
    rewards: list[list[float]],
    values: list[list[float]],
    terminations: list[list[bool]],
    truncations: list[list[bool]],
    valid: list[list[bool]],
    final_values: list[list[float]],
) -> None:
    """Add steps given as ``[step][env]`` lists; the observation of (t, env) is ``[10 t + env]``."""
    for t in range(rollout.n_steps):
        rollout.add(
            torch.tensor([[10.0 * t + e] for e in range(rollout.num_envs)]),
            torch.zeros(rollout.num_envs, dtype=torch.long),
            torch.tensor(rewards[t]),
            torch.tensor(values[t]),
            torch.zeros(rollout.num_envs),
            np.array(terminations[t]),
            np.array(truncations[t]),
            np.array(valid[t]),
            torch.tensor(final_values[t]),
        )


# Env 0 terminates at step 1 (step 2 is its autoreset step); env 1 is truncated at step 2 (step 3 is its
# autoreset step), with V(true final observation) = 6. gamma = lambda = 0.5, so gamma * lambda = 0.25.
EXAMPLE = dict(
    rewards=[[1, 1], [2, 1], [0, 1], [3, 0]],
    values=[[0.5, 1], [1, 2], [9, 3], [2, 7]],  # 9 and 7: values at autoreset steps, which must not matter
    terminations=[[False, False], [True, False], [False, False], [False, False]],
    truncations=[[False, False], [False, False], [False, True], [False, False]],
    valid=[[True, True], [True, True], [False, True], [True, False]],
    final_values=[[0, 0], [0, 0], [0, 6], [0, 0]],
)
LAST_VALUES = [4.0, 5.0]
# Env 0:  A3 = 3 + 0.5 * 4 - 2 = 3 (bootstraps from the last value);  A2 = 0 (autoreset step);
#         A1 = 2 - 1 = 1 (terminated: no bootstrap, no A2);  A0 = (1 + 0.5 * 1 - 0.5) + 0.25 * A1 = 1.25.
# Env 1:  A3 = 0 (autoreset step);  A2 = 1 + 0.5 * 6 - 3 = 1 (truncated: bootstraps from the final value);
#         A1 = (1 + 0.5 * 3 - 2) + 0.25 * A2 = 0.75;  A0 = (1 + 0.5 * 2 - 1) + 0.25 * A1 = 1.1875.
EXPECTED_ADVANTAGES = [[1.25, 1.1875], [1.0, 0.75], [0.0, 1.0], [3.0, 0.0]]


def test_gae_with_a_termination_a_truncation_and_autoreset_steps():
    rollout = buffer()
    fill(rollout, **EXAMPLE)
    rollout.compute_returns_and_advantages(torch.tensor(LAST_VALUES))
    assert rollout.advantages.tolist() == EXPECTED_ADVANTAGES
    expected_returns = torch.tensor(EXPECTED_ADVANTAGES) + torch.tensor(EXAMPLE["values"], dtype=torch.float32)
    valid = torch.tensor(EXAMPLE["valid"])
    assert torch.equal(rollout.returns[valid], expected_returns[valid])


def test_autoreset_steps_are_left_out_of_the_batches():
    rollout = buffer()
    fill(rollout, **EXAMPLE)
    rollout.compute_returns_and_advantages(torch.tensor(LAST_VALUES))
    # Flat index t * num_envs + env: (2, 0) -> 4 and (3, 1) -> 7 are the autoreset steps.
    assert rollout.valid_indices().tolist() == [0, 1, 2, 3, 5, 6]
    batch = rollout.batch(rollout.valid_indices())
    assert batch.observations.squeeze(1).tolist() == [0.0, 1.0, 10.0, 11.0, 21.0, 30.0]
    assert batch.advantages.tolist() == [1.25, 1.1875, 1.0, 0.75, 1.0, 3.0]


def test_all_steps_valid_uses_every_index():
    rollout = buffer(n_steps=2, num_envs=3)
    steps = dict(
        rewards=[[1, 2, 3]] * 2,
        values=[[0, 0, 0]] * 2,
        terminations=[[False] * 3] * 2,
        truncations=[[False] * 3] * 2,
        valid=[[True] * 3] * 2,
        final_values=[[0, 0, 0]] * 2,
    )
    fill(rollout, **steps)
    rollout.compute_returns_and_advantages(torch.zeros(3))
    assert rollout.valid_indices().tolist() == list(range(6))
    # Rewards r at both steps, V = 0 everywhere: A1 = r, A0 = r + 0.25 r.
    assert rollout.advantages.tolist() == [[1.25, 2.5, 3.75], [1.0, 2.0, 3.0]]


def reference_gae(rewards, values, terminated, truncated, valid, final_values, last_values, gamma, lam):
    """GAE one env and one step at a time, as a direct reading of the definition."""
    n_steps, num_envs = rewards.shape
    advantages = np.zeros_like(rewards)
    for env in range(num_envs):
        following = 0.0
        for t in reversed(range(n_steps)):
            if not valid[t, env]:
                advantages[t, env] = following = 0.0
                continue
            if terminated[t, env]:
                advantages[t, env] = following = rewards[t, env] - values[t, env]
                continue
            if truncated[t, env]:
                next_value, following = final_values[t, env], 0.0
            else:
                next_value = values[t + 1, env] if t + 1 < n_steps else last_values[env]
            delta = rewards[t, env] + gamma * next_value - values[t, env]
            advantages[t, env] = following = delta + gamma * lam * following
    return advantages


def test_gae_matches_a_step_by_step_reference_on_random_rollouts():
    rng = np.random.default_rng(0)
    n_steps, num_envs, gamma, lam = 32, 5, 0.97, 0.9
    for _ in range(20):
        done = rng.random((n_steps, num_envs)) < 0.15
        terminated = done & (rng.random((n_steps, num_envs)) < 0.5)
        truncated = done & ~terminated
        valid = np.ones((n_steps, num_envs), dtype=bool)
        valid[1:] = ~done[:-1]  # the step after an episode end is the autoreset step ...
        terminated &= valid  # ... which never ends an episode itself
        truncated &= valid
        valid[0] = rng.random(num_envs) < 0.8  # the rollout may start on an autoreset step
        terminated[0] &= valid[0]
        truncated[0] &= valid[0]
        rewards, values, finals = (rng.normal(size=(n_steps, num_envs)).astype(np.float32) for _ in range(3))
        last = rng.normal(size=num_envs).astype(np.float32)
        rollout = RolloutBuffer(n_steps, num_envs, (1,), torch.float32, (), torch.long, gamma, lam)
        for t in range(n_steps):
            rollout.add(
                torch.zeros(num_envs, 1),
                torch.zeros(num_envs, dtype=torch.long),
                torch.from_numpy(rewards[t]),
                torch.from_numpy(values[t]),
                torch.zeros(num_envs),
                terminated[t],
                truncated[t],
                valid[t],
                torch.from_numpy(finals[t]),
            )
        rollout.compute_returns_and_advantages(torch.from_numpy(last))
        expected = reference_gae(rewards, values, terminated, truncated, valid, finals, last, gamma, lam)
        np.testing.assert_allclose(rollout.advantages.numpy(), expected, rtol=1e-5, atol=1e-5)
        assert rollout.valid_indices().tolist() == np.flatnonzero(valid).tolist()


def test_a_truncation_needs_the_final_values():
    rollout = buffer()
    with pytest.raises(ValueError, match="final_values is required"):
        rollout.add(
            torch.zeros(2, 1),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2),
            torch.zeros(2),
            torch.zeros(2),
            np.array([False, False]),
            np.array([False, True]),
            np.array([True, True]),
        )


def test_overfilling_and_computing_early_are_errors():
    rollout = buffer(n_steps=1, num_envs=1)
    with pytest.raises(RuntimeError, match="fill it before computing GAE"):
        rollout.compute_returns_and_advantages(torch.zeros(1))
    step = (torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.zeros(1), torch.zeros(1), torch.zeros(1))
    flags = (np.array([False]), np.array([False]), np.array([True]))
    rollout.add(*step, *flags)
    with pytest.raises(RuntimeError, match="call reset"):
        rollout.add(*step, *flags)
    rollout.reset()
    rollout.add(*step, *flags)


def test_explained_variance():
    rollout = buffer(n_steps=2, num_envs=2, gamma=0.0, gae_lambda=0.0)
    # gamma = 0: returns are the rewards (1, 2, 3, 4); values (1, 2, 3, 5) leave residuals (0, 0, 0, -1).
    fill(
        rollout,
        rewards=[[1, 2], [3, 4]],
        values=[[1, 2], [3, 5]],
        terminations=[[False, False]] * 2,
        truncations=[[False, False]] * 2,
        valid=[[True, True]] * 2,
        final_values=[[0, 0]] * 2,
    )
    rollout.compute_returns_and_advantages(torch.zeros(2))
    residual_var = np.var([0, 0, 0, -1])
    assert rollout.explained_variance().item() == pytest.approx(1 - residual_var / np.var([1, 2, 3, 4]))


def test_the_whole_rollout_is_a_view_and_indices_gather_copies():
    rollout = buffer(n_steps=2, num_envs=2)
    whole, some = rollout.batch(None), rollout.batch(torch.tensor([0, 3]))
    assert whole.observations.shape == (4, 1) and whole.observations.data_ptr() == rollout.observations.data_ptr()
    assert some.observations.shape == (2, 1) and some.observations.data_ptr() != rollout.observations.data_ptr()


def test_the_action_masks_acted_under_come_with_each_transition() -> None:
    rollout = RolloutBuffer(2, 2, (1,), torch.float32, (), torch.long, action_mask_size=3)
    masks = torch.tensor([[[1, 0, 1], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], dtype=torch.bool)  # [step][env]
    for t in range(2):
        rollout.add(
            torch.zeros(2, 1), torch.zeros(2, dtype=torch.long), torch.zeros(2), torch.zeros(2), torch.zeros(2),
            np.zeros(2, bool), np.zeros(2, bool), np.ones(2, bool), action_masks=masks[t],
        )
    rollout.compute_returns_and_advantages(torch.zeros(2))
    assert torch.equal(rollout.batch().action_masks, masks.flatten(0, 1))
    assert torch.equal(rollout.batch(torch.tensor([3, 0])).action_masks, masks.flatten(0, 1)[[3, 0]])
    assert buffer().batch().action_masks is None
    rollout.reset()
    with pytest.raises(ValueError, match="action_masks exactly when"):
        rollout.add(
            torch.zeros(2, 1), torch.zeros(2, dtype=torch.long), torch.zeros(2), torch.zeros(2), torch.zeros(2),
            np.zeros(2, bool), np.zeros(2, bool), np.ones(2, bool),
        )


def test_dict_observations_are_stored_key_by_key_and_minibatches_gather_the_same_rows() -> None:
    """The observation of (t, env) says ``10 t + env`` in both keys: a uint8 image and a long target."""
    rollout = RolloutBuffer(
        3, 2, {"image": (1, 2, 2), "target": ()}, {"image": torch.uint8, "target": torch.long}, (), torch.long
    )
    assert rollout.observations["image"].shape == (3, 2, 1, 2, 2)
    assert rollout.observations["image"].dtype == torch.uint8 and rollout.observations["target"].dtype == torch.long
    for t in range(3):
        codes = torch.tensor([10 * t, 10 * t + 1])
        observations = {"image": codes.to(torch.uint8).reshape(2, 1, 1, 1).expand(2, 1, 2, 2), "target": codes}
        no = np.zeros(2, dtype=bool)
        rollout.add(observations, codes, codes.float(), torch.zeros(2), torch.zeros(2), no, no, None)
    rollout.compute_returns_and_advantages(torch.zeros(2))
    batch = rollout.batch(torch.tensor([5, 0, 3]))  # flat index t * num_envs + env
    assert batch.observations["target"].tolist() == [21, 0, 11]
    assert batch.observations["image"][:, 0, 1, 0].tolist() == [21, 0, 11]
    assert batch.actions.tolist() == [21, 0, 11]
    assert rollout.batch().observations["image"].shape == (6, 1, 2, 2)
