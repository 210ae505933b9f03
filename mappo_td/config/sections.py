"""The sections of the configuration tree: :class:`MAPPOConfig` (skrl's ``MAPPO_DEFAULT_CONFIG`` keys, with its
:class:`ExperimentConfig`), :class:`EnvConfig` and :class:`ModelConfig`; :class:`~mappo_td.config.TrainConfig` holds them.

Field metadata is read, not decorative: ``help`` is the CLI's ``--help``, ``key`` the user-facing name (``lambda``),
``min``/``choices``/``bounds`` the checks (:func:`~mappo_td.config.schema.check_fields`), ``per_agent`` marks values
expanded per agent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mappo_td.config.constants import (
    ACTIVATIONS,
    BACKENDS,
    BODIES,
    BOUNDS,
    DEFAULT_ACTIVATION,
    DEFAULT_HIDDEN_SIZES,
    DISTRIBUTIONS,
    INITS,
    POSITIVE,
    VALUE_CLIP_FORMS,
    VALUE_LOSSES,
)
from mappo_td.config.schema import config_field as _f

PerAgentValue = float | dict


def _per_agent(key: str, default: float, help: str) -> Any:
    """A per-agent field named ``key`` (user-facing): a number, or a dict by agent or group name, in ``BOUNDS[key]``."""
    return _f(default, f"{help}; per agent: a JSON dict by agent or group name", key=key, per_agent=True, bounds=BOUNDS[key])


@dataclass
class ExperimentConfig:
    """Where and how often the run writes logs and checkpoints."""

    directory: str = _f("", "experiment's parent directory (empty: ./runs)")
    experiment_name: str = _f("", "experiment name (empty: a timestamp)")
    write_interval: int = _f(250, "TensorBoard/CSV writing interval (timesteps; 0: off, no log rows; 'auto': timesteps // 100, "
                                  "skrl's, 0 below 100 timesteps)", min=0, auto=True)
    checkpoint_interval: int = _f(1000, "interval for checkpoints (timesteps; 0: off, only the run's last one; 'auto': "
                                        "timesteps // 10, skrl's)", min=0, auto=True)
    store_separately: bool = _f(False, "store each model in its own checkpoint file")
    keep_checkpoints: int = _f(0, "keep only the newest N checkpoints of the run (0: keep all)", min=0)
    eval_interval: int = _f(0, "evaluate the deterministic policy every N timesteps on separate envs: eval/return_mean, "
                               "checkpoints/best_agent.pt (0: off)", min=0)
    eval_episodes: int = _f(10, "episodes per evaluation during training", min=1)
    eval_render: bool = _f(False, "with eval_interval: also write each evaluation's first episode to <run>/eval/eval_<timestep>.gif")
    wandb: bool = _f(False, "log to Weights & Biases (needs the wandb package)")
    wandb_kwargs: dict = _f({}, "wandb.init kwargs (JSON)")


@dataclass
class MAPPOConfig:
    """The MAPPO algorithm: the keys of skrl's ``MAPPO_DEFAULT_CONFIG`` (skrl 1.x documentation)."""

    rollouts: int = _f(16, "number of rollouts (env steps per env) before updating", min=1)
    learning_epochs: int = _f(8, "number of learning epochs during each update", min=1)
    mini_batches: int = _f(2, "number of mini batches during each learning epoch", min=1)
    discount_factor: PerAgentValue = _per_agent("discount_factor", 0.99, "discount factor (gamma)")
    lambda_: PerAgentValue = _per_agent("lambda", 0.95, "TD(lambda) coefficient (lam) for computing returns and advantages")
    learning_rate: PerAgentValue = _per_agent("learning_rate", 1e-3, "learning rate")
    learning_rate_scheduler: Any = _f(None, "learning rate scheduler: 'KLAdaptiveLR' or a torch.optim.lr_scheduler class (name)")
    learning_rate_scheduler_kwargs: dict = _f({}, "learning rate scheduler's kwargs (JSON), e.g. {\"kl_threshold\": 0.008}")
    state_preprocessor: Any = _f(None, "state preprocessor: 'RunningStandardScaler' or None")
    state_preprocessor_kwargs: dict = _f({}, "state preprocessor's kwargs (JSON)")
    shared_state_preprocessor: Any = _f(None, "shared state preprocessor: 'RunningStandardScaler' or None")
    shared_state_preprocessor_kwargs: dict = _f({}, "shared state preprocessor's kwargs (JSON)")
    value_preprocessor: Any = _f(None, "value preprocessor: 'RunningStandardScaler' (skrl's), 'ValueNorm' or 'PopArt' (the MAPPO reference's) or None")
    value_preprocessor_kwargs: dict = _f({}, "value preprocessor's kwargs (JSON)")
    random_timesteps: int = _f(0, "random exploration steps (uniform actions)", min=0)
    learning_starts: int = _f(0, "learning starts after this many steps", min=0)
    grad_norm_clip: PerAgentValue = _per_agent("grad_norm_clip", 0.5, "clipping coefficient for the norm of the gradients (0: off)")
    ratio_clip: PerAgentValue = _per_agent("ratio_clip", 0.2, "clipping coefficient for computing the clipped surrogate objective")
    value_clip: PerAgentValue = _per_agent("value_clip", 0.2, "clipping coefficient for computing the value loss (if clip_predicted_values)")
    clip_predicted_values: bool = _f(False, "clip predicted values during value loss computation")
    entropy_loss_scale: PerAgentValue = _per_agent("entropy_loss_scale", 0.0, "entropy loss scaling factor")
    value_loss_scale: PerAgentValue = _per_agent("value_loss_scale", 1.0, "value loss scaling factor")
    kl_threshold: PerAgentValue = _per_agent("kl_threshold", 0.0, "KL divergence threshold for early stopping (0: off)")
    rewards_shaper: Callable | None = _f(None, "rewards shaping function: Callable(reward, timestep, timesteps) (Python API only)", cli=False)
    time_limit_bootstrap: bool = _f(False, "bootstrap at timeout termination (episode truncation)")
    value_loss: str = _f("mse", "critic loss: 'mse' (skrl's) or 'huber' (the MAPPO reference's, with huber_delta)",
                         choices=VALUE_LOSSES)
    huber_delta: float = _f(10.0, "Huber delta of value_loss='huber' (the MAPPO reference: 10)", bounds=POSITIVE)
    value_clip_form: str = _f("prediction", "with clip_predicted_values: 'prediction' (skrl: the loss of the clipped prediction) "
                                            "or 'max' (the MAPPO reference: the larger of the clipped and unclipped losses)",
                              choices=VALUE_CLIP_FORMS)
    policy_active_masks: bool = _f(True, "policy and entropy losses average over alive agent-steps only, where the env gives (group, 'mask')")
    value_active_masks: bool = _f(True, "value loss averages over alive agent-steps only, where the env gives (group, 'mask')")
    data_chunk_length: int = _f(10, "recurrent models (model.body=gru): train on chunks of this many consecutive steps; "
                                    "must divide rollouts", min=1)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)


