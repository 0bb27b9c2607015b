"""No import cycle between the kit's packages (docs/ARCHITECTURE.md, "Layers").

The layers contract (pyproject.toml, run by tests/ops/test_static_checks.py) lets the
packages of one layer import each other; this test keeps those imports one-way too, so
every package can be read, tested and moved with only what lies below it.
"""

from __future__ import annotations

from collections import defaultdict

import grimp

ROOTS = ("clockify_core", "api_studio", "universal_webhook", "clockify_addon")


def package(module: str) -> str:
    """``clockify_core.sync.jobs`` → ``clockify_core.sync``; a service is one package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "clockify_core" else parts[0]


def package_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph(*ROOTS, include_external_packages=False)
    edges: dict[str, set[str]] = defaultdict(set)
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if package(module) != package(imported):
                edges[package(module)].add(package(imported))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(set(edges) | {b for targets in edges.values() for b in targets}):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
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
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_package_imports_a_package_that_imports_it_back() -> None:
    edges = package_graph()
    assert len(edges) > 30  # the graph was read
    assert cycles(edges) == []


def test_services_reach_the_kit_through_its_public_surface_only() -> None:
    edges = package_graph()
    for service in ROOTS[1:]:
        assert {p for p in edges[service] if p.startswith("clockify_core")} == {"clockify_core.kit"}
