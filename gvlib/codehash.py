"""[engine] Cache keys derived from code: a digest of modules' source with docstrings and comments left out.

A cached artefact (a trained organism, a chunk of samples, an iteration round) is only valid for the
code that produced it. Hand-bumped version constants were forgotten once (the organism's seed stage
switched from ``generate`` to :mod:`gvlib.sampler` and stale families were silently reused), so the
keys include :func:`source_digest` of the modules that produce the artefact. The digest is taken over
the parsed syntax tree, so editing a comment, a docstring or the layout does not invalidate a cache;
any change to what the code does does.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import lru_cache


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=None)
def _module_digest(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"cannot digest module {name!r}: no Python source found")
    with open(spec.origin, encoding="utf-8") as f:
        tree = _strip_docstrings(ast.parse(f.read(), filename=spec.origin))
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()


def source_digest(*modules: str) -> str:
    """A 16-hex-digit digest of the named modules' code (docstrings, comments, layout ignored)."""
    parts = [f"{name}:{_module_digest(name)}" for name in sorted(set(modules))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
