"""Recurrent actor-critics: a policy with memory (LSTM or GRU) for partially observed tasks.

The contract a recurrent actor-critic keeps (the default :class:`RecurrentActorCritic` and a user's own module):

- ``initial_state(batch_size, device)`` returns the state at an episode's start: a tuple of float tensors, each
  ``(batch_size, ...)`` (batch first), e.g. an LSTM's hidden and cell states.
- ``forward(observations, state, episode_starts)`` runs a batch of sequences, time first: ``observations`` is
  ``(T, B, *observation_shape)``, ``state`` the state before the first step (as ``initial_state`` makes it) and
  ``episode_starts`` (bool, ``(T, B)``) marks the steps whose observation is the first of an episode, where the
  module must reset its state to the initial one *before* that step. It returns the distribution parameters
  ``(T, B, outputs)``, the values ``(T, B)`` and the state after the last step.

Acting calls ``forward`` with ``T = 1`` for every env; learning calls it on chunks of the rollout from the
state stored at each chunk's start, so a module that keeps the contract gets the same outputs both ways.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import torch
from torch import Tensor, nn

from rl_lightning.errors import ConfigurationError
from rl_lightning.nets.policies import ACTOR_GAIN, CRITIC_GAIN, _encoder, _mlp_with_head
from rl_lightning.tree import Observations, first_leaf, tree_map

RecurrentState = tuple[Tensor, ...]
"""A recurrent policy's state: float tensors, batch first."""

CELLS: dict[str, type[nn.LSTM] | type[nn.GRU]] = {"lstm": nn.LSTM, "gru": nn.GRU}


def scan_rnn(
    rnn: nn.LSTM | nn.GRU, features: Tensor, state: RecurrentState, episode_starts: Tensor
) -> tuple[Tensor, RecurrentState]:
    """Run ``rnn`` over ``features`` ``(T, B, F)`` from ``state`` (batch first), zeroing the state of a sequence
    where its episode starts (a zero state is the start state of :class:`RecurrentActorCritic`). Returns the
    outputs ``(T, B, H)`` and the state after the last step.

    The steps between two resets of any sequence go through ``rnn`` in one call: as many calls as there are
    distinct times with a reset, found with one host sync for a sequence longer than a step (none for acting).
    """
    steps = features.shape[0]
    cuts = (episode_starts[1:].any(dim=1).nonzero().flatten() + 1).tolist() if steps > 1 else []
    hidden = tuple(part.transpose(0, 1).contiguous() for part in state)  # PyTorch's (layers, batch, hidden)
    outputs = []
    for start, end in zip([0, *cuts], [*cuts, steps], strict=True):
        keep = (~episode_starts[start]).to(features.dtype)[None, :, None]
        hidden = tuple(part * keep for part in hidden)
        output, hidden = rnn(features[start:end], hidden if isinstance(rnn, nn.LSTM) else hidden[0])
        hidden = hidden if isinstance(hidden, tuple) else (hidden,)
        outputs.append(output)
    return torch.cat(outputs), tuple(part.transpose(0, 1) for part in hidden)


