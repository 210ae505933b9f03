"""The docs pages' generated parts: a page holds a start and an end marker per part, and everything between them is
written from the code (the configuration's fields, the command's other flags), never by hand.

The docs build fills them afresh (``docs/_ext/mappo_td_docs.py``); ``python -m mappo_td.reference_pages PAGE ...``
rewrites the committed copy (a test holds it to the code, so the page reads right on GitHub too).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mappo_td.atomic import atomic_write
from mappo_td.cli_parser import command_flags_markdown
from mappo_td.config.reference import config_reference_markdown

#: What each generated part is made from, by the name its markers carry.
GENERATORS: dict[str, Callable[[], str]] = {"config-fields": config_reference_markdown, "command-flags": command_flags_markdown}


def resolve_name(dotted: str) -> Any:
    """The object a dotted name names (``mappo_td.train.chunks``: the longest importable module, then attributes), or a
    ``LookupError`` naming the part that is missing. The docs build resolves references with it, the tests the names
    the guides mention.

    Example:
        >>> resolve_name("mappo_td.reference_pages.resolve_name") is resolve_name
        True
        >>> resolve_name("mappo_td.nosuchmodule.make_critic")
        Traceback (most recent call last):
        ...
        LookupError: mappo_td.nosuchmodule.make_critic: mappo_td has no 'nosuchmodule'
    """
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for j in range(i, len(parts)):
            if not hasattr(obj, parts[j]):
                raise LookupError(f"{dotted}: {'.'.join(parts[:j])} has no {parts[j]!r}")
            obj = getattr(obj, parts[j])
        return obj
    raise LookupError(f"{dotted}: no module {parts[0]!r}")


def start_marker(name: str) -> str:
    """The line that opens generated part ``name``.

    Example:
        >>> start_marker("config-fields")
        '<!-- generated: config-fields (python -m mappo_td.reference_pages PAGE rewrites it; do not edit by hand) -->'
    """
    return f"<!-- generated: {name} (python -m mappo_td.reference_pages PAGE rewrites it; do not edit by hand) -->"


def end_marker(name: str) -> str:
    """The line that closes generated part ``name``."""
    return f"<!-- end generated: {name} -->"


def expand_generated(text: str) -> str:
    """``text`` with every generated part it marks written afresh, whatever stood between its markers.

    Example:
        >>> page = expand_generated(f"# Config\\n{start_marker('config-fields')}\\nstale\\n{end_marker('config-fields')}\\n")
        >>> "stale" in page, "| `env.num_envs` | `--num-envs` | int | `128` |" in page
        (False, True)
    """
    for name, generate in GENERATORS.items():
        start, end = start_marker(name), end_marker(name)
        if start in text and end in text:
            head, rest = text.split(start, 1)
            text = f"{head}{start}\n\n{generate().strip()}\n\n{end}{rest.split(end, 1)[1]}"
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite each page's generated parts (atomically, only when they changed); 2 when a page marks none."""
    status = 0
    for page in sys.argv[1:] if argv is None else argv:
        text = Path(page).read_text()
        if not any(start_marker(n) in text for n in GENERATORS):
            print(f"{page}: no generated part; mark one with the lines {start_marker('config-fields')!r} and "
                  f"{end_marker('config-fields')!r}", file=sys.stderr)
            status = 2
            continue
        new = expand_generated(text)
        if new != text:
            atomic_write(Path(page), lambda f, new=new: f.write(new.encode()))
        print(f"{page}: {'updated' if new != text else 'up to date'}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
