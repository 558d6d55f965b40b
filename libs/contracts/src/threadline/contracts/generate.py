"""Render the committed contract files, or check them for drift.

Run as ``python -m threadline.contracts.generate [--check]``.

Files are generated, committed and compared in CI so that a model change is visible in
review as a diff of the published contract:

- ``asyncapi.json``: the AsyncAPI 3.0 document of the catalogue;
- ``schemas/<event_type>.v<N>.json``: the JSON Schema of each event envelope;
- ``schemas/released/<event_type>.v<N>.json``: the backward-compatibility baseline of each
  event version, written once when missing and never overwritten.

``--check`` writes nothing and exits 1 listing files that are missing, stale or different.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from threadline.contracts import events  # noqa: F401  (registers every model)
from threadline.contracts.asyncapi import build_asyncapi
from threadline.contracts.registry import all_event_models
from threadline.contracts.schema import event_id, event_schema

__all__ = ["DEFAULT_ROOT", "check", "main", "released_files", "rendered_files", "write"]

DEFAULT_ROOT = Path(__file__).resolve().parents[3]
"""``libs/contracts`` when running from the source tree."""

SCHEMAS_DIR = "schemas"
RELEASED_DIR = "schemas/released"


def dumps(document: Any) -> str:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered_files() -> dict[str, str]:
    """Files regenerated on every run: relative path → content."""
    files = {"asyncapi.json": dumps(build_asyncapi())}
    for model in all_event_models():
        files[f"{SCHEMAS_DIR}/{event_id(model)}.json"] = dumps(event_schema(model))
    return files


def released_files() -> dict[str, str]:
    """Baseline snapshot each event version would get if it had none yet."""
    return {
        f"{RELEASED_DIR}/{event_id(model)}.json": dumps(event_schema(model))
        for model in all_event_models()
    }


def _stale(root: Path, rendered: dict[str, str]) -> list[Path]:
    """Generated schema files whose event version no longer exists."""
    return sorted(
        path
        for path in (root / SCHEMAS_DIR).glob("*.json")
        if f"{SCHEMAS_DIR}/{path.name}" not in rendered
    )


def check(root: Path = DEFAULT_ROOT) -> list[str]:
    """Problems that ``write`` would fix, one line each; empty when everything is current."""
    rendered = rendered_files()
    problems = []
    for relative, content in rendered.items():
        path = root / relative
        if not path.exists():
            problems.append(f"{relative}: missing")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"{relative}: differs from the models")
    problems.extend(f"{path.relative_to(root)}: stale" for path in _stale(root, rendered))
    problems.extend(
        f"{relative}: released snapshot missing"
        for relative in released_files()
        if not (root / relative).exists()
    )
    return problems


def write(root: Path = DEFAULT_ROOT) -> list[str]:
    """Bring the files under ``root`` up to date; returns what changed (relative paths)."""
    changed = []
    rendered = rendered_files()
    missing_releases = {
        relative: content
        for relative, content in released_files().items()
        if not (root / relative).exists()
    }
    for relative, content in {**rendered, **missing_releases}.items():
        path = root / relative
        if path.exists() and path.read_text(encoding="utf-8") == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8", newline="\n")
        changed.append(relative)
    for path in _stale(root, rendered):
        path.unlink()
        changed.append(f"{path.relative_to(root)} (removed)")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m threadline.contracts.generate", description=__doc__
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on drift")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="libs/contracts directory")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.root)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(
                "run `python -m threadline.contracts.generate` and commit the result",
                file=sys.stderr,
            )
        return 1 if problems else 0
    for relative in write(args.root):
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
