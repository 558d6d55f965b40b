"""The FerretDB wrapper's Go tests (stack/ferretdb): which documents a read-modify-write
request locks, and that the lock table keeps updates of one document apart while updates
of different documents run side by side. `tests/integration/test_mongo.py` checks the same
atomicity end to end against the running server."""

import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[3] / "stack" / "ferretdb"


def test_ferretdb_proxy_go_tests_pass() -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed (the local stack's install needs it anyway)")
    result = subprocess.run(
        [go, "test", "-count=1", "./..."],
        cwd=SOURCE,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
