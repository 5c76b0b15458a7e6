"""Gymnasium's classic control environments as batched torch envs (:class:`TorchVectorEnv`).

Each class follows the gymnasium 1.x implementation in ``gymnasium/envs/classic_control/`` term by term, in the
same order of operations, so that in float64 the two agree to rounding: dynamics, reward, termination, the time
limit of the registered id, the reset ranges (``options`` take gymnasium's keys) and the handling of actions
(clipping, and the unclipped action in MountainCarContinuous's reward). The random streams differ from numpy's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.envs.classic_control import utils
from gymnasium.vector import AutoresetMode

from rl_lightning.envs.torch_vector import TorchVectorEnv, numpy_dtype, resolve_float_dtype, stack_columns


class CartPole(TorchVectorEnv):
    """CartPole-v1: push a cart left (action 0) or right (1) to keep its pole upright; reward 1 per step.

    Terminates when the cart leaves ``[-2.4, 2.4]`` or the pole tilts beyond 12 degrees; truncated after 500 steps.
    The state, observed as is, is ``(x, x_dot, theta, theta_dot)``, reset uniformly in ``[-0.05, 0.05]``.

    Args:
        num_envs: number of environments.
        device: where the tensors live.
        dtype: ``torch.float32`` or ``torch.float64``.
        autoreset_mode: ``AutoresetMode.SAME_STEP`` or ``AutoresetMode.NEXT_STEP``.
        compile: compile the step with ``torch.compile`` (see :class:`TorchVectorEnv`).
        max_episode_steps: the time limit; 500 as CartPole-v1 (CartPole-v0 had 200).
        sutton_barto_reward: gymnasium's option: reward 0 per step and -1 at termination.
    """

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02  # seconds between state updates
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def __init__(
        self,
        num_envs: int = 1,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str = torch.float32,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        compile: bool = False,
        max_episode_steps: int | None = 500,
        sutton_barto_reward: bool = False,
    ) -> None:
        float_dtype = numpy_dtype(resolve_float_dtype(dtype))
        high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf], dtype=float_dtype)
        super().__init__(
            num_envs,
            single_observation_space=spaces.Box(-high, high, dtype=float_dtype),
            single_action_space=spaces.Discrete(2),
            max_episode_steps=max_episode_steps,
            device=device,
            dtype=dtype,
            autoreset_mode=autoreset_mode,
            compile=compile,
        )
        self.sutton_barto_reward = sutton_barto_reward
        # The push of action 0, a tensor also when compiled (an op of a number and an integer tensor gives float32).
        self.push_left_per_mass = torch.tensor(-self.force_mag / self.total_mass, dtype=self.dtype, device=self.device)
        self.numbers = self.constants(
            gravity=self.gravity,
            four_thirds_length=4.0 / 3.0 * self.length,
            x_threshold=self.x_threshold,
            theta_threshold=self.theta_threshold_radians,
        )

    def initial_state(self, options: dict[str, Any] | None) -> torch.Tensor:
        """Uniform in ``[low, high]`` (default ``[-0.05, 0.05]``) for all four state variables."""
        low, high = utils.maybe_parse_reset_bounds(options, -0.05, 0.05)
        return self.uniform(low, high, (self.num_envs, 4))

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Euler integration of the cart-pole equations of Barto, Sutton and Anderson (1983), as gymnasium's.

        Written in few tensor ops (on the CPU an op on a thousand envs costs little more than its launch): gymnasium's
        constant factors are folded together (its ``temp`` is ``force / total_mass + polemass_length / total_mass *
        theta_dot^2 sin``, its denominator ``length * 4/3 - length * masspole / total_mass * cos^2``), products and
        sums are fused (``addcmul``), the four Euler updates are one over the stacked derivatives and ``x < -2.4 or
        x > 2.4`` is ``|x| > 2.4``. So the floats differ from gymnasium's in the last bits (rounding order only).
        """
        n = self.numbers
        pole_share = self.polemass_length / self.total_mass
        push_per_mass = self.force_mag / self.total_mass
        x, x_dot, theta, theta_dot = state.unbind(-1)
        costheta = torch.cos(theta)
        sintheta = torch.sin(theta)
        # -F + 2F * action rather than torch.where(action, F, -F): where's CPU kernel branches on each element, which
        # random actions made cost 4-5 ns an element here. The same numbers: 2F - F is exact.
        force_per_mass = torch.add(self.push_left_per_mass, actions.to(self.dtype), alpha=2 * push_per_mass)
        temp = torch.addcmul(force_per_mass, theta_dot.square(), sintheta, value=pole_share)
        numerator = torch.addcmul(n.gravity * sintheta, costheta, temp, value=-1.0)
        denominator = torch.rsub(
            costheta.square(), n.four_thirds_length, alpha=self.length * self.masspole / self.total_mass
        )
        thetaacc = numerator.div_(denominator)
        xacc = torch.addcmul(temp, thetaacc, costheta, value=-pole_share)
        next_state = torch.add(state, stack_columns(x_dot, xacc, theta_dot, thetaacc), alpha=self.tau)
        x, _, theta, _ = next_state.unbind(-1)
        terminated = (x.abs() > n.x_threshold) | (theta.abs() > n.theta_threshold)
        rewards = -terminated.to(self.dtype) if self.sutton_barto_reward else torch.ones_like(x)
        return next_state, rewards, terminated

    observation_is_state = True

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """The state itself (a copy)."""
        return state.clone()


