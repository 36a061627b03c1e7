"""Training seeds of the organism (gvlib.organism.presets: ``<preset>-s<N>``) and the seed table
(gvlib.organism.seeds): names, the table's verdicts across seeds, and when the organism page calls it stale."""
import json
import time
from pathlib import Path

import pytest
import torch

from gvlib.organism import __main__ as organism_cli
from gvlib.organism import default_dir, get_preset, seeded_name, seeds
from gvlib.organism.presets import PRESETS, code_version, parse_name
from gvlib.organism.world import World
from gvlib.params import ParameterError, validate
from gvlib.paths import REPO_ROOT

ROOT = Path(__file__).resolve().parents[1]


def test_a_seeded_name_is_the_same_design_and_world_with_another_training_seed():
    tiny, s1 = get_preset("tiny"), get_preset("tiny-s1")
    assert (s1.name, s1.seed, parse_name("tiny-s1")) == ("tiny-s1", 1, ("tiny", 1))
    assert (s1.models, s1.seed_stage, s1.train, s1.mixture, s1.world) == (tiny.models, tiny.seed_stage, tiny.train,
                                                                          tiny.mixture, tiny.world)
    assert s1.key() != tiny.key() and s1.shared_key() != tiny.shared_key()
    assert all(s1.model_key(m) != tiny.model_key(m) for m in tiny.models)
    assert default_dir(s1.name) != default_dir(tiny.name) and default_dir(s1.name).name == "tiny-s1"
    # the same world, so the same test problems: verdicts on two seeds judge the same prompts
    assert World(s1.world).test_problems == World(tiny.world).test_problems
    assert get_preset("tiny-s2").model_key(tiny.models[0]) != s1.model_key(tiny.models[0])


def test_seed_0_is_the_preset_itself():
    for name in PRESETS:
        assert PRESETS[name].seed == 0 and seeded_name(name, 0) == name
        assert get_preset(f"{name}-s0") is PRESETS[name]  # same name, cache directory and key
    assert get_preset("default-s0").key() == PRESETS["default"].key() and seeded_name("default", 2) == "default-s2"


