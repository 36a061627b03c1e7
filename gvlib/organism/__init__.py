"""The model organism (the book's organism page): a family of tiny Llamas trained from scratch on synthetic tasks.

Public API
----------
ensure_family(preset="default", out=None) -> Family   train or reuse a preset's family (cached)
Family, ModelEntry                                   the trained members: name, path, params, flops …
load_task(name, split="test", limit=None, seed=0, family=None)   "organism/sudoku" | "/arith" | "/facts"
PRESETS, get_preset                                  the presets (``tiny``, ``default``)

Command line: ``python -m gvlib.organism --preset default --out DIR``.
"""
from gvlib.organism.family import Family, ModelEntry, default_dir, ensure_family
from gvlib.organism.presets import PRESETS, get_preset
from gvlib.organism.tasks import load_task

__all__ = ["Family", "ModelEntry", "PRESETS", "default_dir", "ensure_family", "get_preset", "load_task"]
