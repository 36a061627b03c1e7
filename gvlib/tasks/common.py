"""[tasks] What the real tasks share (paper §3): loading their data and asking the paper's verifiers.

Data comes from, in order: ``path`` (a JSONL file, or a directory holding ``<split>.jsonl``),
``$GVLIB_DATA/<data_dir>/<split>.jsonl``, or Hugging Face ``datasets`` (needs network or a
populated datasets cache). A malformed file is an error naming the file and line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from .. import prompts
from ..names import VERIFIER_METHODS
from .base import Example, Task


#: End-of-text markers a model may write as plain text; a sampled verification stops at them.
END_OF_TEXT = ("</s>", "<|im_end|>", "<|endoftext|>")


class DataError(ValueError):
    """A data file or dataset that cannot be read as the task's problems."""


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a JSONL file; a bad line is a DataError naming the file and line."""
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}, line {lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}, line {lineno}: expected a JSON object, got {type(rec).__name__}")
            rec["_line"] = lineno
            records.append(rec)
    return records


def field_of(rec: dict[str, Any], names: Sequence[str], where: str) -> Any:
    """The first of ``names`` present in ``rec``; a DataError naming ``where`` otherwise."""
    for name in names:
        if name in rec:
            return rec[name]
    have = sorted(k for k in rec if k != "_line")
    raise DataError(f"{where}: no field {' or '.join(map(repr, names))} (has {have})")


def extraction_failure_rate(task: Task, completions: Sequence[str] | Sequence[Sequence[str]]) -> float:
    """Fraction of completions from which ``task.extract`` reads no answer (reported beside every result)."""
    flat = [c for item in completions for c in ([item] if isinstance(item, str) else item)]
    return sum(task.extract(c) is None for c in flat) / len(flat) if flat else 0.0


class DatasetTask(Task):
    """A task whose problems come from a dataset file or Hugging Face (see module doc).

    Subclasses set ``hf_dataset`` = (repo, config or None), ``data_dir``, ``hf_splits``
    (our split name -> HF split), ``file_splits`` (our split -> local file stem) and implement
    :meth:`example`. Verification prompts are the paper's (:mod:`gvlib.prompts`; a task may swap
    in its own ``templates``) filled with the task's ``domain`` and ``answer_format``, after
    ``verifier_shots`` (default 4, the paper's k) of the task's frozen ``verifier_demos``. A
    verification is sampled like a generation (§3 fn. 4): up to 512 new tokens, ending where the
    next demonstration would begin (:attr:`verifier_stop`), not at a blank line, so a verdict
    written after a paragraph break is still read.
    """

    hf_dataset: tuple[str, str | None] = ("", None)
    data_dir: str = ""
    hf_splits: dict[str, str] = {}
    file_splits: dict[str, str] = {}
    domain: str = "math"
    answer_format: str = ""
    verifier_demos: tuple[prompts.Demo, ...] = ()
    templates: dict[str, str] = prompts.TEMPLATES

    def __init__(self, examples: Sequence[Example], split: str = "test", verifier_shots: int = 4):
        super().__init__(examples)
        if verifier_shots < 0:
            raise ValueError(f"verifier_shots must be >= 0, got {verifier_shots}")
        self.split = split
        self.verifier_shots = verifier_shots

    @property
    def verifier_stop(self) -> tuple[str, ...]:
        """A verification ends where a next demonstration would start (the opening words of the
        task's verification prompts) or at an end-of-text marker written as text."""
        return prompts.openings(self.templates.values()) + END_OF_TEXT

    @classmethod
    def example(cls, index: int, rec: dict[str, Any], where: str) -> Example:
        """One problem from one record (``where`` names it in errors)."""
        raise NotImplementedError

    @classmethod
    def load(cls, *, path: str | os.PathLike | None = None, split: str = "test", limit: int | None = None,
             **kw: Any) -> "DatasetTask":
        records, source = cls._records(path, split)
        examples = [cls.example(i, r, f"{source}, line {r.get('_line', i + 1)}")
                    for i, r in enumerate(records[:limit] if limit is not None else records)]
        if not examples:
            raise DataError(f"{source}: no problems")
        return cls(examples, split=split, **kw)

    @classmethod
    def _records(cls, path: str | os.PathLike | None, split: str) -> tuple[list[dict], str]:
        stem = cls.file_splits.get(split, split)
        if path is None and os.environ.get("GVLIB_DATA"):
            path = Path(os.environ["GVLIB_DATA"]) / cls.data_dir
        if path is not None:
            p = Path(path)
            if p.is_dir():
                p = p / f"{stem}.jsonl"
            if not p.is_file():
                raise FileNotFoundError(f"{cls.name}: data file {str(p)!r} not found (split {split!r})")
            return read_jsonl(p), str(p)
        return cls._hf_records(split)

    @classmethod
    def _hf_records(cls, split: str, config: str | None = None) -> tuple[list[dict], str]:
        """The split from Hugging Face ``datasets`` (config: ``hf_dataset``'s unless given)."""
        repo, default_config = cls.hf_dataset
        config = config or default_config
        hf_split = cls.hf_splits.get(split, split)
        try:
            import datasets
            ds = datasets.load_dataset(repo, config, split=hf_split)
        except Exception as err:  # offline, unknown split, hub errors
            raise DataError(
                f"{cls.name}: could not load Hugging Face dataset {repo!r} (config {config!r}, split "
                f"{hf_split!r}): {type(err).__name__}: {err}. Without network, pass path= a local "
                f"JSONL file (or set GVLIB_DATA to a folder holding "
                f"{cls.data_dir}/{cls.file_splits.get(split, split)}.jsonl).") from err
        return [dict(r, _line=i + 1) for i, r in enumerate(ds)], f"{repo}[{hf_split}]"

    # -- verification (paper App. E) -----------------------------------------------------------
    def verifier_problem(self, example: Example) -> str:
        """The problem as the verifier sees it (default: the question)."""
        return example.question

    def verifier_prompt(self, method: str, example: Example, candidate: str, other: str | None = None) -> str:
        if method not in VERIFIER_METHODS:
            raise ValueError(f"unknown verifier method {method!r}; choose one of {VERIFIER_METHODS}")
        style = dict(domain=self.domain, answer_format=self.answer_format)
        slots = dict(style, problem=self.verifier_problem(example))
        if method == "tournament":
            if other is None:
                raise ValueError("the tournament prompt needs two solutions (candidate and other)")
            slots.update(generation1=candidate.strip(), generation2=other.strip())
        else:
            slots.update(generation=candidate.strip())
        template = self.templates[method]
        shots = [prompts.demo_block(method, demo, k, template=template, **style)
                 for k, demo in enumerate(self.demos_for(example))]
        return "\n\n".join(shots + [prompts.render(template, **slots)])

    def demos_for(self, example: Example) -> Sequence[prompts.Demo]:
        """The demonstrations shown before a verification of ``example``: the first ``verifier_shots``."""
        return self.verifier_demos[:self.verifier_shots]


def few_shot(shots: Sequence[tuple[str, str]], template: str, question: str, sep: str = "\n\n") -> str:
    """k solved examples then the question, each ``template`` (with {question}) followed by its answer."""
    parts = [template.format(question=q) + " " + a for q, a in shots]
    return sep.join(parts + [template.format(question=question)])
