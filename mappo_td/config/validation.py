"""Checks of the configuration's sections: field ranges (from the fields' metadata) and the combinations that cannot work.

Called by :class:`~mappo_td.config.TrainConfig` on construction, so a bad value is reported before anything is built.
The checks read the sections (:mod:`mappo_td.config.sections`), never ``TrainConfig`` itself: no import cycle.
"""

from __future__ import annotations

import math

from mappo_td.config.schema import check_fields
from mappo_td.config.sections import EnvConfig, MAPPOConfig, ModelConfig


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(msg)


def _check_chunks(m: MAPPOConfig, e: EnvConfig, model: ModelConfig) -> None:
    n = m.data_chunk_length
    divisors = [d for d in range(1, m.rollouts + 1) if m.rollouts % d == 0]
    _check(m.rollouts % n == 0, f"data_chunk_length={n} must divide rollouts={m.rollouts} (recurrent training cuts each env's "
                                f"rollout into whole chunks, no padding); use one of {divisors}, or rollouts a multiple of {n}.")
    chunks = e.num_envs * m.rollouts // n
    _check(chunks >= m.mini_batches, f"mini_batches={m.mini_batches} needs at least as many chunks of data_chunk_length={n} steps; "
                                     f"an update has {chunks} ({e.num_envs} envs x {m.rollouts // n} per env).")
    _check(not model.shared_model, "model.shared_model is not available with model.body='gru'; use separate policy and critic.")


def _check_workers(e: EnvConfig) -> None:
    if e.num_workers < 2:
        return
    _check(e.backend == "pettingzoo", f"env.num_workers={e.num_workers} is for PettingZoo; {e.backend} steps all its envs as one "
                                      "batch on the device: leave num_workers at 0.")
    _check(e.num_workers <= e.num_envs, f"env.num_workers={e.num_workers} with num_envs={e.num_envs}: each worker process steps at "
                                        f"least one env; use num_workers <= {e.num_envs}, or more envs.")


