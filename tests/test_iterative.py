"""Iterative self-improvement (paper §5): LoRA SFT, the round loop, resumption, pass@k and diversity bookkeeping.

Everything runs on a random Llama with a few thousand parameters and a word-level tokenizer built here,
on a toy task whose answer is one digit, so a random model is right now and then and SFT on its right
answers visibly helps.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from gvlib import claims, iterate
from gvlib.finetune import LoraSettings, load_adapted, merge_adapter, sft_example, train_adapter
from gvlib.iterate import IterationConfig, IterationRun, ModelRef, claim_check, diversity, pass_at_k_curve
from gvlib.plan import notebook_params
from gvlib.tasks.base import Example, Task

WORDS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "0", "1", "2", "3", "q", "=", "Judge:", "Correct", "Incorrect"]


class ToyTask(Task):
    """``q a b =`` → (a + b) mod 4, one digit; the MC verifier prompt ends with ``Judge:``."""

    name = "toy/sum4"
    max_new_tokens = 3

    def generation_prompt(self, example: Example) -> str:
        return f"{example.question} ="

    def extract(self, completion: str) -> str | None:
        words = completion.split()
        return words[0] if words and words[0] in "0123" else None

    def score(self, example: Example, completion: str) -> float:
        return float(self.extract(completion) == example.answer)

    def verifier_prompt(self, method: str, example: Example, candidate: str, other: str | None = None) -> str:
        return f"{example.question} = {candidate} Judge:"


def toy_task(pairs) -> ToyTask:
    return ToyTask([Example(f"{a}{b}", f"q {a} {b}", str((a + b) % 4)) for a, b in pairs])


def save_tiny_model(path: Path, seed: int = 0) -> str:
    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="[BOS]", eos_token="[EOS]",
                                        pad_token="[PAD]", unk_token="[UNK]", padding_side="left")
    config = LlamaConfig(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True,
                         initializer_range=0.3)  # large enough embeddings for confident logits
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 0, 2
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """A few-thousand-parameter model runs fastest on one thread (and far faster on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "f0")


EVAL = [(a, b) for a in range(4) for b in range(4)][:8]
TRAIN = [(a, b) for a in range(4) for b in range(4)][8:]
FAST_LORA = LoraSettings(rank=4, alpha=8, lr=2e-2, steps=40, batch_size=8)


def logits_of(model, tokenizer, text: str) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).logits[0, -1]


# -- finetune -------------------------------------------------------------------------------------
def test_sft_example_masks_the_prompt_and_ends_with_eos(tiny):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny)
    ids, labels = sft_example(tok, "q 1 2 =", "3", max_length=64)
    assert tok.convert_ids_to_tokens(ids) == ["[BOS]", "q", "1", "2", "=", "3", "[EOS]"]
    assert labels == [-100] * 5 + [tok.convert_tokens_to_ids("3"), tok.eos_token_id]
    ids, labels = sft_example(tok, "q 1 2 =", "", max_length=64)  # an empty completion: learn to stop
    assert labels[-1] == tok.eos_token_id and labels[:-1] == [-100] * 5


def test_adapter_changes_the_model_towards_the_kept_answers(tiny, tmp_path):
    pairs = [("q 1 2 =", "3"), ("q 0 1 =", "1")] * 4
    stats = train_adapter(tiny, pairs, tmp_path / "a1", FAST_LORA, seed=0)
    assert stats["final_loss"] < stats["first_loss"]
    base, tok = load_adapted(tiny, None)
    tuned, _ = load_adapted(tiny, tmp_path / "a1")
    three = tok.convert_tokens_to_ids("3")
    before, after = logits_of(base, tok, "q 1 2 ="), logits_of(tuned, tok, "q 1 2 =")
    assert not torch.allclose(before, after)
    assert after.log_softmax(-1)[three] > before.log_softmax(-1)[three] + 1.0
    # merged on disk == merged in memory; continuing from a1 moves the model further
    merged = merge_adapter(tiny, tmp_path / "a1", tmp_path / "m1")
    on_disk, _ = load_adapted(merged, None)
    torch.testing.assert_close(logits_of(on_disk, tok, "q 1 2 ="), after)
    train_adapter(tiny, [("q 1 2 =", "0")] * 8, tmp_path / "a2", FAST_LORA, init_adapter=tmp_path / "a1", seed=1)
    again, _ = load_adapted(tiny, tmp_path / "a2")
    assert not torch.allclose(logits_of(again, tok, "q 1 2 ="), after)
    assert not list(tmp_path.glob(".tmp-*")), "a temporary directory was left behind"


