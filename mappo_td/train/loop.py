"""The training loop, CleanRL-style: collect → advantages → epochs × minibatches → log / checkpoint.

:func:`collect` is the first half of an iteration, :func:`~mappo_td.train.iteration.learn` (advantages, the epochs,
log and checkpoint) the rest; both are public so that other entry points (tests, benchmarks, the skrl-style agent,
a distributed launcher) run exactly this code. Between log intervals nothing is read back to the host.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from mappo_td.train.checkpoint import save_run_checkpoint
from mappo_td.train.distributed import collectives_named
from mappo_td.train.evaluate import PeriodicEval
from mappo_td.train.interrupt import graceful_stop
from mappo_td.train.iteration import Session, learn, log_row, shape_rewards, update
from mappo_td.train.learner import Learner
from mappo_td.train.logging import Progress, RunLogger

__all__ = ["collect", "learn", "log_row", "shape_rewards", "train", "update"]


def collect(learner: Learner) -> TensorDictBase:
    """One rollout of ``rollouts`` steps from every env with the current stochastic policy: ``[num_envs, rollouts]``.
    An error of the simulator that NaN/inf explains (e.g. refusing NaN actions) is raised as a
    :class:`~mappo_td.train.stats.NonFiniteError` that says so.

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> lrn = build_learner(TrainConfig.from_dict({"device": "cpu", "rollouts": 5, "env": {"num_envs": 3}}))
        >>> collect(lrn).batch_size
        torch.Size([3, 5])
    """
    learner.acting.step = learner.timestep
    try:
        with torch.no_grad():
            return learner.collector.rollout().copy()  # a shallow copy: the collector reuses its buffer
    except Exception as err:
        learner.stats.raise_if_nonfinite(learner.timestep, cause=err)
        raise


def train(learner: Learner, logger: RunLogger) -> dict[str, Any]:
    """Run until ``cfg.timesteps``, writing through ``logger``; returns a summary (last logged row, counters, paths).

    The first SIGINT (Ctrl-C) or SIGTERM finishes the current update, logs a row, writes a checkpoint and raises
    :class:`~mappo_td.train.interrupt.Interrupted`; a second one aborts at once (``KeyboardInterrupt``). With
    ``experiment.eval_interval`` the row also holds ``eval/return_mean`` (see
    :class:`~mappo_td.train.evaluate.PeriodicEval`); an evaluation that raises still leaves its row (NaN eval
    columns) and a checkpoint at that timestep, then its error propagates. Under torchrun every rank runs it (rows
    count every rank's frames; rank 0's ``logger`` writes, the others' is a ``NullLogger``);
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
    cfg = learner.cfg
    bar = Progress.of(cfg, learner.timestep, learner.device, learner.world_size, learner.frames) if learner.rank == 0 else None
    evaluator = PeriodicEval(learner, logger.run_dir) if cfg.mappo.experiment.eval_interval else None
    session = Session(logger, evaluator, bar, wall_before=learner.wall_s)
    with collectives_named(lambda: learner.timestep), graceful_stop() as stop:
        session.stop = stop.agreed
        try:
            while learner.timestep < cfg.timesteps:
                data = collect(learner)  # 1. `rollouts` steps from every env with the current stochastic policy
                # 2-4. advantages, epochs x minibatches (from learning_starts), log / evaluate / checkpoint at intervals
                learn(learner, data, session, timestep=learner.timestep + cfg.mappo.rollouts, timesteps=cfg.timesteps)
            path = session.last_checkpoint or save_run_checkpoint(learner, logger.run_dir)  # nothing to train: still one
        finally:
            session.close()
    return {**session.last_row, "timestep": learner.timestep, "iteration": learner.iteration, "updates": learner.updates,
            "checkpoint": str(path), "run_dir": str(logger.run_dir)}
