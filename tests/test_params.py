"""Notebook parameter validation (gvlib.params): declared in the parameters cell with their types; papermill
only warns about unknown names, we stop."""
import nbformat
import pytest

from gvlib.build import BOOK_NOTEBOOKS, NOTEBOOK_DIR, merge_parameters
from gvlib.names import VERIFIER_METHODS, VERIFIERS
from gvlib.paper_numbers import CHAPTER_FAMILIES
from gvlib.params import CHECKS, RENAMED, ParameterError, declared, validate

CELL = '''n_samples: int = 8  # samples per prompt
temperature: float = 0.7  # sampling temperature
backend: str = "auto"  # engine
models: list = ["a"]  # model ids
cpu_threads: "Optional[int]" = 1  # threads
'''


def cell_namespace(source: str = CELL, **changes) -> dict:
    """What a kernel holds after running ``source`` (the parameters cell), then papermill's ``changes``."""
    namespace: dict = {}
    exec(source, namespace)
    namespace.pop("__builtins__")
    return {**namespace, **changes}


def parameters_cell(notebook: str) -> str:
    nb = nbformat.read(NOTEBOOK_DIR / f"{notebook}.ipynb", as_version=4)
    return next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))


def test_valid_parameters_pass_and_ints_are_floats():
    ns = {**cell_namespace(temperature=1, cpu_threads=None), "__name__": "__main__", "In": [], "_": None,
          "validate": validate}
    assert validate("demo", ns) == {"n_samples": 8, "temperature": 1, "backend": "auto", "models": ["a"],
                                    "cpu_threads": None}


def test_mistyped_name_is_named_with_a_suggestion():
    with pytest.raises(ParameterError, match=r"unknown parameter 'n_sampels'; did you mean 'n_samples'"):
        validate("demo", cell_namespace(n_sampels=64))


@pytest.mark.parametrize("name, value, match", [
    ("n_samples", 0, r"'n_samples' must be >= 1"),
    ("n_samples", 2.5, r"'n_samples' must be int"),
    ("n_samples", True, r"'n_samples' must be int"),
    ("backend", "vlm", r"'backend' must be one of 'auto', 'transformers', 'vllm'"),
    ("models", "a", r"'models' must be list"),
    ("cpu_threads", 0, r"'cpu_threads' must be >= 1"),
    ("cpu_threads", "2", r"'cpu_threads' must be int or None"),
])
def test_wrong_type_or_range_names_the_parameter(name, value, match):
    with pytest.raises(ParameterError, match=match):
        validate("demo", cell_namespace(**{name: value}))


def test_missing_parameter_and_undeclared_cell():
    ns = cell_namespace()
    del ns["backend"]
    with pytest.raises(ParameterError, match="'backend' is missing"):
        validate("demo", ns)
    with pytest.raises(ParameterError, match="declares no parameter; write each as `name: type = default"):
        validate("demo", {"n_samples": 8})
    with pytest.raises(ParameterError, match=r"'n' is annotated 'list\[int\]'"):
        validate("demo", cell_namespace('n: "list[int]" = [1]'))


@pytest.mark.parametrize("notebook", BOOK_NOTEBOOKS)
def test_every_parameter_of_a_notebook_is_declared_with_a_type(notebook):
    """The parameters cell declares every assignment (one `name: type = default  # meaning` per line), so
    validate sees each one; every shared rule in CHECKS is a parameter of some notebook."""
    source = parameters_cell(notebook)
    ns = cell_namespace(source)
    assert set(declared(notebook, ns)) == {k for k in ns if k != "__annotations__"}
    assert all("  # " in line for line in source.splitlines()), "a parameter without its meaning"
    validate(notebook, ns)


def test_every_rule_is_for_a_declared_parameter():
    names = set()
    for notebook in BOOK_NOTEBOOKS:
        names |= set(cell_namespace(parameters_cell(notebook)))
    assert not set(CHECKS) - names


@pytest.mark.parametrize("notebook, old, new", [(nb, old, new) for nb, names in RENAMED.items()
                                                for old, new in names.items()])
def test_a_renamed_parameter_fails_naming_its_new_name(notebook, old, new):
    """Issue 17 renamed parameters to one name per idea (gvlib.names); an old preset or -p fails clearly."""
    source = parameters_cell(notebook)
    with pytest.raises(ParameterError, match=rf"unknown parameter '{old}': it was renamed to '{new}'"):
        validate(notebook, cell_namespace(source, **{old: 1}))
    with pytest.raises(SystemExit, match=rf"'{old}': it was renamed to '{new}'"):
        merge_parameters(source, {old: 2}, "# header", notebook)


def test_choices_come_from_the_one_vocabulary():
    """The methods, verifiers, backends and paper families a notebook accepts are gvlib.names' and the paper's."""
    def problem(notebook, source, **value):
        try:
            validate(notebook, cell_namespace(source, **value))
        except ParameterError as e:
            return str(e)
        return None

    assert problem("scaling", "methods: list = []  # m", methods=["mc", "cot_scor"]).endswith(
        f"has unknown entries ['cot_scor']; choose from {list(VERIFIER_METHODS)}")
    assert problem("iterative", "verifiers: list = []  # v", verifiers=["me"]).endswith(f"choose from {list(VERIFIERS)}")
    assert "one of 'mc', 'cot_binary', 'cot_score'; got 'tournament'" in problem(
        "unimprovable", "method: str = 'mc'  # m", method="tournament")
    for notebook, families in CHAPTER_FAMILIES.items():
        assert problem(notebook, "paper_family: str = ''  # f", paper_family=families[0]) is None
        assert problem(notebook, "paper_family: str = ''  # f", paper_family="Qwen-9") is not None
