"""[page] Build the book: train (or reuse) the organism, execute the notebooks with papermill, render with Jupyter Book.

``make book`` runs ``python -m gvlib.build``: it first trains (or reuses) the organism families the
notebooks' presets name, showing each model as it is ready, then executes the notebooks. Options:

    python -m gvlib.build [--preset default] [--only scaling,iterative] [--force] [--jobs N] [--out DIR]

Each notebook is executed with ``notebooks/params/<notebook>/<preset>.yaml`` into
``book/generated/<notebook>.ipynb`` (on the organism, one per core side by side, each once the notebooks
whose samples it reads have run: :func:`execute_all`), then ``jupyter-book build`` renders everything
with execution off: nothing at build time needs the network, and a warning (a broken reference, a
missing figure) fails the build. A notebook whose inputs (its source, its preset, gvlib's code, the
repository setting) are unchanged since its last successful execution is not re-executed;
``--force`` re-executes anyway. The stages inside each notebook are cached too.

Before execution each notebook gets, in its executed copy only: a first cell that installs gvlib
from the book's repository (``_config.yml``: ``repository.url``) when the kernel lacks it, so a
notebook opened from a launch button runs on a fresh Colab or Binder kernel; and its parameters
cell with the preset's values written in, so the page shows one parameters block, the values the
chapter ran with.

``--out DIR`` builds a separate book (e.g. ``make book-tiny``: ``--preset tiny --out _build/tiny``):
the book's sources are copied to ``DIR/src``, the notebooks executed into ``DIR/src/book/generated``,
their results written to ``DIR/results`` and the HTML to ``DIR/_build/html``; the default book's
``book/generated``, ``results`` and ``_build/html`` are left as they are.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import tokenize
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import yaml

from gvlib.codehash import source_digest
from gvlib.params import renamed_hint
from gvlib.paths import REPO_ROOT, results_dir

#: The executed notebooks of the book, in the order they are started (the reading order is _toc.yml).
BOOK_NOTEBOOKS = ("definitions", "scaling", "cross_verification", "unimprovable", "verification", "iterative",
                  "organism")
#: The notebooks each notebook starts after, so that it reads their samples and verifications back from the
#: cache rather than computing them a second time beside them: the Sudoku chapters reuse the scaling chapter's
#: samples and self-verifications, the verification chapter (read after cross-verification) the
#: cross-verifications and the unimprovable chapter's facts too, the organism page that chapter's arithmetic
#: and facts. The others start at once, side by side (:func:`execute_all`).
AFTER = {"cross_verification": ("scaling",), "unimprovable": ("scaling",),
         "verification": ("scaling", "cross_verification", "unimprovable"), "organism": ("scaling", "unimprovable")}
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
GENERATED_DIR = REPO_ROOT / "book" / "generated"
#: What a separate build (--out) copies of the book's sources; book/generated is written anew there.
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")
_KEY = "gvlib_build_key"
#: Tag of the install cell that the build puts first in every executed notebook.
INSTALL_TAG = "gvlib-install"


def preset_path(notebook: str, preset: str) -> Path | None:
    """``notebooks/params/<notebook>/<preset>.yaml``, or None for a notebook without presets."""
    folder = NOTEBOOK_DIR / "params" / notebook
    if not folder.is_dir():
        return None
    path = folder / f"{preset}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise SystemExit(f"no preset {preset!r} for notebook {notebook!r}; known presets: {known}")
    return path


#: Folders of committed tables a page reads besides the cache: a new seed table or MC probe table
#: re-executes the organism page.
DATA_INPUTS = {"organism": (REPO_ROOT / "book" / "data" / "organism_seeds", REPO_ROOT / "book" / "data" / "organism_probe")}


def _inputs_key(notebook: str, preset: Path | None, overrides: dict | None = None) -> str:
    """What an executed notebook depends on: its source and preset (as written: the page shows them), the
    data files it reads (:data:`DATA_INPUTS`), the values that override the preset, the code digest of gvlib
    (:func:`gvlib.codehash.source_digest`: a comment or docstring re-executes nothing) and the repository
    setting."""
    h = hashlib.sha256()
    for path in [NOTEBOOK_DIR / f"{notebook}.ipynb", *([preset] if preset is not None else [])]:
        h.update(path.relative_to(REPO_ROOT).as_posix().encode())
        h.update(path.read_bytes())
    for path in sorted(p for folder in DATA_INPUTS.get(notebook, ()) for p in folder.glob("*.json")):
        h.update(path.relative_to(path.parent.parent).as_posix().encode())
        h.update(path.read_bytes())
    modules = [".".join(p.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
               for p in sorted((REPO_ROOT / "gvlib").rglob("*.py"))]
    h.update(source_digest(*modules).encode())
    h.update(repository_url().encode())
    if overrides:
        h.update(json.dumps(overrides, sort_keys=True).encode())
    return h.hexdigest()


def repository_url() -> str:
    """The book's repository, its one setting: ``repository.url`` in ``_config.yml`` (README)."""
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text()) or {}
    url = str((config.get("repository") or {}).get("url") or "").rstrip("/")
    if not url.startswith("https://"):
        raise SystemExit(f"_config.yml: repository.url must be the book's https repository URL, got {url!r}")
    return url


