"""The root of the configuration tree: :class:`TrainConfig`, and its dict forms (:func:`typed_dict`, :func:`merge_config`).

:class:`~mappo_td.config.sections.MAPPOConfig` holds every key of skrl's ``MAPPO_DEFAULT_CONFIG`` (skrl 1.x
documentation) with the same meaning and default; :class:`TrainConfig` adds environment, model, device, seed, run
length and the fast path. Defaults live only in the dataclasses.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mappo_td.config.constants import FAST_MODES
from mappo_td.config.env_section import pettingzoo_env_defaults
from mappo_td.config.schema import check_fields, coerce, deprecated_key, did_you_mean, field_key
from mappo_td.config.schema import config_field as _f
from mappo_td.config.sections import EnvConfig, ExperimentConfig, MAPPOConfig, ModelConfig
from mappo_td.config.skrl_compat import from_skrl, resolve_auto_intervals
from mappo_td.config.validation import validate


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
        check_fields(self)
        validate(self.mappo, self.env, self.model, self.fast)

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

        Values are coerced to each field's type (:func:`mappo_td.config.schema.coerce`).

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


SECTION_KEYS = ("mappo", "env", "model", "experiment")  # the keys whose values are config sections; every other dict is a value


def typed_dict(d: Mapping[str, Any]) -> dict[str, Any]:
    """The typed layout of a config dict given in either form: ``MAPPO_DEFAULT_CONFIG``'s keys (``"lambda"``,
    ``"experiment"``, ...) at the top move under ``"mappo"``; the earlier ``compile``/``cudagraphs`` flags become ``fast``;
    skrl 1.x/2.x keys are mapped (:mod:`mappo_td.config.skrl_compat`).
    Unknown top-level keys are errors.

    Example:
        >>> typed_dict({"rollouts": 8, "experiment": {"directory": "x"}, "seed": 1})
        {'seed': 1, 'mappo': {'rollouts': 8, 'experiment': {'directory': 'x'}}}
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"a config must be a dict (a JSON/YAML mapping), got {type(d).__name__}")
    d = from_skrl(d)  # skrl 1.x/2.x keys (mixed_precision, observation_preprocessor, ...)
    _earlier_fast_flags(d)
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


def _earlier_fast_flags(d: dict[str, Any]) -> None:
    """The earlier boolean keys ``compile`` and ``cudagraphs`` (deprecated) read as ``fast``, in place."""
    for legacy in FAST_MODES[:0:-1]:  # "cudagraphs", then "compile"
        if legacy in d:
            deprecated_key(legacy, f"fast={legacy!r}")
            if coerce(legacy, d.pop(legacy), bool):
                d.setdefault("fast", "cudagraphs" if legacy == "cudagraphs" or d.get("fast") == "cudagraphs" else legacy)


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
            a[k] = deep(dict(a[k]), v) if k in SECTION_KEYS and isinstance(v, Mapping) and isinstance(a.get(k), Mapping) else v
        return a

    return deep(out, typed_dict(override))


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


def default_experiment_name(now: datetime | None = None) -> str:
    """A new run's folder name when ``experiment.experiment_name`` is empty: the time (to the microsecond), then ``_MAPPO``.

    Example:
        >>> default_experiment_name(datetime(2026, 1, 2, 3, 4, 5, 6))
        '26-01-02_03-04-05-000006_MAPPO'
    """
    return (now or datetime.now()).strftime("%y-%m-%d_%H-%M-%S-%f_MAPPO")
