"""[engine] Atomic file writes: a reader (or a resumed run) sees a whole file or none, never half of one.

The data goes to a temporary file in the same folder, is flushed to disk, and is moved into place
with ``os.replace`` (atomic on POSIX within one file system); an error or a kill before the move
leaves the old file (or no file) and removes the temporary one. Every cache entry, results file
and round record of gvlib is written through :func:`write_atomic`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
