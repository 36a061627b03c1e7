"""[organism] The model organism (the book's organism page): a family of tiny Llamas trained from scratch on synthetic tasks.

Public API
----------
ensure_family(preset="default", out=None) -> Family   train or reuse a preset's family (cached)
Family, ModelEntry                                   the trained members: name, path, params, flops …
load_task(name, split="test", limit=None, seed=0, family=None)   "organism/sudoku" | "/arith" | "/facts"
PRESETS, get_preset, seeded_name                     the presets (``tiny``, ``default``; ``default-s1``: seed 1)

Command line: ``python -m gvlib.organism --preset default [--seed N] [--out DIR]``; the seed table:
``python -m gvlib.organism.seeds --preset default --seeds 0 1 2``.
"""
from gvlib.organism.family import Family, ModelEntry, default_dir, ensure_family
from gvlib.organism.presets import PRESETS, get_preset, seeded_name
from gvlib.organism.tasks import load_task

__all__ = ["Family", "ModelEntry", "PRESETS", "default_dir", "ensure_family", "get_preset", "load_task", "seeded_name"]