@dataclass
class EnvConfig:
    """The environment."""

    backend: str = _f("vmas", "'vmas' (batched, on the device) or 'pettingzoo' (parallel API, mpe2 tasks)", choices=BACKENDS)
    scenario: str = _f("navigation", "VMAS scenario or PettingZoo task (e.g. simple_spread_v3)")
    num_envs: int = _f(128, "number of parallel environments (PettingZoo, when not given: 8)", min=1)
    max_steps: int = _f(100, "episode time limit (reported as truncation)", min=1)
    continuous_actions: bool = _f(True, "continuous (Box) actions where the environment offers both")
    num_workers: int = _f(0, "PettingZoo: processes stepping the envs: 1 steps them all in this process; N >= 2: N worker "
                             "processes, each stepping its share (classic/AEC tasks: TorchRL's ParallelEnv, one env per process, "
                             "so num_envs must equal N); 0: this process on a machine of 2 cores or fewer, else one per spare core", min=0)
    scenario_kwargs: dict | None = _f(None, "scenario kwargs (JSON); default: {\"n_agents\": 3} for VMAS navigation, else {}")


@dataclass
class ModelConfig:
    """The networks."""

    hidden_sizes: list = _f(list(DEFAULT_HIDDEN_SIZES), "hidden layer sizes of policy and value MLPs")
    activation: str = _f(DEFAULT_ACTIVATION, "activation", choices=ACTIVATIONS)
    share_params: bool = _f(True, "one network for all agents of a group (else one each)")
    centralized_critic: bool = _f(True, "centralized critic (MAPPO); false: decentralized (IPPO)")
    shared_model: bool = _f(False, "one trunk with policy and value heads (needs a decentralized critic)")
    distribution: str = _f("auto", "Box actions: 'gaussian' ('auto') or 'multivariate_gaussian'",
                           choices=DISTRIBUTIONS)
    state_dependent_std: bool = _f(False, "the policy network outputs the log-std too")
    tanh_squash: bool | None = _f(None, "squash Gaussian actions into the Box bounds (default: when bounded)")
    log_std_init: float = _f(0.0, "initial log-std of Gaussian policies")
    action_masks: bool = _f(True, "Discrete/MultiDiscrete policies use the env's legal-action mask (group, 'action_mask') where it has one")
    body: str = _f("mlp", "network body of policy and critic: 'mlp', or 'gru' (a GRU, then the MLP as head)", choices=BODIES)
    rnn_hidden_size: int = _f(64, "GRU state size (body=gru)", min=1)
    rnn_layers: int = _f(1, "GRU layers (body=gru)", min=1)
    rnn_encoder: list = _f([], "body=gru: MLP layers before the GRU (the MAPPO reference's layout: [64, 64], hidden_sizes [])")
    layer_norm: bool = _f(False, "body=gru: the MAPPO reference's LayerNorms (input, each hidden layer, the GRU's output)")
    init: str = _f("default", "'default' (PyTorch's) or 'orthogonal' (the MAPPO reference's; action layer gain 0.01)", choices=INITS)


def per_agent_fields() -> Iterator[dataclasses.Field]:
    """The :class:`MAPPOConfig` fields that take a value per agent (metadata ``per_agent``).

    Example:
        >>> from mappo_td.config.schema import field_key
        >>> [field_key(f) for f in per_agent_fields()][:3]
        ['discount_factor', 'lambda', 'learning_rate']
    """
    return (f for f in dataclasses.fields(MAPPOConfig) if f.metadata.get("per_agent"))
