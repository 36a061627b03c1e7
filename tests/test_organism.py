"""Tests of the model organism (gvlib.organism): tasks, checkers, corpus, tokenizer, family cache/resume."""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from gvlib.backends import SamplingParams
from gvlib.backends.hf import HFBackend

from gvlib.organism import ensure_family, get_preset, load_task
from gvlib.organism.corpus import CandidatePool, Corpus
from gvlib.organism.seed import SeedConfig
from gvlib.organism.tasks import make_task
from gvlib.organism.tokenizer import build_tokenizer
from gvlib.organism.train import ModelSpec, TrainConfig
from gvlib.organism.world import World, WorldConfig, all_sudoku_grids, sudoku_grid_valid
from gvlib.tasks.base import VERIFIER_METHODS

BINARY = re.compile(r"Correctness:\s*<?\s*(correct|incorrect)\s*>?")
SCORE = re.compile(r"Score:\s*(\d+)")
PREF = re.compile(r"Preferred solution:\s*<?\s*([AB])\s*>?")

WORLD = World(WorldConfig())
TASKS = {t: make_task(t, WORLD) for t in ("sudoku", "arith", "facts")}


class Stop(Exception):
    """Stands in for a run killed after its first model."""


def _micro_preset():
    tiny = get_preset("tiny")
    return replace(tiny, name="micro", models=(ModelSpec("a", 16, 1, 2, 32, 6), ModelSpec("b", 24, 1, 2, 32, 6)),
                   seed_stage=SeedConfig(ModelSpec("seed", 16, 1, 2, 32, 4), checkpoints=(2, 4), problems=6, samples=2),
                   train=TrainConfig(rows=4, seq_len=256))


@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
    """Train the micro family once, stopped after its first model, then resumed."""
    out = tmp_path_factory.mktemp("organism") / "micro"
    preset = _micro_preset()

    def stop_after_first(entry):
        if entry.name == "a":
            raise Stop

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GVLIB_THREADS", "1")  # one member after the other, so the stop comes between them
        with pytest.raises(Stop):
            ensure_family(preset, out, on_model_done=stop_after_first)
        first_manifest = (out / "a" / "manifest.json").read_text()
        resumed = ensure_family(preset, out)
    return preset, out, resumed, first_manifest


def test_members_trained_in_parallel_equal_those_trained_in_turn(family_run, tmp_path, monkeypatch):
    """Two worker processes of one thread each give the weights one process gives, member by member."""
    from safetensors.torch import load_file
    preset, out, _, _ = family_run
    monkeypatch.setenv("GVLIB_THREADS", "2")
    parallel = ensure_family(preset, tmp_path / "parallel")
    assert parallel.trained_now == ["a", "b"]
    for m in parallel.models:
        ours, theirs = load_file(m.path / "model.safetensors"), load_file(out / m.name / "model.safetensors")
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), m.name


