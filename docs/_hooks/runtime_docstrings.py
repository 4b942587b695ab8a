"""Griffe extension: the docstring of a class that builds it at import time.

Some classes set ``__doc__ = f\"\"\"...{_COMMON_ARGS}\"\"\"`` to share an ``Args`` block;
static analysis sees an attribute, not a docstring. This imports such a class (only those)
and takes its runtime ``__doc__``. The rest stays static: no module is imported for it
(importing every module would run ``ncp_hpo/cli/__main__.py``).
"""

from __future__ import annotations

import inspect
from typing import Any

import griffe


class RuntimeDocstrings(griffe.Extension):
    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        if cls.docstring is not None or "__doc__" not in cls.members:
            return
        doc = getattr(griffe.dynamic_import(cls.path), "__doc__", None)
        if doc:
            cls.docstring = griffe.Docstring(inspect.cleandoc(doc), parent=cls)
