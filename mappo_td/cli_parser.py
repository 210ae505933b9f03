"""The ``mappo-td`` command line: its parser, built from the config dataclasses' field metadata (one flag per field),
and the checks between flags argparse cannot express. :mod:`mappo_td.cli` runs what it parses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Any

from mappo_td import __version__
from mappo_td.config import FAST_MODES, PRESETS, did_you_mean
from mappo_td.config.reference import CONFIG_SECTIONS, field_default, flag_name, markdown_cell

USAGE = """mappo-td: train (default: MAPPO on VMAS navigation), resume, evaluate.

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

FLAG_GROUPS = CONFIG_SECTIONS  # one flag group per section of the configuration tree


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


def _int_or_auto(text: str) -> int | str:
    """An integer, or ``"auto"`` (skrl's interval, made a number for the run's timesteps)."""
    return "auto" if text.lower() == "auto" else int(text)


_int_or_auto.__name__ = "integer or 'auto'"  # argparse's "invalid ... value" message


def _add_fields(parser: argparse.ArgumentParser) -> None:
    for title, cls, _ in FLAG_GROUPS:
        group = parser.add_argument_group(title)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if "help" not in f.metadata or f.metadata.get("cli") is False:
                continue
            default = field_default(f)
            helptext = f.metadata["help"] + _shown_default(f, default)
            dest, hint = f"{cls.__name__}.{f.name}", hints[f.name]
            if hint is bool or hint == bool | None:
                group.add_argument(flag_name(f), dest=dest, action=argparse.BooleanOptionalAction, default=None, help=helptext)
            elif hint is int:
                auto = f.metadata.get("auto")  # skrl's "auto", resolved with the run's timesteps (TrainConfig.from_dict)
                group.add_argument(flag_name(f), dest=dest, type=_int_or_auto if auto else int, default=None,
                                   metavar="N|auto" if auto else "N", help=helptext)
            elif hint is list:
                group.add_argument(flag_name(f), dest=dest, type=int, nargs="+", default=None, metavar="N", help=helptext)
            elif "choices" in f.metadata:
                group.add_argument(flag_name(f), dest=dest, choices=f.metadata["choices"], default=None, help=helptext)
            else:
                metavar = "X|JSON" if f.metadata.get("per_agent") else _METAVARS.get(hint, "JSON" if "JSON" in helptext else "NAME")
                group.add_argument(flag_name(f), dest=dest, type=_parse_value, default=None, metavar=metavar, help=helptext)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Nested dict of the flags given on the command line (in the typed form's layout)."""
    out: dict[str, Any] = {}
    for _, cls, path in FLAG_GROUPS:
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
        >>> overrides(args)
        {'mappo': {'rollouts': 32, 'lambda': 0.9}, 'model': {'share_params': False}}
    """
    parser = _Parser(prog="mappo-td", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    train = sub.add_parser("train", help="train MAPPO (no arguments: VMAS navigation)")
    train.add_argument("--config", help="JSON/YAML config: the typed layout or skrl's MAPPO_DEFAULT_CONFIG keys; flags override it")
    train.add_argument("--preset", choices=sorted(PRESETS), help="start from a named config (mappo-paper: the MAPPO reference's Huber loss, "
                       "ValueNorm, value clipping, GRU, epochs; see mappo_td.config.presets); --config and flags override it")
    train.add_argument("--resume", metavar="PATH", help="continue from a checkpoint file or checkpoints folder (--config and flags override its config)")
    train.add_argument("--fork", metavar="NEW_NAME", help="with --resume: continue in a new run folder NEW_NAME beside the original")
    train.add_argument("--overwrite-later", action="store_true",
                       help="with --resume from a checkpoint older than the newest: delete the later checkpoints and continue in place")
    _add_fields(train)
    for mode in FAST_MODES[1:]:  # "compile", "cudagraphs"
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


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The command line (no command: ``train``), with the checks between flags argparse cannot express (exit 2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
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


def command_flags_markdown() -> str:
    """The ``mappo-td`` flags that are not config fields (``train``'s ``--config``, ``--preset``, ``--resume`` ...;
    ``eval``'s and ``plot``'s), as Markdown tables read from the parser itself: the configuration reference's last part.

    Example:
        >>> text = command_flags_markdown()
        >>> "| `--preset {mappo-paper}` |" in text, "| `--learning-rate" in text, "### `mappo-td eval`" in text
        (True, False, True)
    """
    parser = build_parser()
    fields = {flag_name(f) for _, cls, _ in CONFIG_SECTIONS for f in dataclasses.fields(cls)}
    lines = []
    for name, command in {"": parser, **parser.commands}.items():
        lines += [f"### `mappo-td{' ' + name if name else ''}`", "", "| flag | description |", "|---|---|"]
        for action in command._actions:
            flags = [s for s in action.option_strings if s not in ("-h", "--help")]
            config_field = name == "train" and any(f in fields or f.startswith("--no-") for f in flags)
            if (action.option_strings and not flags) or config_field or isinstance(action, argparse._SubParsersAction):
                continue
            shown = ", ".join(flags) or action.metavar or action.dest
            if action.choices and action.option_strings:
                shown += " {" + ",".join(action.choices) + "}"
            elif action.metavar and action.option_strings:
                shown += f" {action.metavar}" + (f" [{action.metavar} ...]" if action.nargs in ("+", "*") else "")
            lines.append(f"| `{shown}` | {markdown_cell(action.help or '')} |")
        lines.append("")
    return "\n".join(lines)