def validate(mappo: MAPPOConfig, env: EnvConfig, model: ModelConfig, fast: str = "off") -> None:
    """Reject out-of-range values and combinations that cannot work, with a message that says what is allowed.

    Example:
        >>> validate(MAPPOConfig(rollouts=-1), EnvConfig(), ModelConfig())
        Traceback (most recent call last):
        ...
        ValueError: rollouts must be an integer >= 1, got -1
    """
    for prefix, section in (("", mappo), ("experiment.", mappo.experiment), ("env.", env), ("model.", model)):
        check_fields(section, prefix)
    _check_mappo(mappo)
    _check_model(model)
    if model.body == "gru":
        _check_chunks(mappo, env, model)
    _check_workers(env)
    frames = env.num_envs * mappo.rollouts  # TrainConfig.frames_per_iteration
    _check(frames >= 2, "advantages are standardized over the collected batch: env.num_envs x rollouts must be "
                        f">= 2 (got {env.num_envs} x {mappo.rollouts}); collect more frames per update.")
    _check(frames // mappo.mini_batches >= 1, f"mini_batches={mappo.mini_batches} is larger than the {frames} frames collected per update")
    sched = mappo.learning_rate_scheduler
    sched_name = sched if isinstance(sched, str) or sched is None else getattr(sched, "__name__", "")
    _check(fast == "off" or sched_name in (None, "KLAdaptiveLR"),
           f"fast={fast!r} keeps the learning rate on the device: use learning_rate_scheduler='KLAdaptiveLR' "
           "(a device tensor), or fast='off' to use a torch.optim.lr_scheduler.")


def _check_mappo(m: MAPPOConfig) -> None:
    _check(m.rewards_shaper is None or callable(m.rewards_shaper), "rewards_shaper must be None or a callable(reward, timestep, timesteps)")
    for name in ("state_preprocessor", "shared_state_preprocessor", "value_preprocessor"):
        v = getattr(m, name)
        shown = ["RunningStandardScaler"] + (["ValueNorm", "PopArt"] if name == "value_preprocessor" else [])
        _check(v is None or getattr(v, "__name__", v) in (*shown, "RunningStandardizer"),
               f"{name} must be None or one of {shown}, got {v!r}")


def _check_model(mc: ModelConfig) -> None:
    _check((len(mc.hidden_sizes) >= 1 or mc.body == "gru") and all(isinstance(h, int) and h >= 1 for h in mc.hidden_sizes),
           f"model.hidden_sizes must be a non-empty list of positive integers (empty only with body='gru': a Linear after the GRU), "
           f"got {mc.hidden_sizes!r}")
    _check(all(isinstance(h, int) and h >= 1 for h in mc.rnn_encoder), f"model.rnn_encoder must list positive integers, got {mc.rnn_encoder!r}")
    for name, on in (("rnn_encoder", bool(mc.rnn_encoder)), ("layer_norm", mc.layer_norm), ("init='orthogonal'", mc.init == "orthogonal")):
        _check(not on or mc.share_params, f"model.{name} needs model.share_params=true (one network per group); drop it or share parameters.")
        _check(not on or name.startswith("init") or mc.body == "gru", f"model.{name} is for body='gru' (the MAPPO reference's recurrent "
                                                                       "layout); set model.body='gru' or drop it.")
    _check(math.isfinite(mc.log_std_init), f"model.log_std_init must be a finite number, got {mc.log_std_init!r}")
    _check(not (mc.shared_model and mc.centralized_critic),
           "model.shared_model needs model.centralized_critic=false: a shared trunk reads one input for both heads")


def checkpoint_times(interval: int, rollouts: int, timesteps: int, limit: int) -> list[int]:
    """The first ``limit`` timesteps at which a run takes a checkpoint before its end (each one restarts every episode):
    the first update (one every ``rollouts`` steps) at or past each multiple of ``interval``.

    Example:
        >>> checkpoint_times(100, 16, 4000, 4), checkpoint_times(40, 8, 100, 9)
        ([112, 208, 304, 400], [40, 80])
    """
    times: list[int] = []
    t = 0
    while len(times) < limit:
        t = -(-((t // interval + 1) * interval) // rollouts) * rollouts
        if t >= timesteps:
            break
        times.append(t)
    return times


def check_checkpoint_interval(mappo: MAPPOConfig, timesteps: int, episode: int | None) -> str | None:
    """Refuse a ``checkpoint_interval`` under which episodes of ``episode`` steps (None: unknown, nothing checked) cannot
    finish, since each checkpoint restarts every episode (so that a resumed run is exact); return a warning to show when
    it is not a multiple of ``episode`` and so cuts the episodes running at each checkpoint short.

    Example:
        >>> from mappo_td.config.sections import ExperimentConfig
        >>> print(check_checkpoint_interval(MAPPOConfig(), 4000, 100))
        None
        >>> check_checkpoint_interval(MAPPOConfig(rollouts=8, experiment=ExperimentConfig(checkpoint_interval=40)), 4000, 100)
        Traceback (most recent call last):
        ...
        ValueError: checkpoint_interval=40 is shorter than an episode (100 steps): each checkpoint restarts every episode (so that a resumed run is exact), so no episode would ever finish. Use checkpoint_interval >= 104 (a multiple of 200 cuts no episode short) or 0 (a checkpoint only at the end).
    """
    interval, r = mappo.experiment.checkpoint_interval, mappo.rollouts
    if not interval or episode is None:
        return None
    times = checkpoint_times(interval, r, timesteps, r // math.gcd(interval, r) + 2)  # the gaps repeat after that
    gaps = [b - a for a, b in zip([0, *times], times)]
    restart = "each checkpoint restarts every episode (so that a resumed run is exact)"
    if gaps and min(gaps) < episode:
        what = (f"checkpoint_interval={interval} is shorter than an episode ({episode} steps)" if set(gaps) == {interval} else
                f"checkpoint_interval={interval} puts checkpoints as little as {min(gaps)} steps apart (they fall on updates, every "
                f"rollouts={r} steps: at {', '.join(map(str, times[:3]))} ...), less than an episode ({episode} steps)")
        never = "no episode would ever finish" if max(gaps) < episode else f"the episodes restarted less than {episode} steps before the next checkpoint never finish"
        raise ValueError(f"{what}: {restart}, so {never}. Use checkpoint_interval >= {-(-episode // r) * r} (a multiple of "
                         f"{math.lcm(episode, r)} cuts no episode short) or 0 (a checkpoint only at the end).")
    cut = sorted({g % episode for g in gaps} - {0})
    if interval % episode == 0 or not cut:
        return None
    steps = str(cut[0]) if len(cut) == 1 else f"{cut[0]} to {cut[-1]}"
    return (f"checkpoint_interval={interval} is not a multiple of the episode length ({episode} steps): {restart}, cutting the "
            f"episodes running then short after {steps} of their {episode} steps (the rest of them is never played, and they do "
            f"not count in reward/episode_mean). A multiple of {math.lcm(episode, r)} cuts none.")