class RecurrentActorCritic(nn.Module):
    """Encoder, one recurrent core (LSTM or GRU) shared by actor and critic, then an MLP head for each.

    The core is shared: one state per env to carry and store, and one pass over each sequence instead of
    two (CleanRL's ``ppo_atari_lstm`` shares it too; Stable-Baselines3-contrib gives the critic a core of its
    own by default). The value loss then shapes the memory as well, which on the tasks here helps rather
    than hurts: the value of a partially observed state also depends on what was seen before.

    Args:
        observation_space: the env's observation space (its encoder: flatten, one-hot, or the Nature CNN).
        outputs: the width of the distribution parameters (the action head's ``outputs``).
        cell: ``"lstm"`` or ``"gru"``.
        hidden_size: width of the recurrent state.
        num_layers: stacked recurrent layers.
        hidden_sizes: hidden widths of the tanh MLP of each head, after the core.
        ortho_init: orthogonal initialisation (the core's weights with gain 1 and zero biases, as CleanRL).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        outputs: int,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        hidden_sizes: Sequence[int] = (),
        ortho_init: bool = True,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ConfigurationError(f"recurrent={cell!r} must be 'lstm' or 'gru' (or a recurrent module of yours).")
        self.encoder = _encoder(observation_space, ortho_init)
        self.rnn = CELLS[cell](self.encoder.out_features, hidden_size, num_layers)
        if ortho_init:
            for name, parameter in self.rnn.named_parameters():
                if name.startswith("weight"):
                    nn.init.orthogonal_(parameter, 1.0)
                else:
                    nn.init.zeros_(parameter)
        self.actor = _mlp_with_head(hidden_size, outputs, hidden_sizes, ACTOR_GAIN, ortho_init)
        self.critic = _mlp_with_head(hidden_size, 1, hidden_sizes, CRITIC_GAIN, ortho_init)
        self.state_parts = 2 if cell == "lstm" else 1
        self.num_layers, self.hidden_size = num_layers, hidden_size

    def initial_state(self, batch_size: int, device: torch.device | str) -> RecurrentState:
        shape = (batch_size, self.num_layers, self.hidden_size)
        return tuple(torch.zeros(shape, device=device) for _ in range(self.state_parts))

    def forward(
        self, observations: Observations, state: RecurrentState, episode_starts: Tensor
    ) -> tuple[Tensor, Tensor, RecurrentState]:
        steps, batch = first_leaf(observations).shape[:2]
        features = self.encoder(tree_map(lambda part: part.flatten(0, 1), observations)).reshape(steps, batch, -1)
        memory, state = scan_rnn(self.rnn, features, state, episode_starts)
        return self.actor(memory), self.critic(memory).squeeze(-1), state


def check_recurrent_policy(policy: nn.Module, observations: Observations, outputs: int, meaning: str) -> None:
    """Refuse a recurrent actor-critic unless it keeps the contract (module docstring) on a batch of 2 envs."""
    name = type(policy).__name__
    if not callable(getattr(policy, "initial_state", None)):
        raise ConfigurationError(
            f"the recurrent policy {name} has no initial_state(batch_size, device): a recurrent module returns its "
            f"episode-start state there (see rl_lightning.nets.recurrent)."
        )
    sequence = tree_map(lambda part: part[None], observations)  # one step of 2 envs
    try:
        with torch.no_grad():
            state = policy.initial_state(2, first_leaf(observations).device)
            result = policy(sequence, state, torch.ones(1, 2, dtype=torch.bool))
    except Exception as err:
        shapes = tree_map(lambda part: tuple(part.shape), sequence)
        raise ConfigurationError(
            f"the recurrent policy {name} failed on observations of shape {shapes}, its "
            f"initial_state(2, device) and episode starts of shape (1, 2) ({type(err).__name__}: {err}). See "
            f"rl_lightning.nets.recurrent for the contract."
        ) from None
    expected = f"(actor outputs (1, 2, {outputs}) = {meaning}, values (1, 2), state)"
    if not (isinstance(result, tuple) and len(result) == 3):
        raise ConfigurationError(f"the recurrent policy {name} returned {type(result).__name__}; expected {expected}.")
    actor_outputs, values, next_state = result
    shapes_ok = (
        isinstance(actor_outputs, Tensor) and tuple(actor_outputs.shape) == (1, 2, outputs)
        and isinstance(values, Tensor) and tuple(values.shape) == (1, 2)
    )
    states_ok = all(
        isinstance(parts, tuple) and parts and all(map(_batch_first, parts)) for parts in (state, next_state)
    )
    if not shapes_ok:
        raise ConfigurationError(
            f"the recurrent policy {name} returned shapes {_shapes(actor_outputs)} and {_shapes(values)}; expected "
            f"{expected}."
        )
    if not states_ok:
        raise ConfigurationError(
            f"the recurrent policy {name}'s state must be a tuple of float tensors with the batch first (e.g. "
            f"(hidden, cell), each (batch, layers, hidden)), from initial_state() and forward() alike."
        )


def _batch_first(part: object) -> bool:
    """A float tensor of the example batch of 2 envs, batch first."""
    return isinstance(part, Tensor) and part.is_floating_point() and part.dim() >= 1 and part.shape[0] == 2


def _shapes(value: object) -> str:
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__
