"""Tasks with prompts, answer extraction and utilities (paper §3, §4).

``load(name)`` gives a :class:`~gvlib.tasks.base.Task`: the paper's GSM8K, MATH, MATH-500,
NQ-open and 4×4 Sudoku, or any organism task ("organism/<task>", built by
:mod:`gvlib.organism.tasks`). Every task has ``.examples`` (with ``.question`` and ``.answer``),
``generation_prompt``, ``extract``, ``score`` (the utility u in {0, 1}) and ``verifier_prompt``.
"""
from __future__ import annotations

import os
from typing import Any

from .base import VERIFIER_METHODS, Example, Task
from .common import DataError, extraction_failure_rate
from .gsm8k import GSM8K
from .math import MATH, MATH500
from .nq import NQOpen
from .sudoku import Sudoku4

__all__ = ["Example", "Task", "VERIFIER_METHODS", "DataError", "TASKS", "load", "names",
           "extraction_failure_rate"]

#: The paper's tasks by registry name.
TASKS = {cls.name: cls for cls in (GSM8K, MATH, MATH500, NQOpen, Sudoku4)}
ORGANISM_PREFIX = "organism/"


def names() -> list[str]:
    """The registry names of the paper's tasks (organism tasks are "organism/<name>")."""
    return sorted(TASKS)


def load(name: str, *, path: str | os.PathLike | None = None, split: str = "test",
         limit: int | None = None, **kw: Any) -> Task:
    """The task ``name`` with its problems (``limit``: the first ones only).

    path   a local JSONL file, or a folder holding ``<split>.jsonl`` (default: ``$GVLIB_DATA``
           or Hugging Face ``datasets``); ignored for generated tasks
    kw     task options, e.g. ``extraction="strict"`` for gsm8k, ``scoring="strict"`` for nq_open,
           ``boxed_fallback=True`` for math, ``seed``/``givens`` for sudoku4
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of problems, got {limit}")
    if name.startswith(ORGANISM_PREFIX):
        from ..organism.tasks import load_task
        if path is not None:
            kw["path"] = path
        return load_task(name, split=split, limit=limit, **kw)
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {names()} or '{ORGANISM_PREFIX}<task>'")
    return TASKS[name].load(path=path, split=split, limit=limit, **kw)
