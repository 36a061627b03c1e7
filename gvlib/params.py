"""[notebook] Papermill parameters: declared once, in each notebook's parameters cell, and validated before anything runs.

A notebook's ``parameters`` cell declares each parameter once, with its type, its default and its meaning::

    n_samples: int = 8  # samples per prompt (paper: 128)
    cpu_threads: "Optional[int]" = 1  # torch CPU threads while sampling (None: torch's default)

(``Optional[...]`` is quoted: papermill reads it, Python keeps it as text.) Papermill only *warns* about a
parameter the notebook does not declare and injects it anyway, so a mistyped ``-p n_sampels 64`` would
silently run with the default. Each notebook therefore calls, in the cell after its ``parameters`` cell::

    from gvlib.params import validate
    params = validate("scaling", globals())

which reads the cell's declarations (the annotations Python keeps in ``__annotations__``) and stops the run
with a message naming the culprit: an unknown name (with the closest known one, or its new name when issue
17 renamed it, :data:`RENAMED`), a wrong type, or a value out of range (:data:`CHECKS`: one rule per
parameter name, the same in every notebook, :mod:`gvlib.names` supplying the choices).
"""
from __future__ import annotations

import difflib
import re
import types
from typing import Any, Callable

from gvlib.names import BACKENDS, POINTWISE_METHODS, VERIFIER_METHODS, VERIFIERS
from gvlib.paper_numbers import CHAPTER_FAMILIES, ENSEMBLE_GSM8K

__all__ = ["ParameterError", "CHECKS", "RENAMED", "validate", "declared", "renamed_hint"]


class ParameterError(ValueError):
    """A notebook parameter that is unknown, of the wrong type, or out of range."""


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


def organism_preset(v) -> str | None:
    """None (no organism), or a name :func:`gvlib.organism.presets.get_preset` knows (``default-s1`` included)."""
    if v is None:
        return None
    from gvlib.organism.presets import get_preset  # imports torch: only when a notebook names an organism
    try:
        get_preset(v)
    except ValueError as e:
        return f"names no organism family: {e}"
    return None


def _options_by_model(v) -> str | None:
    bad = [k for k, o in v.items() if not isinstance(o, dict)]
    return f"must map '*' or a model id to a dict of options; {bad} do not" if bad else None


#: The value rule of each parameter name (its type is the notebook's annotation); a name means one idea in
#: every notebook, so it has one rule. A name without a rule is checked for its type only.
CHECKS: dict[str, Callable[[Any], str | None]] = {
    "organism": organism_preset,
    "models": _all_strings,
    "model": non_empty,
    "task": non_empty,
    "n_prompts": in_range(1),
    "n_train_prompts": in_range(1),
    "train_prompts": one_of("eval", "train"),
    "n_samples": in_range(1),
    "rounds": in_range(1),
    "temperature": in_range(0.0),
    "top_p": in_range(0.0, 1.0, lo_open=True),
    "methods": subset_of(*VERIFIER_METHODS),
    "cross_methods": subset_of(*VERIFIER_METHODS),
    "method": one_of(*VERIFIER_METHODS),
    "sudoku_method": one_of(*POINTWISE_METHODS),
    "verifiers": subset_of(*VERIFIERS),
    "mc_tau": in_range(0.0, 1.0),
    "mc_quantile": in_range(0.0, 1.0),
    "quantile": in_range(0.0, 1.0),
    "cot_score_tau": in_range(0.0, 10.0),
    "tournament_rounds": in_range(1),
    "mc_quantiles": non_empty,
    "mc_taus": non_empty,
    "cot_score_taus": non_empty,
    "n_verifications": non_empty,
    "repeat_prompts": in_range(1),
    "lora_rank": in_range(1),
    "lora_alpha": in_range(0.0, lo_open=True),
    "lora_lr": in_range(0.0, lo_open=True),
    "lora_steps": in_range(1),
    "lora_batch_size": in_range(1),
    "backend": one_of(*BACKENDS),
    "backend_options": _options_by_model,
    "cpu_threads": in_range(1),
    "n_boot": in_range(1),
    "seed": in_range(0),
}
#: Where one notebook's rule is narrower: the paper families it can draw (the paper's tables it has), and
#: unimprovable's pointwise methods (its filters are thresholds and quantiles).
NOTEBOOK_CHECKS: dict[str, dict[str, Callable[[Any], str | None]]] = {
    **{nb: {"paper_family": one_of(*families)} for nb, families in CHAPTER_FAMILIES.items()},
    "unimprovable": {"paper_family": one_of(*CHAPTER_FAMILIES["unimprovable"]), "method": one_of(*POINTWISE_METHODS)},
    "verification": {"paper_family": one_of(*ENSEMBLE_GSM8K)},  # the families of Tab. 3
}

