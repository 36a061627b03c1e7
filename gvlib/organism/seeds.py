"""[organism] The seed table: does each claim check give the same verdict on families trained with other seeds?

    python -m gvlib.organism.seeds --preset default --seeds 0 1 2

For each training seed N the command trains (or reuses) the family ``<preset>-s<N>`` (seed 0 is
``<preset>`` itself; :func:`gvlib.organism.presets.get_preset`: same design and world, so the same test
problems), executes the four claim notebooks with their ``<preset>`` parameter presets and ``organism``
set to that family (papermill, :func:`gvlib.build.execute_all`), reads each claim check's verdict and
headline number from the results JSON (:data:`CHECKS`), and writes the claim × seed table to
``book/data/organism_seeds/<preset>.json`` (:func:`table_path`), with the digest of the training code
it ran on (:func:`gvlib.organism.presets.code_version`) and the preset's key. A check whose verdict is
not the same on every seed is reported as "seed-dependent".

The executed notebooks and their results JSON go to a scratch folder, ``$GVLIB_CACHE/seeds/<preset>/s<N>``
(the results through ``$GVLIB_RESULTS``): the book's ``results/`` and ``book/generated`` are untouched.
Families, samples, verifications and executed notebooks are cached, so a stopped run resumes and seed 0
reuses what ``make book`` computed. The organism page renders the table (:func:`frame`) and flags it
as stale (:func:`stale_reason`) when it is missing or was made with other training code or another
preset; ``make book`` itself never trains the other seeds' families.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from gvlib.organism import committed
from gvlib.organism.presets import PRESETS, code_version, parse_name, seeded_name
from gvlib.paths import REPO_ROOT, cache_root

#: The claim notebooks whose checks the table holds (paper §4.1, §4.2, §4.3, §5), in the book's order.
CLAIM_NOTEBOOKS = ("scaling", "cross_verification", "unimprovable", "iterative")
#: A claim check's outcome, as the chapters word it.
VERDICTS = {True: "holds", False: "does not hold", None: "could not be tested"}
SEED_DEPENDENT = "seed-dependent"


def table_path(preset: str) -> Path:
    """Where the seed table of ``preset`` is kept in the repository: ``book/data/organism_seeds/<preset>.json``."""
    return committed.table_path("organism_seeds", preset)


def command(preset: str, seeds: Sequence[int]) -> str:
    """The command that (re)generates the table."""
    return f"python -m gvlib.organism.seeds --preset {preset} --seeds {' '.join(map(str, seeds))}"


# -- reading a claim check from a chapter's results JSON ------------------------------------------------
def _signed(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:+.{digits}f}"


def _scaling(record: dict) -> tuple[bool | None, str]:
    from gvlib.plotting import METHOD_LABELS

    check = record["claim_check"]
    method = check["judged_on"]
    fit = record["measured"]["fits"][method]
    lo, hi = fit["slope_ci"]
    return check["holds"], (f"{METHOD_LABELS[method]}: relative-gap slope {_signed(fit['slope'])} "
                            f"[{_signed(lo)}, {_signed(hi)}] per e-fold of FLOPs")


def _cross(kind: str) -> Callable[[dict], tuple[bool | None, str]]:
    rising, testable, holds = {"rows": ("rows_rising", "rows_testable", "rows_hold"),
                               "columns": ("columns_falling", "columns_testable", "columns_hold")}[kind]

    def read(record: dict) -> tuple[bool | None, str]:
        check = record["claim_check"]
        what = "rows rise" if kind == "rows" else "columns fall"
        return check[holds], f"{check['tested'][rising]} of {check['tested'][testable]} testable {what}"
    return read


def _factual(record: dict) -> tuple[bool | None, str]:
    check = record["claim_check"]
    contrast = check["factual_contrast"]
    return contrast["holds"], (f"largest factual gap {_signed(check['factual_max_gap'])} pp; reasoning gap interval "
                               f"above 0: {', '.join(contrast['reasoning_gainers']) or 'none'}")


def _sudoku(record: dict) -> tuple[bool | None, str]:
    check = record["claim_check"]
    gainers = ", ".join(check["sudoku_gainers"]) or "none"
    return check["holds"]["sudoku_only_largest_gain"], f"Sudoku gap interval above 0: {gainers}"


def _main_run(record: dict) -> tuple[dict, list[dict]]:
    run = record["claim_check"]["main_run"]
    return record["claim_check"][run], record["measured"]["runs"][run]["rounds"]


def _saturation(record: dict) -> tuple[bool | None, str]:
    """The iterative chapter's saturation rule (gvlib.iterate.claim_check): not testable when round 0 measured
    no gap (its filter kept nothing) or started below the line (no gap to close)."""
    from gvlib.claims import untested

    check, rounds = _main_run(record)
    gap0 = rounds[0]["gap"]
    testable = untested(gap0["n_prompts"], gap0["n_empty"]) is None and check["starts_above_line"]
    gaps = ", ".join(_signed(100 * g, 1) for g in check["gap_by_round"])
    return (check["saturates_within_3_rounds"] if testable else None), f"gap by round {gaps} pp"


def _diversity(record: dict) -> tuple[bool | None, str]:
    """pass@1 rises and pass@n falls (gvlib.iterate.claim_check); not testable when no round fine-tuned anything."""
    check, rounds = _main_run(record)
    trained = any(r["trained"] for r in rounds[:-1])
    ks = sorted(int(m[1]) for key in check if (m := re.fullmatch(r"pass@(\d+)_change", key)))
    text = "change from the first round to the last: " + ", ".join(
        f"pass@{k} {_signed(100 * check[f'pass@{k}_change'][0], 1)}" for k in (ks[0], ks[-1])) + " pp"
    return (check["diversity_drop"] if trained else None), text


@dataclass(frozen=True)
class Check:
    """One claim check of the table: the chapter that computes it and how to read it from its results JSON."""

    claim: str
    name: str
    read: Callable[[dict], tuple[bool | None, str]]


#: The checks of the table, each read from the ``claim_check`` of ``results/<claim>.json``; the first check of
#: each chapter is its main verdict. The paper's claims: relative gap against FLOPs (§4.1, Fig. 1),
#: cross-verification (§4.2, Fig. 3), unimprovable tasks (§4.3, Tabs. 1–2), iterative self-improvement
#: (§5, Fig. 4: the gap saturates, pass@k at large k falls).
CHECKS = (
    Check("scaling", "relative gap rises with FLOPs", _scaling),
    Check("cross_verification", "larger verifier, larger gap (rows)", _cross("rows")),
    Check("cross_verification", "larger generator, smaller gap (columns)", _cross("columns")),
    Check("unimprovable", "factual gap flat, reasoning gap positive", _factual),
    Check("unimprovable", "on Sudoku only the largest gain", _sudoku),
    Check("iterative", "self-improvement saturates within 3 rounds", _saturation),
    Check("iterative", "pass@1 rises, pass@n falls", _diversity),
)


def read_checks(results: Path) -> list[dict]:
    """Every check's verdict and headline from the results JSON in ``results``."""
    records = {claim: json.loads((results / f"{claim}.json").read_text()) for claim in CLAIM_NOTEBOOKS}
    out = []
    for check in CHECKS:
        holds, headline = check.read(records[check.claim])
        out.append({"claim": check.claim, "check": check.name, "verdict": VERDICTS[holds], "headline": headline})
    return out


