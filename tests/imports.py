"""What a module of ours imports, read from its source (a test helper, not a test module)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

PACKAGE = Path(__file__).resolve().parents[1] / "mangrove_nb"


def imported_modules(module: ModuleType) -> set[str]:
    """The full names of the modules ``module``'s source imports (``from x import y`` gives ``x``; relative
    imports are resolved against the package, so ``from .client import y`` gives ``mangrove_nb.client``)."""
    path = Path(module.__file__ or "")
    return {".".join(name) for name in _imports(path.read_text(), _package_of(path))}


def units_imported(source: str, path: Path) -> set[str]:
    """The units of mangrove_nb that a source file imports: top-level module or subpackage names (``client``,
    ``emulator``), ``mangrove_nb`` for the package's front door itself; its own unit left out."""
    package = _package_of(path)
    own = _unit_of(path)
    found = set()
    for name in _imports(source, package):
        if name[:1] != ("mangrove_nb",):
            continue
        found.add(_unit_of_name(name))
    found.discard(own)
    return found


def unit_files() -> dict[str, list[Path]]:
    """Every unit of the package (a top-level module, or a subpackage with its files) and its files."""
    units: dict[str, list[Path]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        units.setdefault(_unit_of(path), []).append(path)
    return units


def _imports(source: str, package: tuple[str, ...]) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(tuple(alias.name.split(".")) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = tuple(node.module.split(".")) if node.module else ()
            else:
                base = package[: len(package) - (node.level - 1)] + (
                    tuple(node.module.split(".")) if node.module else ())
            # from x import y: y is a module of x when a file says so (from mangrove_nb import api), else a name
            for alias in node.names:
                candidate = (*base, alias.name)
                found.add(candidate if base[:1] == ("mangrove_nb",) and _is_module(candidate) else base)
        elif isinstance(node, ast.Call) and _imported_by_name(node, package):
            found.add(_imported_by_name(node, package))
    return found


def _imported_by_name(call: ast.Call, package: tuple[str, ...]) -> tuple[str, ...]:
    """``importlib.import_module("mangrove_nb.api")``, ``import_module(".api", __name__)`` or
    ``__import__("mangrove_nb.api")`` with a literal name: the module it imports (``()`` for any other call)."""
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
    if name not in ("import_module", "__import__") or not call.args:
        return ()
    first = call.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return ()
    text = first.value
    if not text.startswith("."):
        return tuple(text.split("."))
    dots = len(text) - len(text.lstrip("."))
    rest = tuple(part for part in text[dots:].split(".") if part)
    return package[: len(package) - (dots - 1)] + rest


def _is_module(name: tuple[str, ...]) -> bool:
    relative = Path(*name[1:]) if len(name) > 1 else Path()
    return (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative / "__init__.py").exists()


def _package_of(path: Path) -> tuple[str, ...]:
    """The package a file's relative imports start from (for ``__init__.py``, its own package)."""
    return path.resolve().relative_to(PACKAGE.parent).with_suffix("").parts[:-1]


def _unit_of(path: Path) -> str:
    relative = path.resolve().relative_to(PACKAGE).with_suffix("").parts
    return "mangrove_nb" if relative == ("__init__",) else relative[0]


def _unit_of_name(name: tuple[str, ...]) -> str:
    return name[1] if len(name) > 1 and _is_module(name[:2]) else "mangrove_nb"
