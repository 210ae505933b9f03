"""What a resumed run may change from its checkpoint, and how a change reaches the state the checkpoint restores.

Resuming, the checkpoint's config comes first, then ``--config`` and the flags. Settings read from the config as the
run goes (``timesteps``, intervals, ``grad_norm_clip``, ``kl_threshold``, loss coefficients, ``num_envs`` ...) take
effect as given. The optimizer and its schedule restore their own state, which would hide three settings:

* ``learning_rate``: the new value wins (:func:`~mappo_td.train.optim.rebase_learning_rate`: the rate in force becomes
  it; a ``torch.optim.lr_scheduler`` keeps its position on the new base rate);
* ``learning_rate_scheduler_kwargs``: the new values win (``KLAdaptiveLR`` reads them from the config; a torch
  schedule's restored attributes of those names are replaced); a name the schedule does not keep is refused;
* ``learning_rate_scheduler``: refused (one kind of schedule's state cannot become another's);
* ``experiment_name``, ``directory``: refused (a resumed run continues in its own folder; ``--fork NEW_NAME`` makes a new one).

Adam's own settings (``capturable``, ``fused``) are always this run's (:meth:`~mappo_td.train.optim.GroupOptimizer.load_state_dict`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mappo_td.config import SECTION_KEYS, TrainConfig
from mappo_td.train.optim import KLAdaptiveLR, base_learning_rate, rebase_learning_rate

if TYPE_CHECKING:
    from mappo_td.train.learner import Learner


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v) if k in SECTION_KEYS and isinstance(v, dict) else {k: v})
    return out


def config_changes(saved: dict[str, Any], cfg: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """The settings of ``cfg`` that differ from the checkpoint's config ``saved`` (a dict): name -> (old, new).

    Refuses (``ValueError``) a change of ``learning_rate_scheduler``, and of ``experiment_name`` or ``directory`` (a
    resumed run continues in its own folder; ``fork`` gives a new one).

    Example:
        >>> saved = TrainConfig.from_dict({"timesteps": 32}).to_dict()
        >>> config_changes(saved, TrainConfig.from_dict({"timesteps": 64, "learning_rate": 0.05}))
        {'learning_rate': (0.001, 0.05), 'timesteps': (32, 64)}
    """
    old, new = _flat(TrainConfig.from_dict(saved).to_dict()), _flat(json.loads(json.dumps(cfg.to_dict(), default=str)))
    changes = {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}
    moved = [k for k in ("experiment_name", "directory") if k in changes]
    if moved:
        raise ValueError(f"{' and '.join(moved)} differ from the checkpoint's ({', '.join(f'{changes[k][0]!r}' for k in moved)}): a "
                         "resumed run continues in its own run folder. To continue in a new folder, pass --fork NEW_NAME "
                         "(beside the original) and leave out --experiment-name/--directory.")
    if "learning_rate_scheduler" in changes:
        was, now = changes["learning_rate_scheduler"]
        raise ValueError(f"learning_rate_scheduler {now!r} differs from the checkpoint's {was!r}: the schedule's state cannot "
                         f"carry over to another kind of schedule. Resume with the checkpoint's ({was!r}; drop the flag), or "
                         "change its learning_rate or learning_rate_scheduler_kwargs instead.")
    return changes


def describe_changes(changes: dict[str, tuple[Any, Any]]) -> tuple[str, ...]:
    """``"name old -> new"`` per change, for the line a resumed run prints.

    Example:
        >>> describe_changes({"learning_rate": (0.001, 0.05)})
        ('learning_rate 0.001 -> 0.05',)
    """
    def show(v: Any) -> str:
        return json.dumps(v) if isinstance(v, (dict, list)) else str(v)

    return tuple(f"{k} {show(a)} -> {show(b)}" for k, (a, b) in changes.items())


def optimizer_settings(learner: Learner) -> dict[str, tuple[Any, Any]]:
    """Per group, what the config gives the optimizer and schedule (base learning rate, a torch schedule's state), taken
    before a checkpoint is restored over them; :func:`apply_changes` puts back what changed."""
    return {g.name: (base_learning_rate(g.optimizer, g.scheduler),
                     g.scheduler.state_dict() if g.scheduler is not None and not isinstance(g.scheduler, KLAdaptiveLR) else None)
            for g in learner.groups}


def apply_changes(learner: Learner, settings: dict[str, tuple[Any, Any]], changes: dict[str, tuple[Any, Any]]) -> None:
    """After a checkpoint was restored into ``learner``: make a changed ``learning_rate`` and a torch schedule's changed
    ``learning_rate_scheduler_kwargs`` win over the restored state (``settings``: :func:`optimizer_settings` before)."""
    old_kw, new_kw = changes.get("learning_rate_scheduler_kwargs", ({}, {}))
    keys = sorted(k for k in {*old_kw, *new_kw} if old_kw.get(k) != new_kw.get(k))
    for g in learner.groups:
        lr, fresh = settings[g.name]
        if "learning_rate" in changes:
            rebase_learning_rate(g.optimizer, g.scheduler, lr)
        if keys and fresh is not None:
            kept = [k for k in keys if k not in fresh]
            if kept:
                raise ValueError(f"learning_rate_scheduler_kwargs {kept} cannot change on resume: "
                                 f"{type(g.scheduler).__name__} does not keep them by that name; resume with the checkpoint's {old_kw}.")
            g.scheduler.load_state_dict({**g.scheduler.state_dict(), **{k: fresh[k] for k in keys}})
