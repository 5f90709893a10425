"""README.md and docs/: short README, links that lead somewhere, a layout that matches the tree,
examples that load, and no reference to files outside the repository."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from bridge.cli import build_parser
from bridge.config import load_rules

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Not part of the tree a user sees: build output, caches, local state (.gitignore lists them).
UNTRACKED = {"var", "build", "dist", "node_modules"}


def _links(path: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(path.read_text(encoding="utf-8"))]


def test_readme_stays_short() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) < 300


def test_the_docs_are_there() -> None:
    names = {p.name for p in DOCS}
    assert {"architecture.md", "configuration.md", "operations.md", "sandbox.md"} <= names


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_lead_to_files_in_the_repository(path: Path) -> None:
    local = [u for u in _links(path) if not re.match(r"[a-z]+:", u) and not u.startswith("#")]
    missing = [u for u in local if not (path.parent / u.split("#")[0]).exists()]
    assert missing == []


def test_readme_links_every_document() -> None:
    linked = {u.split("#")[0] for u in _links(README)}
    assert {f"docs/{p.name}" for p in DOCS} <= linked


def _layout_entries() -> set[str]:
    text = README.read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1]
    names: set[str] = set()
    for line in block.splitlines():
        if line.startswith("    ") and not line.startswith("      "):
            first = line.strip().split("  ")[0]
            names.update(n.strip().rstrip("/") for n in first.split(","))
    return names


def test_readme_layout_matches_the_tree() -> None:
    listed = _layout_entries()
    assert listed, "the README has no layout block"
    on_disk = {
        p.name
        for p in ROOT.iterdir()
        if (p.is_dir() and not p.name.startswith(".") and p.name not in UNTRACKED)
        and not p.name.endswith(".egg-info")
    }
    assert on_disk <= listed, f"not in the README layout: {sorted(on_disk - listed)}"
    assert {n for n in listed if not (ROOT / n).exists()} == set()


def test_readme_rules_example_loads(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    rules = [b for b in blocks if b.startswith("rules:")]
    assert len(rules) == 1
    path = tmp_path / "rules.yaml"
    path.write_text(rules[0], encoding="utf-8")
    assert len(load_rules(path)) >= 2


def test_readme_names_every_command() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(sub.choices)
    assert {"run", "validate", "config-doc"} <= commands
    text = README.read_text(encoding="utf-8")
    assert {c for c in commands if f"`meisa-bridge {c}" not in text} == set()


OUTSIDE = ("design" + ".md", "meisa-api" + "-spec", "/work/" + "shared")
SCANNED = ("bridge", "tests", "docs", "examples", "scripts", "helm", "bench", "chaos", "schemas")


def test_nothing_refers_to_files_outside_the_repository() -> None:
    files = [README, ROOT / "Makefile", ROOT / "Dockerfile", ROOT / "pyproject.toml"]
    for top in SCANNED:
        files.extend(
            p for p in (ROOT / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    hits = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        hits += [f"{path.relative_to(ROOT)}: {n}" for n in OUTSIDE if n in text]
    assert len(files) > 100
    assert hits == []
