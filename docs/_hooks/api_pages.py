"""MkDocs hook: the API reference pages, generated from each public package's ``__all__``.

A page holding ``<!-- api: ncp_hpo.samplers -->`` gets, for every name in that package's
``__all__`` (in order):

* a class or function defined in the package: a mkdocstrings block of its defining module
  (``::: ncp_hpo.samplers._ncp.NCPSampler``, heading ``NCPSampler``), preceded by an
  anchor with the public path (``ncp_hpo.samplers.NCPSampler``), so ``[x][ncp_hpo.samplers.X]``
  links work for names the package loads lazily (PEP 562), which static analysis misses;
* a re-export of a name another public package defines: a link to that package's entry;
* a constant: its value.

So the reference cannot drift from ``__all__``: a new public name appears by itself.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

PUBLIC = (
    "ncp_hpo",
    "ncp_hpo.spaces",
    "ncp_hpo.samplers",
    "ncp_hpo.search",
    "ncp_hpo.predictor",
    "ncp_hpo.propagation",
    "ncp_hpo.benchmarks",
    "ncp_hpo.zerocost",
    "ncp_hpo.models",
    "ncp_hpo.trainers",
    "ncp_hpo.tracking",
    "ncp_hpo.runtime",
    "ncp_hpo.experiments",
    "ncp_hpo.exceptions",
)
MARKER = re.compile(r"<!-- api: ([\w.]+) -->")
OPTIONS = "    options:\n      show_root_heading: true\n      show_root_full_path: false\n"


def owner(module: str) -> str:
    """The public package that defines ``module``'s names (the longest matching prefix)."""
    found = [p for p in PUBLIC if module == p or module.startswith(p + ".")]
    return max(found, key=len)


def _entry(package: str, name: str, obj: Any) -> str:
    # (no anchor for dunder names: Markdown reads ``__x__`` as emphasis)
    anchor = "" if name.startswith("_") else f"[](){{#{package}.{name}}}\n"
    if inspect.isclass(obj) or inspect.isfunction(obj):
        home = owner(obj.__module__)
        # a name defined in a private top-level module (ncp_hpo._secrets) is at home where
        # it is exported
        exported = name in getattr(importlib.import_module(home), "__all__", ())
        if home != package and exported:
            return f"- [`{name}`][{home}.{name}]: from [`{home}`][{home}]\n"
        path = f"{obj.__module__}.{obj.__qualname__}"
        if path == f"{package}.{name}":
            anchor = ""  # mkdocstrings gives the heading this id
        return f"{anchor}\n::: {path}\n{OPTIONS}"
    value = repr(obj)
    if len(value) > 100:
        value = value[:97] + "..."
    return f"{anchor}\n`{name}` = `{value}`\n"


def api_markdown(package: str) -> str:
    """The generated reference of ``package`` (see the module docstring)."""
    if package not in PUBLIC:
        raise ValueError(f"{package} is not one of the public packages {PUBLIC}")
    from ncp_hpo.samplers import quiet_ax_logging

    quiet_ax_logging()  # the Ax nodes import Ax, which logs an INFO line
    module = importlib.import_module(package)
    doc = inspect.getdoc(module) or ""
    parts = [f"[](){{#{package}}}\n", doc.split("\n\n", 1)[0].replace("``", "`") + "\n"]
    parts += [_entry(package, name, getattr(module, name)) for name in module.__all__]
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return MARKER.sub(lambda m: api_markdown(m.group(1)), markdown)
