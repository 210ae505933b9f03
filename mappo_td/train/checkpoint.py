"""Checkpoint files: written atomically, read back without executing code.

A checkpoint is a ``torch.save`` dict of tensors and plain containers only, so it
loads with ``torch.load(weights_only=True)``. With ``store_separately`` each model
goes to its own file beside the main one, which lists them. :func:`learner_state` /
:func:`load_learner_state` hold everything a run needs to continue exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mappo_td.atomic import atomic_write
from mappo_td.envs import reseed, set_simulator_rng_state, simulator_rng_state
from mappo_td.train.checkpoint_files import checkpoint_path, checkpoints_in, prune_checkpoints
from mappo_td.train.distributed import gather_objects, rank_seed

if TYPE_CHECKING:
    from mappo_td.train.learner import Learner

FORMAT = "mappo_td-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: truncated, corrupt, foreign or mismatched."""


REQUIRED = ("models", "optimizers", "schedulers", "preprocessors", "rng", "counters", "config", "group_map")


def first_line(err: BaseException) -> str:
    """``TypeName: first line of the message`` (the type alone when the message is empty).

    Example:
        >>> first_line(EOFError()), first_line(ValueError("bad\\nmore"))
        ('EOFError', 'ValueError: bad')
    """
    lines = str(err).splitlines()
    return f"{type(err).__name__}: {lines[0][:300]}" if lines and lines[0] else type(err).__name__


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (:func:`mappo_td.atomic.atomic_write`).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp(); atomic_save({"x": torch.ones(2)}, f"{d}/a.pt")
        >>> torch.load(f"{d}/a.pt", weights_only=True)["x"]
        tensor([1., 1.])
    """
    atomic_write(path, lambda f: torch.save(obj, f))


def _load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist.") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder without checkpoints; pass a checkpoint file or a checkpoints folder.") from None
    except Exception as err:  # empty or truncated file, garbage bytes, pickled code ...
        raise CheckpointError(
            f"checkpoint {path} is corrupt, truncated or not a plain-tensor checkpoint ({first_line(err)}); "
            "resume from an earlier checkpoint in the same folder."
        ) from None


def save_checkpoint(state: dict[str, Any], path: str | Path, *, store_separately: bool = False) -> Path:
    """Write ``state`` (with ``state["models"]``: name -> state_dict) to ``path`` atomically; returns ``path``.

    Example:
        >>> import tempfile
        >>> state = {**{k: {} for k in REQUIRED}, "models": {"a/policy": {"w": torch.ones(1)}}}
        >>> p = save_checkpoint(state, f"{tempfile.mkdtemp()}/agent_5.pt", store_separately=True)
        >>> load_checkpoint(p.parent)["models"]["a/policy"]["w"]
        tensor([1.])
    """
    path = Path(path)
    state = {"format": FORMAT, "version": VERSION, **state}
    if store_separately:
        files = {}
        for name, sd in state["models"].items():
            file = path.with_name(f"{path.stem}.{name.replace('/', '.')}.pt")
            atomic_save({"format": FORMAT, "model": name, "state_dict": sd}, file)
            files[name] = file.name
        state = {**state, "models": {}, "model_files": files}
    atomic_save(state, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (a file, or a folder: its newest ``agent_*.pt``).

    Raises :class:`CheckpointError` with what is wrong and what to do.

    Example:
        >>> import tempfile
        >>> load_checkpoint(tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mappo_td.train.checkpoint.CheckpointError: no checkpoint (agent_<timestep>.pt) in folder ...
    """
    path = Path(path)
    if path.is_dir() and not checkpoints_in(path) and (path / "checkpoints").is_dir():
        path = path / "checkpoints"  # a run folder: its checkpoints
    if path.is_dir():
        found = checkpoints_in(path)
        if not found:
            raise CheckpointError(f"no checkpoint (agent_<timestep>.pt) in folder {path}.")
        path = found[-1]
    state = _load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a mappo_td checkpoint (no '{FORMAT}' marker); pass a file written by mappo-td train.")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')}, this mappo_td reads version {VERSION}.")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}: it is incomplete or was not written by mappo-td train.")
    for name, file in state.get("model_files", {}).items():
        part = _load(path.with_name(file))
        if not isinstance(part, dict) or part.get("model") != name:
            raise CheckpointError(f"{path.with_name(file)} does not hold model {name!r} of checkpoint {path}.")
        state["models"][name] = part["state_dict"]
    _check_finite(state, path)
    state["path"] = str(path)
    return state


