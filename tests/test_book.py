"""The book as a product: the build's notebook preparation, the chapters' exercises, and the HTML of the
tiny book (``make book-tiny``, which .ci/run runs before the tests; the HTML tests skip when it is not built).

Building the book inside pytest would take minutes (it executes every notebook), so the HTML tests read
``_build/tiny/_build/html`` (or ``$GVLIB_TINY_BOOK``, the folder ``--out`` was given) as the build left it.
"""
import ast
import os
import re
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from gvlib import build

ROOT = Path(__file__).resolve().parents[1]
TINY_BOOK = Path(os.environ.get("GVLIB_TINY_BOOK") or ROOT / "_build" / "tiny")
HTML = TINY_BOOK / "_build" / "html"
CHAPTERS = build.BOOK_NOTEBOOKS
#: The chapters that teach with code: each has an "implement this" exercise.
EXERCISE_CHAPTERS = ("definitions", "scaling", "cross_verification", "unimprovable", "verification", "iterative")
SOLUTION_START, SOLUTION_END = ":::{solution-start}", ":::{solution-end}"


# -- the build's preparation of each notebook ----------------------------------------------------------
def test_merge_parameters_writes_the_preset_into_the_cell():
    source = ('organism: "Optional[str]" = "default"  # family\nn: int = 8  # samples\nverifiers: list = [\n'
              '    "mc",\n]  # methods\nseed = 0')
    merged = build.merge_parameters(source, {"organism": "tiny", "verifiers": ["mc", "cot_score"]}, "# header")
    assert merged.splitlines() == ["# header", 'organism: "Optional[str]" = "tiny"  # family', "n: int = 8  # samples",
                                   'verifiers: list = ["mc", "cot_score"]  # methods', "seed = 0"]
    namespace = {}
    exec(merged, namespace)
    assert namespace["verifiers"] == ["mc", "cot_score"] and namespace["n"] == 8
    with pytest.raises(SystemExit, match=r"\['sede'\]"):
        build.merge_parameters(source, {"sede": 1}, "# header")


@pytest.mark.parametrize("notebook", CHAPTERS)
def test_prepared_notebook_has_one_parameters_cell_with_the_tiny_preset(notebook):
    preset = build.preset_path(notebook, "tiny")
    values = (yaml.safe_load(preset.read_text()) or {}) if preset else {}
    nb = build.prepare(nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4), notebook, "tiny",
                       values, "https://github.com/someone/some-book")
    assert build.INSTALL_TAG in nb.cells[0].metadata.tags and "git+https://github.com/someone/some-book" in nb.cells[0].source
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    namespace = {}
    exec(tagged[0].source, namespace)
    assert {k: namespace[k] for k in values} == values
    assert tagged[0].source.startswith("# The parameters this page ran with")


def _fake_execute(monkeypatch, fail: str | None = None):
    """Replace :func:`build.execute` by one that logs each notebook's start and end; the definitions notebook
    waits (up to 10 s) for the scaling chapter to start, and ``fail`` raises."""
    import threading
    log, lock, scaling_started = [], threading.Lock(), threading.Event()

    def execute(notebook, preset, *, force=False, generated=None, overrides=None):
        with lock:
            log.append(("start", notebook, overrides))
        if notebook == "scaling":
            scaling_started.set()
        if notebook == "definitions":
            scaling_started.wait(10)
        if notebook == fail:
            with lock:
                log.append(("end", notebook, overrides))
            raise RuntimeError(f"{notebook} failed")
        with lock:
            log.append(("end", notebook, overrides))
        return 0.0

    monkeypatch.setattr(build, "execute", execute)
    return log


def test_notebooks_run_side_by_side_each_after_the_ones_whose_samples_it_reads(monkeypatch):
    log = _fake_execute(monkeypatch)
    build.execute_all(CHAPTERS, "tiny", jobs=2, overrides={"organism": "tiny-s1"})
    starts = [e[1] for e in log if e[0] == "start"]
    assert sorted(starts) == sorted(CHAPTERS) and all(e[2] == {"organism": "tiny-s1"} for e in log)
    running, ended, most = set(), set(), 0
    for event, notebook, _ in log:
        if event == "start":
            assert set(build.AFTER.get(notebook, ())) <= ended, notebook
            running.add(notebook)
            most = max(most, len(running))
        else:
            running.discard(notebook)
            ended.add(notebook)
    assert most == 2  # definitions waited for scaling to start beside it, and never more than two ran at once
    assert set(build.AFTER["verification"]) == {"scaling", "cross_verification", "unimprovable"}
    assert {"scaling", "unimprovable"} <= set(build.AFTER["organism"])


