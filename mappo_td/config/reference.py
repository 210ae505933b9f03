"""The configuration reference, generated from the dataclasses' field metadata: every field's key, flag, type,
default, range and one-line help, as the documentation's configuration page and ``mappo-td train --help`` show them.

Nothing here is written by hand: the docs page's tables are :func:`config_reference_markdown`'s output
(:mod:`mappo_td.reference_pages` writes them), so a field added to :mod:`mappo_td.config.sections` appears there (and
as a flag) with no other edit.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from mappo_td.config.schema import field_key
from mappo_td.config.sections import EnvConfig, ExperimentConfig, MAPPOConfig, ModelConfig
from mappo_td.config.train_config import TrainConfig

#: The sections of the configuration tree, as (title, dataclass, path of its keys in the typed layout).
CONFIG_SECTIONS: tuple[tuple[str, type, tuple[str, ...]], ...] = (
    ("MAPPO (skrl's MAPPO_DEFAULT_CONFIG keys)", MAPPOConfig, ("mappo",)),
    ("experiment", ExperimentConfig, ("mappo", "experiment")),
    ("environment", EnvConfig, ("env",)),
    ("model", ModelConfig, ("model",)),
    ("run", TrainConfig, ()),
)


@dataclass(frozen=True)
class FieldDoc:
    """One configuration field as the reference lists it."""

    key: str  #: dotted key in the typed layout, e.g. ``mappo.lambda``
    flag: str | None  #: the ``mappo-td train`` flag, or ``None`` (Python API only)
    type: str  #: the field's type as written in the dataclass
    default: str  #: the default, as YAML would write it
    help: str  #: the one-line help (``--help`` shows it too)
    limits: str  #: choices or range, ``""`` when any value of the type goes


def flag_name(f: dataclasses.Field) -> str:
    """The command-line flag of a field: its user-facing key with dashes.

    Example:
        >>> flag_name(next(f for f in dataclasses.fields(MAPPOConfig) if f.name == "lambda_"))
        '--lambda'
    """
    return "--" + field_key(f).replace("_", "-")


def field_default(f: dataclasses.Field) -> Any:
    """A field's default value (calling its factory for dicts and lists)."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def default_text(value: Any) -> str:
    """A default as YAML writes it: ``true``/``false``, ``null``, numbers and JSON for lists and dicts, strings bare.

    Example:
        >>> [default_text(v) for v in (True, None, 1e-3, [64, 64], {}, "mse", "")]
        ['true', 'null', '0.001', '[64, 64]', '{}', 'mse', '""']
    """
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return value or '""'
    return json.dumps(value)


def _limits(f: dataclasses.Field) -> str:
    meta = f.metadata
    if "choices" in meta:
        return "one of " + ", ".join(meta["choices"])
    if "bounds" in meta:
        lo, hi, closed = meta["bounds"]
        return f"{'[' if closed else '('}{lo:g}, {'∞)' if math.isinf(hi) else f'{hi:g}]'}"
    if "min" in meta:
        return f"≥ {meta['min']}" + (" or auto" if meta.get("auto") else "")
    return ""


def _type_text(f: dataclasses.Field, hint: Any) -> str:
    """The type as a config file writes it: ``null`` for None, ``list of int`` (the CLI reads lists as integers)."""
    if f.metadata.get("per_agent"):
        return "float or dict by agent"
    if hint is Any:
        return "str or null" if field_default(f) is None else "any"
    parts = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    names = {type(None): "null", list: "list of int", collections.abc.Callable: "callable"}
    text = " or ".join(names.get(a, getattr(a, "__name__", str(a))) for a in parts)
    return text + " or auto" if f.metadata.get("auto") else text


def config_fields() -> list[FieldDoc]:
    """Every field of :class:`~mappo_td.config.TrainConfig`'s tree, section by section, in the dataclasses' order.

    Example:
        >>> docs = {d.key: d for d in config_fields()}
        >>> docs["mappo.lambda"].flag, docs["mappo.lambda"].default, docs["mappo.lambda"].limits
        ('--lambda', '0.95', '[0, 1]')
        >>> docs["mappo.rewards_shaper"].flag is None, docs["model.hidden_sizes"].default
        (True, '[64, 64]')
    """
    out = []
    for _, cls, path in CONFIG_SECTIONS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not str(f.metadata.get("help", "")).strip():
                if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
                    continue  # a section (mappo.experiment), listed on its own
                raise ValueError(f"{cls.__name__}.{f.name} has no help: declare it with config_field(default, help) "
                                 "(mappo_td.config.schema), which gives its --help line and its row in the configuration reference.")
            out.append(FieldDoc(key=".".join([*path, field_key(f)]), flag=None if f.metadata.get("cli") is False else flag_name(f),
                                type=_type_text(f, hints[f.name]), default=default_text(field_default(f)), help=f.metadata["help"],
                                limits=_limits(f)))
    return out


def markdown_cell(text: str) -> str:
    r"""Text for a Markdown table cell: ``|`` escaped, and ``<``, ``>``, ``*`` too (Markdown would read HTML tags and
    emphasis). The configuration reference's tables and the command flags' use it.

    Example:
        >>> print(markdown_cell("<run>/a|b*"))
        \<run\>/a\|b\*
    """
    return "".join("\\" + c if c in "|<>*" else c for c in text)


def config_reference_markdown() -> str:
    """The configuration reference as Markdown: a table per section (key, flag, type, default, help with its limits).

    Example:
        >>> text = config_reference_markdown()
        >>> "| `mappo.lambda` | `--lambda` |" in text, [line for line in text.splitlines() if line.startswith("## ")][-1]
        (True, '## Run')
    """
    by_path = {".".join(path): title for title, _, path in CONFIG_SECTIONS}
    lines: list[str] = []
    section = None
    for doc in config_fields():
        prefix = doc.key.rpartition(".")[0]
        if prefix != section:
            section = prefix
            where = f"`{prefix}`" if prefix else "the top level"
            title = by_path[prefix]
            lines += ["", f"## {title[0].upper() + title[1:]}", "",
                      f"Keys under {where} in a config file (typed layout).", "",
                      "| key | flag | type | default | description |", "|---|---|---|---|---|"]
        flag = f"`{doc.flag}`" if doc.flag else "(Python only)"
        if doc.flag and doc.type.startswith("bool"):
            flag += f", `--no-{doc.flag[2:]}`"
        limits = f" (allowed: {markdown_cell(doc.limits)})" if doc.limits else ""
        lines.append(f"| `{doc.key}` | {flag} | {markdown_cell(doc.type)} | `{markdown_cell(doc.default)}` | {markdown_cell(doc.help)}{limits} |")
    return "\n".join(lines).lstrip() + "\n"