def install_cell(url: str) -> nbformat.NotebookNode:
    """The first cell of an executed notebook: pip-installs gvlib from ``url`` when the kernel lacks it.

    It defines no variable (only modules), so the notebook's parameter check sees nothing new.
    """
    source = (
        "# On a fresh Colab or Binder kernel: install gvlib from the book's repository (a no-op where it is installed).\n"
        "import importlib, importlib.util, subprocess, sys\n"
        "if importlib.util.find_spec(\"gvlib\") is None:\n"
        f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\", \"gvlib @ git+{url}\"], check=True)\n"
        "    importlib.invalidate_caches()"
    )
    return nbformat.v4.new_code_cell(source, metadata={"tags": [INSTALL_TAG, "hide-cell"]})


def _literal(value: Any) -> str:
    """``value`` (from a YAML preset) as a Python literal in the notebooks' style (double-quoted strings)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    raise TypeError(f"preset value {value!r} of type {type(value).__name__} has no Python literal")


def merge_parameters(source: str, values: dict, header: str, notebook: str = "") -> str:
    """The parameters cell ``source`` with ``values`` written in place of its defaults, under ``header``.

    Each ``name: type = default  # meaning`` line (:mod:`gvlib.params`) keeps its name, type and meaning; a
    value spanning several lines is replaced whole. A name in ``values`` that the cell does not assign is an
    error (naming its new name when it was renamed, :data:`gvlib.params.RENAMED`).
    """
    lines = source.splitlines()
    comments = {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    spans, annotations = {}, {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            spans[node.targets[0].id] = (node.lineno, node.end_lineno)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            spans[node.target.id] = (node.lineno, node.end_lineno)
            annotations[node.target.id] = f": {ast.get_source_segment(source, node.annotation)}"
    unknown = sorted(set(values) - set(spans))
    if unknown:
        raise SystemExit(f"the preset sets {unknown}, which the notebook's parameters cell does not define"
                         + "".join(f"; {name!r}{renamed_hint(notebook, name)}" for name in unknown
                                   if renamed_hint(notebook, name)))
    for name, (first, last) in sorted(((n, spans[n]) for n in values), key=lambda item: -item[1][0]):
        comment = comments.get(last)
        text = f"{name}{annotations.get(name, '')} = {_literal(values[name])}"
        if ast.literal_eval(_literal(values[name])) != values[name]:
            raise SystemExit(f"preset value of {name!r} does not round-trip as a Python literal: {values[name]!r}")
        lines[first - 1:last] = [f"{text}  {comment}" if comment else text]
    return "\n".join([*header.splitlines(), *lines])


def prepare(nb: nbformat.NotebookNode, notebook: str, preset: str, parameters: dict, url: str) -> nbformat.NotebookNode:
    """The notebook as the build executes it: the install cell first, the preset written into its parameters."""
    cells = [c for c in nb.cells if INSTALL_TAG not in c.metadata.get("tags", [])]
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) > 1:
        raise SystemExit(f"notebooks/{notebook}.ipynb has {len(tagged)} cells tagged 'parameters'; papermill needs one")
    if tagged:
        where = (f"the defaults, and preset {preset!r} (notebooks/params/{notebook}/{preset}.yaml) for "
                 + ", ".join(parameters) if parameters else "the notebook's defaults")
        header = textwrap.fill(f"The parameters this page ran with: {where}.", 100, initial_indent="# ",
                               subsequent_indent="# ")
        tagged[0].source = merge_parameters(tagged[0].source, parameters, header, notebook)
    elif parameters:
        raise SystemExit(f"notebooks/{notebook}.ipynb has no 'parameters' cell for its preset {preset!r}")
    nb.cells = [install_cell(url), *cells]
    return nb


def _up_to_date(output: Path, key: str) -> bool:
    if not output.exists():
        return False
    try:
        return nbformat.read(output, as_version=4).metadata.get(_KEY) == key
    except Exception:  # an unreadable (half-written) notebook is simply re-executed
        return False


#: Held while a notebook's kernel starts (:func:`_kernel_start`).
_KERNEL_STARTING = threading.Lock()


@contextmanager
def _kernel_start():
    """One kernel starts at a time: yields the callback (nbclient's ``on_notebook_start``, called once the
    kernel answers) that lets the next one start. A kernel binds the TCP ports chosen for it a moment after
    they were chosen; two kernels started at once in a side-by-side build collided on one ("Address already
    in use" from a kernel's heartbeat). Started one after the other, each has bound its ports before the next
    one's are chosen; they then run side by side."""
    _KERNEL_STARTING.acquire()
    held = [True]

    def kernel_up(**_):
        if held[0]:
            held[0] = False
            _KERNEL_STARTING.release()

    try:
        yield kernel_up
    finally:
        kernel_up()


def execute(notebook: str, preset: str, *, force: bool = False, generated: Path = GENERATED_DIR,
            overrides: dict | None = None) -> float:
    """Execute one notebook (:func:`prepare`) with papermill into ``generated``; returns the seconds it took.

    ``overrides``: parameter values that replace the preset's (e.g. ``{"organism": "default-s1"}``).
    """
    import papermill

    params_file = preset_path(notebook, preset)
    parameters = {**((yaml.safe_load(params_file.read_text()) or {}) if params_file else {}), **(overrides or {})}
    output = generated / f"{notebook}.ipynb"
    key = _inputs_key(notebook, params_file, overrides)
    if not force and _up_to_date(output, key):
        print(f"  {notebook}: unchanged since its last run, reused", flush=True)
        return 0.0
    t0 = time.time()
    generated.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".partial.ipynb")
    nb = prepare(nbformat.read(NOTEBOOK_DIR / f"{notebook}.ipynb", as_version=4), notebook, preset, parameters,
                 repository_url())
    with _kernel_start() as kernel_up:
        papermill.execute_notebook(  # the preset is in the parameters cell: nothing for papermill to inject
            nb, str(partial), cwd=str(REPO_ROOT), kernel_name="python3", progress_bar=sys.stderr.isatty(),
            on_notebook_start=kernel_up,
        )
    nb = nbformat.read(partial, as_version=4)
    nb.metadata[_KEY] = key
    nbformat.write(nb, partial)
    partial.replace(output)
    seconds = time.time() - t0
    print(f"  {notebook}: executed in {seconds:.0f} s", flush=True)
    return seconds


