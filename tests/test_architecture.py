"""The layers of labrunner/ (docs/architecture.md), read from the source with ``ast``: the
import graph has no cycle, no module imports from a layer above its own, and no private name
(``_x``) is imported from another module. Imports inside functions and under
``TYPE_CHECKING`` count as much as those at the top of a module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "labrunner"

#: The layers, bottom first: a module may import from its own layer and the layers below it.
#: Each entry names the modules (and subpackages) of one layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("labrunner.base", "labrunner.stats", "labrunner.precision", "labrunner.data")),
    ("records", ("labrunner.records",)),
    ("authoring", ("labrunner.authoring",)),
    ("settings", ("labrunner.settings",)),
    ("execution", ("labrunner.execution",)),
    ("report", ("labrunner.report",)),
    ("course", ("labrunner.course",)),
    ("api", ("labrunner.api", "labrunner.testing")),
    ("commands", ("labrunner.commands",)),
    ("cli", ("labrunner", "labrunner.cli", "labrunner.__main__")),
)


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of ``package`` (a package is named
    by its ``__init__.py``)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = [package.name, *path.relative_to(package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(package: Path) -> list[tuple[str, str, str, int]]:
    """Every import of a module of ``package`` by a module of ``package``, as (importer,
    imported module, imported name or "", line). ``from pkg import sub`` imports the module
    ``pkg.sub``; ``from pkg import name`` imports ``name`` from ``pkg``."""
    mods = modules(package)
    found = []
    for name, path in mods.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = alias.name
                    while target and target not in mods:
                        target = target.rpartition(".")[0]
                    if target:
                        found.append((name, target, "", node.lineno))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                if base not in mods:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in mods:
                        found.append((name, sub, "", node.lineno))
                    else:
                        found.append((name, base, alias.name, node.lineno))
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: each strongly connected component of more than one module, or a
    module that imports itself (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    found.append(sorted(component))
    return found


def layer_of(module: str, layers=LAYERS) -> int | None:
    """The index of the layer that holds ``module``: the longest entry that names it or a
    package above it (the top package ``labrunner`` names only its ``__init__``)."""
    best, best_len = None, -1
    for rank, (_name, prefixes) in enumerate(layers):
        for prefix in prefixes:
            inside = module.startswith(prefix + ".") and "." in prefix
            if (module == prefix or inside) and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    return best


def problems(package: Path, layers=LAYERS) -> list[str]:
    """Every breach of the rules in ``package``, one line each."""
    found = []
    mods = modules(package)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for importer, target, _name, _line in imports(package):
        if target != importer:
            edges[importer].add(target)
    for module in mods:
        if layer_of(module, layers) is None:
            found.append(f"{module}: in no layer (declare its layer in LAYERS and docs/architecture.md)")
    for cycle in cycles(edges):
        found.append(f"import cycle: {' -> '.join(cycle)}")
    for importer, target, name, line in imports(package):
        low, high = layer_of(target, layers), layer_of(importer, layers)
        if low is not None and high is not None and low > high:
            found.append(
                f"{mods[importer].relative_to(package.parent)}:{line}: {importer} ({layers[high][0]}) "
                f"imports {target} ({layers[low][0]}), a layer above it"
            )
        if name.startswith("_") and not name.startswith("__") and target != importer:
            found.append(
                f"{mods[importer].relative_to(package.parent)}:{line}: imports private {target}.{name}"
            )
    return found


def guarded_imports(package: Path) -> list[str]:
    """Imports of ``package``'s own modules inside a ``try`` whose ``except`` catches
    ImportError: a broken module of labrunner must fail loudly, not vanish."""
    found = []
    for name, path in modules(package).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Try):
                continue
            caught = set()
            for handler in node.handlers:
                kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                caught |= {k.id for k in kinds if isinstance(k, ast.Name)}
            if not caught & {"ImportError", "ModuleNotFoundError"}:
                continue
            for stmt in node.body:
                for sub in ast.walk(stmt):
                    own = (
                        isinstance(sub, ast.ImportFrom)
                        and (sub.level or (sub.module or "").startswith(package.name))
                    ) or (
                        isinstance(sub, ast.Import)
                        and any(a.name.split(".")[0] == package.name for a in sub.names)
                    )
                    if own:
                        found.append(
                            f"{path.relative_to(package.parent)}:{sub.lineno}: {name} hides an ImportError of its own package"
                        )
    return found


def test_no_import_of_labrunner_itself_is_guarded_by_except_import_error(tmp_path):
    assert guarded_imports(PACKAGE) == []
    package = write(
        tmp_path,
        {
            "labrunner/__init__.py": "",
            "labrunner/cli.py": "try:\n    from .report import add\nexcept ImportError:\n    pass\n"
            "try:\n    import torch\nexcept ImportError:\n    pass\n",
        },
    )
    assert guarded_imports(package) == [
        "labrunner/cli.py:2: labrunner.cli hides an ImportError of its own package"
    ]


def test_the_core_has_no_cycle_no_upward_import_and_no_private_import():
    assert problems(PACKAGE) == []


def test_every_layer_is_a_package_or_module_that_exists():
    mods = modules(PACKAGE)
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            assert prefix in mods, f"layer {name}: {prefix} does not exist"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "labrunner"


def test_the_checks_find_a_cycle_an_upward_import_and_a_private_name(tmp_path):
    layers = (("low", ("labrunner.low",)), ("high", ("labrunner", "labrunner.high")))
    package = write(
        tmp_path,
        {
            "labrunner/__init__.py": "",
            "labrunner/low/__init__.py": "",
            "labrunner/low/a.py": "from . import b\n",
            "labrunner/low/b.py": "def f():\n    from .a import _hidden\n",
            "labrunner/low/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..high.g import G\n",
            "labrunner/high/g.py": "class G:\n    pass\n",
            "labrunner/high/__init__.py": "",
            "labrunner/high/h.py": "import labrunner.low.c\nfrom labrunner.low.a import __name__ as n\n",
            "labrunner/other.py": "",
        },
    )
    found = problems(package, layers)
    assert "labrunner.other: in no layer (declare its layer in LAYERS and docs/architecture.md)" in found
    assert "import cycle: labrunner.low.a -> labrunner.low.b" in found
    assert any("labrunner.low.c (low) imports labrunner.high.g (high), a layer above it" in p for p in found)
    assert any(p.endswith("imports private labrunner.low.a._hidden") for p in found)
    assert len(found) == 4, found  # high importing low, and a dunder name, are allowed


def test_a_package_without_faults_passes(tmp_path):
    layers = (("low", ("labrunner.low",)), ("high", ("labrunner", "labrunner.high")))
    package = write(
        tmp_path,
        {
            "labrunner/__init__.py": "from .high import h\n",
            "labrunner/low/__init__.py": "",
            "labrunner/low/a.py": "from .b import f\n",
            "labrunner/low/b.py": "def f():\n    pass\n",
            "labrunner/high/__init__.py": "",
            "labrunner/high/h.py": "from ..low import a\nfrom labrunner.low.b import f\n",
        },
    )
    assert problems(package, layers) == []


def test_docs_architecture_lists_the_layers_the_test_enforces():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| (.+) \|$", text, flags=re.M)
    documented = tuple((name, tuple(re.findall(r"`([\w.]+)`", cells))) for name, cells in rows)
    assert documented == LAYERS


# --------------------------------------------------------------------------- sizes

#: The most lines a module of labrunner/ or labs/ may have, and a function (with its
#: docstring and decorators' body lines, from ``def`` to its last line).
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

LABS = PACKAGE.parent / "labs"


def oversized(
    roots: list[Path], max_module: int = MAX_MODULE_LINES, max_function: int = MAX_FUNCTION_LINES
) -> list[str]:
    """Every module over ``max_module`` lines and every function (or method) over
    ``max_function`` lines under ``roots``, one line each, longest first."""
    found: list[tuple[int, str]] = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            where = path.relative_to(root.parent)
            lines = len(text.splitlines())
            if lines > max_module:
                found.append((lines, f"{where}: module of {lines} lines (> {max_module})"))
            for node in ast.walk(ast.parse(text, str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > max_function:
                        found.append(
                            (
                                length,
                                f"{where}:{node.lineno}: {node.name} has {length} lines (> {max_function})",
                            )
                        )
    return [line for _n, line in sorted(found, key=lambda item: -item[0])]


def test_no_module_over_500_lines_and_no_function_over_80_in_labrunner_or_labs():
    assert oversized([PACKAGE, LABS]) == []


def test_the_size_check_names_each_offender(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(6))
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/long.py": "def short():\n    return 1\n\n\ndef long():\n" + body + "\n",
            "pkg/big.py": "\n".join(f"y{i} = {i}" for i in range(12)) + "\n",
        },
    )
    assert oversized([tmp_path / "pkg"], max_module=11, max_function=5) == [
        "pkg/big.py: module of 12 lines (> 11)",
        "pkg/long.py:5: long has 7 lines (> 5)",
    ]
