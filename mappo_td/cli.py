"""``mappo-td``: train (default: MAPPO on VMAS navigation), resume, evaluate.

    mappo-td train                              # GPU if present, else CPU
    mappo-td train --num-envs 600 --timesteps 50000 --learning-rate 3e-4
    mappo-td train --fast compile               # torch.compile acting and update (cudagraphs: + CUDA graphs)
    mappo-td train --config skrl_cfg.yaml       # skrl's MAPPO_DEFAULT_CONFIG dict, verbatim
    mappo-td train --preset mappo-paper         # the MAPPO reference's defaults (Huber, ValueNorm, GRU ...)
    mappo-td train --resume runs/<name>/checkpoints            # --fork NEW_NAME / --overwrite-later for an older checkpoint
    mappo-td eval runs/<name>/checkpoints --episodes 20
    mappo-td train --seeds 0 1 2 --experiment-name nav    # runs/nav_seed0, _seed1, _seed2
    mappo-td plot runs/nav_seed*                          # reward vs frames and wall time (pip install -e ".[plot]")
    torchrun --nproc-per-node 4 $(which mappo-td) train --num-envs 1024   # data parallel: 4 x 1024 envs, one model
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import traceback
import typing
from pathlib import Path
from typing import Any

from mappo_td.config import EnvConfig, ExperimentConfig, MAPPOConfig, ModelConfig, TrainConfig, merge_config
from mappo_td.plot import SEED_SUFFIX
from mappo_td.presets import PRESETS, preset
from mappo_td.schema import did_you_mean

SECTIONS = (("MAPPO (skrl's MAPPO_DEFAULT_CONFIG keys)", MAPPOConfig, ("mappo",)), ("experiment", ExperimentConfig, ("mappo", "experiment")),
            ("environment", EnvConfig, ("env",)), ("model", ModelConfig, ("model",)), ("run", TrainConfig, ()))


def _flag(f: dataclasses.Field) -> str:
    return "--" + f.metadata.get("key", f.name).replace("_", "-")


def _parse_value(text: str) -> Any:
    """Numbers, JSON (dicts per agent, lists), null/none, else the string itself."""
    if text.lower() in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _shown_default(f: dataclasses.Field, default: Any) -> str:
    """The default as ``--help`` shows it: none where the help text says what unset means, plain words otherwise."""
    if default is None or default == "":
        return "" if "default:" in f.metadata["help"] or "empty:" in f.metadata["help"] else " (default: none)"
    if isinstance(default, bool):
        return f" (default: {str(default).lower()})"
    if isinstance(default, str):
        return f" (default: {default})"
    return f" (default: {json.dumps(default)})" if not callable(default) else ""


_METAVARS = {int: "N", float: "X", str: "TEXT", dict: "JSON"}


def _add_fields(parser: argparse.ArgumentParser) -> None:
    for title, cls, _ in SECTIONS:
        group = parser.add_argument_group(title)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if "help" not in f.metadata or f.metadata.get("cli") is False:
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            helptext = f.metadata["help"] + _shown_default(f, default)
            dest, hint = f"{cls.__name__}.{f.name}", hints[f.name]
            if hint is bool or hint == bool | None:
                group.add_argument(_flag(f), dest=dest, action=argparse.BooleanOptionalAction, default=None, help=helptext)
            elif hint is int:
                group.add_argument(_flag(f), dest=dest, type=int, default=None, metavar="N", help=helptext)
            elif hint is list:
                group.add_argument(_flag(f), dest=dest, type=int, nargs="+", default=None, metavar="N", help=helptext)
            elif "choices" in f.metadata:
                group.add_argument(_flag(f), dest=dest, choices=f.metadata["choices"], default=None, help=helptext)
            else:
                metavar = "X|JSON" if f.metadata.get("per_agent") else _METAVARS.get(hint, "JSON" if "JSON" in helptext else "NAME")
                group.add_argument(_flag(f), dest=dest, type=_parse_value, default=None, metavar=metavar, help=helptext)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Nested dict of the flags given on the command line (in the typed form's layout)."""
    out: dict[str, Any] = {}
    for _, cls, path in SECTIONS:
        for f in dataclasses.fields(cls):
            value = getattr(args, f"{cls.__name__}.{f.name}", None)
            if value is None:
                continue
            node = out
            for p in path:
                node = node.setdefault(p, {})
            node[f.metadata.get("key", f.name)] = value
    return out


