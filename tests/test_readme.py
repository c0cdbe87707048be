"""The README stays true: its first commands, and every setting documented."""

from __future__ import annotations

from pathlib import Path

from clipq.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_starts_with_the_two_commands() -> None:
    block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]


def test_every_setting_is_documented_with_its_default() -> None:
    for name, field in Settings.model_fields.items():
        rows = [
            line for line in README.splitlines() if line.startswith(f"| `CLIPQ_{name.upper()}`")
        ]
        row = rows[0] if rows else ""
        assert row, f"CLIPQ_{name.upper()} is not in the README"
        default = str(field.default).lower() if isinstance(field.default, bool) else field.default
        assert f"`{default}`" in row, f"CLIPQ_{name.upper()}: default {default} not in {row!r}"
