"""Crash safety of everything written atomically: a write killed part-way never spoils the previous entry,
and nothing half-written is ever read.

The crash is simulated below the code under test: every file opened for writing through ``io.open``
(``open``, ``os.fdopen``, ``Path.write_text`` / ``write_bytes`` all go through it) writes only part of its
bytes and then raises, or ``os.replace`` raises. A writer that wrote straight into the final file would
leave it half-written, and these tests would fail.
"""
from __future__ import annotations

import builtins
import io
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from gvlib import results
from gvlib.atomic import write_atomic
from gvlib.cache import Cache
from gvlib.organism import family
from gvlib.organism.train import save_atomic
from tiny_model import tiny_model, tiny_tokenizer

_open = io.open


class Crash(BaseException):
    """The process dies (like KeyboardInterrupt, it is not an Exception)."""


class _Dying:
    """A file that writes ``budget`` more bytes, then dies; everything else is the real file's."""

    def __init__(self, f, budget: int):
        self._f, self._budget = f, budget

    def write(self, data):
        if len(data) <= self._budget:
            self._budget -= len(data)
            return self._f.write(data)
        self._f.write(data[:self._budget])
        self._f.flush()
        raise Crash(f"killed while writing {getattr(self._f, 'name', '?')}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


def crash_in_writes(monkeypatch, *, file: int = 0, fraction: float = 0.5):
    """From now on, the ``file``-th file opened for writing (0 = the first) dies after ``fraction`` of its first write."""
    opened = []

    def dying_open(path, mode="r", *args, **kwargs):
        f = _open(path, mode, *args, **kwargs)
        if not any(c in mode for c in "wax+"):
            return f
        opened.append(path)
        return _Dying(f, budget=10**12) if len(opened) - 1 != file else _FirstWriteDies(f, fraction)

    monkeypatch.setattr(io, "open", dying_open)
    monkeypatch.setattr(builtins, "open", dying_open)
    return opened


class _FirstWriteDies(_Dying):
    def __init__(self, f, fraction):
        super().__init__(f, budget=0)
        self._fraction = fraction

    def write(self, data):
        self._budget = int(len(data) * self._fraction)
        return super().write(data)


def crash_in_replace(monkeypatch):
    def dying_replace(src, dst, *args, **kwargs):
        raise Crash(f"killed before moving {src} to {dst}")

    monkeypatch.setattr(os, "replace", dying_replace)


CRASHES = [("write", 0.0), ("write", 0.5), ("write", 0.99), ("replace", None)]


def _crash(monkeypatch, how, fraction):
    if how == "write":
        crash_in_writes(monkeypatch, fraction=fraction)
    else:
        crash_in_replace(monkeypatch)


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.startswith(".")]


# ---------------------------------------------------------------- the disk cache


@pytest.mark.parametrize("how,fraction", CRASHES)
def test_cache_entry_survives_a_crash_while_it_is_overwritten(tmp_path, monkeypatch, how, fraction):
    key = "c" * 64
    old, new = {"samples": ["old"] * 50}, {"samples": ["new"] * 80}
    Cache(tmp_path).put("generate", key, old)
    with monkeypatch.context() as m:
        _crash(m, how, fraction)
        with pytest.raises(Crash):
            Cache(tmp_path).put("generate", key, new)
    reader = Cache(tmp_path)
    assert reader.get("generate", key) == old and reader.corrupt == 0
    assert not _leftovers(tmp_path)  # the temporary file is removed on the way out
    Cache(tmp_path).put("generate", key, new)  # and the next run writes it
    assert Cache(tmp_path).get("generate", key) == new


@pytest.mark.parametrize("how,fraction", CRASHES)
def test_a_crash_before_the_first_entry_is_a_miss_that_is_recomputed(tmp_path, monkeypatch, how, fraction):
    calls = []
    work = lambda chunk: calls.append(list(chunk)) or [x.upper() for x in chunk]
    with monkeypatch.context() as m:
        _crash(m, how, fraction)
        with pytest.raises(Crash):
            Cache(tmp_path).map_chunks("generate", {"seed": 0}, ["a", "b"], work)
    cache = Cache(tmp_path)
    assert cache.map_chunks("generate", {"seed": 0}, ["a", "b"], work) == [["A", "B"]]
    assert len(calls) == 2 and cache.misses == 1 and cache.corrupt == 0  # recomputed, nothing half-read


