"""Code-derived cache keys (gvlib.codehash) and the one thread control (gvlib.threads)."""
import sys

import pytest
import torch

from gvlib.codehash import _module_digest, source_digest
from gvlib.threads import torch_threads, training_threads


def _digest_of(tmp_path, monkeypatch, name: str, text: str) -> str:
    (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    _module_digest.cache_clear()
    sys.modules.pop(name, None)
    return source_digest(name)


def test_digest_ignores_docstrings_comments_and_layout_but_not_code(tmp_path, monkeypatch):
    base = _digest_of(tmp_path, monkeypatch, "m_x", 'def f(x):\n    return x + 1\n')
    edited = '"""Doc."""\n\n# note\ndef f(x):\n    """Adds one."""\n    return (x +\n            1)\n'
    assert _digest_of(tmp_path, monkeypatch, "m_x", edited) == base
    assert _digest_of(tmp_path, monkeypatch, "m_x", 'def f(x):\n    return x + 2\n') != base


def test_digest_names_a_module_without_source():
    with pytest.raises(ValueError, match="no_such_module_xyz"):
        source_digest("no_such_module_xyz")


def test_organism_and_engine_keys_cover_the_sampler():
    from gvlib.engine import SAMPLING_CODE
    from gvlib.organism.presets import TRAINING_CODE, code_version

    assert "gvlib.sampler" in TRAINING_CODE and "gvlib.sampler" in SAMPLING_CODE
    assert code_version() == "organism-" + source_digest(*TRAINING_CODE)


def test_training_threads_default_and_override(monkeypatch):
    import os

    monkeypatch.delenv("GVLIB_THREADS", raising=False)
    assert training_threads() == (os.cpu_count() or 1)
    monkeypatch.setenv("GVLIB_THREADS", "3")
    assert training_threads() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("GVLIB_THREADS", bad)
        with pytest.raises(ValueError, match="GVLIB_THREADS"):
            training_threads()


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        with torch_threads(0):
            pass


def test_each_backend_keys_the_cache_by_its_own_code(monkeypatch):
    """A change to the CPU sampler re-keys the transformers backend's results, not vLLM's (and back)."""
    import types

    import gvlib.codehash as codehash
    from gvlib import engine
    from gvlib.backends.hf import HFBackend
    from gvlib.backends.vllm import VLLMBackend

    assert set(engine.SHARED_CODE) | set(HFBackend.code) | set(VLLMBackend.code) == set(engine.SAMPLING_CODE)
    hf, vl = types.SimpleNamespace(code=HFBackend.code), types.SimpleNamespace(code=VLLMBackend.code)
    before = engine.code_digest(hf), engine.code_digest(vl)
    assert before[0] != before[1]
    real = codehash._module_digest
    for changed, same, moved in (("gvlib.sampler", 1, 0), ("gvlib.backends.vllm", 0, 1), ("gvlib.verifiers", None, None)):
        monkeypatch.setattr(codehash, "_module_digest", lambda name, c=changed: "edited" if name == c else real(name))
        now = engine.code_digest(hf), engine.code_digest(vl)
        if same is None:  # shared code re-keys both
            assert now[0] != before[0] and now[1] != before[1]
        else:
            assert now[same] == before[same] and now[moved] != before[moved]


def test_the_books_notebooks_are_keyed_by_gvlibs_code_digest(monkeypatch):
    """build: a notebook is re-executed when gvlib's code changes, not when a comment or docstring does."""
    from gvlib import build

    seen = []
    monkeypatch.setattr(build, "source_digest", lambda *modules: seen.append(modules) or "code-1")
    key = build._inputs_key("definitions", None)
    assert {"gvlib", "gvlib.claims", "gvlib.organism", "gvlib.organism.report", "gvlib.backends.hf"} <= set(seen[0])
    assert build._inputs_key("definitions", None) == key
    monkeypatch.setattr(build, "source_digest", lambda *modules: "code-2")
    assert build._inputs_key("definitions", None) != key


def test_a_new_seed_or_probe_table_re_executes_the_organism_page(tmp_path, monkeypatch):
    """The organism page renders book/data/organism_seeds/*.json and book/data/organism_probe/*.json: a
    regenerated table of either kind must re-execute it, and the same file in the other folder is another input."""
    from gvlib import build

    seeds, probe = tmp_path / "organism_seeds", tmp_path / "organism_probe"
    seeds.mkdir(), probe.mkdir()
    monkeypatch.setitem(build.DATA_INPUTS, "organism", (seeds, probe))
    definitions = build._inputs_key("definitions", None)
    keys = [build._inputs_key("organism", None)]
    (seeds / "default.json").write_text('{"seeds": [0, 1, 2]}')
    keys.append(build._inputs_key("organism", None))
    (seeds / "default.json").write_text('{"seeds": [0, 1]}')
    keys.append(build._inputs_key("organism", None))
    (probe / "default.json").write_text('{"rows": []}')
    keys.append(build._inputs_key("organism", None))
    (seeds / "default.json").unlink()
    (probe / "default.json").write_text('{"seeds": [0, 1]}')  # the third key's file, in the probe's folder
    keys.append(build._inputs_key("organism", None))
    assert len(set(keys)) == len(keys)
    assert build._inputs_key("definitions", None) == definitions
