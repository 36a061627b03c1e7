"""Notebook parameter validation (gvlib.params): papermill only warns about unknown names, we stop."""
import pytest

from gvlib.params import NOTEBOOKS, Param, ParameterError, in_range, one_of, validate


@pytest.fixture
def spec(monkeypatch):
    monkeypatch.setitem(NOTEBOOKS, "demo", {
        "n_samples": Param(int, "samples per prompt", in_range(1)),
        "temperature": Param(float, "sampling temperature", in_range(0.0)),
        "backend": Param(str, "engine", one_of("auto", "transformers", "vllm")),
        "models": Param(list, "model ids"),
    })


def good():
    return {"n_samples": 8, "temperature": 0.7, "backend": "auto", "models": ["a"]}


def test_valid_parameters_pass_and_ints_are_floats(spec):
    ns = {**good(), "temperature": 1, "__name__": "__main__", "In": [], "_": None, "validate": validate}
    assert validate("demo", ns) == {**good(), "temperature": 1}


def test_mistyped_name_is_named_with_a_suggestion(spec):
    with pytest.raises(ParameterError, match=r"unknown parameter 'n_sampels'; did you mean 'n_samples'"):
        validate("demo", {**good(), "n_sampels": 64})


@pytest.mark.parametrize("name, value, match", [
    ("n_samples", 0, r"'n_samples' must be >= 1"),
    ("n_samples", 2.5, r"'n_samples' must be int"),
    ("n_samples", True, r"'n_samples' must be int"),
    ("backend", "vlm", r"'backend' must be one of 'auto', 'transformers', 'vllm'"),
    ("models", "a", r"'models' must be list"),
])
def test_wrong_type_or_range_names_the_parameter(spec, name, value, match):
    with pytest.raises(ParameterError, match=match):
        validate("demo", {**good(), name: value})


def test_missing_parameter_and_unknown_notebook(spec):
    ns = good()
    del ns["backend"]
    with pytest.raises(ParameterError, match="'backend' is missing"):
        validate("demo", ns)
    with pytest.raises(ParameterError, match="no parameter declaration for notebook 'nope'"):
        validate("nope", {})
