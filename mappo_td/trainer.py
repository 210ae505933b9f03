"""``MAPPOTrainer``: a small facade over the training units in :mod:`mappo_td.train`.

Build (:func:`~mappo_td.train.learner.build_learner`), train
(``train``), evaluate (:func:`~mappo_td.train.evaluate`),
save and restore (:mod:`~mappo_td.train.checkpoint`). The trainer holds the
:class:`~mappo_td.train.learner.Learner` and the run folder, nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tensordict import TensorDictBase
from torchrl.envs import EnvBase

from mappo_td.config import TrainConfig, merge_config
from mappo_td.train import loop
from mappo_td.train.checkpoint import CheckpointError, learner_state, load_checkpoint, load_learner_state, save_learner
from mappo_td.train.checkpoint_files import checkpoint_path
from mappo_td.train.distributed import collectives_named, on_rank0
from mappo_td.train.evaluate import evaluate
from mappo_td.train.learner import Learner, build_learner
from mappo_td.train.logging import NullLogger, Resume, RunLogger, fork_dir, new_run_dir, prepare_resume
from mappo_td.train.resume import apply_changes, config_changes, describe_changes, optimizer_settings
from mappo_td.train.run_folder import RunLock, check_new_run_dir, claim_run_dir, lock_run_dir


class MAPPOTrainer:
    """Build and run MAPPO from a :class:`TrainConfig`.

    Example:
        >>> import tempfile
        >>> cfg = TrainConfig.from_dict({"timesteps": 32, "rollouts": 16, "env": {"num_envs": 4, "max_steps": 8},
        ...                              "model": {"hidden_sizes": [16]}, "progress": False, "device": "cpu",
        ...                              "experiment": {"directory": tempfile.mkdtemp(), "experiment_name": "doc"}})
        >>> summary = MAPPOTrainer(cfg).train()
        >>> summary["timestep"], summary["updates"]
        (32, 32)
    """

    def __init__(self, cfg: TrainConfig, env: EnvBase | None = None) -> None:
        self.learner: Learner = build_learner(cfg, env)
        self.run_dir: Path | None = None  # set by train() (a new folder, or where a resumed run continues)
        self.resume: Resume | None = None  # set by from_checkpoint()
        self._lock: RunLock | None = None  # rank 0, while train() runs: the run folder's lock
        self._purge: int | None = None  # a resumed run: TensorBoard's purge step (the checkpoint's timestep + 1) for its next log

    # Views of the learner's state, for users and tests.
    cfg = property(lambda self: self.learner.cfg, doc="The configuration.")
    device = property(lambda self: self.learner.device, doc="The training device.")
    env = property(lambda self: self.learner.env, doc="The training environment.")
    group_map = property(lambda self: self.learner.group_map, doc="``{group: [agent names]}``.")
    groups = property(lambda self: self.learner.groups, doc="One :class:`~mappo_td.train.build.Group` per agent group.")
    acting = property(lambda self: self.learner.acting, doc="The acting policy the collector runs.")
    collector = property(lambda self: self.learner.collector, doc="TorchRL's collector.")
    stats = property(lambda self: self.learner.stats, doc="Device-side training statistics.")
    timestep = property(lambda self: self.learner.timestep, doc="Environment steps taken (each advances every parallel env).")
    iteration = property(lambda self: self.learner.iteration, doc="Rollouts collected.")
    updates = property(lambda self: self.learner.updates, doc="Gradient steps taken.")

    def collect(self) -> TensorDictBase:
        """One rollout ``[num_envs, rollouts]`` with the current stochastic policy (counters unchanged)."""
        return loop.collect(self.learner)

    def train(self) -> dict[str, Any]:
        """Run until ``cfg.timesteps`` (the first multiple of ``rollouts`` at or past it: :meth:`TrainConfig.end_timestep`);
        returns a summary (last logged row, counters, paths).

        The run folder is locked while it trains (see :mod:`mappo_td.train.run_folder`): a new run never writes into
        a folder that holds one, and a run that another process trains now cannot be resumed.
        """
        if self.timestep >= self.cfg.timesteps:
            state = ("is finished: it reached timestep" if self.cfg.end_timestep() == self.timestep else "is already past timesteps, at")
            raise ValueError(f"nothing to train: the run {state} {self.timestep} (timesteps={self.cfg.timesteps}, in updates of "
                             f"rollouts={self.cfg.mappo.rollouts} steps). To train it further, resume with a larger --timesteps, "
                             f"e.g. --timesteps {2 * self.timestep}.")
        try:
            with collectives_named(lambda: self.timestep):  # loop.train names its own
                logger = self._open_run()
            return loop.train(self.learner, logger)
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _open_run(self) -> RunLogger | NullLogger:
        """Hold the run folder (see :meth:`train`) and open its logger (rank 0; the other ranks log nowhere)."""
        lrn = self.learner
        purge = self._purge  # TensorBoard: hide what an earlier session logged after the checkpoint
        if self.resume is not None:
            r = self.resume
            if r.world_size != lrn.world_size:
                raise CheckpointError(f"{r.checkpoint} was written by a run of {r.world_size} process(es); this run has "
                                      f"{lrn.world_size}. Resume with the same number (torchrun --nproc-per-node "
                                      f"{r.world_size} ..., or no torchrun for 1): each process continues its own environments.")
        # torchrun: rank 0 names, claims (a new run) or locks (a resumed one) and writes the run; an error reaches every rank
        run_dir = on_rank0(self._hold_run_dir)
        self.run_dir, self.resume = run_dir, None
        made: dict[str, RunLogger] = {}
        on_rank0(lambda: made.setdefault("log", RunLogger(run_dir, self.cfg, purge_step=purge)) and None)  # an error there stops every rank
        logger = made.get("log") or NullLogger(run_dir)
        self.run_dir, self._purge = logger.run_dir, None  # purged once: a later train() continues this session's events
        return logger

    def _hold_run_dir(self) -> Path:
        if self.resume is not None:
            self._lock = prepare_resume(self.resume)
        elif self.run_dir is not None:  # this trainer's own run (trained or saved before): continue there
            self._lock = lock_run_dir(self.run_dir)
        else:
            self._lock = claim_run_dir(new_run_dir(self.cfg))
        return self._lock.run_dir

    def evaluate(self, episodes: int = 10, render: str | None = None, env: EnvBase | None = None) -> dict[str, float]:
        """Mean return of the deterministic policy over ``episodes`` episodes (see :func:`mappo_td.train.evaluate`)."""
        return evaluate(self.learner, episodes, render=render, env=env)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (see ``mappo_td.train.checkpoint.learner_state``)."""
        return learner_state(self.learner)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; refuses one made for other groups or model shapes."""
        load_learner_state(self.learner, state)

    def save(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint (default: ``<run>/checkpoints/agent_<timestep>.pt``), atomically. Its run folder is taken as
        :meth:`train` takes it: a new run's claimed, a resumed run's prepared (a fork's made), the folder locked meanwhile."""
        if path is not None:
            return save_learner(self.learner, path)
        held = self._lock is None  # not inside train(): hold the folder for this write only
        if held:
            self.run_dir = on_rank0(self._hold_run_dir)
            self.resume = None
        try:
            return save_learner(self.learner, checkpoint_path(self.run_dir, self.timestep))
        finally:
            if held and self._lock is not None:
                self._lock.release()
                self._lock = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, overrides: dict[str, Any] | None = None, env: EnvBase | None = None, *,
                        fork: str | None = None, overwrite_later: bool = False) -> MAPPOTrainer:
        """Rebuild the trainer saved at ``path`` (a file or a checkpoints folder) and restore its state. Loading writes nothing.

        ``overrides`` (a config dict, merged over the saved one) can extend the run, e.g. ``{"timesteps": 10_000}``.
        :meth:`train` then continues in the checkpoint's run folder, which it refuses when later checkpoints are there,
        unless ``fork`` (a new run folder beside it, by name) or ``overwrite_later`` (see
        ``mappo_td.train.logging.prepare_resume``). What may change from the checkpoint's config, and how: see
        :mod:`mappo_td.train.resume`; ``trainer.resume.changes`` lists the changes.
        """
        state = load_checkpoint(path)
        saved = json.loads(state["config"])
        cfg = TrainConfig.from_dict(merge_config(saved, overrides or {}))
        changes = config_changes(saved, cfg)
        trainer = cls(cfg, env=env)
        settings = optimizer_settings(trainer.learner)
        trainer.load_state_dict(state)
        apply_changes(trainer.learner, settings, changes)
        r = Resume(Path(state["path"]), trainer.timestep, fork, overwrite_later, int(state.get("world_size", 1)), describe_changes(changes))
        if r.run_dir is None:  # a checkpoint kept outside a run folder: a fork goes where a new run would
            r.fork_parent = Path(cfg.mappo.experiment.directory or "runs")
        if fork is not None:
            check_new_run_dir(fork_dir(r), instead="pass another --fork NEW_NAME")  # said now, before anything is trained
        trainer.resume, trainer.run_dir, trainer._purge = r, r.run_dir, trainer.timestep + 1
        return trainer
