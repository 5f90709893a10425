"""The import graph of bridge/: no cycles, and the settings models depend on nothing of the bridge.

Every `import` counts, also those inside functions (a deferred import hides a cycle, it does not
remove it). Imports under `if TYPE_CHECKING:` do not run and are left out, and so is the edge from
a module to its own parent package (Python imports the parent first, whatever the child does).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

BRIDGE = Path(__file__).resolve().parents[2] / "bridge"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(BRIDGE.rglob("*.py")):
        parts = list(path.relative_to(BRIDGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except the bodies of `if TYPE_CHECKING:` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                yield child
                yield from _runtime_nodes(child)
            continue
        yield node
        yield from _runtime_nodes(node)


def _imported(name: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            subs = {f"{base}.{alias.name}" for alias in node.names} & set(known)
            found.update(subs or {base})
    parents = {name.rsplit(".", n)[0] for n in range(1, name.count(".") + 1)}
    return {m for m in found if m in known and m != name and m not in parents}


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imported(name, path, known) for name, path in known.items()}


def _cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle as a path `a -> b -> ... -> a`, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_walk_sees_the_modules_and_their_imports() -> None:
    graph = _graph()
    assert {"bridge.config", "bridge.settings", "bridge.pipeline.pipeline"} <= set(graph)
    assert {"bridge.settings", "bridge.rules.loader", "bridge.yamlio"} <= graph["bridge.config"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_bridge_modules() -> None:
    assert _cycle(_graph()) is None


def test_settings_and_yaml_import_nothing_above_them() -> None:
    graph = _graph()
    assert graph["bridge.settings"] <= {"bridge.opsettings", "bridge.settingsbase"}
    assert graph["bridge.opsettings"] <= {"bridge.settingsbase"}
    assert graph["bridge.settingsbase"] == set()
    assert graph["bridge.yamlio"] <= {"bridge.errors"}
    assert graph["bridge.errors"] == set()


def test_the_rules_layer_never_imports_the_consume_loop() -> None:
    """Rules are pure (an envelope in, calls out): a person's identity sits below both."""
    graph = _graph()
    rules = {name: deps for name, deps in graph.items() if name.startswith("bridge.rules")}
    assert rules
    for name, deps in rules.items():
        assert not {d for d in deps if d.startswith("bridge.pipeline")}, name
    assert graph["bridge.identity"] == set()


def _imports_of(path: Path) -> set[str]:
    """Every module a file names in an import, TYPE_CHECKING blocks included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_only_the_kafka_package_imports_confluent_kafka() -> None:
    """The Kafka client stays in bridge.kafka; its schema registry client (an HTTP client, not
    Kafka) in bridge.codecs, and nothing else of confluent_kafka there."""
    client: set[str] = set()
    registry: set[str] = set()
    for name, path in _modules().items():
        imported = {m for m in _imports_of(path) if m.split(".")[0] == "confluent_kafka"}
        if not imported:
            continue
        if all(m.startswith("confluent_kafka.schema_registry") for m in imported):
            registry.add(name)
        else:
            client.add(name)
    assert client, "the walk finds the Kafka package's imports"
    assert {m for m in client if not m.startswith("bridge.kafka.")} == set()
    assert registry, "the walk finds the codecs' registry imports"
    assert {m for m in registry if not m.startswith("bridge.codecs.")} == set()


def test_only_the_observability_package_imports_opentelemetry() -> None:
    importers = {
        name
        for name, path in _modules().items()
        if any(m.split(".")[0] == "opentelemetry" for m in _imports_of(path))
    }
    assert importers == {"bridge.observability.otel"}


def test_tracing_off_imports_no_opentelemetry() -> None:
    """A start with tracing off (the default) loads nothing of OpenTelemetry."""
    code = (
        "import sys\n"
        "from bridge.observability import start_tracing\n"
        "from bridge.pipeline import runner, pipeline\n"
        "from bridge.settings import TracingSettings\n"
        "start_tracing(TracingSettings())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