def _lora_batch(tiny):
    from peft import LoraConfig, get_peft_model

    from gvlib.finetune import _collate
    model, tok = load_adapted(tiny, None)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                             init_lora_weights=False))  # non-zero B: every LoRA weight has a gradient
    rows = [sft_example(tok, p, c, 64) for p, c in [("q 1 2 =", "3"), ("q 0 =", "1 2 3"), ("q 3 3 1 =", "")]]
    return model, _collate(rows, tok.pad_token_id, "cpu")


def test_completion_loss_equals_the_models_loss_without_prompt_logits(tiny):
    from gvlib.finetune import completion_nll
    model, batch = _lora_batch(tiny)
    plain = model(**batch).loss
    plain.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    rows = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, args, out: rows.append(args[0].shape[0]))
    nll, count = completion_nll(model, batch, chunk_rows=2)
    (nll / count).backward()
    hook.remove()
    assert count == int((batch["labels"][:, 1:] != -100).sum()) == 7
    assert float(nll / count) == pytest.approx(float(plain), abs=1e-5)
    for n, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, want[n], atol=1e-6, rtol=1e-4)
    # the LM head saw the 7 labelled positions only, in chunks of 2, once forward and once recomputed backward
    assert sorted(rows) == sorted([2, 2, 2, 1] * 2)


def test_gradient_accumulation_trains_the_same_adapter(tiny, tmp_path):
    pairs = [("q 1 2 =", "3"), ("q 0 1 =", "1"), ("q 2 =", "2 3")] * 3
    whole = LoraSettings(rank=4, alpha=8, lr=2e-2, steps=3, batch_size=8)
    parts = LoraSettings(rank=4, alpha=8, lr=2e-2, steps=3, batch_size=8, micro_batch_size=3)
    a = train_adapter(tiny, pairs, tmp_path / "whole", whole, seed=0)
    b = train_adapter(tiny, pairs, tmp_path / "parts", parts, seed=0)
    assert a["first_loss"] == pytest.approx(b["first_loss"], abs=1e-5)
    x, tok = load_adapted(tiny, tmp_path / "whole")
    y, _ = load_adapted(tiny, tmp_path / "parts")
    torch.testing.assert_close(logits_of(x, tok, "q 1 2 ="), logits_of(y, tok, "q 1 2 ="), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="micro_batch_size"):
        LoraSettings(batch_size=8, micro_batch_size=9)


def test_train_adapter_rejects_an_empty_filter(tiny, tmp_path):
    with pytest.raises(ValueError, match="nothing passed the filter"):
        train_adapter(tiny, [], tmp_path / "a", FAST_LORA)
    with pytest.raises(ValueError, match="LoraSettings.steps"):
        LoraSettings(steps=0)


