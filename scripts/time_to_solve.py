"""Time to solve: training wall time until deterministic evaluation first reaches a return, ours against two peers.

Three sides per task, run in this one process, seed by seed, in alternating order (ours, SB3, plain; then plain,
SB3, ours; ...) so that the machine's load affects them alike:

- **ours**: rl-lightning with an ``experiments/`` config (by default the torch-env one) through a Lightning Trainer;
- **sb3**: Stable-Baselines3 with RL-Zoo's tuned hyperparameters (PPO on CartPole-v1, SAC on Pendulum-v1);
- **plain**: a CleanRL-style loop of plain PyTorch on gymnasium's vector env with CleanRL's default hyperparameters
  (``ppo.py`` on CartPole-v1; ``sac_continuous_action.py`` on Pendulum-v1).

Every side evaluates every ``--eval-every`` env steps (ours: at each epoch's end, ``steps_per_epoch`` is set to it,
rounded to whole rollouts), with ``--eval-episodes`` deterministic episodes on a separate env; the run stops when
their mean first reaches the task's threshold (CartPole 475, Pendulum -200). Timed: the training from its first env
step to that evaluation, with the time spent in evaluations subtracted and the process start-up, imports and the
building of the envs and networks left out. One torch thread. A run that does not reach the threshold within
``--max-seconds`` of training is reported as not solved (``>`` the time it had).

    python scripts/time_to_solve.py --task cartpole                       # 3 seeds, the three sides
    python scripts/time_to_solve.py --task pendulum --sides ours sb3 --seeds 0
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import lightning as L
import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from torch import nn

REPO = Path(__file__).resolve().parents[1]
TASKS: dict[str, dict[str, Any]] = {
    "cartpole": {"env": "CartPole-v1", "threshold": 475.0, "config": "experiments/ppo_cartpole_torch.yaml"},
    "pendulum": {"env": "Pendulum-v1", "threshold": -200.0, "config": "experiments/sac_pendulum_torch.yaml"},
}


class SolveClock:
    """Training time, evaluations left out: ``start()`` at the first env step, ``pause()``/``resume()`` around each
    evaluation, ``elapsed()`` for the training time so far."""

    def __init__(self) -> None:
        self.started = self.paused_at = 0.0
        self.evaluating = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()

    def pause(self) -> float:
        self.paused_at = time.perf_counter()
        return self.paused_at - self.started - self.evaluating

    def resume(self) -> None:
        self.evaluating += time.perf_counter() - self.paused_at


class Result(dict):
    """``seconds`` (training time until solved, or the time it had), ``solved``, ``env_steps``."""


# ---------------------------------------------------------------------------------------------------- ours
class StopWhenSolved(Callback):
    """Stops the Trainer at the first evaluation whose mean return reaches ``threshold``; times the training."""

    def __init__(self, threshold: float, max_seconds: float) -> None:
        self.threshold, self.max_seconds = threshold, max_seconds
        self.clock, self.result = SolveClock(), Result(seconds=0.0, solved=False, env_steps=0)

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.clock.start()

    def on_validation_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.result["seconds"] = self.clock.pause()

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.clock.resume()
        self.result["env_steps"] = pl_module.env_steps
        if trainer.callback_metrics["val/return_mean"].item() >= self.threshold:
            self.result["solved"] = True
            trainer.should_stop = True
        elif self.result["seconds"] >= self.max_seconds:
            trainer.should_stop = True


def run_ours(task: dict[str, Any], seed: int, args: argparse.Namespace) -> Result:
    config = yaml.safe_load((REPO / (args.config or task["config"])).read_text())["model"]
    module_name, _, class_name = config["class_path"].rpartition(".")
    init_args = {**config["init_args"], "seed": seed, "eval_episodes": args.eval_episodes}
    algorithm_class = getattr(importlib.import_module(module_name), class_name)
    probe = algorithm_class(**init_args)  # to read what it plays between updates
    # Whole epochs of what the algorithm plays between updates, about --eval-every env steps each.
    on_policy = hasattr(probe, "n_steps")
    per_round = probe.n_steps * probe.num_envs if on_policy else max(probe.train_freq, probe.num_envs)
    init_args["steps_per_epoch"] = max(1, round(args.eval_every / per_round)) * per_round
    init_args["total_timesteps"] = 10**9
    algorithm = algorithm_class(**init_args)
    stopper = StopWhenSolved(task["threshold"], args.max_seconds)
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[stopper],
    )
    trainer.fit(algorithm)
    return stopper.result


# ---------------------------------------------------------------------------------------------------- SB3
def run_sb3(task: dict[str, Any], seed: int, args: argparse.Namespace) -> Result:
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    def linear(initial: float) -> Callable[[float], float]:
        return lambda progress_remaining: progress_remaining * initial

    if task["env"] == "CartPole-v1":
        # RL-Zoo hyperparams/ppo.yml, CartPole-v1.
        env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
        model = PPO(
            "MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
            learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu",
        )
    else:
        # RL-Zoo hyperparams/sac.yml, Pendulum-v1.
        env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed)
        model = SAC("MlpPolicy", env, learning_rate=1e-3, seed=seed, device="cpu")
    eval_env = make_vec_env(task["env"], n_envs=1, seed=seed + 1000)
    clock, result = SolveClock(), Result(seconds=0.0, solved=False, env_steps=0)

    class Evaluate(BaseCallback):
        def _on_training_start(self) -> None:
            self.next_eval = args.eval_every
            clock.start()

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next_eval:
                return True
            self.next_eval += args.eval_every
            result["seconds"] = clock.pause()
            mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
            clock.resume()
            result["env_steps"] = self.num_timesteps
            result["solved"] = mean >= task["threshold"]
            return not result["solved"] and result["seconds"] < args.max_seconds

    model.learn(total_timesteps=10**9, callback=Evaluate())
    return result


# ---------------------------------------------------------------------------------------------------- plain
def mlp(sizes: list[int], std: float = np.sqrt(2)) -> nn.Sequential:
    """CleanRL's layers: orthogonal weights, zero biases, tanh between them."""
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layer = nn.Linear(fan_in, fan_out)
        last = index == len(sizes) - 2
        nn.init.orthogonal_(layer.weight, std if last else np.sqrt(2))
        nn.init.zeros_(layer.bias)
        layers += [layer] if last else [layer, nn.Tanh()]
    return nn.Sequential(*layers)