def angle_normalize(angle: torch.Tensor) -> torch.Tensor:
    """``angle`` in ``[-pi, pi)``, as gymnasium's Pendulum computes it (floored modulo)."""
    return ((angle + math.pi) % (2 * math.pi)) - math.pi


class Pendulum(TorchVectorEnv):
    """Pendulum-v1: swing a pendulum up and hold it with a torque in ``[-2, 2]``; never terminates.

    The state is ``(theta, theta_dot)``, observed as ``(cos theta, sin theta, theta_dot)``, reset uniformly in
    ``[-pi, pi] x [-1, 1]``. The reward is ``-(theta^2 + 0.1 theta_dot^2 + 0.001 torque^2)`` with theta normalised
    to ``[-pi, pi)`` and the torque clipped; truncated after 200 steps.

    Args:
        num_envs: number of environments.
        device: where the tensors live.
        dtype: ``torch.float32`` or ``torch.float64``.
        autoreset_mode: ``AutoresetMode.SAME_STEP`` or ``AutoresetMode.NEXT_STEP``.
        compile: compile the step with ``torch.compile`` (see :class:`TorchVectorEnv`).
        max_episode_steps: the time limit; 200 as Pendulum-v1.
        g: gravity, gymnasium's option (10.0).
    """

    max_speed = 8.0
    max_torque = 2.0
    dt = 0.05
    m = 1.0
    l = 1.0  # noqa: E741 (gymnasium's name for the pendulum's length)

    def __init__(
        self,
        num_envs: int = 1,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str = torch.float32,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        compile: bool = False,
        max_episode_steps: int | None = 200,
        g: float = 10.0,
    ) -> None:
        float_dtype = numpy_dtype(resolve_float_dtype(dtype))
        high = np.array([1.0, 1.0, self.max_speed], dtype=float_dtype)
        super().__init__(
            num_envs,
            single_observation_space=spaces.Box(-high, high, dtype=float_dtype),
            single_action_space=spaces.Box(-self.max_torque, self.max_torque, (1,), dtype=float_dtype),
            max_episode_steps=max_episode_steps,
            device=device,
            dtype=dtype,
            autoreset_mode=autoreset_mode,
            compile=compile,
        )
        self.g = g
        self.default_reset_high = torch.tensor([math.pi, 1.0], dtype=self.dtype, device=self.device)

    def initial_state(self, options: dict[str, Any] | None) -> torch.Tensor:
        """Uniform in ``[-x_init, x_init] x [-y_init, y_init]`` (default ``x_init=pi``, ``y_init=1``)."""
        if options is None:
            high = self.default_reset_high
        else:
            x_init = utils.verify_number_and_cast(options.get("x_init", math.pi))
            y_init = utils.verify_number_and_cast(options.get("y_init", 1.0))
            high = torch.tensor([x_init, y_init], dtype=self.dtype, device=self.device)
        return self.uniform(-high, high, (self.num_envs, 2))

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Semi-implicit Euler step of the pendulum with the clipped torque; the speed is clipped to 8."""
        th, thdot = state.unbind(-1)
        g, m, l, dt = self.g, self.m, self.l, self.dt  # noqa: E741
        u = actions[:, 0].to(self.dtype).clamp(-self.max_torque, self.max_torque)
        costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
        newthdot = thdot + (3 * g / (2 * l) * torch.sin(th) + 3.0 / (m * l**2) * u) * dt
        newthdot = newthdot.clamp(-self.max_speed, self.max_speed)
        newth = th + newthdot * dt
        terminated = torch.zeros(state.shape[0], dtype=torch.bool, device=state.device)
        return stack_columns(newth, newthdot), -costs, terminated

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """``(cos theta, sin theta, theta_dot)``."""
        theta, thetadot = state.unbind(-1)
        return stack_columns(torch.cos(theta), torch.sin(theta), thetadot)


def wrap(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``x`` shifted by whole periods ``high - low`` into ``[low, high]``, as gymnasium's Acrobot ``wrap``.

    Gymnasium subtracts one period at a time in a loop; subtracting ``ceil`` periods at once gives the same
    result (bit for bit when one period is enough, which is all one Acrobot step can need).
    """
    period = high - low
    x = torch.where(x > high, x - period * torch.ceil((x - high) / period), x)
    return torch.where(x < low, x + period * torch.ceil((low - x) / period), x)


