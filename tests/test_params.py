"""Notebook parameter validation (gvlib.params): papermill only warns about unknown names, we stop."""
import pytest

from gvlib.build import merge_parameters
from gvlib.names import VERIFIER_METHODS, VERIFIERS
from gvlib.paper_numbers import CHAPTER_FAMILIES
from gvlib.params import NOTEBOOKS, RENAMED, Param, ParameterError, in_range, one_of, validate


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


@pytest.mark.parametrize("notebook, old, new", [(nb, old, new) for nb, names in RENAMED.items()
                                                for old, new in names.items()])
def test_a_renamed_parameter_fails_naming_its_new_name(notebook, old, new):
    """Issue 17 renamed parameters to one name per idea (gvlib.names); an old preset or -p fails clearly."""
    assert new in NOTEBOOKS[notebook] and old not in NOTEBOOKS[notebook]
    with pytest.raises(ParameterError, match=rf"unknown parameter '{old}': it was renamed to '{new}'"):
        validate(notebook, {old: 1})
    source = f"{new} = 1  # the new name\nseed = 0"
    with pytest.raises(SystemExit, match=rf"'{old}': it was renamed to '{new}'"):
        merge_parameters(source, {old: 2}, "# header", notebook)


def test_choices_come_from_the_one_vocabulary():
    """The methods, verifiers, backends and paper families a notebook accepts are gvlib.names' and the paper's."""
    assert validate_problem("scaling", "methods", ["mc", "cot_scor"]) == (
        f"has unknown entries ['cot_scor']; choose from {list(VERIFIER_METHODS)}")
    assert validate_problem("iterative", "verifiers", ["me"]).endswith(f"choose from {list(VERIFIERS)}")
    for notebook, families in CHAPTER_FAMILIES.items():
        assert validate_problem(notebook, "paper_family", families[0]) is None
        assert validate_problem(notebook, "paper_family", "Qwen-9") is not None


def validate_problem(notebook, name, value):
    return NOTEBOOKS[notebook][name].problem(value)
