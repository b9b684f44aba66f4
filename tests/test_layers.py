"""Each folder imports only what DESIGN.md's folder table lets it: the worker SDK
(``consumers/``) must install and run without the engine, the bridge or the CLI, and
``schemas/`` without anything of ours."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALLOWED = {
    "schemas": set(),
    "topics": {"schemas"},
    "engine": {"schemas", "topics"},
    "consumers": {"schemas", "topics"},
    # The bridge reads through the engine's store (and renders with its templates).
    "bridge": {"schemas", "topics", "engine"},
    "cli": {"schemas", "topics", "engine", "consumers", "bridge"},
}

# Known, and to be moved: the built-in UPSERT_ENTITY executor writes through the
# engine's entity store (one write path for the API and the node).
EXCEPTIONS = {"consumers/entities.py": {"engine"}}


def _ours(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level == 0
            else []
        )
        found |= {n.split(".")[1] for n in names if n.startswith("switchyard.")}
    return found


def test_every_folder_imports_only_the_folders_it_may() -> None:
    wrong = []
    for folder, allowed in ALLOWED.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            name = str(path.relative_to(REPO))
            used = _ours(ast.parse(path.read_text(), name)) - allowed - {folder}
            used -= EXCEPTIONS.get(name, set())
            if used:
                wrong.append(f"{name} imports {sorted(used)}")
    assert wrong == []
