"""The package's import graph has no cycle: each stage imports only the ones below it; and no module uses
another's private names (a leading underscore means "only this module relies on it").

The graph is read from the source with :mod:`ast` (every ``import`` and ``from ... import``, also the
ones inside functions: a lazy import does not make a cycle go away, it only hides it), one node per
module of ``customer_lens``. ``from customer_lens.extract import batch`` is an edge to the submodule
``customer_lens.extract.batch`` when such a module exists, otherwise to the package itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "plugins" / "customer_lens"


def _module_name(path: Path, package_dir: Path) -> str:
    parts = ["customer_lens", *path.relative_to(package_dir).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    files = {_module_name(path, package_dir): path for path in package_dir.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = _package_of(name, path).split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.append(submodule if submodule in files else base)
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    """Tarjan's step: the members above ``root`` on the stack (``root`` included) form one component."""
    component = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == root:
            return component


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = _pop_component(stack, on_stack, node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _bindings(tree: ast.AST, files: dict[str, Path], name: str) -> tuple[dict[str, str], list[str]]:
    """The local names bound to the package's modules, and the private names imported from one."""
    modules: dict[str, str] = {}
    private_imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.asname: alias.name for alias in node.names if alias.name in files and alias.asname}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("customer_lens"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in files:
                    modules[alias.asname or alias.name] = submodule
                elif _is_private(alias.name) and node.module != name:
                    private_imports.append(f"{name}:{node.lineno} imports {node.module}.{alias.name}")
    return modules, private_imports


def private_uses(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Every place a module of the package imports or reads another module's private name."""
    files = {_module_name(path, package_dir): path for path in package_dir.rglob("*.py")}
    found = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        modules, private_imports = _bindings(tree, files, name)
        found += private_imports
        found += [
            f"{name}:{node.lineno} uses {modules[node.value.id]}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and modules.get(node.value.id, name) != name
            and _is_private(node.attr)
        ]
    return sorted(found)


def test_no_module_uses_another_modules_private_names() -> None:
    assert private_uses() == []


def test_the_private_name_walk_finds_both_forms(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def _helper():\n    pass\n\n\ndef public():\n    pass\n")
    (tmp_path / "b.py").write_text("from customer_lens import a\n\na.public()\na._helper()\n")
    (tmp_path / "c.py").write_text("from customer_lens.a import _helper, public\n")
    assert private_uses(tmp_path) == [
        "customer_lens.b:4 uses customer_lens.a._helper",
        "customer_lens.c:1 imports customer_lens.a._helper",
    ]


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "customer_lens.extract.batch" in graph["customer_lens.extract.files"]
    assert cycles(graph) == []


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        (
            {"a.py": "from customer_lens import b\n", "b.py": "def f():\n    from customer_lens import a\n"},
            [["a", "b"]],
        ),
        ({"a.py": "from customer_lens import b\n", "b.py": "import json\n"}, []),
        ({"p/__init__.py": "from .q import x\n", "p/q.py": "from customer_lens.p import r\n", "p/r.py": ""}, []),
        ({"p/__init__.py": "from .q import x\n", "p/q.py": "from customer_lens.p import y\n"}, [["p", "p.q"]]),
    ],
)
def test_the_walk_finds_cycles_lazy_ones_included(tmp_path: Path, sources: dict[str, str], expected) -> None:
    for relative, text in sources.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    found = cycles(import_graph(tmp_path))
    assert found == [[f"customer_lens.{name}" for name in component] for component in expected]