def organism_page_parameters() -> dict:
    """The organism page's parameters cell, run: its defaults and their declared types."""
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "organism.ipynb", as_version=4)
    namespace: dict = {}
    exec(next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", [])), namespace)  # noqa: S102
    namespace.pop("__builtins__")
    return namespace


@pytest.mark.parametrize("bad", ["defualt", "default-s01", "default-s-1", "default-s", "nope-s1", "-s1"])
def test_a_bad_name_fails_clearly(bad):
    with pytest.raises(ValueError, match=rf"unknown organism preset '{bad}': expected one of \['default', 'tiny'\] "
                                         r"or <preset>-s<N> \(that preset with training seed N, e.g. 'default-s1'\)"):
        get_preset(bad)
    namespace = organism_page_parameters() | {"organism": bad}
    with pytest.raises(ParameterError, match=rf"parameter 'organism' names no organism family: unknown organism "
                                             rf"preset '{bad}'"):
        validate("organism", namespace)
    assert validate("organism", {**namespace, "organism": "tiny-s3"})["organism"] == "tiny-s3"


def test_command_lines_reject_bad_presets_and_seeds(capsys):
    with pytest.raises(SystemExit):
        organism_cli.main(["--preset", "defualt"])
    assert "unknown organism preset 'defualt'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        organism_cli.main(["--preset", "tiny-s1", "--seed", "2"])
    assert "unknown organism preset 'tiny-s1' to seed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        seeds.main(["--preset", "tiny", "--seeds", "0", "0"])
    assert "--seeds must be distinct training seeds, got [0, 0]" in capsys.readouterr().err
    with pytest.raises(ValueError, match="training seed must be an int >= 0, got -1"):
        seeded_name("tiny", -1)


def _checks(*verdicts):
    return [{"claim": c.claim, "check": c.name, "verdict": v, "headline": f"{c.name} on this seed"}
            for c, v in zip(seeds.CHECKS, verdicts)]


def _records(*, round0_empty=3, starts_above=True, trained=True):
    """Results JSON of the four chapters, reduced to the keys the table reads (as the notebooks write them)."""
    rounds = [{"gap": {"n_prompts": 64, "n_empty": round0_empty}, "trained": trained} for _ in range(3)]
    return {
        "scaling": {"claim_check": {"holds": True, "judged_on": "cot_score"},
                    "measured": {"fits": {"cot_score": {"slope": 0.84, "slope_ci": [0.41, 1.3]}}}},
        "cross_verification": {"claim_check": {"holds": False, "rows_hold": False, "columns_hold": None, "tested": {
            "rows_rising": 1, "rows_testable": 4, "columns_falling": 0, "columns_testable": 0}}},
        "unimprovable": {"claim_check": {
            "holds": {"factual_unimprovable": True, "sudoku_only_largest_gain": False}, "factual_max_gap": 0.31,
            "factual_contrast": {"holds": True, "reasoning_gainers": ["m4", "m5"]}, "sudoku_gainers": ["m3", "m5"]}},
        "iterative": {"claim_check": {"main_run": "self", "self": {
            "starts_above_line": starts_above, "saturates_within_3_rounds": starts_above, "diversity_drop": False,
            "gap_by_round": [0.05, 0.02, 0.004], "pass@1_change": [0.03, 0.01, 0.05], "pass@16_change": [-0.1, -0.2, 0.0]}},
            "measured": {"runs": {"self": {"rounds": rounds}}}},
    }


def _read(tmp_path, records):
    for claim, record in records.items():
        (tmp_path / f"{claim}.json").write_text(json.dumps(record))
    return [(c["verdict"], c["headline"]) for c in seeds.read_checks(tmp_path)]


def test_each_check_is_read_from_its_chapters_results(tmp_path):
    assert _read(tmp_path, _records()) == [
        ("holds", "CoT-Score: relative-gap slope +0.84 [+0.41, +1.30] per e-fold of FLOPs"),
        ("does not hold", "1 of 4 testable rows rise"),
        ("could not be tested", "0 of 0 testable columns fall"),
        ("holds", "largest factual gap +0.31 pp; reasoning gap interval above 0: m4, m5"),
        ("does not hold", "Sudoku gap interval above 0: m3, m5"),
        ("holds", "gap by round +5.0, +2.0, +0.4 pp"),
        ("does not hold", "change from the first round to the last: pass@1 +3.0, pass@16 -10.0 pp"),
    ]
    # saturation needs a gap at round 0 (a filter that kept something, above the line); diversity a trained round
    assert [v for v, _ in _read(tmp_path, _records(round0_empty=64))[-2:]] == ["could not be tested", "does not hold"]
    assert _read(tmp_path, _records(starts_above=False))[-2][0] == "could not be tested"
    assert _read(tmp_path, _records(trained=False))[-1][0] == "could not be tested"


def test_a_check_whose_verdict_differs_between_seeds_is_seed_dependent():
    n = len(seeds.CHECKS)
    first = ["holds"] * n
    second = ["does not hold"] + ["holds"] * (n - 2) + ["could not be tested"]
    table = seeds.make_table("tiny", {1: _checks(*second), 0: _checks(*first)}, {0: 10.4, 1: 12.0})
    assert table["seeds"] == [0, 1] and table["families"] == {"0": "tiny", "1": "tiny-s1"}
    assert [r["across_seeds"] for r in table["rows"]] == ["seed-dependent"] + ["holds"] * (n - 2) + ["seed-dependent"]
    assert table["rows"][0]["seeds"]["1"] == {"verdict": "does not hold", "headline": f"{seeds.CHECKS[0].name} on this seed"}
    assert table["command"] == "python -m gvlib.organism.seeds --preset tiny --seeds 0 1"
    frame = seeds.frame(table)
    assert list(frame.columns) == ["seed 0", "seed 1", "across seeds"] and len(frame) == n
    assert frame.iloc[0]["seed 1"] == f"does not hold: {seeds.CHECKS[0].name} on this seed"


def test_the_page_calls_a_table_stale_when_missing_or_made_with_other_code_or_preset(tmp_path):
    table = seeds.make_table("tiny", {0: _checks(*["holds"] * len(seeds.CHECKS))}, {0: 1.0})
    assert seeds.stale_reason(table, "tiny") is None
    assert "no seed table for preset 'tiny' yet: regenerate it with `python -m gvlib.organism.seeds --preset tiny " \
           "--seeds 0 1 2` and commit book/data/organism_seeds/tiny.json" in seeds.stale_reason(None, "tiny")
    old = {**table, "code_version": "organism-0000000000000000"}
    assert f"made with code organism-0000000000000000, the current code is {code_version()}" in \
        seeds.stale_reason(old, "tiny")
    assert "has changed since the table was made" in seeds.stale_reason({**table, "preset_key": "0" * 16}, "tiny")
    assert "the table is for preset 'tiny', not 'default'" in seeds.stale_reason(table, "default")
    path = tmp_path / "tiny.json"
    assert seeds.load_table("tiny", path) is None
    path.write_text(json.dumps(old))
    assert seeds.stale_reason(seeds.load_table("tiny", path), "tiny").startswith("the table was made with code")
    assert seeds.table_path("default") == REPO_ROOT / "book" / "data" / "organism_seeds" / "default.json"


def test_a_table_records_the_cpu_kernels_that_trained_it_and_the_page_says_when_the_builds_differ():
    """The same code trains other weights with other CPU kernels (AVX2, AVX512), so a table says which it ran on."""
    from gvlib.organism import committed
    from gvlib.threads import cpu_kernels

    table = seeds.make_table("tiny", {0: _checks(*["holds"] * len(seeds.CHECKS))}, {0: 1.0})
    assert table["cpu_kernels"] == cpu_kernels() == torch.backends.cpu.get_cpu_capability()
    assert committed.other_cpu(table, what="seed table") is None
    assert committed.other_cpu({k: v for k, v in table.items() if k != "cpu_kernels"}, what="seed table") is None
    other = "AVX2" if cpu_kernels() != "AVX2" else "AVX512"
    note = committed.other_cpu({**table, "cpu_kernels": other}, what="seed table")
    assert note.startswith(f"the seed table was made on a CPU with torch's {other} kernels and this build runs "
                           f"{cpu_kernels()} ones")
    assert seeds.stale_reason({**table, "cpu_kernels": other}, "tiny") is None  # other kernels: a note, not stale


@pytest.mark.slow
def test_the_command_runs_the_claim_notebooks_on_each_seeds_family(tmp_path):
    """The tiny preset, seeds 0 and 1, end to end: about 2 minutes on one niced core (the families trained too)."""
    started = time.time()
    out, scratch = tmp_path / "tiny.json", tmp_path / "scratch"
    seeds.main(["--preset", "tiny", "--seeds", "0", "1", "--out", str(out), "--scratch", str(scratch)])
    table = json.loads(out.read_text())
    assert table["seeds"] == [0, 1] and seeds.stale_reason(table, "tiny") is None
    assert [(r["claim"], r["check"]) for r in table["rows"]] == [(c.claim, c.name) for c in seeds.CHECKS]
    for seed, name in ((0, "tiny"), (1, "tiny-s1")):
        results = scratch / f"s{seed}" / "results"
        records = {c: json.loads((results / f"{c}.json").read_text()) for c in seeds.CLAIM_NOTEBOOKS}
        assert all(r["parameters"]["organism"] == name for r in records.values())  # each seed ran its own family
        cells = [r["seeds"][str(seed)] for r in table["rows"]]
        assert all(c["verdict"] in seeds.VERDICTS.values() and c["headline"] for c in cells)
        assert cells[0]["verdict"] == seeds.VERDICTS[records["scaling"]["claim_check"]["holds"]]
        assert cells[1]["verdict"] == seeds.VERDICTS[records["cross_verification"]["claim_check"]["holds"]]
        assert cells[3]["verdict"] == records["unimprovable"]["claim_check"]["factual_contrast"]["verdict"]
    for row in table["rows"]:
        verdicts = {c["verdict"] for c in row["seeds"].values()}
        assert row["across_seeds"] == (verdicts.pop() if len(verdicts) == 1 else "seed-dependent")
    book_results = REPO_ROOT / "results"  # the book's results are not written to
    assert not book_results.exists() or all(p.stat().st_mtime < started for p in book_results.rglob("*"))