def test_a_failed_notebook_stops_those_not_started_and_its_error_is_raised(monkeypatch):
    log = _fake_execute(monkeypatch, fail="scaling")
    with pytest.raises(RuntimeError, match="scaling failed"):
        build.execute_all(CHAPTERS, "tiny", jobs=2)
    started = {e[1] for e in log if e[0] == "start"}
    assert "scaling" in started and not started & {"cross_verification", "unimprovable", "verification", "organism"}
    assert {e[1] for e in log if e[0] == "end"} == started  # the running ones finished before the error was raised


def test_kernels_start_one_at_a_time_then_run_side_by_side(monkeypatch, tmp_path):
    """Two notebooks at once: the second kernel starts only once the first has answered (two kernels
    starting together collided on a TCP port), and the two then run together."""
    import threading
    starting, most, lock = [0], [0], threading.Lock()
    both_running = threading.Barrier(2, timeout=10)

    def execute_notebook(nb, output, *, on_notebook_start, **_):
        with lock:
            starting[0] += 1
            most[0] = max(most[0], starting[0])
        threading.Event().wait(0.2)  # the kernel starting
        with lock:
            starting[0] -= 1
        on_notebook_start(notebook=nb)
        both_running.wait()  # fails (BrokenBarrierError) unless the other notebook runs now too
        nbformat.write(nb, output)

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    build.execute_all(("definitions", "iterative"), "tiny", jobs=2, force=True, generated=tmp_path)
    assert most[0] == 1 and {p.name for p in tmp_path.glob("*.ipynb")} == {"definitions.ipynb", "iterative.ipynb"}


def test_the_organism_presets_run_one_notebook_per_core_and_real_models_one_at_a_time(monkeypatch):
    monkeypatch.setenv("GVLIB_THREADS", "3")
    assert build.default_jobs(CHAPTERS, "default") == 3 and build.default_jobs(CHAPTERS, "tiny") == 3
    assert build.default_jobs(CHAPTERS, "paper") == 1
    with pytest.raises(SystemExit):
        build.main(["--jobs", "0"])


def test_install_cell_defines_no_variable_and_names_the_configured_repository():
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert build.repository_url() == url.rstrip("/")
    cell = build.install_cell(build.repository_url())
    namespace = {}
    exec(cell.source, namespace)  # gvlib is importable here: a no-op
    assert all(type(v).__name__ == "module" for k, v in namespace.items() if k != "__builtins__")
    assert f"gvlib @ git+{url}" in cell.source and "hide-cell" in cell.metadata.tags


def test_separate_build_copies_the_sources_but_not_the_executed_notebooks(tmp_path):
    src = build.stage(tmp_path)
    assert (src / "_toc.yml").exists() and (src / "book" / "intro.md").exists()
    assert not (src / "book" / "generated").exists()


# -- the chapters' exercises ----------------------------------------------------------------------------
def _stubs_and_solutions(nb):
    """(names of functions whose body raises NotImplementedError, names defined inside solutions, cells after)."""
    stubs, solved, inside = {}, set(), False
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            inside = (inside or SOLUTION_START in cell.source) and SOLUTION_END not in cell.source
            continue
        for node in ast.parse(cell.source).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            if inside:
                solved.add(node.name)
            elif any(isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n) for n in ast.walk(node)):
                stubs[node.name] = i
    return stubs, solved


@pytest.mark.parametrize("notebook", EXERCISE_CHAPTERS)
def test_each_chapter_has_an_implement_this_exercise_solved_and_checked(notebook):
    nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    stubs, solved = _stubs_and_solutions(nb)
    assert stubs, f"{notebook}: no exercise stub raising NotImplementedError"
    for name, index in stubs.items():
        assert name in solved, f"{notebook}: the stub {name}() has no solution cell defining it"
        later = [c.source for c in nb.cells[index + 1:] if c.cell_type == "code"]
        assert any(re.search(rf"\b{name}\(", s) and not s.lstrip().startswith("def") for s in later), \
            f"{notebook}: nothing calls {name}() after its stub"
    sources = "\n".join(c.source for c in nb.cells)
    assert sources.count(SOLUTION_START) == sources.count(SOLUTION_END) > 0
    assert "```python" not in sources, f"{notebook}: a solution's code sits in a Markdown fence, not a code cell"


