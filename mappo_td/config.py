"""The configuration: one typed dataclass tree; defaults live only here.

:class:`MAPPOConfig` holds every key of the source document's (skrl's documented)
``MAPPO_DEFAULT_CONFIG`` with the same meaning and default; :class:`TrainConfig` adds
environment, model, device, seed, run length and the fast path.
:meth:`TrainConfig.from_dict` accepts that dict verbatim (``"lambda"``, per-agent dicts,
the ``"experiment"`` sub-dict) or a nested dict of the typed form.

Field metadata is read, not decorative: ``help`` becomes ``--help``; ``key`` is the
user-facing name (``lambda``); ``per_agent`` fields take a dict by agent or group name
and are expanded by :func:`mappo_td.multiagent.per_agent_tensor` within ``bounds``;
``choices`` restricts a string field (validation and the CLI both read it).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

PerAgentValue = float | dict
Bounds = tuple[float, float, bool]  # (low, high, low included); high is always included

DEFAULT_HIDDEN_SIZES = (64, 64)  # the builders' default too
DEFAULT_ACTIVATION = "tanh"
FAST_MODES = ("off", "compile", "cudagraphs")


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (dict, list, tuple)):
        return field(default_factory=lambda d=default: json.loads(json.dumps(d)), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def _per_agent(default: float, help: str, bounds: Bounds, **kw: Any) -> Any:
    return _f(default, f"{help}; per agent: a JSON dict by agent or group name", per_agent=True, bounds=bounds, **kw)


@dataclass
class ExperimentConfig:
    """Where and how often the run writes logs and checkpoints."""

    directory: str = _f("", "experiment's parent directory (empty: ./runs)")
    experiment_name: str = _f("", "experiment name (empty: a timestamp)")
    write_interval: int = _f(250, "TensorBoard/CSV writing interval (timesteps)")
    checkpoint_interval: int = _f(1000, "interval for checkpoints (timesteps; 0: only at the end)")
    store_separately: bool = _f(False, "store each model in its own checkpoint file")
    wandb: bool = _f(False, "log to Weights & Biases (needs the wandb package)")
    wandb_kwargs: dict = _f({}, "wandb.init kwargs (JSON)")


_POS = (0.0, math.inf, False)  # > 0
_NONNEG = (0.0, math.inf, True)  # >= 0
_UNIT = (0.0, 1.0, True)  # [0, 1]


@dataclass
class MAPPOConfig:
    """The MAPPO algorithm: the source document's ``MAPPO_DEFAULT_CONFIG`` keys."""

    rollouts: int = _f(16, "number of rollouts (env steps per env) before updating")
    learning_epochs: int = _f(8, "number of learning epochs during each update")
    mini_batches: int = _f(2, "number of mini batches during each learning epoch")
    discount_factor: PerAgentValue = _per_agent(0.99, "discount factor (gamma)", _UNIT)
    lambda_: PerAgentValue = _per_agent(0.95, "TD(lambda) coefficient (lam) for computing returns and advantages", _UNIT, key="lambda")
    learning_rate: PerAgentValue = _per_agent(1e-3, "learning rate", _POS)
    learning_rate_scheduler: Any = _f(None, "learning rate scheduler: 'KLAdaptiveLR' or a torch.optim.lr_scheduler class (name)")
    learning_rate_scheduler_kwargs: dict = _f({}, "learning rate scheduler's kwargs (JSON), e.g. {\"kl_threshold\": 0.008}")
    state_preprocessor: Any = _f(None, "state preprocessor: 'RunningStandardScaler' or None")
    state_preprocessor_kwargs: dict = _f({}, "state preprocessor's kwargs (JSON)")
    shared_state_preprocessor: Any = _f(None, "shared state preprocessor: 'RunningStandardScaler' or None")
    shared_state_preprocessor_kwargs: dict = _f({}, "shared state preprocessor's kwargs (JSON)")
    value_preprocessor: Any = _f(None, "value preprocessor: 'RunningStandardScaler' or None")
    value_preprocessor_kwargs: dict = _f({}, "value preprocessor's kwargs (JSON)")
    random_timesteps: int = _f(0, "random exploration steps (uniform actions)")
    learning_starts: int = _f(0, "learning starts after this many steps")
    grad_norm_clip: PerAgentValue = _per_agent(0.5, "clipping coefficient for the norm of the gradients (0: off)", _NONNEG)
    ratio_clip: PerAgentValue = _per_agent(0.2, "clipping coefficient for computing the clipped surrogate objective", _POS)
    value_clip: PerAgentValue = _per_agent(0.2, "clipping coefficient for computing the value loss (if clip_predicted_values)", _POS)
    clip_predicted_values: bool = _f(False, "clip predicted values during value loss computation")
    entropy_loss_scale: PerAgentValue = _per_agent(0.0, "entropy loss scaling factor", _NONNEG)
    value_loss_scale: PerAgentValue = _per_agent(1.0, "value loss scaling factor", _NONNEG)
    kl_threshold: PerAgentValue = _per_agent(0.0, "KL divergence threshold for early stopping (0: off)", _NONNEG)
    rewards_shaper: Callable | None = _f(None, "rewards shaping function: Callable(reward, timestep, timesteps) (Python API only)", cli=False)
    time_limit_bootstrap: bool = _f(False, "bootstrap at timeout termination (episode truncation)")
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)


