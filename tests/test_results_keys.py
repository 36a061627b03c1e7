"""The results JSON of every chapter keeps its keys (issue 17: a refactor must not change what a chapter
records). ``tests/fixtures/tiny_results_keys.json`` holds the key paths of ``results/<chapter>.json`` of the
tiny book as it was built before the refactor; this test reads the tiny book the build last left
(``make book-tiny``, or ``$GVLIB_TINY_BOOK``) and skips when it is not built, as the HTML tests do.
The changes allowed on purpose: a parameter renamed by issue 17 (:data:`gvlib.params.RENAMED`) is
recorded under its new name; the keys in :data:`ADDED` were added since (each with its issue); a round that
trained nothing (every sample filtered out, common with the tiny family) records no training keys.
"""
import json
import os
import re
from pathlib import Path

import pytest

from gvlib.params import RENAMED

ROOT = Path(__file__).resolve().parents[1]
TINY_BOOK = Path(os.environ.get("GVLIB_TINY_BOOK") or ROOT / "_build" / "tiny")
EXPECTED = json.loads((ROOT / "tests" / "fixtures" / "tiny_results_keys.json").read_text())
#: Subtrees whose keys depend on the machine, not on the chapter (which packages are installed).
MACHINE = ("versions",)
#: Keys added on purpose after the fixture was captured: each verifier's ROC AUC of score against
#: correctness, pooled and within prompts (issue 13), the tournament rounds the organism page now runs, and
#: its verifiers' AUCs on the near misses of train problems and its committed MC probe table (issue 13).
_AUC = {"measured.rows[].auc", "measured.rows[].auc_within"}
ADDED = {"scaling": _AUC, "cross_verification": _AUC, "unimprovable": _AUC,
         "organism": {f"measured.rows[].AUC {w}{m}" for m in ("mc", "cot_score", "cot_binary", "tournament")
                      for w in ("", "within ")} | {"parameters.tournament_rounds"}
         | {f"measured.near_misses{k}" for k in ("", "[].task", "[].generator", "[].method", "[].auc", "[].score_gold",
                                                 "[].score_near_miss")}
         | {f"measured.mc_probe{k}" for k in ("", "_stale", "[].trained on", "[].check weight", "[].model", "[].steps", "[].final loss",
                                              "[].final check loss",
                                              "[].AUC near misses", "[].AUC own errors", "[].seconds")}}
#: What an iteration round records only when it fine-tuned (a round whose filter kept nothing did not).
ONLY_WHEN_TRAINED = re.compile(r"measured\.runs\.\w+\.rounds\[\]\.(train(\..+)?|seconds\.train)")


def key_paths(obj, prefix: str = "") -> set[str]:
    """Every key path of a JSON value: ``a.b`` for nested dicts, ``a[].b`` for the dicts inside lists."""
    out = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{prefix}.{k}" if prefix else k
            if path in MACHINE:
                out.add(path)
                continue
            out.add(path)
            out |= key_paths(v, path)
    elif isinstance(obj, list):
        for v in obj:
            out |= key_paths(v, f"{prefix}[]")
    return out


def test_key_paths_walks_dicts_and_lists():
    assert key_paths({"a": {"b": 1}, "c": [{"d": 2}, {"e": [3]}], "versions": {"x": 1}}) == {
        "a", "a.b", "c", "c[].d", "c[].e", "versions"}


@pytest.mark.parametrize("chapter", sorted(EXPECTED))
def test_results_keep_their_keys(chapter):
    path = TINY_BOOK / "results" / f"{chapter}.json"
    if not path.exists():
        pytest.skip(f"{path} not built (make book-tiny)")
    got = key_paths(json.loads(path.read_text()))
    renamed = {f"parameters.{old}": f"parameters.{new}" for old, new in RENAMED.get(chapter, {}).items()}
    expected = {renamed.get(k, k) for k in EXPECTED[chapter]} | ADDED.get(chapter, set())
    lost = {k for k in expected - got if not ONLY_WHEN_TRAINED.fullmatch(k)}
    assert not lost, f"{chapter}: keys lost: {sorted(lost)}"
    assert not got - expected, f"{chapter}: keys added: {sorted(got - expected)}"
