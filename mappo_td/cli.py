"""``mappo-td``: train (default: MAPPO on VMAS navigation), resume, evaluate, plot; the commands and examples are
``mappo_td.cli_parser.USAGE`` (``mappo-td --help``), the parser :func:`mappo_td.cli_parser.build_parser`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from mappo_td.cli_parser import build_parser, overrides, parse_command_line, read_config
from mappo_td.config import TrainConfig, default_experiment_name, merge_config, preset
from mappo_td.plot import SEED_SUFFIX

__all__ = ["build_parser", "describe", "main", "read_config"]


def describe(err: BaseException) -> str:
    """The error's message, with where it came from when that is inside a library rather than mappo_td.

    Example:
        >>> describe(ValueError("rollouts must be an integer >= 1, got 0"))
        'rollouts must be an integer >= 1, got 0'
    """
    frames = traceback.extract_tb(err.__traceback__)
    if not frames or "mappo_td" in Path(frames[-1].filename).parts:
        return str(err) or type(err).__name__
    ours = [f for f in frames if "mappo_td" in Path(f.filename).parts]
    where = f" while in {Path(ours[-1].filename).stem}.{ours[-1].name}" if ours else ""
    lib = Path(frames[-1].filename)
    return (f"{type(err).__name__} from {lib.parent.name}/{lib.name}:{frames[-1].lineno}{where}: {err} "
            "(set MAPPO_TD_DEBUG=1 for the traceback)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mappo-td``; returns the exit status (2 on bad input, with the reason on stderr).

    Example:
        >>> main(["train", "--rollouts", "0"])
        2
    """
    args = parse_command_line(argv)
    if args.command == "plot":
        return _plot(args)
    import logging

    logging.getLogger("torchrl").setLevel(logging.WARNING)  # keep the progress bar on one line
    from mappo_td.train import CheckpointError, NonFiniteError, RenderError
    from mappo_td.train.distributed import DistributedError, shutdown, world
    from mappo_td.train.interrupt import EXIT_INTERRUPTED, Interrupted

    def say(*a: Any, **k: Any) -> None:  # torchrun: rank 0 speaks for the run
        if world()[0] == 0:
            print(*a, **k)

    try:
        if args.command == "train":
            # One precedence rule: defaults < preset < config file < flags (and, resuming, the checkpoint's config below all).
            d = merge_config(merge_config(preset(args.preset) if args.preset else {}, read_config(args.config) if args.config else {}), overrides(args))
            _train_runs(args, d, say)
        else:
            trainer = _trainer_for_eval(args.checkpoint, {"device": args.device} if args.device else {})
            result = trainer.evaluate(args.episodes, render=args.render)
            print(f"{int(result['episodes'])} episodes: mean return {result['return_mean']:.4f} (std {result['return_std']:.4f})")
    except Interrupted as err:
        say(f"mappo-td: stopped at timestep {err.timestep}; checkpoint {err.checkpoint}. Continue with:\n"
            f"  {_resume_command(err.checkpoint, world()[1])}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("mappo-td: aborted; nothing was written after the last checkpoint.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DistributedError as err:
        print(f"mappo-td: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, CheckpointError, NonFiniteError, RenderError, OSError) as err:
        if os.environ.get("MAPPO_TD_DEBUG"):
            raise
        rank, n = world()
        print(f"mappo-td: error{f' (rank {rank} of {n})' if n > 1 else ''}: {describe(err)}", file=sys.stderr)
        return 2
    finally:
        shutdown()
    return 0


def _resume_command(checkpoint: Path, world_size: int) -> str:
    """The command that continues a run stopped at ``checkpoint`` (torchrun's, with as many processes, when it ran under it)."""
    if world_size == 1:
        return f"mappo-td train --resume {checkpoint}"
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    nodes = f"--nnodes {world_size // local} " if local != world_size else ""
    return f"torchrun {nodes}--nproc-per-node {local} $(which mappo-td) train --resume {checkpoint}"


def _seed_configs(args: argparse.Namespace, d: dict[str, Any]) -> list[dict[str, Any]]:
    """The config of each run: one, or one per ``--seeds`` entry into sibling folders ``<name>_seed<N>``."""
    if not args.seeds:
        return [d]
    base = TrainConfig.from_dict(d).mappo.experiment.experiment_name or default_experiment_name()
    return [merge_config(d, {"seed": s, "experiment": {"experiment_name": f"{SEED_SUFFIX.sub('', base)}_seed{s}"}}) for s in args.seeds]


def _episode_result(summary: dict[str, Any], start: int, cfg: TrainConfig) -> str:
    """The summary's mean episode reward: of the episodes since the last log row, or, with writing off
    (``write_interval`` 0: no row was written before the summary's), of every episode of the session.

    Example:
        >>> cfg = TrainConfig.from_dict({"experiment": {"write_interval": 0}})
        >>> _episode_result({"reward/episode_mean": -1.5, "timestep": 400}, 0, cfg)
        'mean episode reward -1.5000 (every episode of the session: write_interval=0, no log rows)'
    """
    reward = summary.get("reward/episode_mean", math.nan)
    interval = cfg.mappo.experiment.write_interval
    if math.isfinite(reward):
        return f"mean episode reward {reward:.4f}" + (" (every episode of the session: write_interval=0, no log rows)" if interval == 0 else "")
    whole = interval == 0 or summary["timestep"] - start <= interval  # the last row covers the whole session
    return (f"no episode finished {'yet' if whole else 'since the last log row'} "
            f"(an episode lasts up to max_steps={cfg.env.max_steps} timesteps)")


def _train_runs(args: argparse.Namespace, d: dict[str, Any], say: Any) -> None:
    """Train (or resume) once, or once per ``--seeds`` entry into sibling folders ``<name>_seed<N>``."""
    from mappo_td.train.distributed import launched_world_size
    from mappo_td.train.logging import new_run_dir
    from mappo_td.train.run_folder import check_new_run_dir
    from mappo_td.trainer import MAPPOTrainer

    configs = _seed_configs(args, d)
    for c in configs if not args.resume and launched_world_size() == 1 else []:  # refuse before any training (torchrun: rank 0, later)
        cfg = TrainConfig.from_dict(c)
        if cfg.mappo.experiment.experiment_name:
            check_new_run_dir(new_run_dir(cfg))
    runs = []
    for c in configs:
        if args.resume:
            trainer = MAPPOTrainer.from_checkpoint(args.resume, c, fork=args.fork, overwrite_later=args.overwrite_later)
            changed = trainer.resume.changes
            say(f"resuming {args.resume} at timestep {trainer.timestep}"
                + (f"; changed from the checkpoint: {', '.join(changed)}" if changed else ""), flush=True)
        else:
            trainer = MAPPOTrainer(TrainConfig.from_dict(c))
        cfg, n, start = trainer.cfg, trainer.learner.world_size, trainer.timestep
        procs = f" in each of {n} processes (torchrun)" if n > 1 else ""
        end = cfg.end_timestep(start)
        ends = f" (the run ends at timestep {end}: updates come in rollouts={cfg.mappo.rollouts} steps)" if end != cfg.timesteps else ""
        if start < cfg.timesteps:  # else train() says why there is nothing to do
            say(f"MAPPO on {cfg.env.backend}/{cfg.env.scenario}: {cfg.env.num_envs} envs x {cfg.mappo.rollouts} steps per update{procs}, "
                f"{cfg.timesteps} timesteps{ends}, seed {cfg.seed}, device {trainer.device}", flush=True)
        summary = trainer.train()
        runs += [summary["run_dir"]] if cfg.mappo.experiment.write_interval else []  # 0: no rows to plot
        say(f"done: {_episode_result(summary, start, cfg)} at timestep {summary['timestep']}; "
            f"logs in {summary['run_dir']}, checkpoint {summary['checkpoint']}")
    if runs:
        say(f"learning curve{'s' if len(runs) > 1 else ''}: mappo-td plot {' '.join(runs)}")


def _plot(args: argparse.Namespace) -> int:
    from mappo_td.plot import plot_runs

    try:
        path = plot_runs(args.runs, args.out, warn=lambda message: print(f"mappo-td: warning: {message}", file=sys.stderr))
    except (ValueError, OSError) as err:
        print(f"mappo-td: error: {describe(err)}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def _trainer_for_eval(path: str, overrides: dict[str, Any]):
    from mappo_td.trainer import MAPPOTrainer

    overrides = {"progress": False, **overrides, "experiment": {"checkpoint_interval": 0, "eval_interval": 0}}  # nor trains
    try:
        return MAPPOTrainer.from_checkpoint(path, overrides)
    except ValueError as err:
        if "CUDA is not available" in str(err):
            return MAPPOTrainer.from_checkpoint(path, {**overrides, "device": "cpu"})
        raise


if __name__ == "__main__":
    raise SystemExit(main())