@dataclass
class EnvConfig:
    """The environment."""

    backend: str = _f("vmas", "'vmas' (batched, on the device) or 'pettingzoo' (parallel API, mpe2 tasks)", choices=("vmas", "pettingzoo"))
    scenario: str = _f("navigation", "VMAS scenario or PettingZoo task (e.g. simple_spread_v3)")
    num_envs: int = _f(128, "number of parallel environments")
    max_steps: int = _f(100, "episode time limit (reported as truncation)")
    continuous_actions: bool = _f(True, "continuous (Box) actions where the environment offers both")
    scenario_kwargs: dict = _f({"n_agents": 3}, "scenario kwargs (JSON), e.g. {\"n_agents\": 3}")


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


@dataclass
class TrainConfig:
    """Everything a training run needs."""

    mappo: MAPPOConfig = field(default_factory=MAPPOConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    timesteps: int = _f(36_000, "total environment steps (each step advances every parallel env)")
    device: str = _f("auto", "'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1' ...")
    seed: int = _f(0, "random seed")
    fast: str = _f("off", "fast path: 'off' (eager), 'compile' (torch.compile acting and update), "
                          "'cudagraphs' (compile, then capture in CUDA graphs; CUDA only)", choices=FAST_MODES)
    progress: bool = _f(True, "show a progress bar")

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

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Build from a nested dict: the typed form, or ``MAPPO_DEFAULT_CONFIG``'s keys at the top.

        The earlier boolean keys ``compile`` / ``cudagraphs`` are read as ``fast``.

        Example:
            >>> cfg = TrainConfig.from_dict({"lambda": 0.9, "rollouts": 32, "experiment": {"write_interval": 100}})
            >>> cfg.mappo.lambda_, cfg.mappo.rollouts, cfg.mappo.experiment.write_interval
            (0.9, 32, 100)
            >>> TrainConfig.from_dict({"compile": True}).fast
            'compile'
        """
        d = dict(d)
        for legacy in ("cudagraphs", "compile"):  # the earlier flags: compile -> "compile", cudagraphs -> "cudagraphs"
            if legacy in d and d.pop(legacy) is True:
                d.setdefault("fast", "cudagraphs" if legacy == "cudagraphs" or d.get("fast") == "cudagraphs" else legacy)
        mappo_keys = {field_key(f): f.name for f in dataclasses.fields(MAPPOConfig)}
        top = {f.name for f in dataclasses.fields(cls)}
        mappo = dict(d.pop("mappo", {}))
        for k in list(d):
            if k in mappo_keys and k not in top:
                mappo[k] = d.pop(k)
        unknown = [k for k in d if k not in top]
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid top-level keys: {sorted(top | set(mappo_keys))}")
        kwargs: dict[str, Any] = {k: v for k, v in d.items() if k not in ("env", "model")}
        kwargs["mappo"] = _build(MAPPOConfig, mappo, "mappo")
        kwargs["env"] = _build(EnvConfig, d.get("env", {}), "env")
        kwargs["model"] = _build(ModelConfig, d.get("model", {}), "model")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able nested dict (``rewards_shaper`` is recorded by name); round-trips through ``from_dict``."""
        out = dataclasses.asdict(self)
        m = out["mappo"]
        m["lambda"] = m.pop("lambda_")
        for k in ("rewards_shaper", "learning_rate_scheduler", "state_preprocessor", "shared_state_preprocessor", "value_preprocessor"):
            if m[k] is not None and not isinstance(m[k], str):
                m[k] = getattr(m[k], "__name__", repr(m[k]))
        if m["rewards_shaper"] is not None:
            m["rewards_shaper"] = None  # a callable cannot be restored from text
        return out


def per_agent_fields() -> Iterator[dataclasses.Field]:
    """The :class:`MAPPOConfig` fields that take a value per agent (metadata ``per_agent``).

    Example:
        >>> [field_key(f) for f in per_agent_fields()][:3]
        ['discount_factor', 'lambda', 'learning_rate']
    """
    return (f for f in dataclasses.fields(MAPPOConfig) if f.metadata.get("per_agent"))


def field_key(f: dataclasses.Field) -> str:
    """The user-facing name of a field (``lambda`` for ``lambda_``).

    Example:
        >>> field_key(dataclasses.fields(MAPPOConfig)[4])
        'lambda'
    """
    return f.metadata.get("key", f.name)



def bounds(name: str) -> Bounds:
    """The allowed range of the per-agent field ``name`` (its user-facing name).

    Example:
        >>> bounds("ratio_clip")
        (0.0, inf, False)
    """
    for f in per_agent_fields():
        if field_key(f) == name:
            return f.metadata["bounds"]
    raise KeyError(f"no per-agent field {name!r}")


def _build(cls: type, d: Mapping[str, Any], where: str) -> Any:
    if isinstance(d, cls):
        return d
    names = {field_key(f): f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in d if k not in names]
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where!r}; valid keys: {sorted(names)}")
    kwargs = {names[k]: v for k, v in d.items()}
    if cls is MAPPOConfig and isinstance(kwargs.get("experiment"), Mapping):
        kwargs["experiment"] = _build(ExperimentConfig, kwargs["experiment"], "experiment")
    return cls(**kwargs)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(msg)


