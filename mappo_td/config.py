"""The configuration: one typed dataclass tree; defaults live only here.

:class:`MAPPOConfig` holds every key of skrl's ``MAPPO_DEFAULT_CONFIG`` with the same
meaning and default; :class:`TrainConfig` adds environment, model, device, seed and
run length. :meth:`TrainConfig.from_dict` accepts the seed's dict verbatim (``"lambda"``,
per-agent dicts, the ``"experiment"`` sub-dict) or a nested dict of the typed form.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PerAgentValue = float | dict


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: json.loads(json.dumps(d)), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


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


@dataclass
class MAPPOConfig:
    """The MAPPO algorithm: skrl's ``MAPPO_DEFAULT_CONFIG`` keys. Per-agent values: a dict by agent or group name."""

    rollouts: int = _f(16, "number of rollouts (env steps per env) before updating")
    learning_epochs: int = _f(8, "number of learning epochs during each update")
    mini_batches: int = _f(2, "number of mini batches during each learning epoch")
    discount_factor: PerAgentValue = _f(0.99, "discount factor (gamma); per agent as JSON dict", per_agent=True)
    lambda_: PerAgentValue = _f(0.95, "TD(lambda) coefficient (lam) for computing returns and advantages", per_agent=True, key="lambda")
    learning_rate: PerAgentValue = _f(1e-3, "learning rate", per_agent=True)
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
    grad_norm_clip: PerAgentValue = _f(0.5, "clipping coefficient for the norm of the gradients (0: off)", per_agent=True)
    ratio_clip: PerAgentValue = _f(0.2, "clipping coefficient for computing the clipped surrogate objective", per_agent=True)
    value_clip: PerAgentValue = _f(0.2, "clipping coefficient for computing the value loss (if clip_predicted_values)", per_agent=True)
    clip_predicted_values: bool = _f(False, "clip predicted values during value loss computation")
    entropy_loss_scale: PerAgentValue = _f(0.0, "entropy loss scaling factor", per_agent=True)
    value_loss_scale: PerAgentValue = _f(1.0, "value loss scaling factor", per_agent=True)
    kl_threshold: PerAgentValue = _f(0.0, "KL divergence threshold for early stopping (0: off)", per_agent=True)
    rewards_shaper: Callable | None = _f(None, "rewards shaping function: Callable(reward, timestep, timesteps) (Python API only)", cli=False)
    time_limit_bootstrap: bool = _f(False, "bootstrap at timeout termination (episode truncation)")
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)


@dataclass
class EnvConfig:
    """The environment."""

    backend: str = _f("vmas", "'vmas' (batched, on the device) or 'pettingzoo' (parallel API, mpe2 tasks)")
    scenario: str = _f("navigation", "VMAS scenario or PettingZoo task (e.g. simple_spread_v3)")
    num_envs: int = _f(128, "number of parallel environments")
    max_steps: int = _f(100, "episode time limit (reported as truncation)")
    continuous_actions: bool = _f(True, "continuous (Box) actions where the environment offers both")
    scenario_kwargs: dict = _f({"n_agents": 3}, "scenario kwargs (JSON), e.g. {\"n_agents\": 3}")


@dataclass
class ModelConfig:
    """The networks."""

    hidden_sizes: list = _f([64, 64], "hidden layer sizes of policy and value MLPs")
    activation: str = _f("tanh", "activation: tanh, relu, elu, silu")
    share_params: bool = _f(True, "one network for all agents of a group (else one each)")
    centralized_critic: bool = _f(True, "centralized critic (MAPPO); false: decentralized (IPPO)")
    shared_model: bool = _f(False, "one trunk with policy and value heads (needs a decentralized critic)")
    distribution: str = _f("auto", "Box actions: 'gaussian' ('auto') or 'multivariate_gaussian'")
    state_dependent_std: bool = _f(False, "the policy network outputs the log-std too")
    tanh_squash: bool | None = _f(None, "squash Gaussian actions into the Box bounds (default: when bounded)")
    log_std_init: float = _f(0.0, "initial log-std of Gaussian policies")