def plain_evaluate(act: Callable[[torch.Tensor], np.ndarray], env_id: str, episodes: int, seed: int) -> float:
    """Mean return of ``episodes`` deterministic episodes on one env."""
    env = gym.make(env_id)
    returns = []
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            with torch.no_grad():
                action = act(torch.as_tensor(observation, dtype=torch.float32)[None])[0]
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def run_plain_ppo(task: dict[str, Any], seed: int, args: argparse.Namespace) -> Result:
    """CleanRL's ``ppo.py`` with its defaults: 4 envs, 128 steps, 4 minibatches, 4 epochs, lr 2.5e-4 annealed over
    500k steps, gamma 0.99, lambda 0.95, clip 0.2, entropy 0.01, value 0.5, grad norm 0.5, value clipping."""
    num_envs, num_steps, total = 4, 128, 500_000
    torch.manual_seed(seed)
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(task["env"]) for _ in range(num_envs)])
    obs_dim, n_actions = envs.single_observation_space.shape[0], envs.single_action_space.n
    critic, actor = mlp([obs_dim, 64, 64, 1], 1.0), mlp([obs_dim, 64, 64, n_actions], 0.01)
    parameters = [*critic.parameters(), *actor.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=2.5e-4, eps=1e-5)
    batch = num_envs * num_steps
    iterations = total // batch
    clock, result = SolveClock(), Result(seconds=0.0, solved=False, env_steps=0)
    obs_buf = torch.zeros(num_steps, num_envs, obs_dim)
    actions_buf, logp_buf, rewards_buf, dones_buf, values_buf = (torch.zeros(num_steps, num_envs) for _ in range(5))
    observation, _ = envs.reset(seed=seed)
    next_obs, next_done = torch.as_tensor(observation, dtype=torch.float32), torch.zeros(num_envs)
    env_steps, next_eval = 0, args.eval_every
    clock.start()
    for iteration in range(iterations):
        optimizer.param_groups[0]["lr"] = (1.0 - iteration / iterations) * 2.5e-4
        for step in range(num_steps):
            obs_buf[step], dones_buf[step] = next_obs, next_done
            with torch.no_grad():
                distribution = torch.distributions.Categorical(logits=actor(next_obs))
                action = distribution.sample()
                logp_buf[step], values_buf[step] = distribution.log_prob(action), critic(next_obs).flatten()
            actions_buf[step] = action
            observation, reward, terminated, truncated, _ = envs.step(action.numpy())
            rewards_buf[step] = torch.as_tensor(reward, dtype=torch.float32)
            next_obs = torch.as_tensor(observation, dtype=torch.float32)
            next_done = torch.as_tensor(np.logical_or(terminated, truncated), dtype=torch.float32)
        env_steps += batch
        with torch.no_grad():
            next_value = critic(next_obs).flatten()
            advantages, last = torch.zeros_like(rewards_buf), 0.0
            for t in reversed(range(num_steps)):
                not_done = 1.0 - (next_done if t == num_steps - 1 else dones_buf[t + 1])
                following = next_value if t == num_steps - 1 else values_buf[t + 1]
                delta = rewards_buf[t] + 0.99 * following * not_done - values_buf[t]
                advantages[t] = last = delta + 0.99 * 0.95 * not_done * last
            returns = advantages + values_buf
        b_obs, b_act, b_logp = obs_buf.reshape(batch, -1), actions_buf.reshape(-1), logp_buf.reshape(-1)
        b_adv, b_ret, b_val = advantages.reshape(-1), returns.reshape(-1), values_buf.reshape(-1)
        for _ in range(4):
            for index in torch.randperm(batch).split(batch // 4):
                distribution = torch.distributions.Categorical(logits=actor(b_obs[index]))
                logp = distribution.log_prob(b_act[index].long())
                ratio = (logp - b_logp[index]).exp()
                adv = (b_adv[index] - b_adv[index].mean()) / (b_adv[index].std() + 1e-8)
                policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean()
                value = critic(b_obs[index]).flatten()
                clipped = b_val[index] + (value - b_val[index]).clamp(-0.2, 0.2)
                value_loss = 0.5 * torch.max((value - b_ret[index]) ** 2, (clipped - b_ret[index]) ** 2).mean()
                loss = policy_loss - 0.01 * distribution.entropy().mean() + 0.5 * value_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(parameters, 0.5)
                optimizer.step()
        if env_steps >= next_eval:
            next_eval += args.eval_every
            result["seconds"] = clock.pause()
            mean = plain_evaluate(lambda o: actor(o).argmax(1).numpy(), task["env"], args.eval_episodes, seed + 1000)
            clock.resume()
            result.update(env_steps=env_steps, solved=mean >= task["threshold"])
            if result["solved"] or result["seconds"] >= args.max_seconds:
                break
    envs.close()
    return result


def run_plain_sac(task: dict[str, Any], seed: int, args: argparse.Namespace) -> Result:
    """CleanRL's ``sac_continuous_action.py`` with its defaults: buffer 1e6, batch 256, learning_starts 5000, policy lr
    3e-4, q lr 1e-3, tau 0.005, gamma 0.99, policy updated every 2nd step (twice), automatic entropy tuning."""
    torch.manual_seed(seed)
    env = gym.make(task["env"])
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    scale = torch.as_tensor((env.action_space.high - env.action_space.low) / 2.0, dtype=torch.float32)
    bias = torch.as_tensor((env.action_space.high + env.action_space.low) / 2.0, dtype=torch.float32)

    def q_net() -> nn.Sequential:
        return nn.Sequential(nn.Linear(obs_dim + act_dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                             nn.Linear(256, 1))

    trunk = nn.Sequential(nn.Linear(obs_dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
    mean_head, log_std_head = nn.Linear(256, act_dim), nn.Linear(256, act_dim)
    actor_params = [*trunk.parameters(), *mean_head.parameters(), *log_std_head.parameters()]
    q1, q2 = q_net(), q_net()
    q1_target, q2_target = q_net(), q_net()
    q1_target.load_state_dict(q1.state_dict())
    q2_target.load_state_dict(q2.state_dict())
    q_optimizer = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=1e-3)
    actor_optimizer = torch.optim.Adam(actor_params, lr=3e-4)
    log_alpha = torch.zeros(1, requires_grad=True)
    alpha_optimizer = torch.optim.Adam([log_alpha], lr=1e-3)
    target_entropy = -float(act_dim)

    def policy(observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = trunk(observations)
        mean, log_std = mean_head(hidden), torch.tanh(log_std_head(hidden))
        log_std = -5 + 0.5 * (2 - (-5)) * (log_std + 1)
        normal = torch.distributions.Normal(mean, log_std.exp())
        raw = normal.rsample()
        squashed = torch.tanh(raw)
        log_prob = (normal.log_prob(raw) - torch.log(scale * (1 - squashed.pow(2)) + 1e-6)).sum(1, keepdim=True)
        return squashed * scale + bias, log_prob, torch.tanh(mean) * scale + bias

    size = 10**6
    obs_buf, next_buf = torch.zeros(size, obs_dim), torch.zeros(size, obs_dim)
    act_buf, rew_buf, term_buf = torch.zeros(size, act_dim), torch.zeros(size, 1), torch.zeros(size, 1)
    clock, result = SolveClock(), Result(seconds=0.0, solved=False, env_steps=0)
    observation, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    next_eval = args.eval_every
    clock.start()
    for step in range(10**7):
        if step < 5000:
            action = env.action_space.sample()
        else:
            with torch.no_grad():
                action = policy(torch.as_tensor(observation, dtype=torch.float32)[None])[0][0].numpy()
        next_observation, reward, terminated, truncated, _ = env.step(action)
        obs_buf[step], act_buf[step] = torch.as_tensor(observation), torch.as_tensor(action)
        next_buf[step], rew_buf[step], term_buf[step] = torch.as_tensor(next_observation), float(reward), terminated
        observation = env.reset()[0] if terminated or truncated else next_observation
        if step >= 5000:
            index = torch.randint(step + 1, (256,))
            obs, act, nxt = obs_buf[index], act_buf[index], next_buf[index]
            alpha = log_alpha.exp().item()
            with torch.no_grad():
                next_action, next_logp, _ = policy(nxt)
                next_pair = torch.cat([nxt, next_action], 1)
                next_q = torch.min(q1_target(next_pair), q2_target(next_pair))
                target = rew_buf[index] + 0.99 * (1 - term_buf[index]) * (next_q - alpha * next_logp)
            pair = torch.cat([obs, act], 1)
            q_loss = ((q1(pair) - target) ** 2).mean() + ((q2(pair) - target) ** 2).mean()
            q_optimizer.zero_grad()
            q_loss.backward()
            q_optimizer.step()
            if step % 2 == 0:
                for _ in range(2):
                    new_action, logp, _ = policy(obs)
                    pair_new = torch.cat([obs, new_action], 1)
                    actor_loss = (log_alpha.exp().item() * logp - torch.min(q1(pair_new), q2(pair_new))).mean()
                    actor_optimizer.zero_grad()
                    actor_loss.backward()
                    actor_optimizer.step()
                    with torch.no_grad():
                        _, logp, _ = policy(obs)
                    alpha_loss = (-log_alpha.exp() * (logp + target_entropy)).mean()
                    alpha_optimizer.zero_grad()
                    alpha_loss.backward()
                    alpha_optimizer.step()
            with torch.no_grad():
                for net, target_net in ((q1, q1_target), (q2, q2_target)):
                    for param, target_param in zip(net.parameters(), target_net.parameters()):
                        target_param.lerp_(param, 0.005)
        if step + 1 >= next_eval:
            next_eval += args.eval_every
            result["seconds"] = clock.pause()
            mean = plain_evaluate(lambda o: policy(o)[2].numpy(), task["env"], args.eval_episodes, seed + 1000)
            clock.resume()
            result.update(env_steps=step + 1, solved=mean >= task["threshold"])
            if result["solved"] or result["seconds"] >= args.max_seconds:
                break
    env.close()
    return result


def run_plain(task: dict[str, Any], seed: int, args: argparse.Namespace) -> Result:
    return (run_plain_ppo if task["env"] == "CartPole-v1" else run_plain_sac)(task, seed, args)


SIDES = {"ours": run_ours, "sb3": run_sb3, "plain": run_plain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=list(TASKS), default="cartpole")
    parser.add_argument("--sides", nargs="+", choices=list(SIDES), default=list(SIDES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--config", help="our config, relative to the repository (default: the task's torch config)")
    parser.add_argument("--eval-every", type=int, default=4096, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="training time after which a run gives up")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = TASKS[args.task]
    print(f"load average before: {os.getloadavg()}  (cores: {os.cpu_count()})", flush=True)
    results: dict[str, list[Result]] = {side: [] for side in args.sides}
    for round_index, seed in enumerate(args.seeds):
        order = args.sides if round_index % 2 == 0 else args.sides[::-1]
        for side in order:
            result = SIDES[side](task, seed, args)
            results[side].append(result)
            status = "solved" if result["solved"] else "NOT solved"
            print(f"{side:>5} seed {seed}: {status} after {result['seconds']:.1f} s of training, "
                  f"{result['env_steps']} env steps; load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"load average after: {os.getloadavg()}")
    print(f"\n{task['env']}, threshold {task['threshold']}, seeds {args.seeds}")
    print("| side | seconds per seed | median s | env steps (median) |")
    print("| --- | --- | --- | --- |")
    for side, runs in results.items():
        seconds = ", ".join(f"{r['seconds']:.1f}" if r["solved"] else f">{r['seconds']:.1f}" for r in runs)
        median = statistics.median(r["seconds"] for r in runs)
        steps = statistics.median(r["env_steps"] for r in runs)
        print(f"| {side} | {seconds} | {median:.1f} | {steps:.0f} |")


if __name__ == "__main__":
    main()
