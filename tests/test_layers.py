"""The project's import rules, read from the source with ``ast`` (nothing is imported).

Layers, lowest first; a module may import its own layer's modules (within its own part) and lower layers:

    core            harness/core                      imports no stage
    stages          harness/{data,train,bench,review,gate}, audits
    readers         reports, dashboard                read records; import no stage internals
    root            harness/app                       CLI, pipeline, config aggregate

Across parts, a stage or reader may import only another stage's *published* modules (its records and readers).
Any import cycle between modules fails, wherever it is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "audits", "reports", "dashboard")

#: part -> (layer number, module prefix). The one place the layering is written down.
PARTS = {
    "core": (0, "harness.core"),
    "data": (1, "harness.data"),
    "train": (1, "harness.train"),
    "bench": (1, "harness.bench"),
    "review": (1, "harness.review"),
    "gate": (1, "harness.gate"),
    "audits": (1, "audits"),
    "reports": (2, "reports"),
    "dashboard": (2, "dashboard"),
    "app": (3, "harness.app"),
}
#: What each stage publishes for other parts to read. Everything else in a stage is internal to it.
PUBLISHED = {
    "data": {"harness.data.record"},
    "train": {"harness.train.record"},
    "bench": {"harness.bench.record"},
    # the review stage's record, and the label store API the review app writes through
    "review": {"harness.review.record", "harness.review.store", "harness.review.config", "harness.review.agreement",
               "harness.review.export", "harness.review.summary"},
    # the decision records and their readers, and the history across candidates the report shows
    "gate": {"harness.gate.record", "harness.gate.history"},
    "audits": {"audits.registry"},
}
#: Packages with no code of their own (``harness/__init__.py``).
NEUTRAL = {"harness"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def part_of(module: str) -> str | None:
    matches = [(len(prefix), part) for part, (_, prefix) in PARTS.items()
               if module == prefix or module.startswith(prefix + ".")]
    return max(matches)[1] if matches else None


def imports_of(path: Path, module: str) -> set[str]:
    """Project modules that ``path`` imports, relative imports resolved; ``from x import y`` counts
    ``x.y`` when that is a module, else ``x``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [f"{base}.{alias.name}" if (f"{base}.{alias.name}" in ALL_MODULES) else base
                     for alias in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in PACKAGES}
    return found


ALL_FILES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
ALL_MODULES = {module_name(p) for p in ALL_FILES}
GRAPH = {module_name(p): imports_of(p, module_name(p)) for p in ALL_FILES}


def violations() -> list[str]:
    problems = []
    for module, deps in sorted(GRAPH.items()):
        here = part_of(module)
        if here is None:
            if module not in NEUTRAL:
                problems.append(f"{module}: in no layer (add its package to PARTS)")
            continue
        for dep in sorted(deps):
            there = part_of(dep)
            if there is None or there == here:
                continue
            if PARTS[there][0] > PARTS[here][0]:
                problems.append(f"{module} imports {dep}: layer {there} is above {here}")
            elif PARTS[there][0] == PARTS[here][0] or (PARTS[here][0] < 3 and there in PUBLISHED):
                # stages and readers read other stages only through what those publish; the root may call anything
                if dep not in PUBLISHED.get(there, set()):
                    problems.append(f"{module} imports {dep}: internal to {there} (published: "
                                    f"{sorted(PUBLISHED.get(there, ())) or 'nothing'})")
    return problems


def cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_every_import_goes_down_the_layers_or_through_a_published_module():
    assert violations() == []


def test_no_import_cycles():
    assert cycles() == []


def test_core_imports_no_stage():
    core = {m: deps for m, deps in GRAPH.items() if part_of(m) == "core"}
    assert core, "harness/core is empty"
    assert {m: sorted(d for d in deps if part_of(d) != "core") for m, deps in core.items()
            if any(part_of(d) != "core" for d in deps)} == {}


@pytest.mark.parametrize("source, expected", [
    ("from harness.gate.rules import judge", "imports harness.gate.rules: internal to gate"),
    ("from harness.app.config import PipelineConfig", "imports harness.app.config: layer app is above review"),
])
def test_the_rule_catches_a_bad_import(tmp_path, monkeypatch, source, expected):
    """The check can fail: a review module importing gate internals, or a stage importing the root."""
    module = "harness.review.enqueue"
    path = tmp_path / "enqueue.py"
    path.write_text(source + "\n")
    monkeypatch.setitem(GRAPH, module, imports_of(path, module))
    assert any(expected in v for v in violations()), violations()


def test_a_cycle_is_reported(monkeypatch):
    monkeypatch.setitem(GRAPH, "harness.core.records", GRAPH["harness.core.records"] | {"harness.core.store"})
    monkeypatch.setitem(GRAPH, "harness.core.store", GRAPH["harness.core.store"] | {"harness.core.records"})
    assert any({"harness.core.records", "harness.core.store"} <= set(c) for c in cycles())
