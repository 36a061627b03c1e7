"""[disk] Where gvlib keeps things on disk: the cache (models, samples, verifications) and the results."""
from __future__ import annotations

import os
from pathlib import Path

#: The repository root (gvlib is installed editable from it); the cwd when gvlib is installed elsewhere.
REPO_ROOT = Path(__file__).resolve().parents[1] if (Path(__file__).resolve().parents[1] / "pyproject.toml").exists() else Path.cwd()


def cache_root() -> Path:
    """Root of every on-disk cache: ``$GVLIB_CACHE`` or ``<repo>/.cache/gvlib``."""
    return Path(os.environ.get("GVLIB_CACHE") or REPO_ROOT / ".cache" / "gvlib")


def results_dir() -> Path:
    """Where notebooks write ``<claim>.json`` and figures: ``$GVLIB_RESULTS`` or ``<repo>/results``."""
    return Path(os.environ.get("GVLIB_RESULTS") or REPO_ROOT / "results")