# -- bookkeeping ----------------------------------------------------------------------------------
def test_pass_at_k_curve_is_the_unbiased_estimator_averaged_over_prompts():
    u = np.array([[1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    curve = pass_at_k_curve(u)
    assert list(curve) == [1, 2, 4]
    assert curve[1] == pytest.approx((0.25 + 1 + 0) / 3)
    assert curve[2] == pytest.approx((1 - 3 / 6 + 1 + 0) / 3)  # 1 - C(3,2)/C(4,2) for the first prompt
    assert curve[4] == pytest.approx(2 / 3)
    assert list(pass_at_k_curve(np.ones((1, 6)))) == [1, 2, 4, 6]
    with pytest.raises(ValueError, match="prompts, samples"):
        pass_at_k_curve(np.ones(4))


def test_diversity_counts_distinct_answers_per_prompt():
    task = toy_task([(0, 0), (1, 1)])
    d = diversity(task, [["1", "1 2", "2", "x"], ["0", "0", "0", "0"]])
    assert d["distinct_answers"] == pytest.approx((2 + 1) / 2)  # {1, 2} and {0}; "x" has no answer
    assert d["distinct_completions"] == pytest.approx((4 + 1) / 2)
    assert d["no_answer"] == pytest.approx(1 / 8)


def _fake_round(t, g, pk, per_prompt):
    return {"accuracy": pk["1"], "gap": {"gap": g, "relative_gap": g}, "filter": None,
            "diversity": {"distinct_answers": 3 - t}, "pass_at_k": pk, "pass_at_k_per_prompt": per_prompt}


def test_claim_check_reads_saturation_and_diversity_from_the_numbers():
    low, high = {"1": [0.4] * 20, "4": [0.9] * 20}, {"1": [0.6] * 20, "4": [0.7] * 20}
    rounds = [_fake_round(0, 0.04, {"1": 0.4, "2": 0.7, "4": 0.9}, low),
              _fake_round(1, 0.01, {"1": 0.5, "2": 0.72, "4": 0.85}, low),
              _fake_round(2, 0.002, {"1": 0.6, "2": 0.7, "4": 0.7}, high)]
    check = claim_check(IterationRun(None, Path("."), rounds))
    assert check["saturation_round"] == 2 and check["saturates_within_3_rounds"]
    assert check["pass@1_rises"] and check["pass@4_falls"] and check["diversity_drop"]
    assert check["pass@1_change"] == pytest.approx([0.2, 0.2, 0.2])
    # a change that is noise (half the prompts up, half down) does not count
    rounds[2]["pass_at_k_per_prompt"]["4"] = [1.0] * 10 + [0.75] * 10
    rounds[2]["gap"]["gap"] = 0.02
    check = claim_check(IterationRun(None, Path("."), rounds))
    assert check["saturation_round"] is None and not check["pass@4_falls"] and not check["diversity_drop"]
    for r in rounds:  # no gap to begin with: nothing saturates
        r["gap"]["gap"] = 0.0
    check = claim_check(IterationRun(None, Path("."), rounds))
    assert not check["starts_above_line"] and not check["saturates_within_3_rounds"]


def test_config_names_the_bad_parameter():
    with pytest.raises(ValueError, match="verifier must be one of"):
        IterationConfig(model="m", verifier="oracle")
    with pytest.raises(ValueError, match="exactly one of tau and quantile"):
        IterationConfig(model="m", tau=0.5, quantile=0.5)
    with pytest.raises(ValueError, match="only used with verifier='fixed'"):
        IterationConfig(model="m", fixed_verifier="other")


# -- stage dispatch -------------------------------------------------------------------------------
def test_isolated_stage_runs_in_another_process_and_reraises():
    # builtins, so the spawned process imports nothing heavy
    assert claims.run_stage(os.getpid, isolate=True) != os.getpid()
    assert claims.run_stage(os.getpid, isolate=False) == os.getpid()
    assert claims.run_stage(max, 3, 7, isolate=True) == 7
    with pytest.raises(ValueError, match="stage broke"):
        claims.run_stage(int, "stage broke", isolate=True)


def test_transformers_stages_use_the_merged_model(tiny, tmp_path):
    with pytest.raises(ValueError, match="needs the merged directory"):
        iterate.open_backend(ModelRef(base=tiny, adapter=str(tmp_path), name="f1", lora_id=1), "transformers")


# -- the loop -------------------------------------------------------------------------------------
def config(tiny, **kw) -> IterationConfig:
    base = dict(model=tiny, rounds=2, n=8, method="mc", tau=None, quantile=0.5, verifier="self",
                temperature=1.0, top_p=1.0, lora=FAST_LORA, seed=0, backend="transformers")
    return IterationConfig(**{**base, **kw})


def test_two_rounds_train_evaluate_and_keep_every_adapter(tiny, tmp_path):
    # tau=8 is a model verifier's threshold (CoT-Score); the gold filter keeps u > 0.5 whatever it is
    run = iterate.run_iterations(toy_task(EVAL), config(tiny, verifier="gold", tau=8, quantile=None),
                                 run_dir=tmp_path / "run", cache=None)
    assert [r["round"] for r in run.rounds] == [0, 1, 2]
    for t in (0, 1):
        r = run.rounds[t]
        assert r["trained"] and r["filter"]["prompts"] == "eval" and 0 < r["filter"]["yield"] < 1
        assert r["filter"]["kept_accuracy"] == 1.0  # the gold verifier keeps exactly the right answers
        assert (run.run_dir / f"round_{t:02d}" / "adapter" / "adapter_config.json").is_file()
        assert (run.run_dir / r["next_model"]["merged"] / "config.json").is_file()
    assert run.rounds[2]["filter"] is None and run.rounds[2]["next_model"] is None
    assert set(run.rounds[0]["pass_at_k"]) == {"1", "2", "4", "8"}
    assert run.rounds[0]["pass_at_k"]["1"] == pytest.approx(run.rounds[0]["accuracy"])
    acc = run.series("accuracy")
    assert acc[2] > acc[0] + 0.1, f"SFT on the right answers did not help: {acc}"
    assert run.rounds[0]["gap"]["gap"] > 0  # the gold verifier's gap: the best any filter can do


def test_self_verification_filters_the_training_prompts(tiny, tmp_path):
    run = iterate.run_iterations(toy_task(EVAL), config(tiny, rounds=1), train_task=toy_task(TRAIN),
                                 run_dir=tmp_path / "run", cache=None)
    first = run.rounds[0]
    assert first["filter"]["prompts"] == "train" and first["verifier"] == "self"
    assert first["filter"]["total"] == len(TRAIN) * 8
    assert first["filter"]["kept"] >= first["filter"]["total"] // 4  # quantile 0.5 keeps the top half or so
    kept = json.loads((run.run_dir / "round_00" / "kept.json").read_text())
    train_prompts = {f"q {a} {b} =" for a, b in TRAIN}
    assert len(kept) == first["filter"]["kept"] and {p for p, _ in kept} <= train_prompts
    assert run.rounds[1]["model"]["merged"] is not None


def test_a_killed_run_resumes_at_the_first_unfinished_round(tiny, tmp_path, monkeypatch):
    cfg = config(tiny)
    reference = iterate.run_iterations(toy_task(EVAL), cfg, run_dir=tmp_path / "ref", cache=None)

    calls = {"sample": 0, "train": 0}
    real_sample, real_train = iterate._sample_stage, iterate._train_stage

    def counting_sample(*a):
        calls["sample"] += 1
        return real_sample(*a)

    def dying_train(*a):
        calls["train"] += 1
        if calls["train"] == 2:
            raise KeyboardInterrupt("killed during round 1's fine-tuning")
        return real_train(*a)

    monkeypatch.setattr(iterate, "_sample_stage", counting_sample)
    monkeypatch.setattr(iterate, "_train_stage", dying_train)
    with pytest.raises(KeyboardInterrupt):
        iterate.run_iterations(toy_task(EVAL), cfg, run_dir=tmp_path / "run", cache=None)
    assert (tmp_path / "run" / "round_00" / "metrics.json").is_file()
    assert not (tmp_path / "run" / "round_01" / "metrics.json").exists()
    assert calls == {"sample": 2, "train": 2}

    calls.update(sample=0, train=0)
    monkeypatch.setattr(iterate, "_train_stage", real_train)
    resumed = iterate.run_iterations(toy_task(EVAL), cfg, run_dir=tmp_path / "run", cache=None)
    assert calls["sample"] == 2  # rounds 1 and 2 only: round 0 was read back
    assert resumed.series("accuracy") == reference.series("accuracy")
    assert resumed.series("gap") == reference.series("gap")

    # a longer run reuses every finished round, and turns the old last round into a training round
    calls.update(sample=0)
    longer = iterate.run_iterations(toy_task(EVAL), config(tiny, rounds=3), run_dir=tmp_path / "run", cache=None)
    assert calls["sample"] == 2 and len(longer.rounds) == 4 and longer.rounds[2]["trained"]
    assert longer.series("accuracy")[:2] == reference.series("accuracy")[:2]


# -- the notebook ---------------------------------------------------------------------------------
def test_notebook_runs_with_the_tiny_preset(tmp_path, monkeypatch):
    import papermill
    import yaml

    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("GVLIB_RESULTS", str(tmp_path / "results"))
    tiny = root / "notebooks" / "params" / "iterative" / "tiny.yaml"
    preset = {k: v for k, v in notebook_params(root / "notebooks" / "iterative.ipynb", tiny, []).items()
              if k != "__annotations__"}  # the cell's defaults and the preset's changes
    out = tmp_path / "iterative.ipynb"
    papermill.execute_notebook(str(root / "notebooks" / "iterative.ipynb"), str(out),
                               parameters=yaml.safe_load(tiny.read_text()),
                               kernel_name="python3", progress_bar=False, cwd=str(root))
    record = json.loads((tmp_path / "results" / "iterative.json").read_text())
    runs = record["measured"]["runs"]
    assert set(runs) == set(preset["verifiers"])
    for verifier, run in runs.items():
        assert [r["round"] for r in run["rounds"]] == list(range(preset["rounds"] + 1))
        assert set(run["rounds"][0]["pass_at_k"]) == {"1", "2", "4"}
        for r in run["rounds"]:  # a model verifier's share of verdicts cut by the token budget (none for gold)
            v = r["verification"]
            assert (v is None) == (verifier == "gold")
            assert v is None or 0 <= v["truncation_rate"] <= v["unparseable_rate"] <= 1
        for r in run["rounds"]:  # pass@k is the mean over prompts of the per-prompt estimates; pass@1 the accuracy
            assert r["pass_at_k"]["1"] == pytest.approx(r["accuracy"])
            for k, per_prompt in r["pass_at_k_per_prompt"].items():
                assert r["pass_at_k"][k] == pytest.approx(np.mean(per_prompt))
        # the recorded verdict is the claim check of the recorded rounds
        recorded = IterationRun(config=None, run_dir=Path(run["run_dir"]), rounds=run["rounds"])
        expected = json.loads(json.dumps(iterate.claim_check(recorded, n_boot=preset["n_boot"], seed=preset["seed"])))
        assert record["claim_check"][verifier] == expected
    assert record["claim_check"]["main_run"] == "self" and "diversity_drop" in record["claim_check"]["self"]
    assert (tmp_path / "results" / "iterative-pass-at-k-per-round.png").is_file()
    text = out.read_text()
    assert "**Saturation.**" in text
    # on the tiny family the self filter keeps nothing: the chapter says "not tested", not "no gap to close"
    assert all(r["filter"]["kept"] == 0 for r in runs["self"]["rounds"][:-1])
    assert "Not tested: at round 0 the filter kept nothing (empty prompts: 4 of 4, 100%)" in text
    assert "Not tested: the filter kept no sample in any round" in text


def test_an_adapter_finished_before_the_kill_is_reused(tiny, tmp_path, monkeypatch):
    cfg = config(tiny, rounds=1)
    real_write, real_train = iterate.write_atomic, iterate.train_adapter
    trained = []

    def dying_write(path, text):
        if path.name == "metrics.json" and path.parent.name == "round_00":
            raise KeyboardInterrupt("killed after fine-tuning, before the round's metrics")
        real_write(path, text)

    def counting_train(*a, **kw):
        trained.append(a[2])
        return real_train(*a, **kw)

    monkeypatch.setattr(iterate, "train_adapter", counting_train)
    monkeypatch.setattr(iterate, "write_atomic", dying_write)
    with pytest.raises(KeyboardInterrupt):
        iterate.run_iterations(toy_task(EVAL), cfg, run_dir=tmp_path / "run", cache=None)
    assert len(trained) == 1 and (tmp_path / "run" / "round_00" / "merged" / "config.json").is_file()
    monkeypatch.setattr(iterate, "write_atomic", real_write)
    run = iterate.run_iterations(toy_task(EVAL), cfg, run_dir=tmp_path / "run", cache=None)
    assert len(trained) == 1, "the finished adapter was trained again"
    assert run.rounds[0]["trained"] and run.rounds[0]["train"]["pairs"] == run.rounds[0]["filter"]["kept"]


def test_the_fixed_verifier_gets_its_backend_options(monkeypatch):
    seen = []
    monkeypatch.setattr(iterate, "open_backend", lambda ref, kind, **kw: seen.append((ref.base, kind, kw)))
    cfg = iterate.IterationConfig(model="small", verifier="fixed", fixed_verifier="big", backend="transformers",
                                  backend_options={"*": {"dtype": "bfloat16"}, "big": {"tensor_parallel_size": 4}})
    assert iterate._fixed_verify_stage("big", cfg, {}, {}, 0, None) == {}
    assert seen == [("big", "transformers", {"options": {"dtype": "bfloat16", "tensor_parallel_size": 4}})]
    with pytest.raises(ValueError, match="backend_options"):
        iterate.IterationConfig(model="m", backend_options={"m": 4})


def test_paper_preset_shards_the_72b_fixed_verifier():
    import yaml

    from gvlib.backends import options_for

    preset = yaml.safe_load((Path(__file__).parents[1] / "notebooks/params/iterative/paper.yaml").read_text())
    assert preset["fixed_verifier"] == "Qwen/Qwen1.5-72B"
    tp = options_for(preset["fixed_verifier"], preset["backend_options"]).get("tensor_parallel_size", 1)
    assert 72.3e9 * 2 / tp < 0.9 * 80e9  # its bf16 weights per GPU leave room for the KV cache on an 80 GB card
