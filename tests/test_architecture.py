"""The direction of dependencies in DESIGN.md: the engine imports no store, transport, web framework or torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "llmid"
FORBIDDEN = {
    "engine": ("llmid.store", "llmid.ingest_pipelines", "llmid.runner", "llmid.cli", "llmid.workers", "llmid.plugin",
               "llmid.model_export", "celery", "flask", "torch", "transformers", "sqlite3", "requests"),
    "store": ("llmid.engine", "llmid.cli", "llmid.runner", "torch"),
    "ingest_pipelines": ("llmid.engine", "llmid.store", "llmid.cli", "torch"),
    "documents.py": ("llmid.engine", "llmid.store", "llmid.ingest_pipelines"),
}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_dependency_direction(part: str) -> None:
    target = PKG / part
    files = [target] if target.is_file() else sorted(target.rglob("*.py"))
    assert files
    for f in files:
        for name in imports(f):
            bad = [x for x in FORBIDDEN[part] if name == x or name.startswith(x + ".")]
            assert not bad, f"{f.relative_to(PKG.parent)} imports {name}"
