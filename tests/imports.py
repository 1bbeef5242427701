"""What a module of ours imports, read from its source (a test helper, not a test module)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType


def imported_modules(module: ModuleType) -> set[str]:
    """The full names of the modules ``module``'s source imports (``from x import y`` gives ``x``)."""
    tree = ast.parse(Path(module.__file__ or "").read_text())
    return {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and (not isinstance(node, ast.ImportFrom) or node.module)
        for alias in node.names
    }
