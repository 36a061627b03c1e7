"""The disk cache: atomic entries, corrupt/truncated entries recomputed, resume after a killed run."""
from __future__ import annotations

import pytest

from gvlib.cache import Cache, digest


def test_put_get_roundtrip_and_miss(tmp_path):
    c = Cache(tmp_path)
    assert c.get("k", "a" * 64) is None
    c.put("k", "a" * 64, {"x": [1, 2.5, "é"]})
    assert c.get("k", "a" * 64) == {"x": [1, 2.5, "é"]}
    assert (c.hits, c.misses, c.corrupt) == (1, 1, 0)
    assert not list(tmp_path.rglob("*.tmp"))  # no temporary files left behind


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_entry_is_a_miss_never_read(tmp_path, damage):
    c = Cache(tmp_path)
    c.put("k", "b" * 64, list(range(100)))
    p = c.path("k", "b" * 64)
    blob = p.read_bytes()
    flipped = bytearray(blob)
    flipped[-5] ^= 1  # one digit changes, the length does not
    p.write_bytes({"truncate": blob[:-7], "flip": bytes(flipped), "garbage": b"\x00junk", "empty": b""}[damage])
    assert c.get("k", "b" * 64) is None and c.corrupt == 1


def test_digest_is_stable_and_order_free():
    assert digest({"a": 1, "b": (1, 2)}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


def test_default_root_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GVLIB_CACHE", str(tmp_path))
    assert Cache().root == tmp_path
    monkeypatch.delenv("GVLIB_CACHE")
    assert Cache().root.parts[-2:] == (".cache", "gvlib")


class Killed(Exception):
    pass


def test_killed_run_resumes_without_recomputing_finished_chunks(tmp_path):
    items = [f"prompt {i}" for i in range(10)]
    done = []

    def work(chunk, die_at=None):
        if die_at is not None and chunk[0] == die_at:
            raise Killed
        done.append(list(chunk))
        return [s.upper() for s in chunk]

    c = Cache(tmp_path)
    with pytest.raises(Killed):  # dies in the third chunk
        c.map_chunks("gen", {"seed": 0}, items, lambda ch: work(ch, die_at="prompt 6"), chunk_size=3)
    assert done == [items[0:3], items[3:6]]
    done.clear()
    out = c.map_chunks("gen", {"seed": 0}, items, work, chunk_size=3)
    assert done == [items[6:9], items[9:10]]  # only the unfinished chunks ran
    assert [x for chunk in out for x in chunk] == [s.upper() for s in items]
    done.clear()
    again = Cache(tmp_path).map_chunks("gen", {"seed": 0}, items, work, chunk_size=3)
    assert again == out and done == []
    # another key, or an edited prompt, recomputes (only the affected chunk)
    c.map_chunks("gen", {"seed": 1}, items, work, chunk_size=3)
    assert len(done) == 4
    done.clear()
    edited = items[:4] + ["prompt 4 (edited)"] + items[5:]
    c.map_chunks("gen", {"seed": 0}, edited, work, chunk_size=3)
    assert done == [edited[3:6]]


def test_corrupt_chunk_is_recomputed(tmp_path):
    c = Cache(tmp_path)
    calls = []
    fn = lambda ch: calls.append(ch) or list(ch)
    c.map_chunks("gen", {}, list("abcdef"), fn, chunk_size=2)
    victim = sorted(tmp_path.rglob("*.json"))[0]
    victim.write_bytes(victim.read_bytes()[:-2])
    calls.clear()
    out = c.map_chunks("gen", {}, list("abcdef"), fn, chunk_size=2)
    assert len(calls) == 1 and out == [["a", "b"], ["c", "d"], ["e", "f"]] and c.corrupt == 1
