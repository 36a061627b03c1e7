"""[engine] A disk cache of samples and verifications, resumable chunk by chunk.

An entry is keyed by a hash of everything that determines it (backend fingerprint, task and split,
the exact prompt texts, sampling parameters, seed, verifier method …), stored as one file::

    GVLIB1 <sha256 of payload> <payload length>\\n<payload: JSON>

written atomically (:func:`gvlib.atomic.write_atomic`), so a reader sees a whole
entry or none. On reading, a wrong length or checksum (a truncated or corrupt file) counts as a
miss: the entry is recomputed and rewritten, never used. Work is cached in chunks of prompts
(:meth:`Cache.map_chunks`), so a killed run resumes after the last finished chunk.

Root: :func:`gvlib.paths.cache_root` (``$GVLIB_CACHE``, else ``.cache/gvlib`` under the repository).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from tqdm.auto import tqdm

from .atomic import write_atomic
from .paths import cache_root

MAGIC = b"GVLIB1"
T = TypeVar("T")
R = TypeVar("R")


def digest(obj: Any) -> str:
    """A stable hex digest of a JSON-able object (dict keys sorted; tuples as lists)."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


#: Seconds between two progress lines off a terminal (a papermill run, a log file).
PROGRESS_EVERY = 30.0


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def progress(iterable, *, desc: str, total: int | None = None, stream=None, every: float | None = None,
             clock: Callable[[], float] | None = None):
    """``iterable``, with its progress shown on ``stream`` (default ``sys.stderr``).

    On a terminal: a tqdm bar with an ETA. Otherwise (a papermill run, a log file): a plain line
    ``desc: done/total (p%), elapsed …, ETA …`` at most every ``every`` seconds (default
    :data:`PROGRESS_EVERY`), checked after each item, and a last line when the stage ends, if it lasted
    that long; a stage shorter than ``every`` prints nothing.
    """
    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        yield from tqdm(iterable, desc=desc, total=total, file=stream, leave=False)
        return
    every = PROGRESS_EVERY if every is None else every
    clock = time.monotonic if clock is None else clock
    total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
    start = last = clock()
    done = shown = 0

    def line(now: float) -> None:
        elapsed = now - start
        of = "" if not total else f"/{total} ({100 * done / total:.0f}%)"
        eta = f", ETA {_duration(elapsed / done * (total - done))}" if total and done else ""
        print(f"{desc}: {done}{of}, elapsed {_duration(elapsed)}{eta}", file=stream, flush=True)
        nonlocal shown
        shown = done

    for item in iterable:
        yield item
        done += 1
        now = clock()
        if now - last >= every:
            line(now)
            last = now
    now = clock()
    if now - start >= every and shown != done:
        line(now)


class Cache:
    """JSON entries on disk under ``root/<kind>/<key[:2]>/<key>.json`` (see module doc).

    ``hits``, ``misses`` and ``corrupt`` count lookups since creation (a corrupt entry is also a
    miss).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else cache_root()
        self.hits = self.misses = self.corrupt = 0

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.json"

    def get(self, kind: str, key: str) -> Any | None:
        """The stored value, or None when absent, truncated or corrupt."""
        p = self.path(kind, key)
        try:
            blob = p.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        head, _, payload = blob.partition(b"\n")
        parts = head.split(b" ")
        ok = (len(parts) == 3 and parts[0] == MAGIC and parts[2].isdigit() and int(parts[2]) == len(payload)
              and hashlib.sha256(payload).hexdigest().encode() == parts[1])
        if not ok:
            self.corrupt += 1
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(payload)

    def put(self, kind: str, key: str, value: Any) -> None:
        """Store ``value`` (JSON-able) atomically."""
        payload = json.dumps(value, ensure_ascii=False).encode()
        head = b" ".join([MAGIC, hashlib.sha256(payload).hexdigest().encode(), str(len(payload)).encode()])
        write_atomic(self.path(kind, key), head + b"\n" + payload)

    def map_chunks(self, kind: str, key: dict, items: Sequence[T], fn: Callable[[Sequence[T]], Any],
                   *, chunk_size: int = 64, item_key: Callable[[T], Any] = lambda x: x,
                   desc: str = "") -> list[Any]:
        """``fn`` over consecutive chunks of ``items``, each chunk's result cached.

        A chunk's key is ``key`` plus the digest of its items (``item_key`` of each: e.g. the
        prompt texts), so editing one prompt recomputes one chunk. Returns the per-chunk results
        in order; ``fn``'s result must be JSON-able.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        base = digest(key)
        starts = range(0, len(items), chunk_size)
        out = []
        for start in progress(starts, desc=desc or kind, total=len(starts)):
            chunk = items[start:start + chunk_size]
            k = digest([base, [item_key(x) for x in chunk]])
            value = self.get(kind, k)
            if value is None:  # computed values go through JSON too, so both paths agree
                value = json.loads(json.dumps(fn(chunk), ensure_ascii=False))
                self.put(kind, k, value)
            out.append(value)
        return out


class NoCache(Cache):
    """A cache that stores nothing (``cache=None`` in the engine)."""

    def __init__(self):
        super().__init__(root=os.devnull)

    def get(self, kind: str, key: str) -> None:
        self.misses += 1
        return None

    def put(self, kind: str, key: str, value: Any) -> None:
        return None
