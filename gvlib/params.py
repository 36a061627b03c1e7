"""Papermill parameters: declared once per notebook, validated before anything runs.

Papermill only *warns* about a parameter the notebook does not declare and injects it anyway, so a
mistyped ``-p n_sampels 64`` would silently run with the default. Each notebook therefore calls, in
the cell after its ``parameters`` cell::

    from gvlib.params import validate
    params = validate("scaling", globals())

which stops the run with a message naming the culprit: an unknown name (with the closest known
one), a wrong type, or a value out of range.
"""
from __future__ import annotations

import difflib
import types
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Param", "ParameterError", "NOTEBOOKS", "validate", "declared"]


class ParameterError(ValueError):
    """A notebook parameter that is unknown, of the wrong type, or out of range."""


@dataclass(frozen=True)
class Param:
    """One notebook parameter: its type(s), a check returning an error text (or None), and its meaning."""

    kind: type | tuple[type, ...]
    doc: str
    check: Callable[[Any], str | None] | None = None

    def problem(self, value: Any) -> str | None:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok and float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok = True  # an int where a float is expected is fine
        if not ok:
            names = " or ".join(k.__name__ if k is not type(None) else "None" for k in kinds)
            return f"must be {names}, got {type(value).__name__} {value!r}"
        return self.check(value) if self.check else None


# -- reusable checks ----------------------------------------------------------------------------
def in_range(lo=None, hi=None, *, lo_open=False) -> Callable[[Any], str | None]:
    def check(v):
        if v is None:
            return None
        if lo is not None and (v <= lo if lo_open else v < lo):
            return f"must be {'>' if lo_open else '>='} {lo}, got {v!r}"
        if hi is not None and v > hi:
            return f"must be <= {hi}, got {v!r}"
        return None
    return check


def one_of(*choices) -> Callable[[Any], str | None]:
    def check(v):
        return None if v in choices else f"must be one of {', '.join(map(repr, choices))}; got {v!r}"
    return check


def subset_of(*choices) -> Callable[[Any], str | None]:
    def check(v):
        if not v:
            return "must not be empty"
        bad = [x for x in v if x not in choices]
        return f"has unknown entries {bad}; choose from {list(choices)}" if bad else None
    return check


def non_empty(v) -> str | None:
    return "must not be empty" if len(v) == 0 else None


def _all_strings(v) -> str | None:
    bad = [x for x in v if not isinstance(x, str) or not x]
    return f"must hold non-empty strings; got {bad}" if bad else None


def _options_by_model(v) -> str | None:
    bad = [k for k, o in v.items() if not isinstance(o, dict)]
    return f"must map '*' or a model id to a dict of options; {bad} do not" if bad else None


_METHODS = ("mc", "cot_score", "cot_binary", "tournament")
_PAPER_FAMILIES = ("Qwen-1.5", "Qwen-2", "Llama-2", "Llama-3", "Llama-3.1", "Yi-1.5")

#: What the three claim notebooks (scaling, cross_verification, unimprovable) share: the models
#: (gvlib.claims.resolve_models), the sampling settings (paper §3) and the run's engine and seed.
_CLAIM_COMMON: dict[str, Param] = {
    "organism": Param((str, type(None)), "organism family preset (gvlib.organism.PRESETS), or None to run `models`"),
    "models": Param(list, "Hugging Face ids or local paths, smallest first (used when organism is None)", _all_strings),
    "data_dir": Param((str, type(None)), "folder holding the real tasks' JSONL files, or None for Hugging Face datasets"),
    "n_prompts": Param(int, "test problems evaluated (the first ones)", in_range(1)),
    "n_samples": Param(int, "samples per prompt (paper: 128)", in_range(1)),
    "temperature": Param(float, "sampling temperature of generator and verifier (paper: 0.7)", in_range(0.0)),
    "top_p": Param(float, "nucleus sampling mass (paper: 0.9)", in_range(0.0, 1.0, lo_open=True)),
    "backend": Param(str, "inference engine", one_of("auto", "transformers", "vllm")),
    "backend_options": Param(dict, "backend options for every model ('*') or per model id, e.g. "
                             "{'Qwen/Qwen2-72B': {'tensor_parallel_size': 4}}", _options_by_model),
    "cpu_threads": Param((int, type(None)), "torch CPU threads while sampling (None: torch's default)", in_range(1)),
    "n_boot": Param(int, "bootstrap resamples of the prompts for CIs", in_range(1)),
    "seed": Param(int, "seed of sampling, verification and the bootstrap", in_range(0)),
}

