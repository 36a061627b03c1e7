"""[organism] Tables too slow for ``make book``, kept in the repository with the digest of the code that made them.

The seed table (:mod:`gvlib.organism.seeds`: four claim chapters on several families) and the MC probe
(:mod:`gvlib.organism.probe`: fresh verifiers trained per probe) take longer than a build should, and depend on
the preset, the code and the kind of CPU alone, not on the family that a build trains. Their commands
write ``book/data/<folder>/<preset>.json`` (:func:`table_path`), stamped (:func:`stamp`) with the preset, its
key, the digest of the code they ran on and the CPU kernels that trained their models; the organism page
renders the committed file, marks it STALE (:func:`stale_reason`) when it is missing or the code or the preset
has changed since, and says so when it was made with other CPU kernels than the build's (:func:`other_cpu`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from gvlib.organism.presets import get_preset
from gvlib.paths import REPO_ROOT
from gvlib.threads import cpu_kernels


def table_path(folder: str, preset: str) -> Path:
    """Where a table of ``preset`` is kept: ``book/data/<folder>/<preset>.json``."""
    return REPO_ROOT / "book" / "data" / folder / f"{preset}.json"


def load_table(path: Path) -> dict | None:
    """The table at ``path``, or None when there is none."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def stamp(preset: str, code: str, command: str) -> dict:
    """What a table records of how it was made: the preset and its key, the code digest, the command, when, and
    the CPU kernels it trained with (:func:`gvlib.threads.cpu_kernels`)."""
    return {"preset": preset, "preset_key": get_preset(preset).key(), "code_version": code, "command": command,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_kernels": cpu_kernels()}


def other_cpu(table: dict | None, *, what: str) -> str | None:
    """A sentence when ``table`` (a ``what``) was made with other CPU kernels than this machine's, else None
    (also when the table does not record them)."""
    made, here = (table or {}).get("cpu_kernels"), cpu_kernels()
    if made is None or made == here:
        return None
    return (f"the {what} was made on a CPU with torch's {made} kernels and this build runs {here} ones: the "
            f"same code trains other weights on each, so its models are not this build's")


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
