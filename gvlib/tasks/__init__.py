"""[tasks] Tasks with prompts, answer extraction and utilities (paper §3, §4).

``load(name)`` gives a :class:`~gvlib.tasks.base.Task`: the paper's GSM8K, MATH, MATH-500,
NQ-open and 4×4 Sudoku, or any organism task ("organism/<task>", built by
:mod:`gvlib.organism.tasks`). Every task has ``.examples`` (with ``.question`` and ``.answer``),
``generation_prompt``, ``extract``, ``score`` (the utility u in {0, 1}) and ``verifier_prompt``.
"""
from __future__ import annotations

import os
from pathlib import Path
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


def load(name: str, *, path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
         family: str | os.PathLike | None = None, split: str = "test", limit: int | None = None, **kw: Any) -> Task:
    """The task ``name`` with its problems (``limit``: the first ones only): the one way to load a task.

    path      a local JSONL file, or a folder holding ``<split>.jsonl`` (default: ``$GVLIB_DATA``
              or Hugging Face ``datasets``); ignored for generated tasks
    data_dir  a folder holding every real task's files under its own name (``gsm8k/test.jsonl``,
              ``nq_open/dev.jsonl`` …, a notebook's ``data_dir`` parameter): ``path`` is then
              ``data_dir/<the task's folder>``; ignored for generated and organism tasks
    family    an organism task's world: a family directory (:attr:`gvlib.claims.Models.family`); an
              organism task needs it, or ``path`` (the same), or a world ``seed`` in ``kw``; ignored by
              the paper's tasks
    kw        task options, e.g. ``extraction="strict"`` for gsm8k, ``scoring="strict"`` for nq_open,
              ``boxed_fallback=True`` for math, ``seed``/``givens`` for sudoku4
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of problems, got {limit}")
    if name.startswith(ORGANISM_PREFIX):
        from ..organism.tasks import load_task
        if family is None and path is None and "seed" not in kw:
            raise ValueError(f"task {name!r} is an organism task: it needs its world, from organism models "
                             "(set `organism`), a family directory (family=) or a world seed (seed=)")
        if family is not None:
            kw["family"] = family
        if path is not None:
            kw["path"] = path
        return load_task(name, split=split, limit=limit, **kw)
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {names()} or '{ORGANISM_PREFIX}<task>'")
    if data_dir is not None and path is None and TASKS[name].data_dir:
        path = Path(data_dir) / TASKS[name].data_dir
    return TASKS[name].load(path=path, split=split, limit=limit, **kw)
