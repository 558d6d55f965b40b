"""Render each service's committed ``openapi.json``, or check them for drift.

Run as ``python -m threadline.devtools.openapi [--check]``. The files are what each service's
app generates (routes, request and response schemas), committed so that an API change shows
in review as a diff of the published document. ``--check`` writes nothing and exits 1
listing the files that are missing or differ.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from threadline.kit.settings import ServiceSettings

__all__ = ["SERVICES", "check", "main", "rendered_files", "write"]

SERVICES = ("messaging", "tasks", "reminders", "pipeline", "documents")
PLACEHOLDER = "openapi-rendering-only"
DEFAULT_ROOT = Path(__file__).resolve().parents[5]
"""The repository root when running from the source tree."""


def _dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def service_openapi(name: str) -> dict[str, Any]:
    """The OpenAPI document of service ``name``, built by its own app factory."""
    settings_class: type[ServiceSettings] = importlib.import_module(
        f"threadline.{name}.settings"
    ).Settings
    create_app = importlib.import_module(f"threadline.{name}.main").create_app
    # Settings reach the routes only at run time: placeholders satisfy required fields
    # (validated without reading the environment, so the document never depends on it).
    required = {
        field: PLACEHOLDER
        for field, info in settings_class.model_fields.items()
        if info.is_required()
    }
    settings = settings_class.model_validate({**required, "env": "test", "jwt_secret": PLACEHOLDER})
    document: dict[str, Any] = create_app(settings).openapi()
    return document


def rendered_files() -> dict[str, str]:
    """Relative path → content of every service's OpenAPI document."""
    return {f"services/{name}/openapi.json": _dumps(service_openapi(name)) for name in SERVICES}


def write(root: Path) -> list[Path]:
    written = []
    for relative, content in rendered_files().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)
    return written


def check(root: Path) -> list[str]:
    """Problems with the committed files, one line each; empty when they match the apps."""
    problems = []
    for relative, content in rendered_files().items():
        path = root / relative
        if not path.exists():
            problems.append(f"{relative}: missing")
        elif path.read_text() != content:
            problems.append(f"{relative}: differs from the app")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="repository root")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.root)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `python -m threadline.devtools.openapi`", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.root):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
