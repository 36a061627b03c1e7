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


class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now


def test_long_stage_logs_progress_lines_off_a_terminal(tmp_path, monkeypatch):
    """A papermill run has no terminal: a long stage prints done/total, elapsed and ETA every 30 s."""
    import io
    import types

    import gvlib.cache as cache_mod

    clock, err = _FakeClock(), io.StringIO()
    monkeypatch.setattr(cache_mod, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(cache_mod.sys, "stderr", err)

    def slow(chunk):
        clock.now += 10.0  # each chunk takes 10 s
        return list(chunk)

    c = Cache(tmp_path)
    assert c.map_chunks("k", {"a": 1}, list(range(20)), slow, chunk_size=2, desc="generate t") == [
        [i, i + 1] for i in range(0, 20, 2)]
    assert err.getvalue().splitlines() == [
        "generate t: 3/10 (30%), elapsed 0m30s, ETA 1m10s",
        "generate t: 6/10 (60%), elapsed 1m00s, ETA 0m40s",
        "generate t: 9/10 (90%), elapsed 1m30s, ETA 0m10s",
        "generate t: 10/10 (100%), elapsed 1m40s, ETA 0m00s",
    ]
    err.truncate(0), err.seek(0)
    c.map_chunks("k", {"a": 1}, list(range(20)), slow, chunk_size=2, desc="generate t")  # all cached: instant
    assert err.getvalue() == ""


def test_progress_is_a_bar_on_a_terminal():
    import io

    from gvlib.cache import progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    assert list(progress(range(3), desc="stage", stream=out)) == [0, 1, 2]
    assert "stage:" in out.getvalue() and "0/3 [" in out.getvalue() and "elapsed" not in out.getvalue()  # tqdm's bar
