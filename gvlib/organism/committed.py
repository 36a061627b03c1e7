"""[organism] Tables too slow for ``make book``, kept in the repository with the digest of the code that made them.

The seed table (:mod:`gvlib.organism.seeds`: four claim chapters on several families) and the MC probe
(:mod:`gvlib.organism.probe`: fresh verifiers trained per probe) take longer than a build should, and depend on
the preset and the code alone, not on the family that a build trains. Their commands
write ``book/data/<folder>/<preset>.json`` (:func:`table_path`), stamped (:func:`stamp`) with the preset, its
key and the digest of the code they ran on; the organism page renders the committed file and marks it STALE
(:func:`stale_reason`) when it is missing or the code or the preset has changed since.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from gvlib.organism.presets import get_preset
from gvlib.paths import REPO_ROOT


def table_path(folder: str, preset: str) -> Path:
    """Where a table of ``preset`` is kept: ``book/data/<folder>/<preset>.json``."""
    return REPO_ROOT / "book" / "data" / folder / f"{preset}.json"


def load_table(path: Path) -> dict | None:
    """The table at ``path``, or None when there is none."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def stamp(preset: str, code: str, command: str) -> dict:
    """What a table records of how it was made: the preset and its key, the code digest, the command, when."""
    return {"preset": preset, "preset_key": get_preset(preset).key(), "code_version": code, "command": command,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def stale_reason(table: dict | None, preset: str, code: str, *, what: str, regenerate: str) -> str | None:
    """Why ``table`` (a ``what``, e.g. "seed table") does not describe what the current ``code`` makes for
    ``preset``, or None when it does: missing, made for another preset, with other code, or for another
    version of the preset. ``regenerate`` ends every reason (the command to run and the file to commit)."""
    if table is None:
        return f"there is no {what} for preset {preset!r} yet: {regenerate}"
    if table.get("preset") != preset:
        return f"the table is for preset {table.get('preset')!r}, not {preset!r}: {regenerate}"
    if table.get("code_version") != code:
        return f"the table was made with code {table.get('code_version')}, the current code is {code}: {regenerate}"
    if table.get("preset_key") != get_preset(preset).key():
        return f"preset {preset!r} has changed since the table was made (its key was {table.get('preset_key')}): {regenerate}"
    return None