def execute_all(notebooks: tuple[str, ...], preset: str, *, jobs: int = 1, force: bool = False,
                generated: Path = GENERATED_DIR, overrides: dict | None = None, t0: float | None = None) -> None:
    """Execute ``notebooks`` (:func:`execute`, with ``overrides``), up to ``jobs`` at once: each starts, in the
    order of ``notebooks``, once the ones of them it runs after (:data:`AFTER`) have finished. The results are
    those of one after the other: every sample and verification is cached under what determines it, so a
    notebook that starts later reads back what another computed. A failed notebook stops the ones not yet
    started, and its error is raised once the running ones have finished."""
    t0 = time.time() if t0 is None else t0
    how = "".join(f", {k} {v!r}" for k, v in (overrides or {}).items())
    waiting, finished, running, error = list(notebooks), set(), {}, None
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        while waiting or running:
            ready = [n for n in waiting if all(d in finished for d in AFTER.get(n, ()) if d in notebooks)]
            while error is None and ready and len(running) < jobs:
                notebook = ready.pop(0)
                waiting.remove(notebook)
                print(f"[{len(notebooks) - len(waiting)}/{len(notebooks)}] executing notebooks/{notebook}.ipynb "
                      f"(preset {preset!r}{how}) [{time.time() - t0:.0f} s elapsed]", flush=True)
                running[pool.submit(execute, notebook, preset, force=force, generated=generated,
                                    overrides=overrides)] = notebook
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                notebook = running.pop(future)
                try:
                    future.result()
                    finished.add(notebook)
                except Exception as e:  # papermill's error names the notebook and the failing cell
                    error = error or e
    if error is not None:
        raise error


def default_jobs(notebooks: tuple[str, ...], preset: str) -> int:
    """Notebooks executed at once by default: one per core (:func:`gvlib.threads.training_threads`) when the
    notebooks run the organism, whose tiny models sample on one thread each (``cpu_threads``); one at a time
    on real models, which share the GPUs."""
    from gvlib.threads import training_threads

    return training_threads() if organism_presets(notebooks, preset) else 1


