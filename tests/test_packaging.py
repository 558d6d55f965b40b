"""Every package is typed for its importers (PEP 561), and mypy checks every package."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(ROOT.glob("*/*/src/threadline/*/__init__.py"))


def test_there_are_packages_to_check() -> None:
    assert len(PACKAGES) >= 8


def test_every_package_ships_py_typed() -> None:
    missing = [
        str(p.parent.relative_to(ROOT)) for p in PACKAGES if not (p.parent / "py.typed").exists()
    ]
    assert missing == []


def test_mypy_checks_every_package_strictly_with_the_pydantic_plugin() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    assert "pydantic.mypy" in config["plugins"]
    sources = {str(p.parent.parent.parent.relative_to(ROOT)) for p in PACKAGES}
    assert sources <= set(config["files"])
    assert sources <= set(config["mypy_path"])