def test_a_member_retrained_alone_equals_the_one_its_family_trained(family_run, tmp_path, monkeypatch):
    """A member retrained alone, with two threads to spare, trains on one as in the family's build: the thread
    count changes floating-point sums (a member of this size trained on two threads differs in its weights)."""
    from safetensors.torch import load_file
    preset, out, _, _ = family_run
    alone = tmp_path / "alone"
    shutil.copytree(out, alone)
    shutil.rmtree(alone / "b")
    monkeypatch.setenv("GVLIB_THREADS", "2")
    family = ensure_family(preset, alone)
    assert family.trained_now == ["b"]
    ours, theirs = load_file(alone / "b" / "model.safetensors"), load_file(out / "b" / "model.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_member_that_fails_in_its_worker_stops_the_build_and_is_named(family_run, tmp_path, monkeypatch):
    """A worker that cannot train its member (here: a file where the member's directory goes) stops the build
    with an error naming the member, and no worker is left running."""
    preset, out, _, _ = family_run
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    for name in ("a", "b"):
        shutil.rmtree(broken / name)
    (broken / "b").write_text("not a model")
    monkeypatch.setenv("GVLIB_THREADS", "2")
    before = set(_children())  # other tests' processes, if any are still alive, are not this build's
    with pytest.raises(RuntimeError, match="member 'b' of micro failed"):
        ensure_family(preset, broken)
    assert not set(_children()) - before


def _children() -> list[str]:
    """The pids of this process's live children (Linux: their ``/proc/<pid>/stat`` names us as parent)."""
    me, kids = str(os.getpid()), []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        if stat.rsplit(")", 1)[1].split()[1] == me:
            kids.append(proc.name)
    return kids


# -- tasks and checkers ------------------------------------------------------------------------
def test_sudoku_grids_and_checker():
    grids = all_sudoku_grids()
    assert len(grids) == 288 and len(set(grids)) == 288 and all(sudoku_grid_valid(g) for g in grids)
    task = load_task("organism/sudoku", limit=5)
    ex = task.examples[0]
    assert task.score(ex, task.gold_completion(ex)) == 1
    grid = [int(v) for v in ex.answer.replace("|", " ").split()]
    # another valid grid that ignores the givens is wrong
    other = next(g for g in grids if tuple(g) != tuple(grid))
    text = " | ".join(" ".join(map(str, other[4 * r:4 * r + 4])) for r in range(4))
    assert task.score(ex, text) == 0
    assert "bad" in task.checks(ex, text)
    assert task.checks(ex, ex.answer) == ex.answer.split()  # a right grid is rewritten unchanged
    # swapping two cells of a row breaks the columns
    swapped = grid.copy()
    swapped[0], swapped[1] = swapped[1], swapped[0]
    text = " | ".join(" ".join(map(str, swapped[4 * r:4 * r + 4])) for r in range(4))
    assert task.score(ex, text) == 0
    assert task.score(ex, "1 2 3") == 0 and task.checks(ex, "1 2 3") == ["form", "bad"]
    assert task.extract("garbage") is None


def test_arith_checker():
    task = load_task("organism/arith", limit=3)
    ex = task.examples[0]
    gold = task.gold_completion(ex)
    assert task.score(ex, gold) == 1 and "bad" not in task.checks(ex, gold)
    wrong_answer = gold[:-1] + str((int(gold[-1]) + 1) % 10)
    assert task.score(ex, wrong_answer) == 0 and task.checks(ex, wrong_answer)[-2:] == ["answer", "bad"]
    assert task.extract("3 7 answer 7") == "7" and task.extract("no answer") is None
    # one written sum per digit, right-aligned behind the pads: arith 7 5 9 2 -> 7 2 1 3 answer 3
    ex = task.example((7, 5, 9, 2))
    pads = ". " * (task.width - 4)
    assert ex.question == "arith " + pads + "7 5 9 2" and task.gold_completion(ex) == pads + "7 2 1 3 answer 3"
    assert task.checks(ex, pads + "7 2 2 3 answer 3") == pads.split() + ["7", "2", "bad", "bad", "answer", "3"]
    assert task.checks(ex, "7 2 1 3 answer 3") == ["form", "bad"]  # the pads are part of the layout


def test_near_misses_are_wrong_and_close():
    """Every near miss is rejected by the checker and differs from the gold solution in few tokens."""
    rng = np.random.default_rng(0)
    for name, task in TASKS.items():
        for problem in WORLD.problems(name, "train", limit=200):
            ex = task.example(problem)
            gold, miss = task.gold_completion(ex).split(), task.near_miss(ex, rng).split()
            assert task.score(ex, " ".join(miss)) == 0 and len(miss) == len(gold), (name, miss)
            changed = sum(a != b for a, b in zip(gold, miss))
            assert 1 <= changed <= (2 if name == "sudoku" else len(gold)), (name, gold, miss)


def test_check_labels_mark_each_word_that_breaks_a_rule_already_decided():
    """Sudoku: a cell is 1 when its digit repeats an earlier cell of a unit or contradicts a given; separators,
    unreadable candidates, arith and facts: -1. A gold solution has no 1, a near miss at least one; labels
    align with words."""
    rng = np.random.default_rng(1)
    for name, task in TASKS.items():
        for problem in WORLD.problems(name, "train", limit=100):
            ex = task.example(problem)
            for cand in (task.gold_completion(ex), task.near_miss(ex, rng), "1 2"):
                labels = task.check_labels(ex, cand)
                assert len(labels) == len(cand.split()) and set(labels) <= {-1, 0, 1}
                if name != "sudoku" or cand == "1 2":
                    assert set(labels) == {-1}
                    continue
                assert (1 in labels) == (task.score(ex, cand) == 0), (cand, labels)
                checked = [w for w, lab in zip(cand.split(), labels) if lab >= 0]
                assert all(w.isdigit() for w in checked) and len(checked) == 16
    sudoku = TASKS["sudoku"]
    ex = next(sudoku.example(p) for p in WORLD.problems("sudoku", "train", limit=100) if p[0] and not p[1])
    gold = sudoku.gold_completion(ex).split()
    swapped = [gold[1], gold[0]] + gold[2:]  # the first cell now contradicts its given; the second repeats nothing before it
    labels = sudoku.check_labels(ex, " ".join(swapped))
    assert labels[0] == 1 and labels[1] == 0 and labels[4] == -1
    glued = " ".join(swapped).replace(" | ", "|", 1)  # readable, but not one word per cell: no label can be placed
    assert sudoku.extract(glued) is not None and set(sudoku.check_labels(ex, glued)) == {-1}


def test_verifier_check_labels_are_the_running_or_of_the_candidates_checks_carried_to_the_verdict():
    """One label per word of the verifier prompt: at the shown candidate's words, whether a checked word so far
    broke a rule (-1 before the first); after a pointwise candidate, its final value up to the verdict; -1 on
    the problem and, in a tournament, outside its two solutions. A corpus batch carries them at the same tokens."""
    task, rng = TASKS["sudoku"], np.random.default_rng(0)
    for ex in (task.example(p) for p in WORLD.problems("sudoku", "train", limit=5)):
        a, b = task.near_miss(ex, rng), task.gold_completion(ex)
        local = task.check_labels(ex, a)
        first_bad = local.index(1)
        running = [int(i >= first_bad) for i in range(len(local))]  # a grid's first word is a cell: checked
        for method in VERIFIER_METHODS:
            words = task.verifier_prompt(method, ex, a, b).split()
            labels = task.verifier_check_labels(method, ex, a, b)
            assert len(labels) == len(words)
            start, end = words.index("=") + 1, words.index("=") + 1 + len(a.split())
            assert labels[:start] == [-1] * start and labels[start:end] == running, (local, labels[start:end])
            if method == "tournament":
                start_b = words.index("B:") + 1
                assert labels[end:start_b] == [-1, -1] and labels[start_b:start_b + len(b.split())] == [0] * len(b.split())
                assert set(labels[start_b + len(b.split()):]) == {-1}
            else:
                assert labels[end:] == [1] * (len(words) - end)  # the near miss is wrong, up to the verdict
        assert task.verifier_check_labels("mc", ex, b)[-1] == 0 and task.verifier_check_labels("mc", ex, "1 2")[-1] == -1
    vocab = build_tokenizer(WORLD.config).get_vocab()
    pools = {t: CandidatePool(TASKS[t], [{"problem": p, "completion": "1 2", "u": 0}
                                         for p in WORLD.problems(t, "train", limit=20)]) for t in TASKS}
    corpus = Corpus(WORLD, TASKS, vocab, get_preset("tiny").mixture, pools, seed=4)
    ids, mask, checks, kind = corpus.document("verify")
    assert len(checks) == len(ids) and mask[-1] == 1 and checks[0] == checks[-1] == -1
    batch = corpus.batch(8, 256)
    checked = batch["check_labels"] >= 0
    assert checked.any() and (batch["labels"][checked] == -100).all()  # prompt words: checked, not generated
    assert set(batch["check_labels"].unique().tolist()) <= {-1, 0, 1}
    assert set(batch["input_ids"][checked].tolist()) <= {vocab[w] for w in [str(d) for d in range(10)] + ["|", "answer"]
                                                         + ["mc", "cotb", "cots", "Judge:", "Judgement:"]}


def test_check_labels_that_do_not_fit_the_candidate_are_an_error_naming_the_task():
    class Misaligned(type(TASKS["sudoku"])):
        def check_labels(self, example, candidate):
            return [0] * (len(candidate.split()) + 1)

    task = Misaligned(())
    ex = task.example(WORLD.problems("sudoku", "train", limit=1)[0])
    with pytest.raises(ValueError, match="organism/sudoku: check_labels gave .* labels for a candidate of"):
        task.verifier_check_labels("mc", ex, task.gold_completion(ex))
    corpus = Corpus(WORLD, TASKS, build_tokenizer(WORLD.config).get_vocab(), get_preset("tiny").mixture,
                    {t: CandidatePool(TASKS[t], [{"problem": p, "completion": "1 2", "u": 0}
                                                 for p in WORLD.problems(t, "train", limit=5)]) for t in TASKS})
    with pytest.raises(ValueError, match="2 check labels for a prompt of 1 tokens"):
        corpus._doc("arith", "1", [0, 0])


def test_the_check_head_trains_beside_the_lm_for_its_share_of_the_steps_and_is_dropped():
    """A member with ``check_weight`` > 0 trains a check head on the check labels (its loss reported) for its
    first ``check_until`` share of the steps, and the language-model loss alone after them; the head's gradient
    reaches the model, which keeps the same weights (the head is not saved); weight 0 trains the LM loss
    alone; a negative weight, or a share outside (0, 1], is refused."""
    from gvlib.organism.corpus import Mixture
    from gvlib.organism.train import build_model, train_model

    for bad in ({"check_weight": -1.0}, {"check_weight": 1.0, "check_until": 0.0}, {"check_until": 1.5}):
        with pytest.raises(ValueError, match="model x: check_weight"):
            ModelSpec("x", 32, 1, 2, 64, 4, **bad)
    tok = build_tokenizer(WORLD.config)
    pools = {t: CandidatePool(TASKS[t], [{"problem": p, "completion": "1 2", "u": 0}
                                         for p in WORLD.problems(t, "train", limit=20)]) for t in TASKS}
    mixture = Mixture(kinds={"verify": 1.0}, tasks={"sudoku": 1.0}, methods={"mc": 1.0}, near_miss=1.0)
    states = {}
    for weight, until in ((0.0, 1.0), (1.0, 1.0), (1.0, 0.5)):
        spec = ModelSpec("x", 32, 1, 2, 64, 4, check_weight=weight, check_until=until)
        assert spec.check_steps == {0.0: 0, 1.0: 4, 0.5: 2}[until if weight else 0.0]
        corpus = Corpus(WORLD, TASKS, tok.get_vocab(), mixture, pools, seed=0)
        model = build_model(spec, tok, TrainConfig(rows=4), seed=0)
        seen = {}
        stats = train_model(model, corpus, spec, TrainConfig(rows=4),
                            on_step=lambda step: seen.__setitem__(step, {k: v.clone() for k, v in model.state_dict().items()}))
        assert (stats["final_check_loss"] is None) == (weight == 0) and stats["final_train_loss"] > 0
        states[weight, until] = seen
    def same(a, b):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the head is not in the model
    assert not same(states[0.0, 1.0][2], states[1.0, 1.0][2])  # the head trained the model
    assert same(states[1.0, 0.5][2], states[1.0, 1.0][2])  # the same first two steps
    assert not same(states[1.0, 0.5][4], states[1.0, 1.0][4])  # then the LM loss alone


def test_facts_checker():
    task = load_task("organism/facts", limit=3)
    ex = task.examples[0]
    assert ex.answer == WORLD.kb[(ex.meta["entity"], ex.meta["attribute"])]
    assert task.score(ex, ex.answer) == 1 and task.score(ex, "nothing") == 0


def test_load_task_names_and_errors(family_run):
    _, out, _, _ = family_run
    for name in ("organism/sudoku", "organism/arith", "organism/facts"):
        t = load_task(name, limit=7, family=out)
        assert t.name == name and len(t) == 7 and len({e.id for e in t.examples}) == 7
    assert len(load_task("organism/arith")) == WORLD.config.n_test
    from gvlib.tasks import load  # the engine's loader delegates organism names, passing path=family
    assert [e.id for e in load("organism/facts", limit=4, path=out).examples] == \
        [e.id for e in load_task("organism/facts", limit=4).examples]
    with pytest.raises(ValueError, match="organism/nope"):
        load_task("organism/nope")
    with pytest.raises(ValueError, match="split"):
        load_task("organism/arith", split="dev")
    with pytest.raises(ValueError, match="other"):
        TASKS["arith"].verifier_prompt("tournament", TASKS["arith"].example((1, 2)), "x")


# -- disjointness of train and test problems -----------------------------------------------------
def test_train_and_test_problems_are_disjoint():
    test = {t: set(WORLD.test_problems[t]) for t in TASKS}
    train_grids, test_grids = WORLD.grid_split
    assert not set(train_grids) & set(test_grids) and len(train_grids) + len(test_grids) == 288
    test_grid_set = {WORLD.grids[i] for i in test_grids}
    assert all(TASKS["sudoku"].example(p).answer for p in test["sudoku"])
    assert all(tuple(WORLD.sudoku_solutions(p)[0]) in test_grid_set for p in test["sudoku"])
    train_pairs, test_pairs = WORLD.fact_split
    assert not set(train_pairs) & set(test_pairs)
    for t in TASKS:
        train = WORLD.problems(t, "train", limit=2000)
        assert not set(train) & test[t], t
        if t == "sudoku":
            assert not {WORLD.sudoku_solutions(p)[0] for p in train} & test_grid_set


def test_sudoku_puzzles_span_the_blanks_evenly():
    """Every number of blanks of WorldConfig.sudoku_blanks is about equally common among the test and the
    train puzzles, the hardest (rarely unique) included: each member meets its frontier on the test set."""
    lo, hi = WORLD.config.sudoku_blanks
    for puzzles in (WORLD.test_problems["sudoku"], WORLD.problems("sudoku", "train", limit=2000)):
        counts = np.bincount([p.count(0) for p in puzzles], minlength=hi + 1)[lo:]
        assert len(counts) == hi - lo + 1 and counts.min() > 0.5 * len(puzzles) / len(counts), counts
        assert all(len(WORLD.sudoku_solutions(p)) == 1 for p in puzzles[:200])


def test_pointwise_candidates_are_right_half_the_time_on_every_problem():
    """CandidatePool.pointwise: only problems with a wrong sample are shown, each right half the time, so a
    verdict cannot be learned from the problem alone (how hard it looks)."""
    task = TASKS["arith"]
    easy, hard, solved = (1, 2, 3), (4, 5, 6, 7, 8, 9), (1, 1, 1)
    gold = {p: task.gold_completion(task.example(p)) for p in (easy, hard, solved)}
    records = ([{"problem": easy, "completion": gold[easy], "u": 1}] * 9 + [{"problem": easy, "completion": "0 answer 0", "u": 0}]
               + [{"problem": hard, "completion": "0 answer 0", "u": 0}] * 9 + [{"problem": solved, "completion": gold[solved], "u": 1}] * 5)
    pool = CandidatePool(task, records)
    rng = np.random.default_rng(0)
    shown = {}
    for _ in range(4000):
        ex, cand = pool.pointwise(rng)
        shown.setdefault(ex.meta["digits"], []).append(task.score(ex, cand))
    assert set(shown) == {easy, hard}  # the problem never sampled wrong teaches no contrast
    for digits, u in shown.items():
        assert abs(np.mean(u) - 0.5) < 0.05, (digits, np.mean(u))


def test_corpus_never_shows_a_test_problem():
    vocab = build_tokenizer(WORLD.config).get_vocab()
    pools = {t: CandidatePool(TASKS[t], [{"problem": p, "completion": "1 2", "u": 0}
                                         for p in WORLD.problems(t, "train", limit=20)]) for t in TASKS}
    corpus = Corpus(WORLD, TASKS, vocab, get_preset("tiny").mixture, pools, seed=3)
    inv = {i: w for w, i in vocab.items()}
    test_questions = {TASKS[t].example(p).question for t in TASKS for p in WORLD.test_problems[t]}
    seen = 0
    for _ in range(400):
        ids, mask, _, kind = corpus.document()
        if kind == "know":
            continue
        words = [inv[i] for i in ids[1:]]
        question = " ".join(words[:words.index("=")])  # verification documents show the generation prompt too
        assert question.split()[0] in TASKS and question not in test_questions, question
        seen += 1
    assert seen > 100


def test_tournament_training_data_break_ties_at_random():
    """A tie (both correct, or equally wrong) is decided by a seeded coin, not always for A: the corpus
    must not teach the position bias (paper §6.1) that the tournament then measures."""
    picks = []
    for name, task in TASKS.items():
        for problem in WORLD.problems(name, "train", limit=60):
            ex = task.example(problem)
            gold = task.gold_completion(ex)
            for a, b in ((gold, gold), ("1 2", "3 4")):  # both right; both malformed
                pick = PREF.findall(task.verifier_target("tournament", ex, a, b))[-1]
                assert pick == PREF.findall(task.verifier_target("tournament", ex, a, b))[-1]  # seeded
                picks.append(pick)
            assert PREF.findall(task.verifier_target("tournament", ex, gold, "1 2"))[-1] == "A"  # no tie: the right one
            assert PREF.findall(task.verifier_target("tournament", ex, "1 2", gold))[-1] == "B"
    assert len(picks) == 360 and 0.4 < picks.count("A") / len(picks) < 0.6
    # the corpus' tournament documents: where A and B tie, A is preferred about half the time
    vocab = build_tokenizer(WORLD.config).get_vocab()
    pools = {t: CandidatePool(TASKS[t], [{"problem": p, "completion": "1 2", "u": 0}
                                         for p in WORLD.problems(t, "train", limit=20)]) for t in TASKS}
    mixture = replace(get_preset("tiny").mixture, kinds={"verify": 1.0}, methods={"tournament": 1.0})
    corpus = Corpus(WORLD, TASKS, vocab, mixture, pools, seed=5)
    inv = {i: w for w, i in vocab.items()}
    tied = []
    for _ in range(400):
        ids, _, _, _ = corpus.document()
        words = [inv[i] for i in ids[1:-1]]
        target = words[words.index("Judgement:") + 1:]
        a_checks, b_checks = " ".join(target[1:target.index("B")]), " ".join(target[target.index("B") + 1:-3])
        a = " ".join(words[words.index("=") + 1:words.index("tour")])
        b = " ".join(words[words.index("B:") + 1:words.index("tour", words.index("B:"))])
        if (a == "1 2") == (b == "1 2") and a_checks.count("bad") == b_checks.count("bad"):
            tied.append(target[-1])
    assert len(tied) > 50 and 0.35 < tied.count("<A>") / len(tied) < 0.65


# -- tokenizer and formats ----------------------------------------------------------------------
def test_verifier_formats_round_trip_through_the_tokenizer():
    tok = build_tokenizer(WORLD.config)
    for name, task in TASKS.items():
        ex = task.example(WORLD.test_problems[name][0])
        good, bad = task.gold_completion(ex), "1 2"
        for method in VERIFIER_METHODS:
            for cand, other in ((good, bad), (bad, good)):
                target = task.verifier_target(method, ex, cand, other)
                text = tok.decode(tok(task.verifier_prompt(method, ex, cand, other) + " " + target)["input_ids"],
                                  skip_special_tokens=True)
                assert tok.unk_token_id not in tok(text)["input_ids"]
                tail = text.split("Judge:" if method == "mc" else "Judgement:")[-1]
                right = cand == good
                if method == "mc":
                    assert tail.strip() == task.mc_tokens[0 if right else 1]
                elif method == "cot_binary":
                    assert BINARY.findall(tail)[-1] == ("correct" if right else "incorrect")
                elif method == "cot_score":
                    assert (int(SCORE.findall(tail)[-1]) >= 8) == right
                else:
                    assert PREF.findall(tail)[-1] == ("A" if right else "B")
        assert all(len(tok(w, add_special_tokens=False)["input_ids"]) == 1 for w in task.mc_tokens)


# -- the family: manifests, loading, cache and resume ---------------------------------------------
def test_manifests(family_run):
    preset, out, fam, _ = family_run
    fj = json.loads((out / "family.json").read_text())
    assert [m["name"] for m in fj["models"]] == ["a", "b"] and fj["world"] == json.loads(json.dumps(WorldConfig().to_dict()))
    assert fj["key"] == preset.key()
    for entry in fam.models:
        m = json.loads((entry.path / "manifest.json").read_text())
        for k in ("params_non_embedding", "params_total", "train_tokens", "flops", "final_train_loss",
                  "eval_losses", "seed", "wall_time_s", "spec", "llama_config", "key"):
            assert k in m, k
        assert m["flops"] == 6 * m["params_non_embedding"] * m["train_tokens"] > 0
        assert m["key"] == preset.model_key(ModelSpec(**m["spec"]))
        assert m["versions"]["cpu_kernels"] == torch.backends.cpu.get_cpu_capability()  # other kernels, other weights
    assert fam.models[1].flops > fam.models[0].flops


def test_models_load_and_generate_until_eos(family_run):
    _, _, fam, _ = family_run
    path = fam.models[-1].path
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert (model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id) == \
        (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    total = sum(p.numel() for p in model.parameters())
    assert total == fam.models[-1].params_total
    task = load_task("organism/facts", limit=2)
    enc = tok([task.generation_prompt(e) for e in task.examples], return_tensors="pt", padding=True)
    assert enc["input_ids"][0, -1] != tok.unk_token_id
    width = enc["input_ids"].shape[1]
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size)  # untied: EOS always the most likely
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()[tok.eos_token_id] = 50.0
    model.lm_head = head
    # generate stops at EOS by the saved generation config alone (no eos_token_id passed)
    gen = model.generate(**enc, max_new_tokens=10, do_sample=False)
    assert gen[:, width:].tolist() == [[tok.eos_token_id]] * 2
    # and so does the book's sampler, through the backend: the completions end before any token
    backend = HFBackend(model, tok, model_id="m", fingerprint="m")
    assert backend.sample([task.generation_prompt(task.examples[0])], SamplingParams(n=3, max_new_tokens=10)) == [[""] * 3]


def test_resume_after_stop_does_not_retrain_first_model(family_run):
    _, out, fam, first_manifest = family_run
    assert fam.trained_now == ["b"]
    assert (out / "a" / "manifest.json").read_text() == first_manifest


def test_half_written_dirs_are_ignored_and_cache_is_reused(family_run, tmp_path):
    preset, out, _, _ = family_run
    copy = tmp_path / "fam"
    shutil.copytree(out, copy)
    (copy / "b" / "manifest.json").unlink()           # a half-written member
    (copy / ".tmp-a-12345").mkdir()                    # a stopped run's temp dir
    (copy / ".tmp-a-12345" / "config.json").write_text("{")
    fam = ensure_family(preset, copy)
    assert fam.trained_now == ["b"] and not list(copy.glob(".tmp-*"))
    AutoModelForCausalLM.from_pretrained(copy / "b")
    assert ensure_family(preset, copy).trained_now == []


def test_cache_keys_are_per_model():
    p = _micro_preset()
    q = replace(p, models=(p.models[0], replace(p.models[1], steps=7)))
    assert p.model_key(p.models[0]) == q.model_key(q.models[0])
    assert p.model_key(p.models[1]) != q.model_key(q.models[1]) and p.key() != q.key()
    r = replace(p, world=replace(p.world, seed=1))
    assert r.model_key(r.models[0]) != p.model_key(p.models[0])


def test_presets_span_three_e_folds_of_flops():
    d = get_preset("default")
    assert len(d.models) >= 5
    tiny = get_preset("tiny")
    assert len(tiny.models) == 3
    # non-embedding params of a Llama layer: 4·h² (attention) + 3·h·ff (MLP) + 2·h (norms)
    flops = [6 * m.layers * (4 * m.hidden ** 2 + 3 * m.hidden * m.intermediate + 2 * m.hidden) * m.steps
             for m in d.models]
    assert max(flops) / min(flops) > np.exp(3)


def test_engine_scores_the_mc_verdict_as_one_next_token(family_run):
    """The engine's MC path (HFBackend.logprob_continuations) reads exactly the next-token log-probs."""
    import torch
    from gvlib.backends.hf import HFBackend
    _, _, fam, _ = family_run
    backend = HFBackend.from_pretrained(str(fam.models[0].path), device="cpu")
    task = TASKS["arith"]
    ex = task.example((1, 2, 3))
    prompt = task.verifier_prompt("mc", ex, task.gold_completion(ex))
    lp = backend.logprob_continuations([prompt], list(task.mc_tokens))[0]
    tok = backend.tokenizer
    with torch.no_grad():
        logits = backend.model(**tok(prompt, return_tensors="pt")).logits[0, -1]
    direct = torch.log_softmax(logits, -1)[tok.convert_tokens_to_ids(list(task.mc_tokens))].numpy()
    assert lp == pytest.approx(direct, abs=1e-4)


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_longest_documents_fit_the_rows(preset):
    p = get_preset(preset)
    world = World(p.world)
    longest = {"sudoku": WORLD.test_problems["sudoku"][0], "facts": WORLD.test_problems["facts"][0],
               "arith": (1,) * (p.world.arith_steps[1] + 1)}
    for name, problem in longest.items():
        task = make_task(name, world)
        ex = task.example(problem)
        gold = task.gold_completion(ex)
        doc = task.verifier_prompt("tournament", ex, gold, gold) + " " + task.verifier_target("tournament", ex, gold, gold)
        assert len(doc.split()) + 2 <= p.train.seq_len, (name, len(doc.split()))
        assert len(task.verifier_target("cot_binary", ex, gold).split()) < task.verifier_max_new_tokens
        assert len(gold.split()) < task.max_new_tokens


def test_bench_times_the_books_calls_on_a_trained_family(family_run):
    import torch

    from gvlib.bench import Sweep, bench_book, report

    _, out, _, _ = family_run
    grid = Sweep(sizes=(), workloads=(), rows=(), vocab=1, score_rows=1, repeats=1)
    rows = bench_book(str(out), grid, torch.device("cpu"), members=["b"])
    assert [(r["model"], r["call"], r["n"]) for r in rows] == [("b", "generate", 8), ("b", "cot_score", 1)]
    task = load_task("organism/sudoku", family=out)
    for r, new in zip(rows, (task.max_new_tokens, task.verifier_max_new_tokens)):
        # every row produces at least one token and at most max_new_tokens, with either method
        for key in ("sampler_tokens", "generate_tokens"):
            assert r["rows"] <= r[key] <= r["rows"] * new
        assert r["prompt_tokens"] > 5
        assert r["shared"] >= 1.0
    table = report({"torch_threads": 1}, 1e9, [], [], rows)
    total = next(line for line in table.splitlines() if line.split()[:2] == ["all", "calls"])
    ours = sum(r["sampler_tokens"] for r in rows) / sum(r["sampler_s"] for r in rows)
    assert f"{ours:.0f}" in total.split()


def test_report_gives_each_methods_roc_auc_on_the_models_own_samples():
    """The report prints the chapters' table rows (Grid.table), each with the verifier's ROC AUC, pooled and within prompts."""
    from types import SimpleNamespace

    import numpy as np

    from gvlib import claims
    from gvlib.organism import report
    from gvlib.verifiers import Verification

    u = np.array([[1.0, 0.0, 1.0, 0.0]] * 6)  # each prompt: right, wrong, right, wrong
    scores = {"mc": 0.2 + 0.6 * u, "cot_binary": 1 - u, "cot_score": np.full(u.shape, 10.0)}
    grid = claims.Grid(task=None, models=[claims.Model("m", "m", 1.0)],
                       generations={"m": SimpleNamespace(u=u, extraction_failure_rate=0.0)},
                       verifications={("m", "m", k): Verification(k, s, [], 0, s.size) for k, s in scores.items()})
    rows = grid.table(claims.make_filters(list(scores), mc_tau=0.8), n_boot=50)
    assert dict(zip(rows.method, rows.auc)) == {"mc": 1.0, "cot_binary": 0.0, "cot_score": 0.5}
    assert dict(zip(rows.method, rows.auc_within)) == {"mc": 1.0, "cot_binary": 0.0, "cot_score": 0.5}
    assert "AUC 1.000 within 1.000" in report.format_row(next(rows.assign(task="t").itertuples()))


def test_report_near_misses_scores_gold_against_near_misses_of_train_problems(family_run, monkeypatch):
    """report.near_miss_auc: one gold solution and one near miss per fresh train problem, labelled by the checker;
    a verifier that scores the checker's verdict gets AUC 1, gold mean 1 and near-miss mean 0 on every row."""
    from gvlib.organism import report
    from gvlib.verifiers import Verification

    _, out, _, _ = family_run
    seen = []

    def exact(method, backend, task, examples, candidates, seed=0):
        seen.append((task.name, [e.id for e in examples]))
        s = np.array([[task.score(e, c) for c in cs] for e, cs in zip(examples, candidates)])
        return Verification(method, s, [], 0, s.size)

    monkeypatch.setattr(report, "verify", exact)
    rows = report.near_miss_auc(out, tasks=("sudoku", "facts"), methods=("mc", "cot_score"), problems=12)
    assert len(rows) == 2 * 2 * 2  # tasks x members x methods
    assert (rows.auc == 1.0).all() and (rows.score_gold == 1.0).all() and (rows.score_near_miss == 0.0).all()
    test_ids = {e.id for e in load_task("organism/sudoku", family=out).examples}
    sudoku_ids = {i for name, ids in seen if name == "organism/sudoku" for i in ids}
    assert not sudoku_ids & test_ids and len(sudoku_ids) > 1
    with pytest.raises(ValueError, match="pointwise"):
        report.near_miss_auc(out, methods=("tournament",))


def test_report_runs_the_chapters_path_on_a_family(family_run, tmp_path, monkeypatch):
    """python -m gvlib.organism.report: claims.run_grid on the family's members, through the engine's cache."""
    import json as json_

    from gvlib.organism import report

    monkeypatch.setenv("GVLIB_CACHE", str(tmp_path / "cache"))
    _, out, _, _ = family_run
    report.main(["--family", str(out), "--tasks", "sudoku", "--prompts", "2", "--n", "2", "--methods", "mc,tournament",
                 "--tournament-rounds", "1", "--json", str(tmp_path / "rows.json")])
    rows = json_.loads((tmp_path / "rows.json").read_text())
    assert [(r["generator"], r["method"]) for r in rows] == [(m, k) for m in ("a", "b") for k in ("mc", "tournament")]
    assert list((tmp_path / "cache").rglob("*.json")), "the report bypassed the engine's cache"


def test_packed_loss_is_the_masked_loss_and_rejects_left_padding():
    """Rows are padded only at their end, so dropping the attention mask leaves the loss unchanged."""
    import torch

    from gvlib.organism.corpus import Mixture
    from gvlib.organism.train import build_model, packed_loss

    tok = build_tokenizer(WORLD.config)
    corpus = Corpus(WORLD, TASKS, tok.get_vocab(), Mixture(kinds={"know": 0.3, "gen": 0.7}), seed=0)
    batch = corpus.batch(4, 256)
    batch.pop("tokens")
    assert (batch["attention_mask"] == 0).any()  # the rows do end in padding
    model = build_model(ModelSpec("x", 32, 2, 2, 64, 1), tok, TrainConfig(), seed=0)
    with torch.no_grad():
        loss, check = packed_loss(model, batch)
        assert check is None
        plain = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
        assert float(loss) == pytest.approx(float(plain), abs=1e-6)
        flipped = {k: v.flip(1) for k, v in batch.items()}  # padding first: the mask would matter
        with pytest.raises(ValueError, match="padded only at their end"):
            packed_loss(model, flipped)


def test_bench_times_the_organisms_training_loop():
    import torch

    from gvlib.bench import Sweep, bench_training, report

    grid = Sweep(sizes=(), workloads=(), rows=(), vocab=1, score_rows=1, repeats=1, train_members=("m1",), train_steps=2)
    (row,) = bench_training(grid, torch.device("cpu"), peak=1e9)
    assert row["model"] == "m1" and 0 < row["real_tokens_per_step"] <= row["rows"] * row["seq_len"]
    assert row["train_tok_s"] == pytest.approx(row["real_tokens_per_step"] / row["step_s"])
    assert row["train_matmul_fraction"] == pytest.approx(6 * row["params"] * row["train_tok_s"] / 1e9)
    line = next(x for x in report({"torch_threads": 1}, 1e9, [], [], None, [row]).splitlines() if x.split()[:1] == ["m1"])
    assert f"{row['train_tok_s']:.0f}" in line.split()


def test_near_miss_share_of_the_verification_documents():
    """``Mixture.near_miss`` is the share of verification documents about a fresh train problem, shown
    with its gold solution or a near miss, half each; a share outside [0, 1] is refused."""
    from gvlib.organism.corpus import Mixture

    with pytest.raises(ValueError, match="near_miss"):
        Mixture(near_miss=1.5)
    vocab = build_tokenizer(WORLD.config).get_vocab()
    inv = {i: w for w, i in vocab.items()}
    pools = {t: CandidatePool(TASKS[t], [{"problem": p, "completion": "1 2", "u": 0}
                                         for p in WORLD.problems(t, "train", limit=20)]) for t in TASKS}
    mixture = Mixture(kinds={"verify": 1.0}, methods={"mc": 1.0}, near_miss=1.0)
    corpus = Corpus(WORLD, TASKS, vocab, mixture, pools, seed=2)
    verdicts = []
    for _ in range(300):
        ids, _, _, _ = corpus.document()
        words = [inv[i] for i in ids[1:-1]]
        assert words[words.index("=") + 1:words.index("mc")] != ["1", "2"]  # never a pool candidate
        verdicts.append(words[-1])
    assert 0.4 < verdicts.count("Correct") / len(verdicts) < 0.6


def test_probe_wrong_cells_are_wrong_and_of_the_asked_density():
    """probe.WrongCells: k cells changed, k in the asked range, every candidate rejected by the checker;
    None keeps the task's own near misses; a range outside 1..16 is an error that names it."""
    from gvlib.organism import probe

    rng = np.random.default_rng(0)
    for cells in ((1, 1), (8, 8), (1, 8)):
        task = probe.WrongCells(cells)
        for _ in range(20):
            ex = task.example(WORLD.train_problem("sudoku", rng))
            miss = task.near_miss(ex, rng)
            changed = sum(a != b for a, b in zip(miss.split(), ex.answer.split()))
            assert cells[0] <= changed <= cells[1] and task.score(ex, miss) == 0
    ex = probe.WrongCells(None).example(WORLD.train_problem("sudoku", rng))
    assert probe.WrongCells(None).near_miss(ex, np.random.default_rng(3)) == make_task("sudoku", WORLD).near_miss(
        ex, np.random.default_rng(3))
    with pytest.raises(ValueError, match="wrong cells"):
        probe.WrongCells((0, 4))


def test_probe_trains_one_mc_verifier_per_density_and_scores_it_on_both_kinds(monkeypatch):
    """probe.probe on the tiny preset: one row per density, trained on MC documents about Sudoku only, with the
    MC verifier asked about near misses and about its own errors (an exact verifier there: AUC 1 on both)."""
    from gvlib.organism import probe
    from gvlib.verifiers import Verification

    docs = []
    real_doc = probe.Corpus.document

    def seen(self, kind=None):
        doc = real_doc(self, kind)
        docs.append(doc)
        return doc

    def exact(method, backend, task, examples, candidates, seed=0):
        assert method == "mc"
        s = np.array([[task.score(e, c) for c in cs] for e, cs in zip(examples, candidates)])
        return Verification(method, s, [], 0, s.size)

    monkeypatch.setattr(probe.Corpus, "document", seen)
    monkeypatch.setattr(probe, "verify", exact)
    rows = probe.probe("tiny", probes={"near misses": (None, 0.0), "4 wrong cells": ((4, 4), 1.0)}, steps=2, problems=6,
                       threads=1)
    assert list(rows["trained on"]) == ["near misses", "4 wrong cells"] and list(rows["check weight"]) == [0.0, 1.0]
    assert (rows["AUC near misses"] == 1.0).all() and (rows["AUC own errors"] == 1.0).all()
    assert all(kind == "verify" for _, _, _, kind in docs) and docs
    with pytest.raises(ValueError, match="steps"):
        probe.probe("tiny", steps=0)


def test_probe_command_writes_a_stamped_table_that_the_page_calls_stale_when_the_code_changes(tmp_path, capsys):
    """``python -m gvlib.organism.probe`` writes its rows with the preset, its key and the probe's code digest;
    stale_reason is None for that table and names the command to rerun when it is missing or was made with
    other code or for another preset."""
    from gvlib.organism import committed, probe

    out = tmp_path / "tiny.json"
    probe.main(["--preset", "tiny", "--steps", "2", "--problems", "4", "--out", str(out)])
    table = committed.load_table(out)
    json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the table: not JSON"))
    assert [r["trained on"] for r in table["rows"]] == list(probe.PROBES)
    assert [r["final check loss"] is None for r in table["rows"]] == [w == 0 for _, w in probe.PROBES.values()]
    assert [r["check weight"] for r in table["rows"]] == [w for _, w in probe.PROBES.values()]
    assert table["steps"] == 2 and table["code_version"] == probe.code_digest() and f"wrote {out}" in capsys.readouterr().out
    assert probe.stale_reason(table, "tiny") is None
    assert "the table is for preset 'tiny', not 'default'" in probe.stale_reason(table, "default")
    old = {**table, "code_version": "probe-0"}
    assert probe.stale_reason(old, "tiny").startswith("the table was made with code probe-0")
    assert "`python -m gvlib.organism.probe --preset tiny --steps 2 --problems 4 --seed 0` and commit " \
           "book/data/organism_probe/tiny.json" \
        in probe.stale_reason(old, "tiny")
    assert probe.stale_reason(None, "tiny").startswith("there is no MC probe table for preset 'tiny' yet")
    assert committed.load_table(tmp_path / "none.json") is None
