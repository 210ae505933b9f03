"""mappo_td's Sphinx extension: the generated configuration reference, and references to re-exported names.

- The generated parts of a page (:mod:`mappo_td.reference_pages`: the configuration's fields, the command's other
  flags) are written afresh from the code at build time.
- ``:class:`mappo_td.config.sections.MAPPOConfig``` resolves to where the API reference documents that very object
  (``mappo_td.config.MAPPOConfig``; found by identity, so a wrong module path resolves to nothing), and a bare
  ``:func:`check_fields``` to the one documented object of that name. Anything else stays a warning, and the build
  (``-W -n``) fails.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx


def _source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    from mappo_td.reference_pages import expand_generated

    source[0] = expand_generated(source[0])


def _resolve(dotted: str) -> Any:
    """The object ``dotted`` names, else ``None``."""
    from mappo_td.reference_pages import resolve_name

    try:
        return resolve_name(dotted)
    except LookupError:
        return None


def _documented(env: Any) -> dict[str, tuple[str, str]]:
    """Every documented Python object (not the aliases autodoc adds for their defining modules): name -> (docname, objtype)."""
    return {name: (entry.docname, entry.objtype) for name, entry in env.get_domain("py").objects.items() if not entry.aliased}


def _missing_reference(app: Sphinx, env: Any, node: Any, contnode: nodes.Element) -> nodes.Element | None:
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    documented = _documented(env)
    if target.startswith("mappo_td."):
        if node.get("reftype") == "mod":
            # a module the reference does not document on its own: its package's page, which documents its public names
            parents = [p for p in documented if documented[p][1] == "module" and target.startswith(p + ".")]
            exists = importlib.util.find_spec(target) is not None
            return _link(app, node, contnode, max(parents, key=len), documented) if parents and exists else None
        # a dotted name: the documented object that is the very same object (a wrong module path resolves to nothing)
        obj = _resolve(target)
        candidates = [] if obj is None else [
            name for name in documented if name.rsplit(".", 1)[-1] == target.rsplit(".", 1)[-1] and _resolve(name) is obj]
    else:
        # a bare name (``check_fields``): the one documented object of that name, preferring the current package's
        module = node.get("py:module") or ""
        scoped = [name for name in documented if name.endswith("." + target) and name.startswith(module.rsplit(".", 1)[0])]
        anywhere = [name for name in documented if name.endswith("." + target)]
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


def _no_type_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """A constant (``PRESETS``, a dict) has no docstring of its own: autodoc would show its type's (``dict()`` ...)."""
    doc = (type(obj).__doc__ or "").strip()
    if what in ("data", "attribute") and lines and doc and lines[0].strip() == doc.splitlines()[0].strip():
        lines.clear()


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("source-read", _source_read)
    app.connect("autodoc-process-docstring", _no_type_docstring, priority=400)  # before napoleon reads it
    app.connect("missing-reference", _missing_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
