"""The package layout: every module imports; library code never imports the command lines (``tools``) or the
``train`` script; the experiment library has no import cycle, counting imports inside functions."""
import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

from experiments.protocols import REPO_ROOT

PACKAGES = ("engine", "experiments", "trainers", "datasets", "clip", "tools")
LIBRARY = ("engine", "experiments", "trainers", "datasets", "clip")


def module_files(package: str):
    """(dotted name, path) of every module of ``package``, sub-packages included."""
    root = REPO_ROOT / package
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imported_modules(name: str, path: Path):
    """Every module ``path`` imports, at any depth (inside functions too), as dotted names; ``from P import X``
    yields ``P`` and ``P.X`` (X may be a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


def test_every_module_imports():
    for package in PACKAGES:
        for info in pkgutil.walk_packages(importlib.import_module(package).__path__, prefix=f"{package}."):
            importlib.import_module(info.name)


@pytest.mark.parametrize("package", LIBRARY)
def test_library_never_imports_tools_or_train(package):
    offending = [f"{name} imports {target}" for name, path in module_files(package)
                 for target in imported_modules(name, path)
                 if target in ("tools", "train") or target.startswith("tools.")]
    assert not offending, offending


def test_train_script_never_imports_tools():
    targets = set(imported_modules("train", REPO_ROOT / "train.py"))
    assert not {t for t in targets if t == "tools" or t.startswith("tools.")}, targets


def test_no_import_cycle_among_experiments_modules():
    modules = dict(module_files("experiments"))
    graph = {name: sorted({t for t in imported_modules(name, path) if t in modules and t != name and
                           t != "experiments"}) for name, path in modules.items()}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)