def make_table(preset: str, by_seed: dict[int, list[dict]], wall_time_s: dict[int, float]) -> dict:
    """The table: one row per check with each seed's verdict and headline, and whether the verdict is the same on
    every seed (that verdict) or not (``"seed-dependent"``)."""
    seeds = sorted(by_seed)
    rows = []
    for i, check in enumerate(CHECKS):
        cells = {str(s): {k: by_seed[s][i][k] for k in ("verdict", "headline")} for s in seeds}
        verdicts = {c["verdict"] for c in cells.values()}
        rows.append({"claim": check.claim, "check": check.name, "seeds": cells,
                     "across_seeds": verdicts.pop() if len(verdicts) == 1 else SEED_DEPENDENT})
    return {
        **committed.stamp(preset, code_version(), command(preset, seeds)),
        "seeds": seeds, "families": {str(s): seeded_name(preset, s) for s in seeds},
        "notebook_presets": f"notebooks/params/<notebook>/{preset}.yaml",
        "wall_time_s": {str(s): round(wall_time_s[s]) for s in seeds}, "rows": rows,
    }


# -- the page's side: read, judge, render ----------------------------------------------------------
def load_table(preset: str, path: Path | None = None) -> dict | None:
    """The committed seed table of ``preset`` (or the one at ``path``), or None when there is none."""
    return committed.load_table(table_path(preset) if path is None else path)