class Acrobot(TorchVectorEnv):
    """Acrobot-v1: swing the tip of a two-link chain above a line by torquing the middle joint; reward -1 per step.

    Actions 0, 1, 2 apply a torque of -1, 0, +1. The state ``(theta1, theta2, dtheta1, dtheta2)`` is reset uniformly
    in ``[-0.1, 0.1]`` and observed as ``(cos theta1, sin theta1, cos theta2, sin theta2, dtheta1, dtheta2)``. One
    step integrates gymnasium's "book" dynamics (its default, without torque noise) over 0.2 s with one RK4 step,
    wraps the angles into ``[-pi, pi]`` and clips the speeds to ``4 pi`` and ``9 pi``. Terminates (reward 0) when
    ``-cos(theta1) - cos(theta1 + theta2) > 1``; truncated after 500 steps.

    Args:
        num_envs: number of environments.
        device: where the tensors live.
        dtype: ``torch.float32`` or ``torch.float64``.
        autoreset_mode: ``AutoresetMode.SAME_STEP`` or ``AutoresetMode.NEXT_STEP``.
        compile: compile the step with ``torch.compile`` (see :class:`TorchVectorEnv`).
        max_episode_steps: the time limit; 500 as Acrobot-v1.
    """

    dt = 0.2
    LINK_LENGTH_1 = 1.0
    LINK_MASS_1 = 1.0
    LINK_MASS_2 = 1.0
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * math.pi
    MAX_VEL_2 = 9 * math.pi

    def __init__(
        self,
        num_envs: int = 1,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str = torch.float32,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        compile: bool = False,
        max_episode_steps: int | None = 500,
    ) -> None:
        float_dtype = numpy_dtype(resolve_float_dtype(dtype))
        high = np.array([1.0, 1.0, 1.0, 1.0, self.MAX_VEL_1, self.MAX_VEL_2], dtype=float_dtype)
        super().__init__(
            num_envs,
            single_observation_space=spaces.Box(-high, high, dtype=float_dtype),
            single_action_space=spaces.Discrete(3),
            max_episode_steps=max_episode_steps,
            device=device,
            dtype=dtype,
            autoreset_mode=autoreset_mode,
            compile=compile,
        )

    def initial_state(self, options: dict[str, Any] | None) -> torch.Tensor:
        """Uniform in ``[low, high]`` (default ``[-0.1, 0.1]``) for all four state variables."""
        low, high = utils.maybe_parse_reset_bounds(options, -0.1, 0.1)
        return self.uniform(low, high, (self.num_envs, 4))

    def derivatives(self, state: torch.Tensor, torque: torch.Tensor) -> torch.Tensor:
        """``d state / dt`` under a constant ``torque`` on the middle joint (gymnasium's ``_dsdt``, "book")."""
        m1 = self.LINK_MASS_1
        m2 = self.LINK_MASS_2
        l1 = self.LINK_LENGTH_1
        lc1 = self.LINK_COM_POS_1
        lc2 = self.LINK_COM_POS_2
        I1 = self.LINK_MOI
        I2 = self.LINK_MOI
        g = 9.8
        a = torque
        theta1, theta2, dtheta1, dtheta2 = state.unbind(-1)
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * torch.cos(theta2)) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * torch.cos(theta2)) + I2
        phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - math.pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * dtheta2**2 * torch.sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * torch.sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - math.pi / 2)
            + phi2
        )
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * torch.sin(theta2) - phi2) / (
            m2 * lc2**2 + I2 - d2**2 / d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return stack_columns(dtheta1, dtheta2, ddtheta1, ddtheta2)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One RK4 step of ``dt`` (gymnasium's ``rk4`` over ``[0, dt]``), then wrap the angles and clip the speeds."""
        torque = (actions - 1).to(self.dtype)
        dt = self.dt
        dt2 = dt / 2.0
        k1 = self.derivatives(state, torque)
        k2 = self.derivatives(state + dt2 * k1, torque)
        k3 = self.derivatives(state + dt2 * k2, torque)
        k4 = self.derivatives(state + dt * k3, torque)
        integrated = state + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        theta1, theta2, dtheta1, dtheta2 = integrated.unbind(-1)
        theta1 = wrap(theta1, -math.pi, math.pi)
        theta2 = wrap(theta2, -math.pi, math.pi)
        dtheta1 = dtheta1.clamp(-self.MAX_VEL_1, self.MAX_VEL_1)
        dtheta2 = dtheta2.clamp(-self.MAX_VEL_2, self.MAX_VEL_2)
        terminated = -torch.cos(theta1) - torch.cos(theta2 + theta1) > 1.0
        rewards = terminated.to(self.dtype) - 1.0
        return stack_columns(theta1, theta2, dtheta1, dtheta2), rewards, terminated

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """``(cos theta1, sin theta1, cos theta2, sin theta2, dtheta1, dtheta2)``."""
        theta1, theta2, dtheta1, dtheta2 = state.unbind(-1)
        return stack_columns(
            torch.cos(theta1), torch.sin(theta1), torch.cos(theta2), torch.sin(theta2), dtheta1, dtheta2
        )


class MountainCar(TorchVectorEnv):
    """MountainCar-v0: drive an underpowered car up the right hill, accelerating left (0), not (1) or right (2).

    The state ``(position, velocity)`` is observed as is, reset to a position uniform in ``[-0.6, -0.4]`` at rest.
    Reward -1 per step; terminates at ``position >= 0.5`` (and ``velocity >= goal_velocity``); truncated after 200
    steps. The car stops dead at the left wall.

    Args:
        num_envs: number of environments.
        device: where the tensors live.
        dtype: ``torch.float32`` or ``torch.float64``.
        autoreset_mode: ``AutoresetMode.SAME_STEP`` or ``AutoresetMode.NEXT_STEP``.
        compile: compile the step with ``torch.compile`` (see :class:`TorchVectorEnv`).
        max_episode_steps: the time limit; None: the env's own (200 for MountainCar-v0).
        goal_velocity: gymnasium's option: the least velocity at the goal (0).
    """

    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.5
    force = 0.001
    gravity = 0.0025
    default_max_episode_steps = 200

    def __init__(
        self,
        num_envs: int = 1,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str = torch.float32,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        compile: bool = False,
        max_episode_steps: int | None = None,
        goal_velocity: float = 0.0,
    ) -> None:
        float_dtype = numpy_dtype(resolve_float_dtype(dtype))
        low = np.array([self.min_position, -self.max_speed], dtype=float_dtype)
        high = np.array([self.max_position, self.max_speed], dtype=float_dtype)
        super().__init__(
            num_envs,
            single_observation_space=spaces.Box(low, high, dtype=float_dtype),
            single_action_space=self.make_action_space(float_dtype),
            max_episode_steps=self.default_max_episode_steps if max_episode_steps is None else max_episode_steps,
            device=device,
            dtype=dtype,
            autoreset_mode=autoreset_mode,
            compile=compile,
        )
        self.goal_velocity = goal_velocity

    def make_action_space(self, float_dtype: np.dtype) -> spaces.Space:
        """Push left, don't push, push right."""
        return spaces.Discrete(3)

    def initial_state(self, options: dict[str, Any] | None) -> torch.Tensor:
        """Position uniform in ``[low, high]`` (default ``[-0.6, -0.4]``), velocity 0."""
        low, high = utils.maybe_parse_reset_bounds(options, -0.6, -0.4)
        position = self.uniform(low, high, (self.num_envs,))
        return stack_columns(position, torch.zeros_like(position))

    def move(self, position: torch.Tensor, velocity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clip the velocity, move, stop at the left wall: the new position and velocity, and whether at the goal."""
        velocity = velocity.clamp(-self.max_speed, self.max_speed)
        position = (position + velocity).clamp(self.min_position, self.max_position)
        velocity = torch.where((position == self.min_position) & (velocity < 0), 0.0, velocity)
        return position, velocity, (position >= self.goal_position) & (velocity >= self.goal_velocity)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Accelerate by ``(action - 1) * 0.001 - 0.0025 cos(3 position)``, then :meth:`move`."""
        position, velocity = state.unbind(-1)
        velocity = velocity + ((actions - 1).to(self.dtype) * self.force + torch.cos(3 * position) * (-self.gravity))
        position, velocity, terminated = self.move(position, velocity)
        return stack_columns(position, velocity), torch.full_like(position, -1.0), terminated

    observation_is_state = True

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """The state itself (a copy)."""
        return state.clone()


class MountainCarContinuous(MountainCar):
    """MountainCarContinuous-v0: MountainCar with a force in ``[-1, 1]`` and a goal at ``position >= 0.45``.

    The reward is 100 at the goal minus ``0.1 action^2`` at every step, with the action as given (unclipped; the
    force is clipped); truncated after 999 steps. Arguments as for :class:`MountainCar` (time limit 999).
    """

    min_action = -1.0
    max_action = 1.0
    goal_position = 0.45
    power = 0.0015
    default_max_episode_steps = 999

    def make_action_space(self, float_dtype: np.dtype) -> spaces.Space:
        """One force in ``[-1, 1]``."""
        return spaces.Box(self.min_action, self.max_action, (1,), dtype=float_dtype)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Accelerate by ``0.0015 force - 0.0025 cos(3 position)``, then :meth:`MountainCar.move`."""
        position, velocity = state.unbind(-1)
        action = actions[:, 0].to(self.dtype)
        force = action.clamp(self.min_action, self.max_action)
        velocity = velocity + (force * self.power - 0.0025 * torch.cos(3 * position))
        position, velocity, terminated = self.move(position, velocity)
        rewards = terminated.to(self.dtype) * 100.0 - action**2 * 0.1
        return stack_columns(position, velocity), rewards, terminated
