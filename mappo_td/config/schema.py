"""Typed configuration values: field metadata, coercion by a field's type, range checks.

What a config file or a command line gives is coerced to the field's type, strictly:
booleans accept only ``true``/``false`` (YAML/JSON booleans, or those words);
numbers accept numbers and numeric strings (YAML reads ``1e-3`` as a string);
anything else is an error that names the field, the value and the expected type.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import warnings
from collections.abc import Mapping
from dataclasses import field
from typing import Any, Union, get_args, get_origin

from mappo_td.defaults import Bounds, check_in_bounds  # noqa: F401  (Bounds: importable from here too)


def config_field(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with its one-line ``help`` (the CLI's ``--help`` and the configuration reference's row) and
    metadata (``key``, ``choices``, ``min`` for integers, ``bounds`` for numbers ...); a declaration that cannot work is
    refused here, not at the first config that uses it.

    Example:
        >>> config_field(0.1, "dropout rate", min=0)
        Traceback (most recent call last):
        ...
        TypeError: config_field(min=...) is for integer fields (default 0.1); give a number field bounds=(low, high, low_included).
    """
    if not isinstance(help, str) or not help.strip():
        raise ValueError(f"config_field({default!r}, help={help!r}): every field needs a one-line help (its --help and reference row).")
    if "min" in kw and (isinstance(default, bool) or not isinstance(default, int)):
        raise TypeError(f"config_field(min=...) is for integer fields (default {default!r}); give a number field "
                        "bounds=(low, high, low_included).")
    if isinstance(default, (dict, list, tuple)):
        return field(default_factory=lambda d=default: json.loads(json.dumps(d)), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def field_key(f: dataclasses.Field) -> str:
    """The user-facing name of a field (metadata ``key``, e.g. ``lambda`` for ``lambda_``), else its name."""
    return f.metadata.get("key", f.name)


def did_you_mean(unknown: list[str], valid: list[str] | set[str]) -> str:
    """The suffix ``" (did you mean ...?)"``: the closest name among ``valid`` to each name in ``unknown`` that has one (``""`` when none).

    Example:
        >>> did_you_mean(["learning_rat"], ["learning_rate", "learning_epochs", "lambda"]), did_you_mean(["zzz"], ["lambda"])
        (" (did you mean 'learning_rate'?)", '')
        >>> did_you_mean(["--num-env", "--timestep"], ["--num-envs", "--timesteps", "--seed"])
        " (did you mean '--num-envs' for '--num-env', '--timesteps' for '--timestep'?)"
    """
    close = {k: m[0] for k in unknown if (m := difflib.get_close_matches(k, sorted(valid), n=1, cutoff=0.6))}
    if not close:
        return ""
    if len(unknown) == 1:
        return f" (did you mean {next(iter(close.values()))!r}?)"
    return f" (did you mean {', '.join(f'{m!r} for {k!r}' for k, m in close.items())}?)"


def deprecated_key(old: str, new: str) -> None:
    """Warn (``DeprecationWarning``) that the config key ``old`` is an earlier name, still read, of ``new``.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     deprecated_key("workers", "env.num_workers")
        >>> str(caught[0].message)
        "config key 'workers' is deprecated (still read); use env.num_workers instead."
    """
    warnings.warn(f"config key {old!r} is deprecated (still read); use {new} instead.", DeprecationWarning, stacklevel=4)


def _number(name: str, value: Any, kind: type) -> float | int:
    if isinstance(value, str):
        try:
            value = float(value) if kind is float else int(value)
        except ValueError:
            pass
    if isinstance(value, float) and kind is int and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    return kind(value)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"{name} must be true or false, got {value!r}")


def coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` says, or a ``ValueError`` naming ``name``, the value and the expected type.

    Example:
        >>> coerce("learning_rate", "1e-3", float), coerce("share_params", "false", bool), coerce("rollouts", "16", int)
        (0.001, False, 16)
        >>> coerce("share_params", "no", bool)
        Traceback (most recent call last):
        ...
        ValueError: share_params must be true or false, got 'no'
    """
    args = get_args(hint)
    if get_origin(hint) in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if set(args) == {float, dict}:  # a per-agent value: a number, or a dict of numbers by name
            if isinstance(value, Mapping):
                return {k: _number(f"{name}[{k!r}]", v, float) for k, v in value.items()}
            return _number(name, value, float)
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        return _bool(name, value)
    if hint in (int, float):
        return _number(name, value, hint)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        return value
    if hint is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list, got {value!r}")
        return [_number(f"{name}[{i}]", v, int) for i, v in enumerate(value)]
    if hint is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a dict (a JSON object), got {value!r}")
        return dict(value)
    return value


def check_fields(obj: Any, prefix: str = "") -> None:
    """Check each field of the dataclass ``obj`` against its metadata: ``min`` (integers), ``choices``, ``bounds`` (per agent).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class C:
        ...     n: int = config_field(1, "count", min=1)
        >>> check_fields(C(n=0), "env.")
        Traceback (most recent call last):
        ...
        ValueError: env.n must be an integer >= 1, got 0
    """
    for f in dataclasses.fields(obj):
        v, md = getattr(obj, f.name), f.metadata
        name = prefix + field_key(f)
        if "min" in md and not (isinstance(v, int) and not isinstance(v, bool) and v >= md["min"]):
            raise ValueError(f"{name} must be an integer >= {md['min']}, got {v!r}")
        if "choices" in md and v not in md["choices"]:
            raise ValueError(f"{name} must be one of {', '.join(md['choices'])}; got {v!r}")
        if "bounds" in md:
            if isinstance(v, bool) or not isinstance(v, (int, float, Mapping)):
                raise ValueError(f"{name} must be a number or a dict by agent/group name, got {v!r}")
            check_in_bounds(name, list(v.values()) if isinstance(v, Mapping) else [v], md["bounds"])
