"""The project's import graph: no module imports another in a circle (function-level
imports included, which hide a cycle from Python but not from a reader), and the
documents app never imports the search app (search builds on documents, not the reverse).

Read from the source with `ast`, so nothing is imported here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
PACKAGES = ("accounts", "documents", "search", "ragsite", "bench")
SKIP_DIRS = {"migrations", "__pycache__"}


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if SKIP_DIRS & set(path.relative_to(ROOT).parts):
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def _imported_names(module: str, path: Path, tree: ast.AST) -> list[tuple[str, int]]:
    """(dotted name, line) of every import in the file, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.append((base, node.lineno))
            # `from documents import pipeline` imports the module documents.pipeline.
            found.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported project module: first line importing it}."""
    modules = _modules()
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, line in _imported_names(module, path, tree):
            target = _resolve(name, modules)
            # A module's own packages are imported before it anyway: not an edge.
            if target is None or target == module or module.startswith(target + "."):
                continue
            graph[module].setdefault(target, line)
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected group."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_through(group, graph) for group in groups]


def _cycle_through(group: list[str], graph: dict[str, dict[str, int]]) -> list[str]:
    """A concrete path start -> ... -> start inside one strongly connected group."""
    members = set(group)
    start = group[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node]):
            if target == start:
                return [*paths[node], start]
            if target in members and target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    return [*group, start]  # unreachable for a strongly connected group


def _describe(path: list[str], graph: dict[str, dict[str, int]]) -> str:
    steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in zip(path, path[1:], strict=False)]
    return "\n    ".join(steps)


def test_no_module_imports_another_in_a_circle() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the walk found the project
    cycles = find_cycles(graph)
    report = "\n".join(f"  cycle:\n    {_describe(cycle, graph)}" for cycle in cycles)
    assert not cycles, f"import cycles (function-level imports count):\n{report}"


def test_documents_never_imports_search() -> None:
    graph = import_graph()
    offenders = sorted(
        f"  {module} (line {line}) imports {target}"
        for module, targets in graph.items()
        if module.split(".")[0] == "documents"
        for target, line in targets.items()
        if target.split(".")[0] == "search"
    )
    assert not offenders, "documents must not depend on search:\n" + "\n".join(offenders)


def test_the_checks_see_function_level_imports_and_cycles() -> None:
    # The checker itself: a cycle hidden in a function body is found and reported.
    tree = ast.parse("def f():\n    from documents import pipeline\n")
    names = _imported_names("documents.tasks", Path("documents/tasks.py"), tree)
    assert ("documents.pipeline", 2) in names
    graph = {"a": {"b": 3}, "b": {"c": 5}, "c": {"a": 7}, "d": {"a": 1}}
    (cycle,) = find_cycles(graph)
    assert cycle == ["a", "b", "c", "a"]
    assert _describe(cycle, graph).startswith("a (line 3) -> b")


def test_the_product_never_changes_settings_at_run_time() -> None:
    """`override_settings` (django.test) is for tests: the evaluation once used it to
    ingest with the header off, which races every other thread of the process. (The
    benchmarks may use django.test's client.)"""
    offenders = sorted(
        f"  {path.relative_to(ROOT)} (line {line})"
        for module, path in _modules().items()
        for name, line in _imported_names(module, path, ast.parse(path.read_text("utf-8")))
        if name.rpartition(".")[0] in ("django.test", "django.test.utils")
        and name.rpartition(".")[2] in ("override_settings", "modify_settings")
    )
    assert not offenders, "settings overridden outside the tests:\n" + "\n".join(offenders)
