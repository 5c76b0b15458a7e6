"""Networks: MLPs, encoders for each observation space, Q/distributional/noisy heads, and checks of user networks."""

from rl_lightning.nets.checks import NetworkSpec, build_network, check_output_shape, example_observations
from rl_lightning.nets.continuous import (
    ActionScaling,
    ContinuousQNetworks,
    DeterministicActor,
    SquashedGaussianActor,
    action_dim,
    build_critic,
    sample_squashed_gaussian,
)
from rl_lightning.nets.distributional import (
    categorical_projection,
    categorical_q_values,
    categorical_support,
    quantile_huber_loss,
    quantile_midpoints,
    quantile_q_values,
)
from rl_lightning.nets.encoders import (
    FlattenEncoder,
    NatureCNN,
    OneHotEncoder,
    SmallImageCNN,
    is_image_space,
    make_encoder,
)
from rl_lightning.nets.masking import mask_invalid, random_actions, random_valid_actions
from rl_lightning.nets.mlp import mlp
from rl_lightning.nets.noisy import NoisyLinear, noise_disabled, reset_noise
from rl_lightning.nets.normalization import RunningMeanStd
from rl_lightning.nets.policies import (
    ActorCritic,
    Categorical,
    CategoricalHead,
    DiagGaussian,
    DiagGaussianHead,
    MultiCategorical,
    MultiCategoricalHead,
    default_actor,
    default_critic,
    make_action_head,
    orthogonal_init,
)
from rl_lightning.nets.polyak import polyak_update, target_network
from rl_lightning.nets.q import CategoricalQNetwork, QNetwork, QuantileQNetwork, default_q_network
from rl_lightning.nets.q_heads import CategoricalQHead, QuantileQHead, ScalarQHead, q_head
from rl_lightning.nets.recurrent import RecurrentActorCritic, RecurrentState, check_recurrent_policy

__all__ = [
    "ActionScaling",
    "ActorCritic",
    "Categorical",
    "CategoricalHead",
    "CategoricalQHead",
    "CategoricalQNetwork",
    "ContinuousQNetworks",
    "DeterministicActor",
    "DiagGaussian",
    "DiagGaussianHead",
    "FlattenEncoder",
    "MultiCategorical",
    "MultiCategoricalHead",
    "NatureCNN",
    "NetworkSpec",
    "NoisyLinear",
    "OneHotEncoder",
    "QNetwork",
    "QuantileQHead",
    "QuantileQNetwork",
    "RecurrentActorCritic",
    "RecurrentState",
    "RunningMeanStd",
    "ScalarQHead",
    "SmallImageCNN",
    "SquashedGaussianActor",
    "action_dim",
    "build_critic",
    "build_network",
    "categorical_projection",
    "categorical_q_values",
    "categorical_support",
    "check_output_shape",
    "check_recurrent_policy",
    "default_actor",
    "default_critic",
    "default_q_network",
    "example_observations",
    "is_image_space",
    "make_action_head",
    "make_encoder",
    "mask_invalid",
    "mlp",
    "noise_disabled",
    "orthogonal_init",
    "polyak_update",
    "q_head",
    "quantile_huber_loss",
    "quantile_midpoints",
    "quantile_q_values",
    "random_actions",
    "random_valid_actions",
    "reset_noise",
    "sample_squashed_gaussian",
    "target_network",
]
