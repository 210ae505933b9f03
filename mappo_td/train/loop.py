"""The training loop, CleanRL-style: collect → advantages → epochs × minibatches → log / checkpoint.

:func:`collect` and :func:`update` are the loop's two halves, public so that other
entry points (tests, benchmarks, a distributed launcher) run exactly this code.
Between log intervals nothing is read back to the host.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.modules import set_recurrent_mode

from mappo_td.train.checkpoint import prune_checkpoints, restart_episodes, save_learner
from mappo_td.train.data import chunks, minibatches
from mappo_td.train.distributed import collectives_named
from mappo_td.train.evaluate import PeriodicEval
from mappo_td.train.interrupt import Interrupted, graceful_stop
from mappo_td.train.learner import Learner
from mappo_td.train.logging import Progress, RunLogger
from mappo_td.train.step import compute_advantages


def collect(learner: Learner) -> TensorDictBase:
    """One rollout of ``rollouts`` steps from every env with the current stochastic policy: ``[num_envs, rollouts]``.

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> lrn = build_learner(TrainConfig.from_dict({"device": "cpu", "rollouts": 5, "env": {"num_envs": 3}}))
        >>> collect(lrn).batch_size
        torch.Size([3, 5])
    """
    learner.acting.step = learner.timestep
    with torch.no_grad():
        return learner.collector.rollout().copy()  # a shallow copy: the collector reuses its buffer


def shape_rewards(learner: Learner, data: TensorDictBase) -> None:
    """Apply ``rewards_shaper(reward, timestep, timesteps)`` to every reward entry of ``data``, step by step.

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> lrn = build_learner(TrainConfig.from_dict({"device": "cpu", "rollouts": 3, "env": {"num_envs": 2},
        ...                                            "rewards_shaper": lambda r, t, n: r * 0 + t}))
        >>> data = collect(lrn); shape_rewards(lrn, data)
        >>> data["next", "agents", "reward"][0, :, 0, 0]
        tensor([0., 1., 2.])
    """
    shaper = learner.cfg.mappo.rewards_shaper
    if shaper is None:
        return
    for k in learner.reward_keys:
        reward = data.get(k)
        shaped = [torch.as_tensor(shaper(reward[:, t], learner.timestep + t, learner.cfg.timesteps), dtype=reward.dtype, device=reward.device)
                  for t in range(reward.shape[1])]
        if shaped[0].shape != reward[:, 0].shape:
            raise ValueError(f"rewards_shaper returned shape {tuple(shaped[0].shape)} for {k} of shape {tuple(reward[:, 0].shape)}; "
                             "it must return a tensor shaped like the reward it is given.")
        data.set(k, torch.stack(shaped, 1))


def update(learner: Learner, data: TensorDictBase) -> None:
    """Advantages for ``data``, then ``learning_epochs`` × ``mini_batches`` gradient steps of every group.

    With ``model.body="gru"`` minibatches are whole chunks of ``data_chunk_length`` steps
    (:func:`~mappo_td.train.data.chunks`), run in TorchRL's recurrent (sequence) mode.

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> lrn = build_learner(TrainConfig.from_dict({"device": "cpu", "rollouts": 4, "learning_epochs": 3, "env": {"num_envs": 2}}))
        >>> update(lrn, collect(lrn)); lrn.updates
        6
    """
    m = learner.cfg.mappo
    for g in learner.groups:
        compute_advantages(g, data)
    recurrent = learner.cfg.model.body == "gru"  # whole chunks of consecutive steps, networks in sequence mode
    selected = data.select(*learner.update_keys)
    flat = learner.last_batch = chunks(selected, m.data_chunk_length) if recurrent else selected.reshape(-1)
    with set_recurrent_mode(recurrent):
        for _ in range(m.learning_epochs):
            for mask in learner.keep_updating.values():
                mask.fill_(True)  # a new epoch: every group (or agent) updates again
            for batch in minibatches(flat, m.mini_batches):
                for g in learner.groups:
                    mask = learner.keep_updating.get(g.name)
                    step = learner.step_fns[g.name]
                    if mask is None:
                        learner.stats.add_terms(g.name, step(batch))
                    else:  # the step returns the mask: a wrapped (captured) step works on its own copy
                        terms, new_mask = step(batch, mask)
                        mask.copy_(new_mask)
                        learner.stats.add_terms(g.name, terms)
                learner.updates += 1
                learner.stats.count_update()
    learner.stats.check_params(learner.groups, learner.timestep)


def _next(timestep: int, interval: int) -> float:
    return (timestep // interval + 1) * interval if interval else math.inf


def log_row(learner: Learner, fps: float) -> dict[str, Any]:
    """The row logged now: counters, wall time, speed, episode statistics, per-group loss terms and learning rates (host reads).

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> row = log_row(build_learner(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 2}})), fps=100.0)
        >>> row["frames_per_s"], round(row["agents/learning_rate"], 6)
        (100.0, 0.001)
    """
    head = {"timestep": learner.timestep, "frames": learner.frames,
            "iteration": learner.iteration, "time_s": learner.wall_s, "frames_per_s": fps}
    row = learner.stats.row(head)
    for g in learner.groups:
        row[f"{g.name}/learning_rate"] = float(g.optimizer.effective_lr().float().mean())
    return row


def _checkpoint(learner: Learner, logger: RunLogger) -> Path:
    path = save_learner(learner, logger.run_dir / "checkpoints" / f"agent_{learner.timestep}.pt")
    if learner.rank == 0:
        prune_checkpoints(path.parent, learner.cfg.mappo.experiment.keep_checkpoints)
    return path


def train(learner: Learner, logger: RunLogger) -> dict[str, Any]:
    """Run until ``cfg.timesteps``, writing through ``logger``; returns a summary (last logged row, counters, paths).

    The first SIGINT (Ctrl-C) or SIGTERM finishes the current update, logs a row, writes a checkpoint and raises
    :class:`~mappo_td.train.interrupt.Interrupted`; a second one aborts at once (``KeyboardInterrupt``). With
    ``experiment.eval_interval`` the row also holds ``eval/return_mean`` (see
    :class:`~mappo_td.train.evaluate.PeriodicEval`); an evaluation that raises still leaves its row (NaN eval
    columns) and a checkpoint at that timestep, then its error propagates. Under torchrun every rank runs it (rows
    count every rank's frames; rank 0's ``logger`` writes, the others' is a :class:`~mappo_td.train.logging.NullLogger`);
    a failed or timed-out collective (a rank died) raises :class:`~mappo_td.train.distributed.DistributedError`.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> cfg = TrainConfig.from_dict({"device": "cpu", "rollouts": 4, "timesteps": 8, "progress": False, "env": {"num_envs": 2}})
        >>> summary = train(build_learner(cfg), RunLogger(Path(tempfile.mkdtemp()) / "run", cfg))
        >>> summary["timestep"], Path(summary["checkpoint"]).name
        (8, 'agent_8.pt')
    """
    with collectives_named(lambda: learner.timestep):
        return _train(learner, logger)


def _train(learner: Learner, logger: RunLogger) -> dict[str, Any]:
    cfg, m = learner.cfg, learner.cfg.mappo
    x = m.experiment
    world = learner.world_size
    bar = Progress.of(cfg, learner.timestep, learner.device, world, learner.frames) if learner.rank == 0 else None
    evaluator = PeriodicEval(learner, logger.run_dir) if x.eval_interval else None
    last_row: dict[str, Any] = {}
    t_log, frames_log = time.perf_counter(), 0
    next_write, next_ckpt = _next(learner.timestep, x.write_interval), _next(learner.timestep, x.checkpoint_interval)
    next_eval = _next(learner.timestep, x.eval_interval)
    t_start, wall_before = time.perf_counter(), learner.wall_s
    failed: Exception | None = None
    with graceful_stop() as stop:
        while learner.timestep < cfg.timesteps:
            # 1. collect `rollouts` steps from every env with the current stochastic policy
            try:
                data = collect(learner)
            except Exception as err:  # e.g. the simulator refusing NaN actions: say why, if that is why
                learner.stats.raise_if_nonfinite(learner.timestep, cause=err)
                raise
            shape_rewards(learner, data)
            learner.stats.track(data)
            learner.timestep += m.rollouts
            learner.iteration += 1
            frames_log += data.numel()
            learner.wall_s = wall_before + time.perf_counter() - t_start

            # 2-3. advantages, then epochs x minibatches (not before learning_starts)
            if learner.timestep - 1 >= m.learning_starts:
                update(learner, data)
            if bar is not None:
                bar.update(data.numel() * world, learner.stats.recent_rewards())
            stopping = stop.agreed()  # Ctrl-C / SIGTERM: the update is done; log, checkpoint, stop

            # 4. log (with an evaluation when due) / checkpoint at intervals (the only host reads)
            evaluating = evaluator is not None and learner.timestep >= next_eval
            if learner.timestep >= next_write or learner.timestep >= cfg.timesteps or evaluating or stopping:
                learner.stats.raise_if_nonfinite(learner.timestep)
                fps = frames_log * world / (time.perf_counter() - t_log)  # every rank collects as many frames
                last_row = log_row(learner, fps)
                if evaluator is not None:
                    last_row.update(dict.fromkeys(PeriodicEval.COLUMNS, math.nan))
                    failed = _evaluate(evaluator, logger, last_row) if evaluating else None
                    next_eval = _next(learner.timestep, x.eval_interval)
                logger.write(last_row)
                t_log, frames_log = time.perf_counter(), 0
                next_write = _next(learner.timestep, x.write_interval)
            if stopping or failed is not None:  # an evaluation that failed loses neither the row nor the training
                path = _checkpoint(learner, logger)
                _close(bar, logger)
                raise failed or Interrupted(learner.timestep, path)
            if learner.timestep >= next_ckpt and learner.timestep < cfg.timesteps:
                _checkpoint(learner, logger)
                next_ckpt = _next(learner.timestep, x.checkpoint_interval)
                restart_episodes(learner)  # a resumed run restarts episodes here too: resume is exact
    path = _checkpoint(learner, logger)
    _close(bar, logger)
    return {**last_row, "timestep": learner.timestep, "iteration": learner.iteration, "updates": learner.updates,
            "checkpoint": str(path), "run_dir": str(logger.run_dir)}


def _evaluate(evaluator: PeriodicEval, logger: RunLogger, row: dict[str, Any]) -> Exception | None:
    """Evaluate into ``row`` (and the loggers' frames); the error instead, when it fails, for the loop to raise once the
    row and a checkpoint are written."""
    try:
        row.update(evaluator.run())
        if evaluator.frames:
            logger.log_frames("eval/episode", evaluator.frames, row["timestep"])
    except Exception as err:
        return err
    return None


def _close(bar: Progress | None, logger: RunLogger) -> None:
    if bar is not None:
        bar.close()
    logger.close()
