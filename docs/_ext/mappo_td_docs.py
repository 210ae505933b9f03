"""mappo_td's Sphinx extension: the generated configuration reference, and references to re-exported names.

- A page line ``<!-- config-reference -->`` becomes :func:`mappo_td.config.reference.config_reference_markdown`'s
  tables (every field's key, flag, type, default and help, read from the config dataclasses at build time).
- ``:class:`mappo_td.config.sections.MAPPOConfig``` and ``:func:`check_fields``` resolve to where the API reference
  documents the object (``mappo_td.config.MAPPOConfig``): the same object, found by identity or by a unique name.
  A reference that matches nothing stays a warning, and the build (``-W``) fails.
"""

from __future__ import annotations

import importlib
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx


def _source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    from mappo_td.config.reference import expand_config_reference

    source[0] = expand_config_reference(source[0])


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def _documented(env: Any) -> dict[str, tuple[str, str]]:
    """Every documented Python object (not the aliases autodoc adds for their defining modules): name -> (docname, objtype)."""
    return {name: (entry.docname, entry.objtype) for name, entry in env.get_domain("py").objects.items() if not entry.aliased}


def _missing_reference(app: Sphinx, env: Any, node: Any, contnode: nodes.Element) -> nodes.Element | None:
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    documented = _documented(env)
    if node.get("reftype") == "mod" and target.startswith("mappo_td."):
        # a module the reference does not document on its own: its package's page, which documents its public names
        parents = [p for p in documented if documented[p][1] == "module" and target.startswith(p + ".")]
        return _link(app, node, contnode, max(parents, key=len), documented) if parents else None
    candidates: list[str] = []
    obj = _resolve(target) if target.startswith("mappo_td.") else None
    if obj is not None:
        candidates = [name for name in documented if name.rsplit(".", 1)[-1] == target.rsplit(".", 1)[-1] and _resolve(name) is obj]
    if not candidates:
        module = node.get("py:module") or ""
        suffix = "." + target.rsplit(".", 1)[-1] if target.startswith("mappo_td.") else "." + target
        scoped = [name for name in documented if name.endswith(suffix) and name.startswith(module.rsplit(".", 1)[0])]
        anywhere = [name for name in documented if name.endswith(suffix)]
        candidates = scoped if len(scoped) == 1 else anywhere
    if len(candidates) != 1:
        return None
    return _link(app, node, contnode, candidates[0], documented)


def _link(app: Sphinx, node: Any, contnode: nodes.Element, name: str, documented: dict[str, tuple[str, str]]) -> nodes.Element:
    docname, objtype = documented[name]
    anchor = "module-" + name if objtype == "module" else name
    ref = nodes.reference("", "", internal=True, refuri=app.builder.get_relative_uri(node.get("refdoc", docname), docname) + "#" + anchor,
                          reftitle=name)
    ref.append(contnode)
    return ref


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("source-read", _source_read)
    app.connect("missing-reference", _missing_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