def check_in_bounds(name: str, values: list[float], b: Bounds) -> None:
    """Raise ``ValueError`` unless every value is a finite number within ``b``.

    Example:
        >>> check_in_bounds("lambda", [0.5, 1.5], (0.0, 1.0, True))
        Traceback (most recent call last):
        ...
        ValueError: lambda must be a finite number in [0, 1], got 1.5
    """
    lo, hi, closed = b
    for v in values:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (lo <= v if closed else lo < v) and v <= hi
        _check(ok, f"{name} must be a finite number in {'[' if closed else '('}{lo:g}, {hi:g}], got {v!r}")


def validate(cfg: TrainConfig) -> None:
    """Reject out-of-range values with a message that says what is allowed.

    Example:
        >>> TrainConfig.from_dict({"rollouts": -1})
        Traceback (most recent call last):
        ...
        ValueError: rollouts must be an integer >= 1, got -1
    """
    m, e, x = cfg.mappo, cfg.env, cfg.mappo.experiment
    for name, v, lo in (("rollouts", m.rollouts, 1), ("learning_epochs", m.learning_epochs, 1), ("mini_batches", m.mini_batches, 1),
                        ("random_timesteps", m.random_timesteps, 0), ("learning_starts", m.learning_starts, 0),
                        ("timesteps", cfg.timesteps, 1), ("env.num_envs", e.num_envs, 1), ("env.max_steps", e.max_steps, 1),
                        ("experiment.write_interval", x.write_interval, 1), ("experiment.checkpoint_interval", x.checkpoint_interval, 0)):
        _check(isinstance(v, int) and not isinstance(v, bool) and v >= lo, f"{name} must be an integer >= {lo}, got {v!r}")
    for f in per_agent_fields():
        value = getattr(m, f.name)
        _check(isinstance(value, (int, float, Mapping)) and not isinstance(value, bool),
               f"{field_key(f)} must be a number or a dict by agent/group name, got {value!r}")
        check_in_bounds(field_key(f), list(value.values()) if isinstance(value, Mapping) else [value], f.metadata["bounds"])
    _check(m.rewards_shaper is None or callable(m.rewards_shaper), "rewards_shaper must be None or a callable(reward, timestep, timesteps)")
    for name in ("state_preprocessor", "shared_state_preprocessor", "value_preprocessor"):
        v = getattr(m, name)
        _check(v in (None, "RunningStandardScaler") or (isinstance(v, type) and v.__name__ in ("RunningStandardScaler", "RunningStandardizer")),
               f"{name} must be None or 'RunningStandardScaler', got {v!r}")
    for section, obj in (("env", e), ("model", cfg.model), ("", cfg)):
        for f in dataclasses.fields(obj):
            choices = f.metadata.get("choices")
            if choices is not None:
                name = f"{section}.{f.name}" if section else f.name
                _check(getattr(obj, f.name) in choices, f"{name} must be one of {', '.join(choices)}; got {getattr(obj, f.name)!r}")
    _check(len(cfg.model.hidden_sizes) >= 1 and all(isinstance(h, int) and h >= 1 for h in cfg.model.hidden_sizes),
           f"model.hidden_sizes must be a non-empty list of positive integers, got {cfg.model.hidden_sizes!r}")
    _check(not (cfg.model.shared_model and cfg.model.centralized_critic),
           "model.shared_model needs model.centralized_critic=false: a shared trunk reads one input for both heads")
    _check(cfg.frames_per_iteration // m.mini_batches >= 1,
           f"mini_batches={m.mini_batches} is larger than the {cfg.frames_per_iteration} frames collected per update")
    sched = m.learning_rate_scheduler
    sched_name = sched if isinstance(sched, str) or sched is None else getattr(sched, "__name__", "")
    _check(cfg.fast == "off" or sched_name in (None, "KLAdaptiveLR"),
           f"fast={cfg.fast!r} keeps the learning rate on the device: use learning_rate_scheduler='KLAdaptiveLR' "
           "(a device tensor), or fast='off' to use a torch.optim.lr_scheduler.")