def organism_presets(notebooks: tuple[str, ...], preset: str) -> list[str]:
    """The organism families the notebooks run on under ``preset`` (their ``organism`` parameter), in order."""
    from gvlib.plan import notebook_params

    names: list[str] = []
    for notebook in notebooks:
        organism = notebook_params(NOTEBOOK_DIR / f"{notebook}.ipynb", preset_path(notebook, preset), []).get("organism")
        if organism and organism not in names:
            names.append(organism)
    return names


def train_organism(name: str) -> float:
    """Train (or reuse) the organism family ``name`` before the notebooks, one line per model; returns seconds."""
    from transformers.utils import logging as hf_logging

    from gvlib.organism import ensure_family

    hf_logging.disable_progress_bar()  # transformers' "Writing model shards" bars would bury the per-model lines
    t0 = time.time()

    def done(entry) -> None:
        print(f"  {entry.name}: {entry.params:,} parameters, {entry.flops:.2e} FLOPs "
              f"[{time.time() - t0:.0f} s]", flush=True)

    family = ensure_family(name, on_model_done=done)
    how = f"trained {', '.join(family.trained_now)}" if family.trained_now else "all reused"
    print(f"  organism {name!r} ready in {time.time() - t0:.0f} s ({how}): {family.path}", flush=True)
    return time.time() - t0


def stage(out: Path) -> Path:
    """Copy the book's sources (not its executed notebooks) to ``out/src`` for a separate build; returns it."""
    src = out / "src"
    for name in BOOK_SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("generated"))
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
    return src


def render(root: Path = REPO_ROOT, out: Path = REPO_ROOT) -> Path:
    """Run ``jupyter-book build`` on ``root`` into ``out/_build/html`` (execution off; a warning is an
    error, all of them reported) and copy the results JSON next to the HTML."""
    jb = Path(sys.executable).with_name("jupyter-book")
    done = subprocess.run([str(jb), "build", str(root), "--path-output", str(out), "--quiet", "-W", "-n", "--keep-going"],
                          cwd=REPO_ROOT)
    if done.returncode:
        raise SystemExit(f"jupyter-book build failed (exit {done.returncode}): the warnings or errors above fail the "
                         "build (-W); fix them")
    html = out / "_build" / "html"
    if results_dir().is_dir():
        shutil.copytree(results_dir(), html / "results", dirs_exist_ok=True)
    return html / "index.html"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gvlib.build", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", help="parameter preset of every notebook (default: %(default)s)")
    parser.add_argument("--only", help="comma-separated notebooks to execute (the others are reused as they are)")
    parser.add_argument("--force", action="store_true", help="re-execute notebooks even when their inputs are unchanged")
    parser.add_argument("--jobs", type=int, help="notebooks executed at once (default: one per core on the organism, "
                        "whose notebooks sample on one thread each; one at a time on real models, which share the GPUs)")
    parser.add_argument("--out", type=Path, help="build a separate book in this folder (sources, results, HTML), "
                        "leaving the default book's outputs alone")
    args = parser.parse_args(argv)

    notebooks = BOOK_NOTEBOOKS
    if args.only:
        notebooks = tuple(n.strip() for n in args.only.split(","))
        unknown = sorted(set(notebooks) - set(BOOK_NOTEBOOKS))
        if unknown:
            parser.error(f"unknown notebook(s) {unknown}; the book has {list(BOOK_NOTEBOOKS)}")

    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected at least one notebook at a time")
    root, out, generated = REPO_ROOT, REPO_ROOT, GENERATED_DIR
    if args.out is not None:
        out = args.out.resolve()
        root = stage(out)
        generated = root / "book" / "generated"
        os.environ["GVLIB_RESULTS"] = str(out / "results")  # the notebooks' kernels inherit it
    t0 = time.time()
    for name in organism_presets(notebooks, args.preset):
        print(f"[organism] training or reusing the {name!r} family (python -m gvlib.organism --preset {name}) "
              f"[{time.time() - t0:.0f} s elapsed]", flush=True)
        train_organism(name)
    jobs = args.jobs if args.jobs is not None else default_jobs(notebooks, args.preset)
    execute_all(notebooks, args.preset, jobs=jobs, force=args.force, generated=generated, t0=t0)
    print(f"rendering the book with Jupyter Book [{time.time() - t0:.0f} s elapsed]", flush=True)
    index = render(root, out)
    print(f"\nbook built in {time.time() - t0:.0f} s: open {index}")


if __name__ == "__main__":
    main()