def test_student_version_stops_at_the_stub_with_a_clear_message(tmp_path):
    """Without its solution cells (the student version) the definitions chapter stops at the exercise."""
    nb = nbformat.read(ROOT / "notebooks" / "definitions.ipynb", as_version=4)
    kept, inside = [], False
    for cell in nb.cells:
        starts = cell.cell_type == "markdown" and SOLUTION_START in cell.source
        inside = inside or starts
        if not inside:
            kept.append(cell)
        if cell.cell_type == "markdown" and SOLUTION_END in cell.source:
            inside = False
    nb.cells = kept
    with pytest.raises(papermill.PapermillExecutionError, match=r"NotImplementedError: exercise: implement relative_gap"):
        papermill.execute_notebook(nb, str(tmp_path / "student.ipynb"), kernel_name="python3", progress_bar=False,
                                   cwd=str(ROOT))


# -- the built tiny book's HTML ---------------------------------------------------------------------------
def _page(name: str):
    from bs4 import BeautifulSoup  # a dependency of the book's theme (pydata-sphinx-theme)

    path = HTML / "book" / "generated" / f"{name}.html"
    if not path.exists():
        pytest.skip(f"the tiny book is not built ({path} is missing): run `make book-tiny` first (.ci/run does)")
    return BeautifulSoup(path.read_text(), "html.parser")


def _pages():
    if not (HTML / "index.html").exists():
        pytest.skip(f"the tiny book is not built ({HTML} is missing): run `make book-tiny` first (.ci/run does)")
    return sorted(HTML.rglob("*.html"))


def test_no_page_loads_a_remote_script_and_mathjax_is_served_locally():
    from bs4 import BeautifulSoup

    pages = _pages()
    for page in pages:
        for script in BeautifulSoup(page.read_text(), "html.parser").find_all("script", src=True):
            assert not re.match(r"(https?:)?//", script["src"]), f"{page.relative_to(HTML)} loads {script['src']}"
    soup = BeautifulSoup((HTML / "book" / "generated" / "definitions.html").read_text(), "html.parser")
    mathjax = [s["src"] for s in soup.find_all("script", src=True) if "mathjax" in s["src"].lower()]
    assert mathjax, "the definitions page (full of formulas) loads no MathJax"
    for src in mathjax:
        assert (HTML / "book" / "generated" / src.split("?")[0]).resolve().is_file(), f"{src} is not in the built site"


@pytest.mark.parametrize("notebook", CHAPTERS)
def test_chapter_page_shows_one_parameters_block_with_the_values_it_ran_with(notebook):
    soup = _page(notebook)
    nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    if not any("parameters" in c.metadata.get("tags", []) for c in nb.cells):
        assert not soup.select("div.cell.tag_parameters, div.cell.tag_injected-parameters")
        return
    blocks = soup.select("div.cell.tag_parameters")
    assert len(blocks) == 1 and not soup.select("div.cell.tag_injected-parameters")
    text = blocks[0].get_text()
    assert "The parameters this page ran with" in text
    preset = build.preset_path(notebook, "tiny")
    for name, value in ((yaml.safe_load(preset.read_text()) or {}) if preset else {}).items():
        assert re.search(rf"^{name}(: [^=]+)? = {re.escape(build._literal(value))}", text, re.M), \
            f"{notebook}: {name} is not shown with its preset value"


@pytest.mark.parametrize("notebook", CHAPTERS)
def test_chapter_page_holds_every_solution_with_its_output(notebook):
    soup = _page(notebook)
    nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    n_solutions = "\n".join(c.source for c in nb.cells).count(SOLUTION_START)
    solutions = soup.select("div.solution")
    assert len(solutions) == n_solutions, f"{notebook}: {len(solutions)} solutions on the page, {n_solutions} in the notebook"
    for solution in solutions:
        assert "dropdown" in solution["class"]
        for cell in solution.select("div.cell"):
            body = ast.parse(cell.select_one("div.cell_input").get_text()).body
            if all(isinstance(n, (ast.FunctionDef, ast.Import, ast.ImportFrom)) for n in body):
                continue  # a definition: its check, after the solution, prints
            assert cell.select("div.cell_output"), f"{notebook}: a solution's code cell has no output on the page"
    assert not soup.select("div.output.error, div.output.traceback"), f"{notebook}: the page shows an error"


@pytest.mark.parametrize("notebook", CHAPTERS)
def test_chapter_figures_have_a_caption_and_alt_text(notebook):
    soup = _page(notebook)
    for img in soup.find_all("img"):
        if "_images/" not in img["src"]:
            continue  # the theme's icons
        alt = img.get("alt", "").strip()
        assert alt and "_images/" not in alt, f"{notebook}: a figure without alt text (Sphinx's default is its file name)"
        figure = img.find_parent("figure")
        assert figure is not None and figure.find("figcaption"), f"{notebook}: a figure without a caption"
