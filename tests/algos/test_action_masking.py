"""Invalid-action masking in DQN, PPO and A2C: the env's ``info["action_mask"]`` keeps invalid actions out of the
policy, the random picks, the stored transitions' targets and evaluation; an env an algorithm cannot mask for is
refused when fitting starts.

``InvalidActionEnv`` (tests/toy_envs.py) ends an episode with a penalty at an invalid action and counts them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import lightning as L
import numpy as np
import pytest
import torch

from rl_lightning import A2C, DQN, PPO, SAC, ConfigurationError
from rl_lightning.buffers import ReplayBatch
from tests.helpers import A2C_SMALL, CONTINUOUS_SMALL, DQN_SMALL, PPO_SMALL, Constant, trainer
from tests.toy_envs import InvalidActionEnv, MethodMaskedInvalidActionEnv


class InvalidActionCount(L.Callback):
    """Reads the invalid actions taken in the training and evaluation envs when fitting ends."""

    def on_fit_end(self, trainer: L.Trainer, module: Any) -> None:
        self.training = sum(env.unwrapped.invalid_actions for env in module.collector.env.envs)
        self.evaluation = sum(env.unwrapped.invalid_actions for env in module.eval_collector.env.envs)


class WideMask(gym.Wrapper):
    """Gives masks one entry wider than the action space."""

    def _widen(self, info: dict[str, Any]) -> dict[str, Any]:
        return {**info, "action_mask": np.append(info["action_mask"], 1)}

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        observation, info = self.env.reset(**kwargs)
        return observation, self._widen(info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        *transition, info = self.env.step(action)
        return (*transition, self._widen(info))


class MaskedPendulum(gym.Wrapper):
    """Pendulum with an ``action_mask`` in its infos, which no continuous-action algorithm can use."""

    def __init__(self, env: gym.Env | None = None) -> None:
        super().__init__(env or gym.make("Pendulum-v1"))

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        observation, info = self.env.reset(**kwargs)
        return observation, {**info, "action_mask": np.ones(1, np.int8)}


def _masked_env(nvec: tuple[int, ...] = (4,), masked: bool = True) -> dict[str, Any]:
    return dict(env=InvalidActionEnv, env_kwargs={"nvec": nvec, "masked": masked})


# ---------------------------------------------------------------------------------------------- DQN
def test_dqn_target_takes_the_max_over_valid_next_actions_only() -> None:
    """Q = (1, 5) everywhere; action 1 is invalid in the next state: target 0.5 + 0.9 * 1, not 0.5 + 0.9 * 5."""
    batch = dict(
        observations=torch.zeros(1, 4), actions=torch.tensor([0]), rewards=torch.tensor([0.5]),
        next_observations=torch.zeros(1, 4), terminations=torch.tensor([0.0]), discounts=torch.tensor([0.9]),
    )
    for double_q in (False, True):
        dqn = DQN(q_net=Constant(1.0, 5.0), loss="mse", double_q=double_q, **DQN_SMALL)
        masked = dqn.update(ReplayBatch(**batch, next_action_masks=torch.tensor([[True, False]])))
        assert masked.item() == pytest.approx((1.0 - 1.4) ** 2)
        assert dqn.update(ReplayBatch(**batch)).item() == pytest.approx((1.0 - 5.0) ** 2)


def test_dqn_greedy_and_random_picks_are_valid_actions() -> None:
    dqn = DQN(q_net=Constant(1.0, 5.0), **DQN_SMALL)
    dqn.generator = torch.Generator().manual_seed(0)
    masks = torch.tensor([[True, False], [True, True]])
    observations = torch.zeros(2, 4)
    assert dqn.act(observations, deterministic=True, action_masks=masks).tolist() == [0, 1]
    assert dqn.exploration_rate() == 1.0  # all random at the start
    random = torch.stack([dqn.act(observations, action_masks=masks) for _ in range(200)])
    assert set(random[:, 0].tolist()) == {0}
    assert set(random[:, 1].tolist()) == {0, 1}


# ---------------------------------------------------------------------------------------------- PPO and A2C
@pytest.mark.parametrize("nvec", [(3,), (2, 3)], ids=["discrete", "multi-discrete"])
def test_ppo_gives_invalid_actions_zero_probability(nvec: tuple[int, ...]) -> None:
    logits = (0.0, 5.0, 1.0) if len(nvec) == 1 else (5.0, 0.0, 0.0, 5.0, 1.0)
    ppo = PPO(**_masked_env(nvec), actor=Constant(*logits), **PPO_SMALL)
    ppo.generator = torch.Generator().manual_seed(0)
    masks = torch.tensor([[True, False, True]] if len(nvec) == 1 else [[False, True, True, False, True]])
    observations = torch.zeros(1, sum(nvec))
    mode = ppo.act(observations, deterministic=True, action_masks=masks)
    assert mode.tolist() == ([2] if len(nvec) == 1 else [[1, 2]])
    samples = torch.cat([ppo.act(observations, action_masks=masks) for _ in range(100)]).reshape(100, -1)
    valid_per_dimension = [{0, 2}] if len(nvec) == 1 else [{1}, {0, 2}]
    for dimension, valid in enumerate(valid_per_dimension):
        assert set(samples[:, dimension].tolist()) == valid
    distribution, _ = ppo.evaluate(observations, masks)
    assert distribution.log_prob(torch.tensor([1] if len(nvec) == 1 else [[0, 1]])).item() < -1e30


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize(
    ("algorithm", "small", "nvec"),
    [(DQN, DQN_SMALL, (4,)), (PPO, PPO_SMALL, (4,)), (PPO, PPO_SMALL, (2, 3)), (A2C, A2C_SMALL, (4,))],
    ids=["dqn", "ppo", "ppo-multi-discrete", "a2c"],
)
def test_with_masks_no_invalid_action_is_ever_taken(algorithm: type, small: dict, nvec: tuple[int, ...]) -> None:
    counts = {}
    for masked in (True, False):
        count = InvalidActionCount()
        trainer(callbacks=[count]).fit(algorithm(**_masked_env(nvec, masked), **small))
        counts[masked] = (count.training, count.evaluation)
    assert counts[True] == (0, 0)
    assert counts[False][0] > 0  # the same run without masks does take them


@pytest.mark.parametrize(("algorithm", "small"), [(DQN, DQN_SMALL), (PPO, PPO_SMALL)], ids=["dqn", "ppo"])
def test_masks_from_the_envs_action_masks_method_keep_invalid_actions_out(algorithm: type, small: dict) -> None:
    count = InvalidActionCount()
    trainer(callbacks=[count]).fit(algorithm(MethodMaskedInvalidActionEnv, **small))
    assert (count.training, count.evaluation) == (0, 0)  # the same env without masks takes some (test above)


@pytest.mark.learning
def test_masked_ppo_learns_faster_than_unmasked():
    """1,024 env steps (4 rollouts of 4 envs x 64 steps), seed 0, 8 actions: deterministic eval over 20 episodes of
    10 steps. Masked: >= 8.5 (measured 8.81; the best policy averages about 8.9); unmasked, which must learn from its
    observation which actions are valid: < 7 (measured 4.99). About 5 s."""
    returns = {}
    for masked in (True, False):
        agent = PPO(
            **_masked_env((8,), masked), num_envs=4, n_steps=64, batch_size=64, n_epochs=4, hidden_sizes=(32,),
            learning_rate=3e-3, total_timesteps=1024, steps_per_epoch=512, eval_episodes=20, eval_envs=4, seed=0,
        )
        fit = trainer()
        fit.fit(agent)
        returns[masked] = float(fit.callback_metrics["val/return_mean"])
    assert returns[True] >= 8.5, returns
    assert returns[False] < 7.0, returns


# ---------------------------------------------------------------------------------------------- bad input
def test_masks_of_the_wrong_width_are_refused_naming_the_width() -> None:
    message = r"info\['action_mask'\] has 5 entries, but PPO needs one per action: 4 for Discrete\(4\)"
    with pytest.raises(ConfigurationError, match=message):
        trainer().fit(PPO(**_masked_env(), wrappers=[WideMask], **PPO_SMALL))


@pytest.mark.parametrize(
    ("algorithm", "small"), [(SAC, CONTINUOUS_SMALL), (PPO, PPO_SMALL)], ids=["sac", "ppo-box"]
)
def test_masks_an_algorithm_cannot_use_are_refused_when_fitting_starts(algorithm: type, small: dict) -> None:
    name = algorithm.__name__
    with pytest.raises(ConfigurationError, match=rf"valid-action masks .*which {name} cannot use.*DQN, PPO and A2C"):
        trainer().fit(algorithm(MaskedPendulum, **small))
