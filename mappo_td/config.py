"""The configuration: one typed dataclass tree; defaults live only here.

:class:`MAPPOConfig` holds every key of skrl's ``MAPPO_DEFAULT_CONFIG`` (skrl 1.x documentation) with the
same meaning and default; :class:`TrainConfig` adds environment, model, device, seed, run length
and the fast path. Field metadata is read, not decorative: ``help`` is the CLI's ``--help``,
``key`` the user-facing name (``lambda``), ``min``/``choices``/``bounds`` the checks
(:func:`mappo_td.schema.check_fields`), ``per_agent`` marks values expanded per agent.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mappo_td.defaults import BODIES, DEFAULT_ACTIVATION, DEFAULT_HIDDEN_SIZES, FAST_MODES, INITS, VALUE_CLIP_FORMS, VALUE_LOSSES
from mappo_td.defaults import BOUNDS as BOUNDS  # importable from here too
from mappo_td.defaults import NON_NEGATIVE as _NONNEG
from mappo_td.defaults import POSITIVE as _POS
from mappo_td.defaults import UNIT as _UNIT
from mappo_td.env_section import pettingzoo_env_defaults
from mappo_td.schema import Bounds, coerce, did_you_mean, field_key
from mappo_td.schema import config_field as _f
from mappo_td.skrl_compat import from_skrl, resolve_auto_intervals
from mappo_td.validation import validate

PerAgentValue = float | dict


def _per_agent(default: float, help: str, bounds: Bounds, **kw: Any) -> Any:
    return _f(default, f"{help}; per agent: a JSON dict by agent or group name", per_agent=True, bounds=bounds, **kw)


@dataclass
class ExperimentConfig:
    """Where and how often the run writes logs and checkpoints."""

    directory: str = _f("", "experiment's parent directory (empty: ./runs)")
    experiment_name: str = _f("", "experiment name (empty: a timestamp)")
    write_interval: int = _f(250, "TensorBoard/CSV writing interval (timesteps)", min=1)
    checkpoint_interval: int = _f(1000, "interval for checkpoints (timesteps; 0: only at the end)", min=0)
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
    discount_factor: PerAgentValue = _per_agent(0.99, "discount factor (gamma)", _UNIT)
    lambda_: PerAgentValue = _per_agent(0.95, "TD(lambda) coefficient (lam) for computing returns and advantages", _UNIT, key="lambda")
    learning_rate: PerAgentValue = _per_agent(1e-3, "learning rate", _POS)
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
    grad_norm_clip: PerAgentValue = _per_agent(0.5, "clipping coefficient for the norm of the gradients (0: off)", _NONNEG)
    ratio_clip: PerAgentValue = _per_agent(0.2, "clipping coefficient for computing the clipped surrogate objective", _POS)
    value_clip: PerAgentValue = _per_agent(0.2, "clipping coefficient for computing the value loss (if clip_predicted_values)", _POS)
    clip_predicted_values: bool = _f(False, "clip predicted values during value loss computation")
    entropy_loss_scale: PerAgentValue = _per_agent(0.0, "entropy loss scaling factor", _NONNEG)
    value_loss_scale: PerAgentValue = _per_agent(1.0, "value loss scaling factor", _NONNEG)
    kl_threshold: PerAgentValue = _per_agent(0.0, "KL divergence threshold for early stopping (0: off)", _NONNEG)
    rewards_shaper: Callable | None = _f(None, "rewards shaping function: Callable(reward, timestep, timesteps) (Python API only)", cli=False)
    time_limit_bootstrap: bool = _f(False, "bootstrap at timeout termination (episode truncation)")
    value_loss: str = _f("mse", "critic loss: 'mse' (skrl's) or 'huber' (the MAPPO reference's, with huber_delta)",
                         choices=VALUE_LOSSES)
    huber_delta: float = _f(10.0, "Huber delta of value_loss='huber' (the MAPPO reference: 10)", bounds=(0.0, math.inf, False))
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

    backend: str = _f("vmas", "'vmas' (batched, on the device) or 'pettingzoo' (parallel API, mpe2 tasks)", choices=("vmas", "pettingzoo"))
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
    activation: str = _f(DEFAULT_ACTIVATION, "activation", choices=("tanh", "relu", "elu", "silu"))
    share_params: bool = _f(True, "one network for all agents of a group (else one each)")
    centralized_critic: bool = _f(True, "centralized critic (MAPPO); false: decentralized (IPPO)")
    shared_model: bool = _f(False, "one trunk with policy and value heads (needs a decentralized critic)")
    distribution: str = _f("auto", "Box actions: 'gaussian' ('auto') or 'multivariate_gaussian'",
                           choices=("auto", "gaussian", "multivariate_gaussian"))
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


@dataclass
class TrainConfig:
    """Everything a training run needs."""

    mappo: MAPPOConfig = field(default_factory=MAPPOConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    timesteps: int = _f(4_000, "total environment steps (each step advances every parallel env; the default, 4,000 x 128 envs = 512k frames, shows most of the learning on VMAS navigation: run longer with e.g. --timesteps 36000)", min=1)
    device: str = _f("auto", "'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1' ...")
    seed: int = _f(0, "random seed")
    fast: str = _f("off", "fast path: 'off' (eager), 'compile' (torch.compile acting and update), "
                          "'cudagraphs' (compile, then capture in CUDA graphs; CUDA only)", choices=FAST_MODES)
    progress: bool = _f(True, "show a progress bar")
    dist_timeout: int = _f(600, "under torchrun: seconds a collective waits for the other processes before the run "
                                "stops with an error (a rank died or hangs)", min=1)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def frames_per_iteration(self) -> int:
        """Frames (env steps × envs) collected per update."""
        return self.mappo.rollouts * self.env.num_envs

    @property
    def minibatch_size(self) -> int:
        """Frames per minibatch."""
        return self.frames_per_iteration // self.mappo.mini_batches

    def end_timestep(self, start: int = 0) -> int:
        """Where a run at timestep ``start`` ends: the first ``start + k·rollouts`` at or past ``timesteps``. Example:
        >>> TrainConfig.from_dict({"timesteps": 300, "rollouts": 8}).end_timestep()
        304
        """
        return start + max(0, -(-(self.timesteps - start) // self.mappo.rollouts)) * self.mappo.rollouts

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Build from a nested dict: the typed form, or ``MAPPO_DEFAULT_CONFIG``'s keys at the top (see :func:`typed_dict`).

        Values are coerced to each field's type (:func:`mappo_td.schema.coerce`).

        Example:
            >>> cfg = TrainConfig.from_dict({"lambda": 0.9, "rollouts": 32, "experiment": {"write_interval": 100}})
            >>> cfg.mappo.lambda_, cfg.mappo.rollouts, cfg.mappo.experiment.write_interval
            (0.9, 32, 100)
            >>> TrainConfig.from_dict({"compile": True}).fast
            'compile'
        """
        d = typed_dict(d)
        env = d.get("env") or {}
        if isinstance(env, Mapping):
            d["env"] = env = pettingzoo_env_defaults(env)
        x = d.get("mappo", {}).get("experiment")
        if isinstance(x, Mapping):  # skrl's "auto" intervals, for this run's length
            d["mappo"]["experiment"] = resolve_auto_intervals(x, d.get("timesteps", cls.__dataclass_fields__["timesteps"].default))
        kwargs = _coerced(cls, {k: v for k, v in d.items() if k not in ("mappo", "env", "model")}, "")
        kwargs["mappo"] = _build(MAPPOConfig, d.get("mappo", {}), "mappo")
        kwargs["env"] = _build(EnvConfig, d.get("env", {}), "env")
        kwargs["model"] = _build(ModelConfig, d.get("model", {}), "model")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able nested dict (``rewards_shaper`` as None: a callable cannot be stored); round-trips through ``from_dict``."""
        out = dataclasses.asdict(self)
        m = out["mappo"]
        m["lambda"] = m.pop("lambda_")
        m["rewards_shaper"] = None  # a callable cannot be restored from text
        for k in ("learning_rate_scheduler", "state_preprocessor", "shared_state_preprocessor", "value_preprocessor"):
            if m[k] is not None and not isinstance(m[k], str):
                m[k] = getattr(m[k], "__name__", repr(m[k]))
        return out


SECTIONS = ("mappo", "env", "model", "experiment")  # nested config sections; every other dict is a value


def typed_dict(d: Mapping[str, Any]) -> dict[str, Any]:
    """The typed layout of a config dict given in either form: ``MAPPO_DEFAULT_CONFIG``'s keys (``"lambda"``,
    ``"experiment"``, ...) at the top move under ``"mappo"``; the earlier ``compile``/``cudagraphs`` flags become ``fast``;
    skrl 1.x/2.x keys are mapped (:mod:`mappo_td.skrl_compat`).
    Unknown top-level keys are errors.

    Example:
        >>> typed_dict({"rollouts": 8, "experiment": {"directory": "x"}, "seed": 1})
        {'seed': 1, 'mappo': {'rollouts': 8, 'experiment': {'directory': 'x'}}}
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"a config must be a dict (a JSON/YAML mapping), got {type(d).__name__}")
    d = from_skrl(d)  # skrl 1.x/2.x keys (mixed_precision, observation_preprocessor, ...)
    for legacy in ("cudagraphs", "compile"):  # the earlier flags: compile -> "compile", cudagraphs -> "cudagraphs"
        if legacy in d and coerce(legacy, d.pop(legacy), bool):
            d.setdefault("fast", "cudagraphs" if legacy == "cudagraphs" or d.get("fast") == "cudagraphs" else legacy)
    mappo_keys = {field_key(f) for f in dataclasses.fields(MAPPOConfig)}
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    mappo = d.pop("mappo", None) or {}
    if not isinstance(mappo, Mapping):
        raise ValueError(f"mappo must be a dict of its keys, got {mappo!r}")
    mappo = from_skrl(mappo)
    for k in [k for k in d if k in mappo_keys and k not in top]:
        mappo[k] = d.pop(k)
    unknown = [k for k in d if k not in top]
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}{did_you_mean(unknown, top | mappo_keys)}; valid top-level keys: {sorted(top | mappo_keys)}")
    if mappo:
        d["mappo"] = mappo
    return d


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base`` (both in either form): sections merge key by key, values (per-agent dicts, kwargs) replace.

    The one precedence rule: defaults < config file < command-line flags (< resume overrides).

    Example:
        >>> merge_config({"rollouts": 16, "experiment": {"directory": "a", "write_interval": 5}},
        ...              {"mappo": {"experiment": {"directory": "b"}}})
        {'mappo': {'rollouts': 16, 'experiment': {'directory': 'b', 'write_interval': 5}}}
    """
    out = typed_dict(base)

    def deep(a: dict, b: Mapping[str, Any]) -> dict:
        for k, v in b.items():
            a[k] = deep(dict(a[k]), v) if k in SECTIONS and isinstance(v, Mapping) and isinstance(a.get(k), Mapping) else v
        return a

    return deep(out, typed_dict(override))


def per_agent_fields() -> Iterator[dataclasses.Field]:
    """The :class:`MAPPOConfig` fields that take a value per agent (metadata ``per_agent``).

    Example:
        >>> [field_key(f) for f in per_agent_fields()][:3]
        ['discount_factor', 'lambda', 'learning_rate']
    """
    return (f for f in dataclasses.fields(MAPPOConfig) if f.metadata.get("per_agent"))


def _coerced(cls: type, d: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``d`` (user-facing names) as ``cls``'s keyword arguments, each value coerced to its field's type."""
    fields = {field_key(f): f for f in dataclasses.fields(cls)}
    unknown = [k for k in d if k not in fields]
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where!r}{did_you_mean(unknown, set(fields))}; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    return {fields[k].name: coerce(f"{where}.{k}" if where else k, v, hints[fields[k].name]) for k, v in d.items()}


def _build(cls: type, d: Mapping[str, Any], where: str) -> Any:
    if isinstance(d, cls):
        return d
    if not isinstance(d, Mapping):
        raise ValueError(f"{where} must be a dict of its keys, got {d!r}")
    sub = dict(d)
    experiment = sub.pop("experiment", None) if cls is MAPPOConfig else None
    kwargs = _coerced(cls, sub, where)
    if experiment is not None:
        kwargs["experiment"] = _build(ExperimentConfig, experiment, "experiment")
    return cls(**kwargs)