def read_config(path: str) -> dict[str, Any]:
    """The dict in a JSON or YAML config file, or a ``ValueError`` that names the file and what is wrong.

    Example:
        >>> read_config("/nonexistent.yaml")
        Traceback (most recent call last):
        ...
        ValueError: --config /nonexistent.yaml: no such file.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"--config {path}: no such file.")
    if p.is_dir():
        raise ValueError(f"--config {path} is a folder; pass a .yaml, .yml or .json file.")
    text = p.read_text()
    try:
        if path.endswith(".json"):
            d = json.loads(text)
        else:
            import yaml

            d = yaml.safe_load(text) or {}
    except Exception as err:  # yaml.YAMLError, json.JSONDecodeError
        raise ValueError(f"--config {path} is not valid {'JSON' if path.endswith('.json') else 'YAML'}: {err}") from None
    if not isinstance(d, dict):
        raise ValueError(f"--config {path} must hold a mapping of config keys, got a {type(d).__name__}.")
    return d


def _positive_int(text: str) -> int:
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


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


class _Parser(argparse.ArgumentParser):
    """argparse, but an unknown flag is reported by the command it was given to (its usage line), with close matches."""

    commands: dict[str, argparse.ArgumentParser] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})  # a flag is named in full: --num-env is a typo, not --num-envs

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            target = self.commands.get(getattr(ns, "command", None), self)
            flags = [s for a in target._actions for s in a.option_strings]
            unknown = [e.split("=", 1)[0] for e in extra if e.startswith("-")]
            target.error(f"unrecognized arguments: {' '.join(extra)}{did_you_mean(unknown, flags)}")
        return ns


def build_parser() -> argparse.ArgumentParser:
    """The ``mappo-td`` argument parser (``train`` and ``eval``).

    Example:
        >>> args = build_parser().parse_args(["train", "--rollouts", "32", "--lambda", "0.9", "--no-share-params"])
        >>> _overrides(args)
        {'mappo': {'rollouts': 32, 'lambda': 0.9}, 'model': {'share_params': False}}
    """
    parser = _Parser(prog="mappo-td", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    train = sub.add_parser("train", help="train MAPPO (no arguments: VMAS navigation)")
    train.add_argument("--config", help="JSON/YAML config: the typed layout or skrl's MAPPO_DEFAULT_CONFIG keys; flags override it")
    train.add_argument("--preset", choices=sorted(PRESETS), help="start from a named config (mappo-paper: the MAPPO reference's Huber loss, "
                       "ValueNorm, value clipping, GRU, epochs; see mappo_td.presets); --config and flags override it")
    train.add_argument("--resume", metavar="PATH", help="continue from a checkpoint file or checkpoints folder (--config and flags override its config)")
    train.add_argument("--fork", metavar="NEW_NAME", help="with --resume: continue in a new run folder NEW_NAME beside the original")
    train.add_argument("--overwrite-later", action="store_true",
                       help="with --resume from a checkpoint older than the newest: delete the later checkpoints and continue in place")
    _add_fields(train)
    for mode in ("compile", "cudagraphs"):
        train.add_argument(f"--{mode}", dest="TrainConfig.fast", action="store_const", const=mode, help=f"shorthand for --fast {mode}")
    train.add_argument("--seeds", type=int, nargs="+", metavar="N",
                       help="train once per seed, one after another, into sibling folders <experiment-name>_seed<N> (see plot)")
    pl = sub.add_parser("plot", help="learning curves (reward vs frames and vs wall time) of run folders, to a PNG")
    pl.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (runs/<name>); <name>_seed<N> siblings are one curve")
    pl.add_argument("-o", "--out", metavar="PNG", default=None,
                    help="output image (.png, .pdf, .svg ...) or folder (FOLDER/reward.png); default: RUN_DIR/reward.png for one run, else reward.png")
    ev = sub.add_parser("eval", help="evaluate a checkpoint with the deterministic policy")
    ev.add_argument("checkpoint", help="checkpoint file or checkpoints folder (newest agent_*.pt)")
    ev.add_argument("--episodes", type=_positive_int, default=10, help="number of episodes (default: 10)")
    ev.add_argument("--device", default=None, help="override the device (default: the one trained on, if available)")
    ev.add_argument("--render", metavar="GIF", default=None, help="write the first episode of the first env to this GIF (needs a headless renderer)")
    parser.commands = {"train": train, "plot": pl, "eval": ev}
    return parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line (no command: ``train``), with the checks between flags argparse cannot express (exit 2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["train", *argv]
    args = parser.parse_args(argv)
    if args.command != "train":
        return args
    train = parser.commands["train"]
    if not args.resume and (args.fork or args.overwrite_later):
        train.error("--fork and --overwrite-later go with --resume")
    if args.seeds and args.resume:
        train.error("--seeds starts new runs; it does not go with --resume (resume each seed's run on its own)")
    if args.seeds and len(set(args.seeds)) < len(args.seeds):
        twice = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
        train.error(f"--seeds {' '.join(map(str, args.seeds))}: seed(s) {twice} given twice; each seed trains one run (<name>_seed<N>)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mappo-td``; returns the exit status (2 on bad input, with the reason on stderr).

    Example:
        >>> main(["train", "--rollouts", "0"])
        2
    """
    args = _parse(argv)
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
            d = merge_config(merge_config(preset(args.preset) if args.preset else {}, read_config(args.config) if args.config else {}), _overrides(args))
            _train_runs(args, d, say)
        else:
            overrides = {"device": args.device} if args.device else {}
            trainer = _trainer_for_eval(args.checkpoint, overrides)
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
    base = TrainConfig.from_dict(d).mappo.experiment.experiment_name or f"{time.strftime('%y-%m-%d_%H-%M-%S')}_MAPPO"
    return [merge_config(d, {"seed": s, "experiment": {"experiment_name": f"{SEED_SUFFIX.sub('', base)}_seed{s}"}}) for s in args.seeds]


def _episode_result(summary: dict[str, Any], start: int, cfg: TrainConfig) -> str:
    reward = summary.get("reward/episode_mean", math.nan)
    if math.isfinite(reward):
        return f"mean episode reward {reward:.4f}"
    whole = summary["timestep"] - start <= cfg.mappo.experiment.write_interval  # the last row covers the whole session
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
        runs.append(summary["run_dir"])
        say(f"done: {_episode_result(summary, start, cfg)} at timestep {summary['timestep']}; "
            f"logs in {summary['run_dir']}, checkpoint {summary['checkpoint']}")
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