#: Declared parameters of each notebook. A notebook's ``parameters`` cell must declare exactly these
#: (tests check it, and that every preset in notebooks/params/<notebook>/ uses only these names).
NOTEBOOKS: dict[str, dict[str, Param]] = {
    "definitions": {
        "seed": Param(int, "seed of the random illustration", in_range(0)),
    },
    "scaling": {
        **_CLAIM_COMMON,
        "flops": Param(list, "pre-training FLOPs of `models` (empty: the paper's table)"),
        "task": Param(str, "task name for gvlib.tasks.load"),
        "verifiers": Param(list, "verification methods", subset_of(*_METHODS)),
        "mc_threshold": Param(float, "MC: keep samples with score > this global threshold", in_range(0.0, 1.0)),
        "cot_score_threshold": Param(float, "CoT-Score: keep samples with score > this", in_range(0.0, 10.0)),
        "tournament_rounds": Param(int, "Tournament: keep the survivors of this many rounds", in_range(1)),
        "paper_family": Param(str, "the paper's model family drawn beside ours",
                              one_of("Qwen-1.5", "Qwen-2", "Qwen-2.5", "Llama-2", "Yi-1.5")),
    },
    "cross_verification": {
        **_CLAIM_COMMON,
        "task": Param(str, "task name for gvlib.tasks.load"),
        "verifiers": Param(list, "verification methods", subset_of(*_METHODS)),
        "mc_quantile": Param(float, "MC: keep samples above this per-prompt quantile of the scores", in_range(0.0, 1.0)),
        "cot_score_threshold": Param(float, "CoT-Score: keep samples with score > this", in_range(0.0, 10.0)),
        "tournament_rounds": Param(int, "Tournament: keep the survivors of this many rounds", in_range(1)),
        "paper_family": Param(str, "the paper's Fig. 3 family shown beside ours", one_of("Llama-2", "Qwen-2")),
    },
    "unimprovable": {
        **_CLAIM_COMMON,
        "factual_task": Param(str, "the factual-recall task (paper: nq_open)"),
        "reasoning_task": Param(str, "the reasoning task it is compared with (paper: gsm8k)"),
        "sudoku_task": Param(str, "the 4x4 Sudoku task (paper: sudoku4)"),
        "verifier": Param(str, "verification method on the factual and reasoning tasks (paper: MC)", one_of(*_METHODS[:3])),
        "sudoku_verifier": Param(str, "verification method on Sudoku", one_of(*_METHODS[:3])),
        "mc_quantile": Param(float, "MC: keep samples above this per-prompt quantile of the scores", in_range(0.0, 1.0)),
        "cot_score_threshold": Param(float, "CoT-Score: keep samples with score > this", in_range(0.0, 10.0)),
        "paper_family": Param(str, "the paper's family whose NQ and Sudoku rows are shown", one_of(*_PAPER_FAMILIES)),
    },
    "verification": {
        **_CLAIM_COMMON,
        "task": Param(str, "the reasoning task of the scaling and cross-verification chapters"),
        "factual_task": Param((str, type(None)), "the factual task of the unimprovable chapter (MC), or None to skip it"),
        "verifiers": Param(list, "self-verification methods (the scaling chapter's)", subset_of(*_METHODS)),
        "cross_verifiers": Param(list, "cross-verification methods (the cross-verification chapter's); [] to skip",
                                 lambda v: subset_of(*_METHODS)(v) if v else None),
        "mc_threshold": Param(float, "MC: the global threshold of the scaling chapter", in_range(0.0, 1.0)),
        "mc_quantile": Param(float, "MC: the per-prompt quantile of the cross-verification chapter and Tab. 3",
                             in_range(0.0, 1.0)),
        "cot_score_threshold": Param(float, "CoT-Score: keep samples with score > this", in_range(0.0, 10.0)),
        "tournament_rounds": Param(int, "Tournament: the rounds the scaling chapter ran", in_range(1)),
        "mc_quantiles": Param(list, "MC per-prompt quantiles swept (Fig. 5)", non_empty),
        "mc_taus": Param(list, "MC global thresholds swept (Fig. 5)", non_empty),
        "cot_score_taus": Param(list, "CoT-Score thresholds swept (Fig. 5)", non_empty),
        "n_verifications": Param(list, "verifications per sample averaged in part 3 (m), 1 first", non_empty),
        "repeat_prompts": Param((int, type(None)), "part 3: the first prompts verified m times (None: all)", in_range(1)),
        "paper_family": Param(str, "the paper's Tab. 3 family shown beside ours", one_of("Qwen-2")),
    },
    "organism": {
        "organism": Param((str, type(None)), "organism family preset (gvlib.organism.PRESETS), or None for a build "
                          "without the organism"),
        "n_prompts": Param(int, "test problems per task (the first ones)", in_range(1)),
        "n_samples": Param(int, "samples per prompt", in_range(1)),
        "temperature": Param(float, "sampling temperature of generator and verifier (paper: 0.7)", in_range(0.0)),
        "top_p": Param(float, "nucleus sampling mass (paper: 0.9)", in_range(0.0, 1.0, lo_open=True)),
        "mc_threshold": Param(float, "the global MC threshold whose yield is reported", in_range(0.0, 1.0)),
        "cpu_threads": Param((int, type(None)), "torch CPU threads while sampling (None: torch's default)", in_range(1)),
        "seed": Param(int, "seed of sampling and verification", in_range(0)),
    },
    "iterative": {
        "organism": Param((str, type(None)), "organism family preset (gvlib.organism.PRESETS), or None to use `model` as given"),
        "model": Param(str, "f_0: a member of the organism family, or a Hugging Face id / local path", non_empty),
        "fixed_verifier": Param(str, "the fixed verifier (organism member, HF id or path); '' for f_0 itself, frozen"),
        "task": Param(str, "task name for gvlib.tasks.load", non_empty),
        "data_dir": Param((str, type(None)), "folder holding the real tasks' JSONL files, or None for Hugging Face datasets"),
        "n_prompts": Param(int, "evaluation prompts (the task's first test problems)", in_range(1)),
        "train_prompts": Param(str, "prompts trained on: the evaluation prompts themselves or the train split",
                               one_of("eval", "train")),
        "n_train_prompts": Param(int, "train-split problems used when train_prompts is 'train'", in_range(1)),
        "n_samples": Param(int, "samples per prompt and round (paper: 128)", in_range(1)),
        "rounds": Param(int, "fine-tuning rounds (paper: 3)", in_range(1)),
        "method": Param(str, "verification method of a model verifier (paper: cot_binary)",
                        one_of("mc", "cot_score", "cot_binary", "tournament")),
        "threshold": Param(float, "keep samples whose verifier score is > this"),
        "filter_quantile": Param((float, type(None)), "keep samples above this per-prompt quantile instead of the threshold",
                                 in_range(0.0, 1.0)),
        "verifiers": Param(list, "who filters each run", subset_of("self", "fixed", "gold")),
        "lora_rank": Param(int, "LoRA rank", in_range(1)),
        "lora_alpha": Param(float, "LoRA alpha (scale = alpha / rank)", in_range(0.0, lo_open=True)),
        "lora_lr": Param(float, "AdamW learning rate of the LoRA weights", in_range(0.0, lo_open=True)),
        "lora_steps": Param(int, "optimizer steps per round", in_range(1)),
        "lora_batch_size": Param(int, "samples per optimizer step", in_range(1)),
        "temperature": Param(float, "sampling temperature of generator and verifier (paper: 0.7)", in_range(0.0)),
        "top_p": Param(float, "nucleus sampling mass (paper: 0.9)", in_range(0.0, 1.0, lo_open=True)),
        "backend": Param(str, "inference engine", one_of("auto", "transformers", "vllm")),
        "backend_options": Param(dict, "backend options for every model ('*') or per model id, e.g. "
                                 "{'Qwen/Qwen1.5-72B': {'tensor_parallel_size': 4}}", _options_by_model),
        "n_boot": Param(int, "bootstrap resamples of the prompts for CIs", in_range(1)),
        "cpu_threads": Param((int, type(None)), "torch CPU threads while sampling and fine-tuning (None: torch's default)",
                             in_range(1)),
        "seed": Param(int, "seed of sampling, verification, fine-tuning and the bootstrap", in_range(0)),
    },
}