def stale_reason(table: dict | None, preset: str) -> str | None:
    """Why ``table`` does not describe the families the current code trains for ``preset``, or None when it does:
    missing, made with another training-code digest, or made for another version of the preset."""
    again = f"regenerate it with `{command(preset, (0, 1, 2))}` and commit {table_path(preset).relative_to(REPO_ROOT)}"
    return committed.stale_reason(table, preset, code_version(), what="seed table", regenerate=again)


def frame(table: dict):
    """The table as a DataFrame: one row per check, one column per seed ("verdict: headline"), and across seeds."""
    import pandas as pd

    data = [{"claim": r["claim"], "check": r["check"],
             **{f"seed {s}": f"{c['verdict']}: {c['headline']}" for s, c in r["seeds"].items()},
             "across seeds": r["across_seeds"]} for r in table["rows"]]
    return pd.DataFrame(data).set_index(["claim", "check"])


# -- the command ---------------------------------------------------------------------------------------
@contextmanager
def _results_into(folder: Path):
    """``$GVLIB_RESULTS`` set to ``folder`` for the notebooks' kernels, restored afterwards."""
    before = os.environ.get("GVLIB_RESULTS")
    os.environ["GVLIB_RESULTS"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GVLIB_RESULTS", None)
        else:
            os.environ["GVLIB_RESULTS"] = before


def family_names(preset: str, seeds: Sequence[int]) -> dict[int, str]:
    """Each seed's family name, after checking the arguments: a preset without a seed, distinct seeds, and claim
    notebook presets that run that preset's family (the family each seed replaces)."""
    from gvlib.build import organism_presets

    if preset not in PRESETS:
        raise ValueError(f"--preset must be a preset without a seed, one of {sorted(PRESETS)}; got {preset!r}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must be distinct training seeds, got {list(seeds)}")
    for notebook in CLAIM_NOTEBOOKS:
        organism = organism_presets((notebook,), preset)
        if organism and parse_name(organism[0])[0] != preset:
            raise ValueError(f"notebooks/params/{notebook}/{preset}.yaml runs organism {organism[0]!r}, not {preset!r}")
    return {s: seeded_name(preset, s) for s in seeds}


def run(preset: str, seeds: Sequence[int], *, out: Path | None = None, scratch: Path | None = None,
        force: bool = False) -> dict:
    """Train or reuse each seed's family, run the claim notebooks on it, write the table to ``out``; returns it."""
    from gvlib import build
    from gvlib.results import write_atomic

    names = family_names(preset, seeds)
    out = table_path(preset) if out is None else Path(out)
    scratch = cache_root() / "seeds" / preset if scratch is None else Path(scratch)
    by_seed, wall = {}, {}
    for seed in seeds:
        t0 = time.time()
        print(f"[seed {seed}] family {names[seed]!r}", flush=True)
        build.train_organism(names[seed])
        folder = scratch / f"s{seed}"
        with _results_into(folder / "results"):
            build.execute_all(CLAIM_NOTEBOOKS, preset, jobs=build.default_jobs(CLAIM_NOTEBOOKS, preset), force=force,
                              generated=folder / "generated", overrides={"organism": names[seed]})
        by_seed[seed], wall[seed] = read_checks(folder / "results"), time.time() - t0
    table = make_table(preset, by_seed, wall)
    write_atomic(out, json.dumps(table, indent=1) + "\n")
    return table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gvlib.organism.seeds", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS), help="organism preset (default: %(default)s)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    ap.add_argument("--out", type=Path, default=None, help="the table (default: book/data/organism_seeds/<preset>.json)")
    ap.add_argument("--scratch", type=Path, default=None,
                    help="executed notebooks and results JSON (default: $GVLIB_CACHE/seeds/<preset>)")
    ap.add_argument("--force", action="store_true", help="re-execute the notebooks even when their inputs are unchanged")
    args = ap.parse_args(argv)
    try:
        family_names(args.preset, args.seeds)
    except ValueError as e:
        ap.error(str(e))
    table = run(args.preset, args.seeds, out=args.out, scratch=args.scratch, force=args.force)
    print(frame(table).to_string())
    print(f"wrote {args.out or table_path(args.preset)}")


if __name__ == "__main__":
    main()
