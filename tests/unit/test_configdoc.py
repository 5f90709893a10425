"""docs/configuration.md is rendered from the settings models and must be current."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.configdoc import render
from bridge.settings import SECTIONS, TOP_LEVEL_DOCS, TOP_LEVEL_KEYS, BridgeSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_checked_in_configuration_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is out of date: run "
        "`meisa-bridge config-doc --output docs/configuration.md`"
    )


@pytest.mark.parametrize("name", list(SECTIONS))
def test_every_setting_has_a_meaning_and_a_row(name: str) -> None:
    text = render()
    for f in fields(SECTIONS[name]):
        assert f.metadata.get("doc"), f"{name}.{f.name} has no description"
        assert f"| `{name}.{f.name}` |" in text


def test_every_top_level_key_is_described() -> None:
    described = set(TOP_LEVEL_DOCS) | set(SECTIONS)
    assert described == set(TOP_LEVEL_KEYS)
    settings = {f.name for f in fields(BridgeSettings)} - {"source"}
    assert settings <= described


def test_check_fails_on_a_stale_file_and_passes_on_a_current_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "configuration.md"
    path.write_text(render().replace("`10.0`", "`11.0`"), encoding="utf-8")
    assert main(["config-doc", "--check", str(path)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["config-doc", "--output", str(path)]) == 0
    assert main(["config-doc", "--check", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == render()
