"""Build the book: train (or reuse) the organism, execute the notebooks with papermill, render with Jupyter Book.

``make book`` runs ``python -m gvlib.build``: it first trains (or reuses) the organism families the
notebooks' presets name, showing each model as it is ready, then executes the notebooks. Options:

    python -m gvlib.build [--preset default] [--only scaling,iterative] [--force]

Each notebook is executed with ``notebooks/params/<notebook>/<preset>.yaml`` into
``book/generated/<notebook>.ipynb``, then ``jupyter-book build`` renders everything with execution
off: nothing at build time needs the network. A notebook whose inputs (its
source, its preset, gvlib's code) are unchanged since its last successful execution is not
re-executed; ``--force`` re-executes anyway. The stages inside each notebook are cached too.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import yaml

from gvlib.paths import REPO_ROOT, results_dir

#: The executed notebooks of the book, in execution order (the reading order is _toc.yml): the organism
#: page runs last, so that it reads the claim chapters' samples and verifications back from the cache.
BOOK_NOTEBOOKS = ("definitions", "scaling", "cross_verification", "unimprovable", "iterative", "organism")
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
GENERATED_DIR = REPO_ROOT / "book" / "generated"
_KEY = "gvlib_build_key"


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


def _inputs_key(notebook: str, preset: Path | None) -> str:
    h = hashlib.sha256()
    sources = [NOTEBOOK_DIR / f"{notebook}.ipynb", *sorted((REPO_ROOT / "gvlib").rglob("*.py"))]
    if preset is not None:
        sources.append(preset)
    for path in sources:
        h.update(path.relative_to(REPO_ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _up_to_date(output: Path, key: str) -> bool:
    if not output.exists():
        return False
    try:
        return nbformat.read(output, as_version=4).metadata.get(_KEY) == key
    except Exception:  # an unreadable (half-written) notebook is simply re-executed
        return False


def execute(notebook: str, preset: str, *, force: bool = False) -> float:
    """Execute one notebook with papermill into book/generated/; returns the seconds it took."""
    import papermill

    params_file = preset_path(notebook, preset)
    parameters = yaml.safe_load(params_file.read_text()) if params_file else {}
    output = GENERATED_DIR / f"{notebook}.ipynb"
    key = _inputs_key(notebook, params_file)
    if not force and _up_to_date(output, key):
        print(f"  {notebook}: unchanged since its last run, reused", flush=True)
        return 0.0
    t0 = time.time()
    GENERATED_DIR.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".partial.ipynb")
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / f"{notebook}.ipynb"), str(partial), parameters=parameters or None,
        cwd=str(REPO_ROOT), kernel_name="python3", progress_bar=sys.stderr.isatty(),
    )
    nb = nbformat.read(partial, as_version=4)
    nb.metadata[_KEY] = key
    nbformat.write(nb, partial)
    partial.replace(output)
    seconds = time.time() - t0
    print(f"  {notebook}: executed in {seconds:.0f} s", flush=True)
    return seconds


def organism_presets(notebooks: tuple[str, ...], preset: str) -> list[str]:
    """The organism families the notebooks' presets run on (their ``organism`` parameter), in order."""
    names: list[str] = []
    for notebook in notebooks:
        params_file = preset_path(notebook, preset)
        organism = (yaml.safe_load(params_file.read_text()) or {}).get("organism") if params_file else None
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


def render() -> Path:
    """Run ``jupyter-book build`` (execution off) and copy the results JSON next to the HTML."""
    jb = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jb), "build", str(REPO_ROOT), "--quiet"], check=True, cwd=REPO_ROOT)
    html = REPO_ROOT / "_build" / "html"
    if results_dir().is_dir():
        shutil.copytree(results_dir(), html / "results", dirs_exist_ok=True)
    return html / "index.html"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gvlib.build", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", help="parameter preset of every notebook (default: %(default)s)")
    parser.add_argument("--only", help="comma-separated notebooks to execute (the others are reused as they are)")
    parser.add_argument("--force", action="store_true", help="re-execute notebooks even when their inputs are unchanged")
    args = parser.parse_args(argv)

    notebooks = BOOK_NOTEBOOKS
    if args.only:
        notebooks = tuple(n.strip() for n in args.only.split(","))
        unknown = sorted(set(notebooks) - set(BOOK_NOTEBOOKS))
        if unknown:
            parser.error(f"unknown notebook(s) {unknown}; the book has {list(BOOK_NOTEBOOKS)}")

    t0 = time.time()
    for name in organism_presets(notebooks, args.preset):
        print(f"[organism] training or reusing the {name!r} family (python -m gvlib.organism --preset {name}) "
              f"[{time.time() - t0:.0f} s elapsed]", flush=True)
        train_organism(name)
    for i, notebook in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] executing notebooks/{notebook}.ipynb (preset {args.preset!r}) "
              f"[{time.time() - t0:.0f} s elapsed]", flush=True)
        execute(notebook, args.preset, force=args.force)
    print(f"rendering the book with Jupyter Book [{time.time() - t0:.0f} s elapsed]", flush=True)
    index = render()
    print(f"\nbook built in {time.time() - t0:.0f} s: open {index}")


if __name__ == "__main__":
    main()