#: Parameters renamed by issue 17 (one name per idea, :mod:`gvlib.names`), per notebook: {old: new}. An old
#: name in a preset or a papermill ``-p`` fails with a message naming the new one.
RENAMED: dict[str, dict[str, str]] = {
    "scaling": {"verifiers": "methods", "mc_threshold": "mc_tau", "cot_score_threshold": "cot_score_tau"},
    "cross_verification": {"verifiers": "methods", "cot_score_threshold": "cot_score_tau"},
    "unimprovable": {"verifier": "method", "sudoku_verifier": "sudoku_method", "cot_score_threshold": "cot_score_tau"},
    "organism": {"mc_threshold": "mc_tau"},
    "iterative": {"threshold": "tau", "filter_quantile": "quantile"},
}


def renamed_hint(notebook: str, name: str) -> str:
    """": it was renamed to 'new' …" when ``name`` is an old name of a parameter of ``notebook``, else ""."""
    new = RENAMED.get(notebook, {}).get(name)
    return f": it was renamed to {new!r} (gvlib.names: one name per idea)" if new else ""


_TYPES = {t.__name__: t for t in (int, float, str, bool, list, dict)}


def _kinds(name: str, annotation: Any) -> tuple[type, ...]:
    """The types a parameter's annotation allows: ``int``, ``list`` … or ``"Optional[int]"`` (that or None)."""
    text = (annotation.__name__ if isinstance(annotation, type) else str(annotation)).replace(" ", "").strip("'\"")
    if text in _TYPES:
        return (_TYPES[text],)  # a type, or its name (code compiled with postponed annotations keeps names)
    optional = re.fullmatch(r"Optional\[(\w+)\]", text)
    if optional and optional.group(1) in _TYPES:
        return _TYPES[optional.group(1)], type(None)
    raise ParameterError(f"parameter {name!r} is annotated {annotation!r}; use one of {sorted(_TYPES)} or "
                         "\"Optional[<one of them>]\" (quoted)")


def declared(notebook: str, namespace: dict[str, Any]) -> dict[str, tuple[type, ...]]:
    """The parameters the notebook's ``parameters`` cell declares (its annotations in ``namespace``): their types."""
    annotations = namespace.get("__annotations__") or {}
    if not annotations:
        raise ParameterError(f"notebook {notebook!r}: its parameters cell declares no parameter; write each as "
                             "`name: type = default  # meaning`")
    return {name: _kinds(name, a) for name, a in annotations.items()}


def problem(notebook: str, name: str, kinds: tuple[type, ...], value: Any) -> str | None:
    """What is wrong with ``value`` for parameter ``name`` (its type, then its rule), or None."""
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok and float in kinds and isinstance(value, int) and not isinstance(value, bool):
        ok = True  # an int where a float is expected is fine
    if not ok:
        names = " or ".join(k.__name__ if k is not type(None) else "None" for k in kinds)
        return f"must be {names}, got {type(value).__name__} {value!r}"
    check = NOTEBOOK_CHECKS.get(notebook, {}).get(name, CHECKS.get(name))
    return check(value) if check and value is not None else None


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
    spec = declared(notebook, namespace)
    values = _user_values(namespace)
    problems = []
    for name in sorted(set(values) - set(spec)):
        close = difflib.get_close_matches(name, spec, n=1)
        hint = renamed_hint(notebook, name) or (f"; did you mean {close[0]!r}?" if close else "")
        problems.append(f"unknown parameter {name!r}{hint} (known: {', '.join(sorted(spec))})")
    for name in sorted(set(spec) - set(values)):
        problems.append(f"parameter {name!r} is missing from the parameters cell")
    for name, kinds in spec.items():
        if name in values:
            issue = problem(notebook, name, kinds, values[name])
            if issue:
                problems.append(f"parameter {name!r} {issue}")
    if problems:
        raise ParameterError(f"notebook {notebook!r}: " + "; ".join(problems))
    return {name: values[name] for name in spec}