@dataclass
class TrainConfig:
    """Everything a training run needs."""

    mappo: MAPPOConfig = field(default_factory=MAPPOConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    timesteps: int = _f(36_000, "total environment steps (each step advances every parallel env); 36k x 128 envs: ~10 min on 2 CPU cores")
    device: str = _f("auto", "'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1' ...")
    seed: int = _f(0, "random seed")
    compile: bool = _f(False, "torch.compile the acting and update steps")
    cudagraphs: bool = _f(False, "capture acting and update steps in CUDA graphs (CUDA only)")
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
        """Build from a nested dict: the typed form, or skrl's ``MAPPO_DEFAULT_CONFIG`` keys at the top.

        Example:
            >>> cfg = TrainConfig.from_dict({"lambda": 0.9, "rollouts": 32, "experiment": {"write_interval": 100}})
            >>> cfg.mappo.lambda_, cfg.mappo.rollouts, cfg.mappo.experiment.write_interval
            (0.9, 32, 100)
        """
        d = dict(d)
        mappo_keys = {_key(f): f.name for f in dataclasses.fields(MAPPOConfig)}
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


def _key(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def _build(cls: type, d: Mapping[str, Any], where: str) -> Any:
    if isinstance(d, cls):
        return d
    names = {_key(f): f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in d if k not in names]
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where!r}; valid keys: {sorted(names)}")
    kwargs = {names[k]: v for k, v in d.items()}
    if cls is MAPPOConfig and isinstance(kwargs.get("experiment"), Mapping):
        kwargs["experiment"] = _build(ExperimentConfig, kwargs["experiment"], "experiment")
    return cls(**kwargs)


def _values(v: Any) -> list:
    return list(v.values()) if isinstance(v, Mapping) else [v]


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(msg)


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
    per_agent = {
        "discount_factor": (0, 1, True), "lambda": (0, 1, True), "learning_rate": (0, math.inf, False),
        "grad_norm_clip": (0, math.inf, True), "ratio_clip": (0, math.inf, False), "value_clip": (0, math.inf, False),
        "entropy_loss_scale": (-math.inf, math.inf, True), "value_loss_scale": (0, math.inf, True), "kl_threshold": (0, math.inf, True),
    }
    for name, (lo, hi, closed) in per_agent.items():
        value = getattr(m, "lambda_" if name == "lambda" else name)
        _check(isinstance(value, (int, float, Mapping)) and not isinstance(value, bool),
               f"{name} must be a number or a dict by agent/group name, got {value!r}")
        for v in _values(value):
            ok = isinstance(v, (int, float)) and math.isfinite(v) and (lo <= v if closed else lo < v) and v <= hi
            _check(ok, f"{name} must be a finite number in {'[' if closed else '('}{lo}, {hi}], got {v!r}")
    _check(m.rewards_shaper is None or callable(m.rewards_shaper), "rewards_shaper must be None or a callable(reward, timestep, timesteps)")
    for name in ("state_preprocessor", "shared_state_preprocessor", "value_preprocessor"):
        v = getattr(m, name)
        _check(v in (None, "RunningStandardScaler") or (isinstance(v, type) and v.__name__ in ("RunningStandardScaler", "RunningStandardizer")),
               f"{name} must be None or 'RunningStandardScaler', got {v!r}")
    _check(e.backend in ("vmas", "pettingzoo"), f"env.backend must be 'vmas' or 'pettingzoo', got {e.backend!r}")
    _check(cfg.model.activation in ("tanh", "relu", "elu", "silu"), f"model.activation must be tanh, relu, elu or silu, got {cfg.model.activation!r}")
    _check(len(cfg.model.hidden_sizes) >= 1 and all(isinstance(h, int) and h >= 1 for h in cfg.model.hidden_sizes),
           f"model.hidden_sizes must be a non-empty list of positive integers, got {cfg.model.hidden_sizes!r}")
    _check(not (cfg.model.shared_model and cfg.model.centralized_critic),
           "model.shared_model needs model.centralized_critic=false: a shared trunk reads one input for both heads")
    _check(cfg.frames_per_iteration // m.mini_batches >= 1,
           f"mini_batches={m.mini_batches} is larger than the {cfg.frames_per_iteration} frames collected per update")
