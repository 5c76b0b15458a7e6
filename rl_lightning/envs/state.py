"""A vector env's state as bytes: what resuming needs to continue its episodes exactly where they were."""

from __future__ import annotations

import pickle

from gymnasium.vector import VectorEnv

FACTORY_ATTRIBUTES = frozenset({"env_fns"})
"""Attributes that build the sub-envs rather than hold their state: often closures, which pickle cannot hold."""


class EnvStateError(RuntimeError):
    """The env's state cannot be saved (something in it cannot be pickled)."""


def vector_env_state(vector_env: VectorEnv) -> bytes:
    """The state of ``vector_env``: the pickle of its attributes, less the factories that built its sub-envs.

    For a ``SyncVectorEnv`` that is each sub-env with every wrapper (CartPole's physics, a ``TimeLimit``'s step
    count, each env's ``np_random``, an ALE env's emulator through :class:`~rl_lightning.envs.EmulatorState`), the
    vector env's autoreset flags, and its action space with the generator that ``action_space.sample()`` draws
    from; for a native vector env (CartPole's) the env object's own attributes. Bytes rather than objects, so that
    a checkpoint holding them still loads with ``torch.load(weights_only=True)``: nothing in them is unpickled
    until :func:`load_vector_env_state`.

    Raises:
        EnvStateError: something in the env cannot be pickled (an ``AsyncVectorEnv``'s subprocesses, a lambda in
            a wrapper, an open window); the message says what.
    """
    attributes = {name: value for name, value in vars(vector_env).items() if name not in FACTORY_ATTRIBUTES}
    try:
        return pickle.dumps(attributes, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as err:  # pickle fails with PicklingError, TypeError or AttributeError depending on the object
        raise EnvStateError(f"{type(vector_env).__name__} cannot be pickled ({type(err).__name__}: {err})") from err


def load_vector_env_state(vector_env: VectorEnv, state: bytes) -> None:
    """Put ``vector_env`` (built from the same configuration) in the state saved by :func:`vector_env_state`.

    This unpickles ``state``, which runs code named in it: load only states from checkpoints you trust.
    """
    vars(vector_env).update(pickle.loads(state))