# ---------------------------------------------------------------- results/<claim>.json and the family's JSON files


@pytest.mark.parametrize("how,fraction", CRASHES)
def test_results_json_survives_a_crash_while_it_is_rewritten(tmp_path, monkeypatch, how, fraction):
    monkeypatch.setenv("GVLIB_RESULTS", str(tmp_path))
    path = results.write_results("scaling", params={"n": 1}, measured={"gap": 0.25}, started=0.0)
    before = path.read_text()
    with monkeypatch.context() as m:
        _crash(m, how, fraction)
        with pytest.raises(Crash):
            results.write_results("scaling", params={"n": 2}, measured={"gap": [0.5] * 200}, started=0.0)
    assert path.read_text() == before and json.loads(before)["measured"] == {"gap": 0.25}
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("how,fraction", CRASHES)
def test_family_json_survives_a_crash_while_it_is_rewritten(tmp_path, monkeypatch, how, fraction):
    path = tmp_path / "seed" / "candidates.json"
    write_atomic(path, json.dumps({"key": "old", "records": [1, 2, 3]}))  # how family.py writes its JSON
    with monkeypatch.context() as m:
        _crash(m, how, fraction)
        with pytest.raises(Crash):
            write_atomic(path, json.dumps({"key": "new", "records": list(range(500))}))
    assert json.loads(path.read_text()) == {"key": "old", "records": [1, 2, 3]}


# ---------------------------------------------------------------- a trained member's directory


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def _member(tokenizer, seed):
    return tiny_model(len(tokenizer), seed), {"name": "m1", "key": f"key-{seed}"}


def _read_member(dest: Path) -> tuple[dict, dict]:
    """(manifest, weights) of a saved member; also loads its tokenizer."""
    AutoTokenizer.from_pretrained(dest)
    return json.loads((dest / "manifest.json").read_text()), load_file(dest / "model.safetensors")


def _count_written_files(tokenizer, tmp_path, monkeypatch) -> int:
    with monkeypatch.context() as m:
        opened = crash_in_writes(m, file=10**6)
        model, manifest = _member(tokenizer, 0)
        save_atomic(model, tokenizer, manifest, tmp_path / "count")
    return len(opened)


def test_member_survives_a_crash_in_any_of_its_files(tokenizer, tmp_path, monkeypatch):
    """Killed while writing any file of the new member (config, tokenizer, manifest …): the previous member
    reads back intact, weights and manifest, and the next save replaces it."""
    files = _count_written_files(tokenizer, tmp_path, monkeypatch)
    assert files >= 3  # config, tokenizer files, manifest at least
    dest = tmp_path / "m1"
    model, manifest = _member(tokenizer, 0)
    save_atomic(model, tokenizer, manifest, dest)
    before = _read_member(dest)
    for i in range(files):
        with monkeypatch.context() as m:
            crash_in_writes(m, file=i)
            new_model, new_manifest = _member(tokenizer, 1)
            with pytest.raises(Crash):
                save_atomic(new_model, tokenizer, new_manifest, dest)
        after = _read_member(dest)
        assert after[0] == before[0], f"crash in file {i}"
        assert after[1].keys() == before[1].keys() and all(torch.equal(after[1][k], before[1][k]) for k in after[1])
    new_model, new_manifest = _member(tokenizer, 1)
    save_atomic(new_model, tokenizer, new_manifest, dest)
    assert _read_member(dest)[0] == new_manifest


def test_member_is_never_half_there_after_a_crash_at_the_swap(tokenizer, tmp_path, monkeypatch):
    """Killed while moving the new member into place: the directory holds the previous member whole, or no
    finished member at all (no manifest, so ensure_family retrains it), never a mixture."""
    dest = tmp_path / "m1"
    model, manifest = _member(tokenizer, 0)
    save_atomic(model, tokenizer, manifest, dest)
    before = _read_member(dest)
    with monkeypatch.context() as m:
        crash_in_replace(m)
        new_model, new_manifest = _member(tokenizer, 1)
        with pytest.raises(Crash):
            save_atomic(new_model, tokenizer, new_manifest, dest)
    if family._read_manifest(dest) is not None:
        after = _read_member(dest)
        assert after[0] == before[0] and all(torch.equal(after[1][k], before[1][k]) for k in after[1])
    else:
        assert not dest.exists() or not any(dest.iterdir())