def _check_finite(state: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint whose model parameters, buffers or preprocessor statistics hold NaN/inf."""
    bad = []
    for section in ("models", "preprocessors"):
        for name, sd in state[section].items() if isinstance(state[section], dict) else ():
            for key, t in sd.items() if isinstance(sd, dict) else ():
                if isinstance(t, torch.Tensor) and t.is_floating_point() and (n := int((~torch.isfinite(t)).sum())):
                    bad.append(f"{name}: {key} has {n} non-finite value{'s' if n > 1 else ''}")
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise CheckpointError(f"{path} holds non-finite numbers ({'; '.join(bad[:3])}{more}): the run had diverged when it "
                              "was written. Evaluate or resume from an earlier checkpoint in the same folder.")


def learner_state(learner: Learner) -> dict[str, Any]:
    """Everything needed to continue exactly: models, optimizers, schedules, preprocessors, RNG states, counters.

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> state = learner_state(build_learner(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 2}})))
        >>> sorted(state["models"]), state["counters"]
        (['agents/critic', 'agents/policy'], {'timestep': 0, 'iteration': 0, 'updates': 0, 'wall_s': 0.0, 'frames': 0})
    """
    state: dict[str, Any] = {"models": {}, "optimizers": {}, "schedulers": {}, "preprocessors": {}}
    for g in learner.groups:
        state["models"][f"{g.name}/policy"] = g.policy.state_dict()
        state["models"][f"{g.name}/critic"] = g.critic.state_dict()
        state["optimizers"][g.name] = g.optimizer.state_dict()
        state["schedulers"][g.name] = g.scheduler.state_dict() if g.scheduler is not None else {}
        for k, p in g.preprocessors.items():
            state["preprocessors"][f"{g.name}/{k}"] = p.state_dict()
    # minibatch permutations come from torch's generator: its state covers them
    state["rng"] = {"torch": torch.get_rng_state(), "simulator": simulator_rng_state() if learner.cfg.env.backend == "vmas" else {}}
    if torch.cuda.is_available():
        state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
    if learner.world_size > 1:  # torchrun: every rank's generators (a collective: every rank calls this)
        state["rng_ranks"] = gather_objects(state["rng"])
        state["world_size"] = learner.world_size
    state["counters"] = {"timestep": learner.timestep, "iteration": learner.iteration, "updates": learner.updates, "wall_s": learner.wall_s,
                         "frames": learner.frames}
    state["config"] = json.dumps(learner.cfg.to_dict(), default=str)
    state["group_map"] = json.dumps(learner.group_map)
    return state


def load_learner_state(learner: Learner, state: dict[str, Any]) -> None:
    """Restore a :func:`learner_state`; refuses one made for other groups or model shapes.

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> a = build_learner(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 2}}))
        >>> b = build_learner(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 2}, "model": {"hidden_sizes": [8]}}))
        >>> load_learner_state(b, learner_state(a))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mappo_td.train.checkpoint.CheckpointError: checkpoint does not match this configuration's models (...); resume with the configuration it was trained with.
    """
    where = state.get("path", "checkpoint")
    if json.loads(state["group_map"]) != learner.group_map:
        raise CheckpointError(f"{where} was made for agent groups {state['group_map']}, this environment has {learner.group_map}.")
    try:
        for g in learner.groups:
            g.policy.load_state_dict(state["models"][f"{g.name}/policy"])
            g.critic.load_state_dict(state["models"][f"{g.name}/critic"])
            g.optimizer.load_state_dict(state["optimizers"][g.name])
            if g.scheduler is not None:
                g.scheduler.load_state_dict(state["schedulers"][g.name])
            for k, p in g.preprocessors.items():
                p.load_state_dict(state["preprocessors"][f"{g.name}/{k}"])
    except (KeyError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"{where} does not match this configuration's models ({first_line(err)}); "
                              "resume with the configuration it was trained with.") from None
    ranks = state.get("rng_ranks", [state["rng"]])
    rng = ranks[learner.rank] if len(ranks) == learner.world_size else state["rng"]  # else: evaluation (checked by training)
    torch.set_rng_state(rng["torch"])
    set_simulator_rng_state(rng.get("simulator", {}))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    c = state["counters"]
    learner.timestep, learner.iteration, learner.updates = int(c["timestep"]), int(c["iteration"]), int(c["updates"])
    learner.wall_s = float(c.get("wall_s", 0.0))
    saved_envs = json.loads(state["config"]).get("env", {}).get("num_envs", learner.cfg.env.num_envs)  # checkpoints without "frames"
    learner.frames_at = (learner.timestep, int(c.get("frames", learner.timestep * saved_envs * int(state.get("world_size", 1)))))
    restart_episodes(learner)  # the same point as the uninterrupted run, which restarts right after each checkpoint


def restart_episodes(learner: Learner) -> None:
    """Reseed what has no checkpointable generator (PettingZoo) from the timestep, then reset every env."""
    reseed(learner.env, learner.cfg.env.backend, rank_seed(learner.cfg.seed, learner.rank) + learner.timestep)
    learner.collector.reset()


def save_learner(learner: Learner, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``learner``'s checkpoint to ``path`` atomically, unless NaN/inf was collected since (then raise, keeping the last good one).

    ``extra``: more plain entries for the checkpoint (e.g. ``best_agent.pt``'s ``eval_return``). Under torchrun every
    rank calls it (it gathers each rank's random state); rank 0 writes.

    Example:
        >>> import tempfile
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> p = save_learner(build_learner(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 2}})), f"{tempfile.mkdtemp()}/agent_0.pt")
        >>> load_checkpoint(p)["counters"]["timestep"]
        0
    """
    learner.stats.raise_if_nonfinite(learner.timestep)
    state = {**learner_state(learner), **(extra or {})}
    if learner.rank == 0:  # torchrun: every rank gathers its generators into the state, rank 0 alone writes
        save_checkpoint(state, path, store_separately=learner.cfg.mappo.experiment.store_separately)
    return Path(path)


def save_run_checkpoint(learner: Learner, run_dir: str | Path) -> Path:
    """Write ``learner``'s checkpoint of its timestep into the run folder ``run_dir`` (:func:`checkpoint_path`), then keep
    only the newest ``experiment.keep_checkpoints`` there (rank 0; 0 keeps all); returns the file.

    Example:
        >>> import tempfile
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> save_run_checkpoint(build_learner(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 2}})), tempfile.mkdtemp()).name
        'agent_0.pt'
    """
    path = save_learner(learner, checkpoint_path(run_dir, learner.timestep))
    if learner.rank == 0:
        prune_checkpoints(path.parent, learner.cfg.mappo.experiment.keep_checkpoints)
    return path
