"""Training units: build, advantages and update step, minibatches, acting, the loop, stats, logs, checkpoints, evaluation."""

from mappo_td.train.acting import ActingPolicy
from mappo_td.train.build import Group, build_groups
from mappo_td.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mappo_td.train.data import chunks, minibatches, update_keys
from mappo_td.train.distributed import DistributedError
from mappo_td.train.evaluate import PeriodicEval, RenderError, evaluate
from mappo_td.train.interrupt import Interrupted
from mappo_td.train.iteration import Session, flat_batch, learn, update
from mappo_td.train.learner import Learner, build_learner
from mappo_td.train.loop import collect
from mappo_td.train.optim import GroupOptimizer, KLAdaptiveLR
from mappo_td.train.stats import NonFiniteError, TrainingStats
from mappo_td.train.step import LOSS_TERMS, compute_advantages, masked_update_step, update_step

__all__ = [
    "LOSS_TERMS", "ActingPolicy", "CheckpointError", "DistributedError", "Group", "GroupOptimizer", "Interrupted", "KLAdaptiveLR", "Learner", "NonFiniteError", "PeriodicEval",
    "RenderError", "Session", "TrainingStats", "build_groups", "build_learner", "chunks", "collect", "compute_advantages", "evaluate", "flat_batch", "learn", "load_checkpoint",
    "masked_update_step", "minibatches", "save_checkpoint", "update", "update_keys", "update_step",
]