def declared(notebook: str) -> dict[str, Param]:
    """The declared parameters of ``notebook``; an unknown notebook name is an error."""
    try:
        return NOTEBOOKS[notebook]
    except KeyError:
        raise ParameterError(f"no parameter declaration for notebook {notebook!r}; known: {sorted(NOTEBOOKS)}") from None


_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def _user_values(namespace: dict[str, Any]) -> dict[str, Any]:
    """The plain values a user (or papermill) put into the notebook namespace."""
    return {
        k: v for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES
        and not isinstance(v, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type))
    }


def validate(notebook: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Check the notebook's parameters in ``namespace`` (its ``globals()``); return them as a dict.

    Raises ParameterError listing every problem: unknown names (papermill injects them with only a
    warning), missing declared names, wrong types and out-of-range values.
    """
    spec = declared(notebook)
    values = _user_values(namespace)
    problems = []
    for name in sorted(set(values) - set(spec)):
        close = difflib.get_close_matches(name, spec, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(f"unknown parameter {name!r}{hint} (known: {', '.join(sorted(spec))})")
    for name in sorted(set(spec) - set(values)):
        problems.append(f"parameter {name!r} is missing from the parameters cell")
    for name, param in spec.items():
        if name in values:
            issue = param.problem(values[name])
            if issue:
                problems.append(f"parameter {name!r} {issue} ({param.doc})")
    if problems:
        raise ParameterError(f"notebook {notebook!r}: " + "; ".join(problems))
    return {name: values[name] for name in spec}
